"""Hidden checks of q5 (instructors; exercises/grade.py): V against
reidlib.pseudo_labels.jaccard.gaussian_weights, also on far-apart raw features."""

import numpy as np
import scipy.sparse as sp
from otter.test_files import test_case

from reidlib.pseudo_labels.jaccard import gaussian_weights

OK_FORMAT = False
name = "q5_hidden"


def _vectors(function, sq_dist, sets):
    assert callable(function), "define a function called gaussian_vectors"
    got = function(sq_dist, sets)
    assert got is not None, "gaussian_vectors returned None"
    return np.asarray(got, dtype=float)


def _reference(points, sets):
    sq_dist = ((points[:, None] - points[None]) ** 2).sum(-1)
    rank = np.argsort(sq_dist, axis=1, kind="stable")
    known = np.take_along_axis(sq_dist, rank, axis=1)
    return gaussian_weights(points, sp.csr_matrix(sets), rank, known).toarray(), sq_dist


def _random_case(rng, scale):
    n = int(rng.integers(2, 25))
    points = rng.normal(size=(n, int(rng.integers(1, 6)))) * scale
    sets = (rng.random((n, n)) < rng.uniform(0.1, 0.8)) | np.eye(n, dtype=bool)
    return points, sets


@test_case(name="q5_hidden - random sets against gaussian_weights", hidden=True)
def against_reidlib(gaussian_vectors):
    rng = np.random.default_rng(51)
    for _ in range(25):
        points, sets = _random_case(rng, 1.0)
        expected, sq_dist = _reference(points, sets)
        got = _vectors(gaussian_vectors, sq_dist, sets)
        assert got.shape == expected.shape and np.allclose(got, expected, atol=1e-9), (
            f"gaussian_vectors({len(points)} random points) differs from reidlib's "
            "gaussian_weights"
        )


@test_case(name="q5_hidden - far-apart raw features (no underflow)", hidden=True)
def far_apart(gaussian_vectors):
    rng = np.random.default_rng(52)
    for _ in range(10):
        points, sets = _random_case(rng, 40.0)  # squared distances in the thousands
        expected, sq_dist = _reference(points, sets)
        got = _vectors(gaussian_vectors, sq_dist, sets)
        assert np.all(np.isfinite(got)) and np.allclose(got, expected, atol=1e-9), (
            "gaussian_vectors on far-apart features (squared distances ~1000) returned NaN or "
            "weights other than reidlib's gaussian_weights"
        )


@test_case(name="q5_hidden - inputs left unchanged", hidden=True)
def inputs_unchanged(gaussian_vectors):
    rng = np.random.default_rng(53)
    points, sets = _random_case(rng, 1.0)
    _, sq_dist = _reference(points, sets)
    before = sq_dist.copy(), sets.copy()
    _vectors(gaussian_vectors, sq_dist, sets)
    assert np.array_equal(sq_dist, before[0]) and np.array_equal(sets, before[1]), (
        "gaussian_vectors changed the sq_dist or sets it was given"
    )
