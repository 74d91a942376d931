"""Hidden checks of q5 (instructors; exercises/grade.py): INP against reidlib.evaluate."""

import numbers

import numpy as np
from otter.test_files import test_case

from reidlib.evaluation import evaluate

OK_FORMAT = False
name = "q5_hidden"


def _inp(function, matches):
    assert callable(function), "define a function called inverse_negative_penalty"
    got = function(matches)
    assert isinstance(got, numbers.Real) and not isinstance(got, bool), (
        f"inverse_negative_penalty({matches!r}) should return a number, but returned {got!r}"
    )
    return float(got)


def _reference(matches):
    """reidlib's INP of one query whose gallery is ranked exactly as ``matches``."""
    matches = np.asarray(matches, dtype=bool)
    distances = np.arange(len(matches), dtype=np.float64)[None, :]  # rank order, no ties
    gallery_pids = np.where(matches, 1, 2)
    result = evaluate(distances, np.array([1]), gallery_pids, np.array([0]),
                      np.ones(len(matches), dtype=int))
    return float(result["INP"][0])


@test_case(name="q5_hidden - random lists against reidlib.evaluate", hidden=True)
def against_evaluate(inverse_negative_penalty):
    rng = np.random.default_rng(5)
    for _ in range(60):
        matches = (rng.random(int(rng.integers(1, 40))) < rng.random()).astype(int)
        matches[rng.integers(len(matches))] = 1  # at least one match
        expected = _reference(matches)
        got = _inp(inverse_negative_penalty, matches.tolist())
        assert abs(got - expected) < 1e-9, (
            f"inverse_negative_penalty({matches.tolist()}) returned {got:.4f}, "
            f"expected {expected:.4f}"
        )


@test_case(name="q5_hidden - numpy arrays, booleans and tuples", hidden=True)
def input_types(inverse_negative_penalty):
    for matches in (np.array([0, 1, 0, 1]), np.array([False, True, False, True]), (0, 1, 0, 1)):
        got = _inp(inverse_negative_penalty, matches)
        assert abs(got - 0.5) < 1e-9, (
            f"inverse_negative_penalty({matches!r}) returned {got:.4f}, expected 0.5000"
        )


@test_case(name="q5_hidden - one match, anywhere", hidden=True)
def one_match(inverse_negative_penalty):
    for rank in (1, 2, 7, 30):
        matches = [0] * (rank - 1) + [1] + [0] * 3
        got = _inp(inverse_negative_penalty, matches)
        assert abs(got - 1 / rank) < 1e-9, (
            f"one match at rank {rank}: expected INP 1/{rank} = {1 / rank:.4f}, got {got:.4f}"
        )
