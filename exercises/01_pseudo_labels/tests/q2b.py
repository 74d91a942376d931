"""Public checks of q2b, the next BUC merge (students run grader.check("q2b"))."""

import numbers

import numpy as np
from otter.test_files import test_case

OK_FORMAT = False
name = "q2b"

HINT = (
    "Hint: np.unique(labels) lists the cluster ids in increasing order; loop over every pair "
    "(a, b) with a < b, compute buc_merge_cost(dist, labels, a, b, lam) and keep the pair with "
    "the smallest cost (replace it only when a cost is strictly smaller, so ties keep the "
    "earlier pair)."
)

# A cluster of three images at 0, 0.25, 0.5 (id 0) and single images at 1.5 (id 1) and 3 (id 2).
POSITIONS = np.array([0.0, 0.25, 0.5, 1.5, 3.0])
LINE = np.abs(POSITIONS[:, None] - POSITIONS[None, :])
LABELS = [0, 0, 0, 1, 2]
WHAT = "images at 0, 0.25, 0.5, 1.5, 3 in clusters [0, 0, 0, 1, 2]"


def _pair(function, dist, labels, lam, what):
    assert callable(function), "define a function called buc_next_merge (run its cell first)"
    got = function(dist, labels, lam)
    assert got is not None, "buc_next_merge returned None: did you forget the return?"
    ok = (
        isinstance(got, tuple | list | np.ndarray)
        and len(got) == 2
        and all(isinstance(c, numbers.Integral) and not isinstance(c, bool) for c in got)
    )
    assert ok, (
        f"buc_next_merge({what}, lam={lam}) should return a tuple (a, b) of two cluster ids, "
        f"got {got!r}"
    )
    return int(got[0]), int(got[1])


def _expect(function, dist, labels, lam, what, expected, why):
    got = _pair(function, dist, labels, lam, what)
    assert got == expected, (
        f"buc_next_merge({what}, lam={lam}) returned {got}, expected {expected} ({why})"
    )


@test_case(name="q2b - single linkage, lam = 0", failure_message=HINT)
def single_linkage(buc_next_merge):
    _expect(buc_next_merge, LINE, LABELS, 0.0, WHAT, (0, 1),
            "the image at 1.5 is 1 away from cluster 0: the closest pair of clusters")


@test_case(name="q2b - the diversity term favours small clusters", failure_message=HINT)
def diversity(buc_next_merge):
    _expect(buc_next_merge, LINE, LABELS, 0.5, WHAT, (1, 2),
            "D(1, 2) = 1.5 + 0.5 x (1 + 1) = 2.5 beats D(0, 1) = 1 + 0.5 x (3 + 1) = 3")


@test_case(name="q2b - ids are labels; a < b; ties to the lowest pair", failure_message=HINT)
def ids_and_ties(buc_next_merge):
    # Four single images at 0, 1, 5, 6 with ids 8, 3, 6, 1: pairs {8, 3} and {6, 1} are both
    # 1 apart; (1, 6) comes before (3, 8).
    positions = np.array([0.0, 1.0, 5.0, 6.0])
    dist = np.abs(positions[:, None] - positions[None, :])
    _expect(buc_next_merge, dist, np.array([8, 3, 6, 1]), 0.1,
            "images at 0, 1, 5, 6 in clusters [8, 3, 6, 1]", (1, 6),
            "clusters {8, 3} and {6, 1} both cost 1 + 0.1 x 2; the tie goes to the smaller a, "
            "and each pair is written with a < b")
