"""Public checks of q1b, DAN's bandwidths (students run grader.check("q1b"))."""

import torch
from otter.test_files import test_case

OK_FORMAT = False
name = "q1b"

HINT = (
    "Hint: with torch.no_grad(): pooled = torch.cat([x, y]); d2 holds the squared distances "
    "between the rows of pooled (an (n, n) matrix with 0 on its diagonal); base = d2.sum() / "
    "(n * n - n); return base * 2.0 ** torch.arange(-2, 3, dtype=pooled.dtype)."
)

X = torch.tensor([[0.0, 0.0], [1.0, 0.0]], dtype=torch.float64)
Y = torch.tensor([[0.0, 1.0]], dtype=torch.float64)


def _bandwidths(function, x, y, what):
    assert callable(function), "define a function called dan_bandwidths (run its cell first)"
    got = function(x, y)
    assert got is not None, "dan_bandwidths returned None: did you forget the return?"
    got = torch.as_tensor(got).detach().double().cpu().flatten()
    assert got.shape == (5,), (
        f"dan_bandwidths({what}) should return five bandwidths, got {got.tolist()}"
    )
    return got.tolist()


def _close(got, expected):
    return all(abs(a - b) <= 1e-6 * max(1.0, abs(b)) for a, b in zip(got, expected, strict=True))


@test_case(name="q1b - the notebook's example", failure_message=HINT)
def worked_example(dan_bandwidths):
    got = _bandwidths(dan_bandwidths, X.clone(), Y.clone(), "X = {(0, 0), (1, 0)}, Y = {(0, 1)}")
    expected = [4 / 3 * 2.0**p for p in range(-2, 3)]
    assert _close(got, expected), (
        f"dan_bandwidths(X = {{(0, 0), (1, 0)}}, Y = {{(0, 1)}}) returned "
        f"{[round(v, 4) for v in got]}, expected {[round(v, 4) for v in expected]}: the "
        "distinct pairs of the pooled sample are at squared distances 1, 1 and 2 (mean 4/3; a "
        "row's 0 to itself is left out), times 1/4, 1/2, 1, 2, 4"
    )


@test_case(name="q1b - pooled sample, squared distances", failure_message=HINT)
def pooled(dan_bandwidths):
    # x's two rows coincide: only the pairs across the two samples are not 0
    x = torch.tensor([[1.0, 1.0], [1.0, 1.0]])
    y = torch.tensor([[4.0, 5.0]])
    got = _bandwidths(dan_bandwidths, x, y, "x = {(1, 1), (1, 1)}, y = {(4, 5)}")
    expected = [4 * 25 / 6 * 2.0**p for p in range(-2, 3)]
    assert _close(got, expected), (
        f"dan_bandwidths(x = {{(1, 1), (1, 1)}}, y = {{(4, 5)}}) returned "
        f"{[round(v, 4) for v in got]}, expected {[round(v, 4) for v in expected]}: of the "
        "3 * 3 - 3 = 6 ordered pairs of distinct rows of the pooled sample, 4 are at squared "
        "distance 25 (not distance 5) and 2 at 0, a mean of 16.67"
    )
