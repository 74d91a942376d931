"""Hidden checks of q3 (instructors; exercises/grade.py): NT-Xent against
reidlib.directions.selfsup.nt_xent (values at several sizes and temperatures, a small
temperature in float32, the gradient), and the inputs left unchanged."""

import torch
from otter.test_files import test_case

from reidlib.directions.selfsup import nt_xent

OK_FORMAT = False
name = "q3_hidden"


def _loss(function, z1, z2, temperature):
    assert callable(function), "define a function called nt_xent_loss"
    got = function(z1, z2, temperature)
    if isinstance(got, float | int) and not isinstance(got, bool):
        got = torch.tensor(float(got))  # a number: right or wrong, but without a gradient
    assert isinstance(got, torch.Tensor) and got.numel() == 1, (
        f"expected a scalar torch tensor, got {got!r}"
    )
    return got.reshape(())


@test_case(name="q3_hidden - random views against reidlib's nt_xent", hidden=True)
def against_reidlib(nt_xent_loss):
    gen = torch.Generator().manual_seed(162)
    for n, d, temperature in ((2, 2, 0.5), (8, 16, 0.1), (32, 128, 0.07), (5, 3, 2.0)):
        z1 = torch.randn(n, d, generator=gen) * 4
        z2 = z1 + torch.randn(n, d, generator=gen)  # views that resemble each other
        got = _loss(nt_xent_loss, z1.clone(), z2.clone(), temperature)
        expected = nt_xent(z1, z2, temperature)
        assert torch.allclose(got.detach().float(), expected, rtol=1e-5, atol=1e-5), (
            f"nt_xent_loss({n} images, {d}-D, temperature {temperature}) returned "
            f"{float(got):.6f}, but reidlib's nt_xent gives {float(expected):.6f}"
        )


@test_case(name="q3_hidden - a small temperature in float32: no overflow", hidden=True)
def small_temperature(nt_xent_loss):
    gen = torch.Generator().manual_seed(163)
    z1 = torch.randn(16, 32, generator=gen)
    z2 = z1 + 0.3 * torch.randn(16, 32, generator=gen)
    got = _loss(nt_xent_loss, z1.clone(), z2.clone(), 0.005)
    expected = nt_xent(z1, z2, 0.005)
    assert torch.isfinite(got).item() and torch.allclose(got.detach().float(), expected,
                                                         rtol=1e-4, atol=1e-3), (
        f"nt_xent_loss(float32 views, temperature 0.005) returned {float(got)!r}, reidlib's "
        f"nt_xent gives {float(expected):.4f}: exp(similarity / 0.005) overflows float32 "
        "(exp(200) is inf); let torch's log-softmax (F.cross_entropy) do the exponentials"
    )


@test_case(name="q3_hidden - gradient to both views", hidden=True)
def gradient(nt_xent_loss):
    gen = torch.Generator().manual_seed(164)
    z1, z2 = torch.randn(6, 8, generator=gen), torch.randn(6, 8, generator=gen)
    a, b = z1.clone().requires_grad_(True), z2.clone().requires_grad_(True)
    got = _loss(nt_xent_loss, a, b, 0.2)
    assert got.requires_grad, (
        "nt_xent_loss's result has no gradient: build it from torch operations on z1 and z2 "
        "(no .item(), no .numpy(), no .detach()): a network trains through this loss"
    )
    got.backward()
    c, d = z1.clone().requires_grad_(True), z2.clone().requires_grad_(True)
    nt_xent(c, d, 0.2).backward()
    assert torch.allclose(a.grad, c.grad, atol=1e-5) and torch.allclose(b.grad, d.grad,
                                                                       atol=1e-5), (
        "the gradient of nt_xent_loss with respect to the views differs from reidlib's "
        "nt_xent"
    )


@test_case(name="q3_hidden - inputs left unchanged", hidden=True)
def inputs_unchanged(nt_xent_loss):
    gen = torch.Generator().manual_seed(165)
    z1, z2 = torch.randn(4, 5, generator=gen) * 3, torch.randn(4, 5, generator=gen) * 3
    a, b = z1.clone(), z2.clone()
    _loss(nt_xent_loss, a, b, 0.5)
    assert torch.equal(a, z1) and torch.equal(b, z2), (
        "nt_xent_loss changed the views it was given (normalise into new tensors, not in "
        "place)"
    )
