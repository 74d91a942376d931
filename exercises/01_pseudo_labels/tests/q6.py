"""Public checks of q6, local query expansion (students run grader.check("q6"))."""

import numpy as np
from otter.test_files import test_case

OK_FORMAT = False
name = "q6"

HINT = (
    "Hint: v[neighbours] picks, for every i, the k2 rows listed in neighbours[i]: an array of "
    "shape (N, k2, N). Average it over the neighbours (axis=1)."
)


def _expanded(function, v, neighbours, what):
    assert callable(function), (
        "define a function called local_query_expansion (run its cell first)"
    )
    got = function(v.copy(), neighbours.copy())
    assert got is not None, "local_query_expansion returned None: did you forget the return?"
    got = np.asarray(got, dtype=float)
    assert got.shape == v.shape, (
        f"local_query_expansion({what}) should return an array of shape {v.shape}, "
        f"got shape {got.shape}"
    )
    return got


@test_case(name="q6 - worked example", failure_message=HINT)
def worked_example(local_query_expansion):
    v = np.array([[1.0, 0.0], [0.0, 1.0]])
    got = _expanded(local_query_expansion, v, np.array([[0, 1], [1, 0]]), "the 2-image example")
    assert np.allclose(got, 0.5), (
        f"local_query_expansion(the 2-image example) returned {got.tolist()}, expected "
        "[[0.5, 0.5], [0.5, 0.5]]: each row is the mean of its own row and its neighbour's"
    )


@test_case(name="q6 - k2 = 1 changes nothing", failure_message=HINT)
def k2_one(local_query_expansion):
    rng = np.random.default_rng(60)
    v = rng.random((5, 5))
    got = _expanded(local_query_expansion, v, np.arange(5)[:, None], "k2 = 1")
    assert np.allclose(got, v), "with neighbours[i] = [i] (k2 = 1) every row must stay as it was"


@test_case(name="q6 - the mean of the listed rows", failure_message=HINT)
def listed_rows(local_query_expansion):
    v = np.diag([1.0, 2.0, 4.0, 8.0])
    neighbours = np.array([[0, 3, 1], [1, 2, 0], [2, 1, 3], [3, 0, 2]])
    expected = np.array([[1, 2, 0, 8], [1, 2, 4, 0], [0, 2, 4, 8], [1, 0, 4, 8]]) / 3
    got = _expanded(local_query_expansion, v, neighbours, "diag(1, 2, 4, 8), k2 = 3")
    assert np.allclose(got, expected), (
        f"local_query_expansion(diag(1, 2, 4, 8), k2 = 3) returned {np.round(got, 4).tolist()}, "
        f"expected {np.round(expected, 4).tolist()}: row i is the mean of the ROWS of v listed "
        "in neighbours[i]"
    )
