"""Hidden checks of q1b (instructors; exercises/grade.py): DAN's bandwidths against
reidlib.domain_adaptation.alignment.default_bandwidths, and without gradient."""

import torch
from otter.test_files import test_case

from reidlib.domain_adaptation.alignment import default_bandwidths as reference

OK_FORMAT = False
name = "q1b_hidden"


def _bandwidths(function, x, y):
    assert callable(function), "define a function called dan_bandwidths"
    got = function(x, y)
    assert isinstance(got, torch.Tensor) and got.shape == (5,), (
        f"expected a (5,) tensor of bandwidths, got {got!r}"
    )
    return got


@test_case(name="q1b_hidden - random samples against reidlib", hidden=True)
def against_reidlib(dan_bandwidths):
    gen = torch.Generator().manual_seed(142)
    for m, n, d, scale in ((8, 8, 4, 1.0), (3, 11, 16, 5.0), (30, 2, 2, 0.1), (1, 1, 3, 2.0)):
        x = scale * torch.randn(m, d, generator=gen, dtype=torch.float64)
        y = scale * torch.randn(n, d, generator=gen, dtype=torch.float64) + 1
        got = _bandwidths(dan_bandwidths, x.clone(), y.clone()).detach().double()
        expected = reference(x, y)
        assert torch.allclose(got, expected, rtol=1e-8, atol=0), (
            f"dan_bandwidths({m} against {n} random {d}-D points) returned "
            f"{[round(v, 4) for v in got.tolist()]}, but reidlib's default_bandwidths gives "
            f"{[round(v, 4) for v in expected.tolist()]}"
        )


@test_case(name="q1b_hidden - no gradient, inputs unchanged", hidden=True)
def no_gradient(dan_bandwidths):
    gen = torch.Generator().manual_seed(143)
    x0, y0 = torch.randn(6, 5, generator=gen), torch.randn(4, 5, generator=gen)
    x, y = x0.clone().requires_grad_(True), y0.clone().requires_grad_(True)
    got = _bandwidths(dan_bandwidths, x, y)
    assert not got.requires_grad, (
        "dan_bandwidths's result carries a gradient: compute it inside torch.no_grad() (or "
        "detach it), so that the loss does not move the bandwidths' base"
    )
    assert torch.equal(x.detach(), x0) and torch.equal(y.detach(), y0), (
        "dan_bandwidths changed the x or y it was given"
    )
