"""AdaIN (Huang & Belongie, ICCV 2017) and RGB colour transfer (Reinhard et al. 2001)
against per-image, per-channel loops written from the equations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reidlib.domain_adaptation.style import adain, colour_transfer


def _maps(b, c, h, w, seed, scale=1.0, shift=0.0, grad=False):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, c, h, w, generator=g, dtype=torch.float64) * scale + shift
    return x.requires_grad_(grad)


def _adain_loop(content, style, eps=1e-5):
    """sigma(y) (x - mu(x)) / sigma(x) + mu(y), one image and channel at a time, with the
    reference's std = sqrt(unbiased variance + eps) over H x W."""
    def stats(v):
        n = v.numel()
        mean = v.sum() / n
        return mean, torch.sqrt(((v - mean) ** 2).sum() / (n - 1) + eps)
    out = []
    for b in range(len(content)):
        s = style[b if len(style) > 1 else 0]
        channels = []
        for c in range(content.shape[1]):
            cm, cs = stats(content[b, c])
            sm, ss = stats(s[c])
            channels.append((content[b, c] - cm) / cs * ss + sm)
        out.append(torch.stack(channels))
    return torch.stack(out)


# ------------------------------------------------------------------ AdaIN


@pytest.mark.parametrize("style_batch", [3, 1])
def test_adain_equals_a_per_channel_loop_with_gradients(style_batch):
    c1 = _maps(3, 4, 5, 6, 0, grad=True)
    s1 = _maps(style_batch, 4, 7, 3, 1, scale=3.0, shift=2.0, grad=True)
    c2, s2 = c1.detach().clone().requires_grad_(), s1.detach().clone().requires_grad_()
    out = adain(c1, s1)
    torch.testing.assert_close(out, _adain_loop(c2, s2))
    target = torch.randn_like(out)
    (out * target).sum().backward()
    (_adain_loop(c2, s2) * target).sum().backward()
    torch.testing.assert_close(c1.grad, c2.grad)
    torch.testing.assert_close(s1.grad, s2.grad)
    assert s1.grad.abs().sum() > 0


def test_adain_output_takes_the_style_statistics():
    content = _maps(2, 3, 8, 8, 2, scale=0.5, shift=-1.0)
    style = _maps(2, 3, 6, 4, 3, scale=4.0, shift=5.0)
    out = adain(content, style, eps=1e-12)
    torch.testing.assert_close(out.mean((2, 3)), style.mean((2, 3)))
    torch.testing.assert_close(out.flatten(2).std(2), style.flatten(2).std(2))
    # the content's own statistics give back the content
    torch.testing.assert_close(adain(content, content, eps=1e-12), content)


@pytest.mark.parametrize("content, style, match", [
    (torch.zeros(2, 3, 4, 4), torch.zeros(2, 4, 4, 4), "same channels"),
    (torch.zeros(3, 4, 4), torch.zeros(3, 4, 4), r"\(B, C, H, W\)"),
    (torch.zeros(2, 3, 1, 1), torch.zeros(2, 3, 4, 4), "H \\* W >= 2"),
    (torch.zeros(3, 3, 4, 4), torch.zeros(2, 3, 4, 4), "one map for every content map"),
    (torch.zeros(2, 3, 4, 4, dtype=torch.uint8), torch.zeros(2, 3, 4, 4), "floating-point"),
])
def test_adain_errors(content, style, match):
    with pytest.raises(ValueError, match=match):
        adain(content, style)


def test_adain_eps_must_be_positive():
    with pytest.raises(ValueError, match="eps"):
        adain(torch.zeros(1, 2, 2, 2), torch.zeros(1, 2, 2, 2), eps=0.0)


# ------------------------------------------------------------------ colour transfer


def _images(b, h, w, means, stds, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(np.array(means)[None, :, None, None], np.array(stds)[None, :, None, None],
                   size=(b, 3, h, w))
    return torch.from_numpy(np.clip(np.round(x), 0, 255).astype(np.uint8))


def _reinhard_loop(images, reference, per_image=True):
    ref = reference.numpy().astype(np.float64)
    x = images.numpy().astype(np.float64)
    out = np.empty_like(x)
    for c in range(3):
        pixels = ref[:, c].ravel()
        ref_mean, ref_std = pixels.mean(), pixels.std()
        groups = [[b] for b in range(len(x))] if per_image else [list(range(len(x)))]
        for rows in groups:
            v = x[rows, c]
            std = v.std()
            scaled = (v - v.mean()) * (ref_std / std if std > 0 else 0.0) + ref_mean
            out[rows, c] = scaled
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("per_image", [True, False])
def test_colour_transfer_equals_a_loop_and_matches_the_reference_statistics(per_image):
    images = _images(4, 16, 8, [70, 90, 110], [12, 8, 15], 0)
    reference = _images(6, 12, 6, [140, 120, 100], [25, 30, 20], 1)
    out = colour_transfer(images, reference, per_image=per_image)
    assert out.dtype == torch.uint8 and out.shape == images.shape
    expected = _reinhard_loop(images, reference, per_image)
    diff = np.abs(out.numpy().astype(int) - expected.astype(int))
    assert diff.max() <= 1 and (diff == 0).mean() > 0.99  # ties may round either way
    ref = reference.double().transpose(0, 1).flatten(1)
    groups = [out[b:b + 1] for b in range(len(out))] if per_image else [out]
    for group in groups:
        got = group.double().transpose(0, 1).flatten(1)
        np.testing.assert_allclose(got.mean(1), ref.mean(1), atol=0.5)  # rounding only
        np.testing.assert_allclose(got.std(1, unbiased=False), ref.std(1, unbiased=False),
                                   atol=0.5)


def test_colour_transfer_constant_channel_and_clipping():
    images = torch.full((2, 3, 4, 4), 50, dtype=torch.uint8)
    images[:, 1] = torch.arange(16, dtype=torch.uint8).view(4, 4) * 16  # 0..240
    reference = _images(3, 8, 8, [200, 128, 30], [5, 120, 4], 2)
    out = colour_transfer(images, reference)
    ref_mean = reference.double().transpose(0, 1).flatten(1).mean(1)
    assert (out[:, 0] == int(round(float(ref_mean[0])))).all()  # constant: the mean
    assert (out[:, 2] == int(round(float(ref_mean[2])))).all()
    assert int(out[:, 1].min()) == 0 and int(out[:, 1].max()) == 255  # a wide std clips


def test_colour_transfer_to_its_own_statistics_is_the_identity():
    images = _images(1, 10, 6, [90, 100, 120], [20, 25, 30], 3)
    assert torch.equal(colour_transfer(images, images), images)


@pytest.mark.parametrize("images, reference, match", [
    (torch.zeros(2, 3, 4, 4), torch.zeros(2, 3, 4, 4, dtype=torch.uint8), "uint8"),
    (torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.zeros(2, 3, 4, 4, dtype=torch.uint8),
     r"\(B, 3, H, W\)"),
    (torch.zeros(2, 3, 4, 4, dtype=torch.uint8), torch.zeros(3, 4, 4, dtype=torch.uint8),
     "reference_images"),
    (torch.zeros(0, 3, 4, 4, dtype=torch.uint8), torch.zeros(1, 3, 4, 4, dtype=torch.uint8),
     "B >= 1"),
])
def test_colour_transfer_errors(images, reference, match):
    with pytest.raises(ValueError, match=match):
        colour_transfer(images, reference)
