"""Public checks of q7, the Jaccard distance of weighted sets (grader.check("q7"))."""

import numpy as np
from otter.test_files import test_case

OK_FORMAT = False
name = "q7"

HINT = (
    "Hint: for one row i, np.minimum(v[i], v).sum(axis=1) is sum_k min(V_ik, V_jk) for every "
    "j at once (broadcasting), and np.maximum the same for max; fill row i of the result with "
    "1 - min / max."
)


def _jaccard(function, v, what):
    assert callable(function), "define a function called jaccard_from_vectors (run its cell first)"
    got = function(v.copy())
    assert got is not None, "jaccard_from_vectors returned None: did you forget the return?"
    got = np.asarray(got, dtype=float)
    assert got.shape == (len(v), len(v)), (
        f"jaccard_from_vectors({what}) should return an array of shape {(len(v), len(v))}, "
        f"got shape {got.shape}"
    )
    return got


@test_case(name="q7 - worked example", failure_message=HINT)
def worked_example(jaccard_from_vectors):
    v = np.array([[0.5, 0.5, 0.0], [0.0, 0.5, 0.5], [0.0, 0.0, 1.0]])
    expected = np.array([[0, 2 / 3, 1], [2 / 3, 0, 1 - 0.5 / 1.5], [1, 1 - 0.5 / 1.5, 0]])
    got = _jaccard(jaccard_from_vectors, v, "the 3-row example")
    assert np.allclose(got, expected), (
        f"jaccard_from_vectors(the 3-row example) returned {np.round(got, 4).tolist()}, "
        f"expected {np.round(expected, 4).tolist()} (rows 0 and 1: min sums to 0.5, max to 1.5; "
        "rows 0 and 2 share nothing: distance 1)"
    )


@test_case(name="q7 - a distance: 0 on the diagonal, symmetric, in [0, 1]", failure_message=HINT)
def distance_properties(jaccard_from_vectors):
    rng = np.random.default_rng(70)
    v = rng.random((8, 8)) * (rng.random((8, 8)) < 0.5) + np.eye(8)
    v /= v.sum(axis=1, keepdims=True)
    got = _jaccard(jaccard_from_vectors, v, "8 random rows")
    assert np.allclose(np.diag(got), 0) and np.allclose(got, got.T), (
        "d_J(i, i) must be 0 and d_J(i, j) = d_J(j, i)"
    )
    assert got.min() >= -1e-12 and got.max() <= 1 + 1e-12, (
        f"d_J lies in [0, 1], got values from {got.min():.4f} to {got.max():.4f}"
    )
