"""Hidden checks of q4 (instructors; exercises/grade.py): pair precision and recall against a
loop over all pairs and against reidlib.pseudo_labels.label_quality."""

import itertools
import math
import numbers

import numpy as np
from otter.test_files import test_case

from reidlib.pseudo_labels import label_quality

OK_FORMAT = False
name = "q4_hidden"


def _scores(function, pred, true):
    assert callable(function), "define a function called pairwise_precision_recall"
    got = function(pred, true)
    assert got is not None, "pairwise_precision_recall returned None"
    ok = (
        isinstance(got, tuple | list)
        and len(got) == 2
        and all(isinstance(x, numbers.Real) and not isinstance(x, bool) for x in got)
    )
    assert ok, f"expected a tuple (precision, recall) of two numbers, got {got!r}"
    return float(got[0]), float(got[1])


def _same(got, expected):
    return math.isnan(got) if math.isnan(expected) else abs(got - expected) < 1e-9


def _brute_force(pred, true):
    """Every unordered pair of non-outlier images, one at a time."""
    kept = [(p, t) for p, t in zip(pred, true, strict=True) if p != -1]
    in_cluster = same_person = both = 0
    for (p1, t1), (p2, t2) in itertools.combinations(kept, 2):
        in_cluster += p1 == p2
        same_person += t1 == t2
        both += p1 == p2 and t1 == t2
    precision = both / in_cluster if in_cluster else math.nan
    recall = both / same_person if same_person else math.nan
    return precision, recall


@test_case(name="q4_hidden - random pseudo-labels against brute force and reidlib", hidden=True)
def against_reidlib(pairwise_precision_recall):
    rng = np.random.default_rng(60)
    for _ in range(40):
        n = int(rng.integers(1, 50))
        true = rng.integers(0, int(rng.integers(1, 8)), size=n) - 3  # any ids, some negative
        pred = rng.integers(-1, int(rng.integers(1, 10)), size=n)
        expected = _brute_force(pred.tolist(), true.tolist())
        if (pred != -1).any():  # label_quality agrees (it needs one clustered image)
            quality = label_quality(pred, true)
            reference = (quality["pairwise_precision"], quality["pairwise_recall"])
            assert all(map(_same, reference, expected)), (reference, expected)
        got = _scores(pairwise_precision_recall, pred.copy(), true.copy())
        assert _same(got[0], expected[0]) and _same(got[1], expected[1]), (
            f"pairwise_precision_recall(pred={pred.tolist()}, true={true.tolist()}) returned "
            f"({got[0]:.4f}, {got[1]:.4f}), expected ({expected[0]:.4f}, {expected[1]:.4f})"
        )


@test_case(name="q4_hidden - outliers' pairs count nowhere", hidden=True)
def outliers_left_out(pairwise_precision_recall):
    # Identity 1 has three images; two are outliers. Counted, they would add 3 same-person
    # pairs to recall's denominator (and grouping the outliers, 1 right pair to precision).
    got = _scores(pairwise_precision_recall, [0, -1, -1, 0, 0], [1, 1, 1, 2, 2])
    assert _same(got[0], 1 / 3) and _same(got[1], 1 / 1), (
        f"pairwise_precision_recall(pred=[0, -1, -1, 0, 0], true=[1, 1, 1, 2, 2]) returned "
        f"({got[0]:.4f}, {got[1]:.4f}), expected (0.3333, 1.0000): the outliers are left out, "
        "so the pairs are those of images 0, 3, 4 only"
    )


@test_case(name="q4_hidden - everything an outlier, inputs left unchanged", hidden=True)
def edge_cases(pairwise_precision_recall):
    got = _scores(pairwise_precision_recall, [-1, -1], [3, 3])
    assert math.isnan(got[0]) and math.isnan(got[1]), (
        f"pairwise_precision_recall(pred=[-1, -1], true=[3, 3]) returned {got}, expected "
        "(nan, nan): with every image an outlier no pair is counted"
    )
    pred, true = [0, 0, 1], [2, 2, 2]
    _scores(pairwise_precision_recall, pred, true)
    assert pred == [0, 0, 1] and true == [2, 2, 2], (
        "pairwise_precision_recall changed the lists it was given"
    )
