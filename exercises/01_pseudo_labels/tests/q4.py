"""Public checks of q4, pairwise precision and recall (students run grader.check("q4"))."""

import math
import numbers

import numpy as np
from otter.test_files import test_case

OK_FORMAT = False
name = "q4"

HINT = (
    "Hint: drop the outliers first (pred == -1). pred[:, None] == pred[None, :] is an N x N "
    "table of 'same cluster'; keep each unordered pair once with np.triu(..., k=1). Count the "
    "pairs in one cluster, the same-person pairs, and the pairs that are both; a ratio over 0 "
    'pairs is float("nan").'
)


def _scores(function, pred, true):
    assert callable(function), (
        "define a function called pairwise_precision_recall (run its cell first)"
    )
    got = function(pred, true)
    assert got is not None, "pairwise_precision_recall returned None: did you forget the return?"
    ok = (
        isinstance(got, tuple | list)
        and len(got) == 2
        and all(isinstance(x, numbers.Real) and not isinstance(x, bool) for x in got)
    )
    assert ok, (
        f"pairwise_precision_recall({pred}, {true}) should return a tuple (precision, recall) "
        f"of two numbers, got {got!r}"
    )
    return float(got[0]), float(got[1])


def _same(got, expected):
    return math.isnan(got) if math.isnan(expected) else abs(got - expected) < 1e-9


def _expect(function, pred, true, expected, why):
    got = _scores(function, pred, true)
    assert _same(got[0], expected[0]) and _same(got[1], expected[1]), (
        f"pairwise_precision_recall(pred={pred}, true={true}) returned "
        f"({got[0]:.4f}, {got[1]:.4f}), expected ({expected[0]:.4f}, {expected[1]:.4f}) ({why})"
    )


@test_case(name="q4 - worked example", failure_message=HINT)
def worked_example(pairwise_precision_recall):
    why = (
        "4 pairs share a cluster, 2 of them the same person; 7 same-person pairs among the six "
        "clustered images; the outlier's pairs are not counted"
    )
    _expect(pairwise_precision_recall, [0, 0, 0, 1, 1, 2, -1], [5, 5, 7, 7, 7, 7, 5],
            (2 / 4, 2 / 7), why)


@test_case(name="q4 - wrong merges lower precision, splits lower recall", failure_message=HINT)
def merges_and_splits(pairwise_precision_recall):
    why = "one cluster for two people: all 4 same-person pairs found, but only 4 of 10 pairs right"
    _expect(pairwise_precision_recall, [0, 0, 0, 0, 0], [1, 1, 1, 2, 2], (4 / 10, 4 / 4), why)
    why = "each person split in two clusters: both pairs in a cluster are right, 2 of 6 found"
    _expect(pairwise_precision_recall, [0, 0, 1, 2, 2, 3], [1, 1, 1, 2, 2, 2], (2 / 2, 2 / 6), why)


@test_case(name="q4 - an empty denominator gives nan", failure_message=HINT)
def nan_ratios(pairwise_precision_recall):
    why = "no two images share a cluster, so precision is undefined; 1 of the 1 same-person pair"
    _expect(pairwise_precision_recall, [0, 1, 2], [4, 4, 5], (math.nan, 0.0), why)
    why = "no two clustered images are the same person, so recall is undefined"
    _expect(pairwise_precision_recall, np.array([0, 0, -1]), np.array([1, 2, 1]),
            (0.0, math.nan), why)
