"""Public checks of q2, the BUC merge criterion (students run grader.check("q2"))."""

import numbers

import numpy as np
from otter.test_files import test_case

OK_FORMAT = False
name = "q2"

HINT = (
    "Hint: labels == a is a boolean mask of cluster a's images; dist[np.ix_(in_a, in_b)] is the "
    "block of distances between the two clusters; take its .min() and add lam times the two "
    "cluster sizes (in_a.sum() + in_b.sum())."
)

# Five images on a line at 0, 1, 3, 4, 10 in clusters {0, 1}, {3, 4} and {10}.
POSITIONS = np.array([0.0, 1.0, 3.0, 4.0, 10.0])
LINE = np.abs(POSITIONS[:, None] - POSITIONS[None, :])
LABELS = [0, 0, 1, 1, 2]
WHAT = "images at 0, 1, 3, 4, 10 in clusters [0, 0, 1, 1, 2]"


def _cost(function, dist, labels, a, b, lam, what):
    assert callable(function), "define a function called buc_merge_cost (run its cell first)"
    got = function(dist, labels, a, b, lam)
    assert got is not None, "buc_merge_cost returned None: did you forget the return?"
    assert isinstance(got, numbers.Real) and not isinstance(got, bool), (
        f"buc_merge_cost({what}, a={a}, b={b}, lam={lam}) should return a number, got {got!r}"
    )
    return float(got)


def _expect(function, dist, labels, a, b, lam, what, expected, why):
    got = _cost(function, dist, labels, a, b, lam, what)
    assert abs(got - expected) < 1e-9, (
        f"buc_merge_cost({what}, a={a}, b={b}, lam={lam}) returned {got:.4f}, "
        f"expected {expected:.4f} ({why})"
    )


@test_case(name="q2 - worked example", failure_message=HINT)
def worked_example(buc_merge_cost):
    _expect(buc_merge_cost, LINE, LABELS, 0, 1, 0.5, WHAT, 4.0,
            "closest pair 1 and 3 at distance 2, plus 0.5 x (2 + 2)")
    _expect(buc_merge_cost, LINE, LABELS, 1, 2, 0.5, WHAT, 7.5,
            "closest pair 4 and 10 at distance 6, plus 0.5 x (2 + 1)")
    _expect(buc_merge_cost, LINE, LABELS, 0, 2, 0.5, WHAT, 10.5,
            "closest pair 1 and 10 at distance 9, plus 0.5 x (2 + 1)")


@test_case(name="q2 - lam = 0 is single linkage", failure_message=HINT)
def single_linkage(buc_merge_cost):
    _expect(buc_merge_cost, LINE, LABELS, 0, 1, 0.0, WHAT, 2.0,
            "with lam = 0 only the distance of the two closest images is left")


@test_case(name="q2 - any cluster ids, either order", failure_message=HINT)
def any_ids(buc_merge_cost):
    labels = np.array([7, 7, 3, 3, 12])
    what = "images at 0, 1, 3, 4, 10 in clusters [7, 7, 3, 3, 12]"
    _expect(buc_merge_cost, LINE, labels, 7, 3, 1.0, what, 6.0,
            "cluster ids are labels, not image indices: clusters 7 = {0, 1} and 3 = {3, 4} are "
            "2 apart, plus 1.0 x (2 + 2)")
    _expect(buc_merge_cost, LINE, labels, 3, 7, 1.0, what, 6.0,
            "D(A, B) = D(B, A)")
    _expect(buc_merge_cost, LINE, labels, 12, 3, 1.0, what, 9.0,
            "clusters 12 = {10} and 3 = {3, 4} are 6 apart, plus 1.0 x (1 + 2)")
