"""Hidden checks of q1 (instructors; exercises/grade.py): AP against scikit-learn."""

import numbers

import numpy as np
from otter.test_files import test_case
from sklearn.metrics import average_precision_score

OK_FORMAT = False
name = "q1_hidden"


def _ap(function, matches):
    assert callable(function), "define a function called average_precision"
    got = function(matches)
    assert isinstance(got, numbers.Real) and not isinstance(got, bool), (
        f"average_precision({matches!r}) should return a number, but returned {got!r}"
    )
    return float(got)


@test_case(name="q1_hidden - random lists against scikit-learn", hidden=True)
def against_sklearn(average_precision):
    rng = np.random.default_rng(0)
    for _ in range(60):
        matches = (rng.random(int(rng.integers(1, 30))) < rng.random()).astype(int)
        matches[rng.integers(len(matches))] = 1  # AP needs at least one match
        # Rank order as a score: the first item is the most similar.
        expected = average_precision_score(matches, -np.arange(len(matches)))
        got = _ap(average_precision, matches.tolist())
        assert abs(got - expected) < 1e-9, (
            f"average_precision({matches.tolist()}) returned {got:.4f}, expected {expected:.4f}"
        )


@test_case(name="q1_hidden - numpy arrays, booleans and tuples", hidden=True)
def input_types(average_precision):
    for matches in (np.array([0, 1, 1]), np.array([False, True, True]), (0, 1, 1)):
        got = _ap(average_precision, matches)
        assert abs(got - (1 / 2 + 2 / 3) / 2) < 1e-9, (
            f"average_precision({matches!r}) returned {got:.4f}, expected 0.5833"
        )


@test_case(name="q1_hidden - input left unchanged", hidden=True)
def input_unchanged(average_precision):
    matches = [0, 1, 0, 1]
    array = np.array(matches)
    _ap(average_precision, matches)
    _ap(average_precision, array)
    assert matches == [0, 1, 0, 1] and array.tolist() == [0, 1, 0, 1], (
        "average_precision changed the list it was given"
    )
