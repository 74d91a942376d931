"""Public checks of q3, purity of pseudo-labels (students run grader.check("q3"))."""

import math
import numbers

import numpy as np
from otter.test_files import test_case

OK_FORMAT = False
name = "q3"

HINT = (
    "Hint: drop the outliers first (keep = np.asarray(pred) != -1). Then for each cluster "
    "left, count how many of its images carry its most common identity "
    "(np.unique(..., return_counts=True)), add these counts up and divide by the number of "
    "images kept."
)


def _purity(function, pred, true):
    assert callable(function), "define a function called purity (run its cell first)"
    got = function(pred, true)
    assert got is not None, "purity returned None: did you forget the return?"
    assert isinstance(got, numbers.Real) and not isinstance(got, bool), (
        f"purity({pred}, {true}) should return a number, got {got!r}"
    )
    return float(got)


def _expect(function, pred, true, expected, why):
    got = _purity(function, pred, true)
    assert abs(got - expected) < 1e-9, (
        f"purity(pred={pred}, true={true}) returned {got:.4f}, expected {expected:.4f} ({why})"
    )


@test_case(name="q3 - worked example", failure_message=HINT)
def worked_example(purity):
    why = "majorities 2 + 2 + 1 out of the 6 clustered images; the outlier is left out"
    _expect(purity, [0, 0, 0, 1, 1, 2, -1], [5, 5, 7, 7, 7, 7, 5], 5 / 6, why)


@test_case(name="q3 - outliers are left out of the count and the total", failure_message=HINT)
def outliers(purity):
    why = (
        "the two outliers (-1) are not a cluster and not wrong answers: they are left out, and "
        "both clusters are pure"
    )
    _expect(purity, [-1, 0, 0, -1, 1], [1, 2, 2, 3, 1], 1.0, why)


@test_case(name="q3 - splitting an identity costs no purity", failure_message=HINT)
def split_identity(purity):
    why = "every cluster holds a single identity, even though identity 4 is split in three"
    _expect(purity, [0, 1, 2, 3, 3], [4, 4, 4, 9, 9], 1.0, why)
    why = "one big cluster: its majority identity 4 covers 3 of the 5 images"
    _expect(purity, np.zeros(5, int), np.array([4, 4, 4, 9, 9]), 3 / 5, why)


@test_case(name="q3 - all outliers give nan", failure_message=HINT)
def all_outliers(purity):
    got = _purity(purity, [-1, -1, -1], [0, 1, 2])
    assert math.isnan(got), (
        f"purity(pred=[-1, -1, -1], true=[0, 1, 2]) returned {got}, expected nan: with every "
        'image an outlier there is no clustered image to take a share of (return float("nan"))'
    )
