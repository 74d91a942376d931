"""Public checks of q2, adaptive instance normalisation (students run grader.check("q2"))."""

import math

import torch
from otter.test_files import test_case

OK_FORMAT = False
name = "q2"

HINT = (
    "Hint: for a map x, flat = x.flatten(2) is (B, C, H*W); its mean is flat.mean(dim=2) and "
    "its std (flat.var(dim=2, unbiased=True) + eps).sqrt(), both reshaped to (B, C, 1, 1) "
    "with [:, :, None, None]; the result is (content - mean_c) / std_c * std_s + mean_s."
)

# The notebook's example: one 2 x 2 map of one channel.
CONTENT = torch.tensor([[[[1.0, 3.0], [5.0, 7.0]]]], dtype=torch.float64)
STYLE = torch.tensor([[[[0.0, 0.0], [2.0, 2.0]]]], dtype=torch.float64)


def _rounded(t):
    return [round(v, 3) for v in t.flatten().tolist()]


def _adain(function, content, style, eps, what):
    assert callable(function), (
        "define a function called adaptive_instance_norm (run its cell first)"
    )
    got = function(content, style, eps)
    assert got is not None, "adaptive_instance_norm returned None: did you forget the return?"
    assert isinstance(got, torch.Tensor) and got.shape == content.shape, (
        f"adaptive_instance_norm({what}) should return a tensor shaped like the content "
        f"{tuple(content.shape)}, got {getattr(got, 'shape', got)!r}"
    )
    return got.detach().double().cpu()


def _expected(content, style, eps):
    """AdaIN with Python loops over images and channels."""
    out = torch.empty_like(content)
    for b in range(content.shape[0]):
        for c in range(content.shape[1]):
            s = style[min(b, len(style) - 1), c].flatten().tolist()
            x = content[b, c].flatten().tolist()
            stats = []
            for values in (x, s):
                mean = sum(values) / len(values)
                var = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
                stats.append((mean, math.sqrt(var + eps)))
            (mc, sc), (ms, ss) = stats
            out[b, c] = (content[b, c] - mc) / sc * ss + ms
    return out


@test_case(name="q2 - the notebook's example", failure_message=HINT)
def worked_example(adaptive_instance_norm):
    got = _adain(adaptive_instance_norm, CONTENT.clone(), STYLE.clone(), 0.0,
                 "the notebook's 2 x 2 example, eps=0")
    expected = _expected(CONTENT, STYLE, 0.0)
    assert torch.allclose(got, expected, atol=1e-6), (
        f"adaptive_instance_norm(content [[1, 3], [5, 7]], style [[0, 0], [2, 2]], eps=0) "
        f"returned {_rounded(got)}, expected {_rounded(expected)}: (x - 4) / sqrt(20/3) * "
        "sqrt(4/3) + 1, the content's mean and std replaced by the style's"
    )


@test_case(name="q2 - eps is added to the variance, before the square root",
           failure_message=HINT)
def eps_placement(adaptive_instance_norm):
    got = _adain(adaptive_instance_norm, CONTENT.clone(), STYLE.clone(), 1.0,
                 "the notebook's example, eps=1")
    expected = _expected(CONTENT, STYLE, 1.0)
    assert torch.allclose(got, expected, atol=1e-6), (
        f"adaptive_instance_norm(the notebook's example, eps=1) returned {_rounded(got)}, "
        f"expected {_rounded(expected)}: sigma = sqrt(unbiased variance + eps) for both maps, "
        "so the ratio is sqrt((4/3 + 1) / (20/3 + 1))"
    )


@test_case(name="q2 - per image and per channel; one style map for all", failure_message=HINT)
def per_image_and_channel(adaptive_instance_norm):
    gen = torch.Generator().manual_seed(41)
    content = torch.randn(2, 3, 2, 3, generator=gen, dtype=torch.float64) * \
        torch.tensor([1.0, 5.0, 0.2], dtype=torch.float64)[:, None, None]
    style = torch.randn(2, 3, 2, 3, generator=gen, dtype=torch.float64) + \
        torch.tensor([[0.0], [10.0]], dtype=torch.float64)[:, :, None, None]
    got = _adain(adaptive_instance_norm, content.clone(), style.clone(), 0.0,
                 "2 images of 3 channels with their own styles")
    expected = _expected(content, style, 0.0)
    assert torch.allclose(got, expected, atol=1e-6), (
        "adaptive_instance_norm(2 images of 3 channels, 2 style maps) differs from AdaIN: take "
        "the mean and std of each image's each channel over H x W only (not over the batch or "
        "the channels), and give image b the style of style map b"
    )
    got = _adain(adaptive_instance_norm, content.clone(), style[1:].clone(), 0.0,
                 "2 images, one style map")
    expected = _expected(content, style[1:], 0.0)
    assert torch.allclose(got, expected, atol=1e-6), (
        "adaptive_instance_norm(2 content images, a (1, C, H, W) style) differs from AdaIN: "
        "one style map gives its statistics to every content image (keep the (B, C, 1, 1) "
        "shapes and let broadcasting do it)"
    )
