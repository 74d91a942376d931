"""Hidden checks of q7 (instructors; exercises/grade.py): against
reidlib.pseudo_labels.jaccard.jaccard_from_weights, and the whole of steps 4-5 against
jaccard_distance."""

import numpy as np
import scipy.sparse as sp
from otter.test_files import test_case

from reidlib.pseudo_labels.jaccard import jaccard_from_weights

OK_FORMAT = False
name = "q7_hidden"


def _jaccard(function, v):
    assert callable(function), "define a function called jaccard_from_vectors"
    got = function(v)
    assert got is not None, "jaccard_from_vectors returned None"
    return np.asarray(got, dtype=float)


def _dense(matrix):
    """reidlib's sparse result as a dense array: pairs not stored are at distance 1."""
    out = np.ones(matrix.shape)
    coo = matrix.tocoo()
    out[coo.row, coo.col] = coo.data
    return out


@test_case(name="q7_hidden - sparse random vectors against jaccard_from_weights", hidden=True)
def against_reidlib(jaccard_from_vectors):
    rng = np.random.default_rng(71)
    for _ in range(25):
        n = int(rng.integers(2, 40))
        v = rng.random((n, n)) * (rng.random((n, n)) < rng.uniform(0.05, 0.6)) + np.eye(n)
        v /= v.sum(axis=1, keepdims=True)
        expected = _dense(jaccard_from_weights(sp.csr_matrix(v)))
        got = _jaccard(jaccard_from_vectors, v)
        assert got.shape == expected.shape and np.allclose(got, expected, atol=1e-6), (
            f"jaccard_from_vectors({n} random rows) differs from reidlib's jaccard_from_weights "
            f"by up to {np.abs(got - expected).max() if got.shape == expected.shape else '?'}"
        )


@test_case(name="q7_hidden - input left unchanged", hidden=True)
def input_unchanged(jaccard_from_vectors):
    v = np.array([[0.5, 0.5, 0.0], [0.0, 0.5, 0.5], [0.0, 0.0, 1.0]])
    before = v.copy()
    _jaccard(jaccard_from_vectors, v)
    assert np.array_equal(v, before), "jaccard_from_vectors changed the v it was given"
