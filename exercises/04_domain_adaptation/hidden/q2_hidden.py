"""Hidden checks of q2 (instructors; exercises/grade.py): AdaIN against
reidlib.domain_adaptation.style.adain (maps of different sizes, several eps), its gradient
with respect to content and style, and inputs left unchanged."""

import torch
from otter.test_files import test_case

from reidlib.domain_adaptation.style import adain as reference

OK_FORMAT = False
name = "q2_hidden"


def _adain(function, content, style, eps):
    assert callable(function), "define a function called adaptive_instance_norm"
    got = function(content, style, eps)
    assert isinstance(got, torch.Tensor) and got.shape == content.shape, (
        f"expected a tensor shaped like the content {tuple(content.shape)}, got {got!r}"
    )
    return got


@test_case(name="q2_hidden - maps of other sizes and eps against reidlib", hidden=True)
def against_reidlib(adaptive_instance_norm):
    gen = torch.Generator().manual_seed(144)
    for b, c, content_size, style_size, style_batch, eps in (
            (2, 3, (4, 4), (2, 3), 2, 1e-5), (3, 2, (2, 2), (5, 3), 1, 0.5),
            (1, 4, (3, 5), (3, 5), 1, 2.0), (2, 1, (2, 3), (4, 4), 2, 1e-3)):
        content = torch.randn(b, c, *content_size, generator=gen, dtype=torch.float64)
        style = 3 * torch.rand(style_batch, c, *style_size, generator=gen,
                               dtype=torch.float64) - 1
        got = _adain(adaptive_instance_norm, content.clone(), style.clone(), eps)
        expected = reference(content, style, eps)
        assert torch.allclose(got.detach().double(), expected, atol=1e-8), (
            f"adaptive_instance_norm(content {tuple(content.shape)}, style "
            f"{tuple(style.shape)}, eps={eps}) differs from reidlib's adain by up to "
            f"{float((got.detach().double() - expected).abs().max()):.2e}"
        )


@test_case(name="q2_hidden - gradient to content and style", hidden=True)
def gradient(adaptive_instance_norm):
    gen = torch.Generator().manual_seed(145)
    c0 = torch.randn(2, 3, 4, 4, generator=gen)
    s0 = torch.randn(2, 3, 3, 3, generator=gen)
    weights = torch.randn(2, 3, 4, 4, generator=gen)
    c, s = c0.clone().requires_grad_(True), s0.clone().requires_grad_(True)
    got = _adain(adaptive_instance_norm, c, s, 1e-5)
    assert got.requires_grad, "adaptive_instance_norm's result has no gradient"
    (got * weights).sum().backward()
    assert s.grad is not None, (
        "no gradient reaches the style: AdaIN is differentiable in both maps (do not detach "
        "the style's statistics)"
    )
    cr, sr = c0.clone().requires_grad_(True), s0.clone().requires_grad_(True)
    (reference(cr, sr, 1e-5) * weights).sum().backward()
    assert torch.allclose(c.grad, cr.grad, atol=1e-5) and torch.allclose(s.grad, sr.grad,
                                                                         atol=1e-5), (
        "the gradient of adaptive_instance_norm with respect to the content or the style "
        "differs from reidlib's adain"
    )


@test_case(name="q2_hidden - inputs left unchanged", hidden=True)
def inputs_unchanged(adaptive_instance_norm):
    gen = torch.Generator().manual_seed(146)
    content, style = torch.randn(1, 2, 3, 3, generator=gen), torch.randn(1, 2, 2, 2, generator=gen)
    c, s = content.clone(), style.clone()
    _adain(adaptive_instance_norm, c, s, 1e-5)
    assert torch.equal(c, content) and torch.equal(s, style), (
        "adaptive_instance_norm changed the content or style it was given (compute into new "
        "tensors, not in place)"
    )
