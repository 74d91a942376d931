"""Public checks of q1, the biased squared MMD with a Gaussian kernel mixture (students run
grader.check("q1"))."""

import math
import numbers

import torch
from otter.test_files import test_case

OK_FORMAT = False
name = "q1"

HINT = (
    "Hint: d2 = (a[:, None, :] - b[None, :, :]).square().sum(dim=2) holds the squared "
    "distances; the kernel matrix is sum(torch.exp(-d2 / h) for h in bandwidths) (a sum, h "
    "divides); MMD^2 = k(x, x).mean() + k(y, y).mean() - 2 * k(x, y).mean(), each mean over "
    "all pairs, (i, i) included."
)

# The notebook's example: two points in X, one in Y.
X = torch.tensor([[0.0, 0.0], [1.0, 0.0]], dtype=torch.float64)
Y = torch.tensor([[0.0, 1.0]], dtype=torch.float64)


def _mmd(function, x, y, bandwidths, what):
    """The student's MMD^2 as a float, checked to be one number."""
    assert callable(function), "define a function called mmd_squared (run its cell first)"
    got = function(x, y, bandwidths)
    assert got is not None, "mmd_squared returned None: did you forget the return?"
    if isinstance(got, torch.Tensor):
        assert got.numel() == 1, (
            f"mmd_squared({what}) should return one number, got a tensor of shape "
            f"{tuple(got.shape)}"
        )
        return float(got)
    assert isinstance(got, numbers.Real) and not isinstance(got, bool), (
        f"mmd_squared({what}) should return a torch scalar, got {got!r}"
    )
    return float(got)


def _example(bandwidths):
    """The notebook's example by hand: within X, within Y, across."""
    def k(d2):
        return sum(math.exp(-d2 / h) for h in bandwidths)

    return (2 * k(0) + 2 * k(1)) / 4 + k(0) - 2 * (k(1) + k(2)) / 2


@test_case(name="q1 - the notebook's example, one bandwidth", failure_message=HINT)
def worked_example(mmd_squared):
    got = _mmd(mmd_squared, X.clone(), Y.clone(), [1.0], "X = {(0, 0), (1, 0)}, Y = {(0, 1)}, "
               "bandwidths [1]")
    expected = _example([1.0])
    assert abs(got - expected) < 1e-6, (
        f"mmd_squared(X = {{(0, 0), (1, 0)}}, Y = {{(0, 1)}}, bandwidths [1]) returned "
        f"{got:.4f}, expected {expected:.4f}: (2 + 2/e) / 4 within X, 1 within Y, minus "
        f"2 (1/e + 1/e^2) / 2 across (squared distances 1 and 2; the pairs (i, i) count, and "
        "the cross term is counted twice)"
    )


@test_case(name="q1 - several bandwidths: a sum of Gaussians, h divides", failure_message=HINT)
def two_bandwidths(mmd_squared):
    got = _mmd(mmd_squared, X.clone(), Y.clone(), [0.5, 4.0], "the example, bandwidths "
               "[0.5, 4]")
    expected = _example([0.5, 4.0])
    assert abs(got - expected) < 1e-6, (
        f"mmd_squared(the notebook's example, bandwidths [0.5, 4]) returned {got:.4f}, "
        f"expected {expected:.4f}: the kernel is exp(-d2 / 0.5) + exp(-d2 / 4), the sum "
        "(not the mean) of one Gaussian per bandwidth, each dividing the squared distance"
    )
    got = _mmd(mmd_squared, X.clone(), Y.clone(), torch.tensor([0.5, 4.0], dtype=torch.float64),
               "the example, bandwidths a tensor [0.5, 4]")
    assert abs(got - expected) < 1e-6, (
        f"mmd_squared(the example, bandwidths given as a tensor) returned {got:.4f}, expected "
        f"{expected:.4f}"
    )


@test_case(name="q1 - identical samples give 0, and m may differ from n",
           failure_message=HINT)
def identical_and_sizes(mmd_squared):
    gen = torch.Generator().manual_seed(40)
    x = torch.randn(6, 3, generator=gen, dtype=torch.float64)
    got = _mmd(mmd_squared, x.clone(), x.clone(), [1.0, 4.0], "x, x (six 3-D points twice)")
    assert abs(got) < 1e-9, (
        f"mmd_squared(x, x) returned {got:.6f}, expected 0: the biased estimate of a sample "
        "against itself is 0 (keep the pairs (i, i) in the within-sample means)"
    )
    y = torch.randn(4, 3, generator=gen, dtype=torch.float64) + 2
    got = _mmd(mmd_squared, x, y, [1.0, 4.0], "six points against four")
    assert got > 0.1, (
        f"mmd_squared(six points against four shifted by 2) returned {got:.4f}: expected a "
        "clearly positive number (divide each mean by its own number of pairs: m^2, n^2, m n)"
    )
