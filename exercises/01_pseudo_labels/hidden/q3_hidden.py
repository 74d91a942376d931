"""Hidden checks of q3 (instructors; exercises/grade.py): purity against a brute-force count
and against reidlib.pseudo_labels.label_quality."""

import math
import numbers
from collections import Counter

import numpy as np
from otter.test_files import test_case

from reidlib.pseudo_labels import label_quality

OK_FORMAT = False
name = "q3_hidden"


def _purity(function, pred, true):
    assert callable(function), "define a function called purity"
    got = function(pred, true)
    assert got is not None, "purity returned None"
    assert isinstance(got, numbers.Real) and not isinstance(got, bool), (
        f"purity should return a number, got {got!r}"
    )
    return float(got)


def _brute_force(pred, true):
    """Majority count per cluster with collections.Counter, outliers skipped."""
    members = {}
    for p, t in zip(pred, true, strict=True):
        if p != -1:
            members.setdefault(p, []).append(t)
    kept = sum(len(ids) for ids in members.values())
    if kept == 0:
        return float("nan")
    return sum(Counter(ids).most_common(1)[0][1] for ids in members.values()) / kept


@test_case(name="q3_hidden - random pseudo-labels against reidlib.label_quality", hidden=True)
def against_reidlib(purity):
    rng = np.random.default_rng(50)
    for _ in range(40):
        n = int(rng.integers(1, 60))
        true = rng.integers(0, int(rng.integers(1, 10)), size=n) * 3 + 100  # any ids
        pred = rng.integers(-1, int(rng.integers(1, 12)), size=n)  # -1: outliers
        reference = label_quality(pred, true)["purity"]
        expected = _brute_force(pred.tolist(), true.tolist())
        assert (math.isnan(reference) and math.isnan(expected)) or abs(reference - expected) < 1e-12
        got = _purity(purity, pred.copy(), true.copy())
        same = math.isnan(got) if math.isnan(expected) else abs(got - expected) < 1e-9
        assert same, (
            f"purity(pred={pred.tolist()}, true={true.tolist()}) returned {got:.4f}, expected "
            f"{expected:.4f} (reidlib.pseudo_labels.label_quality: outliers left out)"
        )


@test_case(name="q3_hidden - nan only when everything is an outlier", hidden=True)
def nan_cases(purity):
    got = _purity(purity, np.full(4, -1), np.arange(4))
    assert math.isnan(got), (
        f"purity(pred=[-1, -1, -1, -1], true=[0, 1, 2, 3]) returned {got}, expected nan: "
        "there is no clustered image, so the share is undefined (not 0, not 1)"
    )
    got = _purity(purity, np.array([-1, 3, -1]), np.array([1, 2, 1]))
    assert abs(got - 1.0) < 1e-9, (
        f"purity(pred=[-1, 3, -1], true=[1, 2, 1]) returned {got:.4f}, expected 1.0000: one "
        "clustered image, and it carries its cluster's majority identity"
    )


@test_case(name="q3_hidden - inputs left unchanged", hidden=True)
def inputs_unchanged(purity):
    pred, true = np.array([0, -1, 1, 1, 0]), np.array([2, 2, 3, 2, 2])
    pred_list = [0, -1, 1, 1, 0]
    _purity(purity, pred, true)
    _purity(purity, pred_list, true.tolist())
    assert pred.tolist() == [0, -1, 1, 1, 0] and true.tolist() == [2, 2, 3, 2, 2], (
        "purity changed the labels it was given"
    )
    assert pred_list == [0, -1, 1, 1, 0], "purity changed the list it was given"
