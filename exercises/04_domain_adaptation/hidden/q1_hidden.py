"""Hidden checks of q1 (instructors; exercises/grade.py): the squared MMD against a double loop
over the pairs and against reidlib.domain_adaptation.alignment.mmd2, value and gradient."""

import math

import torch
from otter.test_files import test_case

from reidlib.domain_adaptation.alignment import mmd2 as reference

OK_FORMAT = False
name = "q1_hidden"


def _mmd(function, *args):
    assert callable(function), "define a function called mmd_squared"
    got = function(*args)
    assert isinstance(got, torch.Tensor) and got.numel() == 1, (
        f"expected a torch scalar (MMD^2), got {got!r}"
    )
    return got.reshape(())


def _loop(x, y, bandwidths):
    """Gretton et al.'s biased MMD^2, one pair at a time."""
    x, y = x.tolist(), y.tolist()

    def k(a, b):
        d2 = sum((u - v) ** 2 for u, v in zip(a, b, strict=True))
        return sum(math.exp(-d2 / h) for h in bandwidths)

    within_x = sum(k(a, b) for a in x for b in x) / len(x) ** 2
    within_y = sum(k(a, b) for a in y for b in y) / len(y) ** 2
    across = sum(k(a, b) for a in x for b in y) / (len(x) * len(y))
    return within_x + within_y - 2 * across


@test_case(name="q1_hidden - random samples against a double loop", hidden=True)
def against_loop(mmd_squared):
    gen = torch.Generator().manual_seed(140)
    for m, n, d, bandwidths in ((5, 5, 3, [1.0]), (7, 3, 4, [0.25, 1.0, 4.0]),
                                (2, 9, 2, [0.1, 10.0]), (6, 6, 8, [2.0, 4.0, 8.0, 16.0, 32.0])):
        x = torch.randn(m, d, generator=gen, dtype=torch.float64)
        y = 1.5 * torch.randn(n, d, generator=gen, dtype=torch.float64) + 0.5
        expected = _loop(x, y, bandwidths)
        got = float(_mmd(mmd_squared, x.clone(), y.clone(), list(bandwidths)))
        assert abs(got - expected) < 1e-8 * max(1.0, abs(expected)), (
            f"mmd_squared({m} x {d} against {n} x {d} random points, bandwidths {bandwidths}) "
            f"returned {got:.6f}, expected {expected:.6f}"
        )


@test_case(name="q1_hidden - reidlib's mmd2 and its gradient", hidden=True)
def against_reidlib(mmd_squared):
    gen = torch.Generator().manual_seed(141)
    for m, n, d in ((32, 32, 16), (20, 12, 8)):
        x0 = torch.randn(m, d, generator=gen)
        y0 = torch.randn(n, d, generator=gen) + 0.3
        bandwidths = [4.0, 8.0, 16.0, 32.0, 64.0]
        x, y = x0.clone().requires_grad_(True), y0.clone().requires_grad_(True)
        got = _mmd(mmd_squared, x, y, bandwidths)
        assert got.requires_grad, (
            "mmd_squared's result has no gradient: build it from torch operations on x and y "
            "(no .item(), .numpy() or float() inside)"
        )
        got.backward()
        xr, yr = x0.clone().requires_grad_(True), y0.clone().requires_grad_(True)
        expected = reference(xr, yr, bandwidths)
        expected.backward()
        assert abs(float(got) - float(expected)) < 1e-5 * max(1.0, float(expected)), (
            f"mmd_squared({m} against {n} random {d}-D features) returned {float(got):.6f}, "
            f"but reidlib's mmd2 gives {float(expected):.6f}"
        )
        assert torch.allclose(x.grad, xr.grad, atol=1e-6) and \
            torch.allclose(y.grad, yr.grad, atol=1e-6), (
                "the gradient of mmd_squared with respect to x or y differs from reidlib's"
            )


@test_case(name="q1_hidden - inputs left unchanged", hidden=True)
def inputs_unchanged(mmd_squared):
    x = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    y = torch.tensor([[0.0, 1.0], [2.0, 2.0]])
    bandwidths = torch.tensor([1.0, 2.0])
    _mmd(mmd_squared, x, y, bandwidths)
    assert torch.equal(x, torch.tensor([[0.0, 0.0], [1.0, 0.0]])) and \
        torch.equal(y, torch.tensor([[0.0, 1.0], [2.0, 2.0]])) and \
        torch.equal(bandwidths, torch.tensor([1.0, 2.0])), (
            "mmd_squared changed the x, y or bandwidths it was given (compute into new "
            "tensors, not in place)"
        )
