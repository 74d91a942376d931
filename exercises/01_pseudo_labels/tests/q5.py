"""Public checks of q5, Gaussian-weighted neighbourhood vectors (grader.check("q5"))."""

import math

import numpy as np
from otter.test_files import test_case

OK_FORMAT = False
name = "q5"

HINT = (
    "Hint: weights = np.where(sets, np.exp(-sq_dist), 0.0) keeps exp(-d) on the members only; "
    "then divide each row by its sum (weights.sum(axis=1, keepdims=True))."
)


def _vectors(function, sq_dist, sets, what):
    assert callable(function), "define a function called gaussian_vectors (run its cell first)"
    got = function(sq_dist.copy(), sets.copy())
    assert got is not None, "gaussian_vectors returned None: did you forget the return?"
    got = np.asarray(got, dtype=float)
    assert got.shape == sq_dist.shape, (
        f"gaussian_vectors({what}) should return an array of shape {sq_dist.shape}, "
        f"got shape {got.shape}"
    )
    return got


@test_case(name="q5 - worked example", failure_message=HINT)
def worked_example(gaussian_vectors):
    sq_dist = np.array([[0.0, 1.0, 2.0], [1.0, 0.0, 3.0], [2.0, 3.0, 0.0]])
    sets = np.array([[1, 1, 0], [1, 1, 1], [0, 0, 1]], dtype=bool)
    e = math.exp
    expected = np.array([
        [1 / (1 + e(-1)), e(-1) / (1 + e(-1)), 0.0],
        [e(-1) / (e(-1) + 1 + e(-3)), 1 / (e(-1) + 1 + e(-3)), e(-3) / (e(-1) + 1 + e(-3))],
        [0.0, 0.0, 1.0],
    ])
    got = _vectors(gaussian_vectors, sq_dist, sets, "the 3-image example")
    assert np.allclose(got, expected, atol=1e-9), (
        f"gaussian_vectors(the 3-image example) returned {np.round(got, 4).tolist()}, expected "
        f"{np.round(expected, 4).tolist()} (row 0: [1, e^-1, 0] / (1 + e^-1))"
    )


@test_case(name="q5 - rows sum to 1, zero outside the set", failure_message=HINT)
def rows(gaussian_vectors):
    rng = np.random.default_rng(50)
    points = rng.normal(size=(9, 3))
    sq_dist = ((points[:, None] - points[None]) ** 2).sum(-1)
    sets = (rng.random((9, 9)) < 0.4) | np.eye(9, dtype=bool)
    got = _vectors(gaussian_vectors, sq_dist, sets, "9 random points")
    assert np.allclose(got.sum(axis=1), 1.0) and np.all(got[~sets] == 0) and np.all(got >= 0), (
        "each row of V must be non-negative, sum to 1 and be 0 outside R*(i); "
        f"row sums {np.round(got.sum(axis=1), 4).tolist()}"
    )
    i, j = np.argwhere(sets & ~np.eye(9, dtype=bool))[0]
    ratio = got[i, i] / got[i, j]
    assert np.isclose(ratio, math.exp(sq_dist[i, j] - sq_dist[i, i])), (
        f"V[{i}, {i}] / V[{i}, {j}] should be exp(d({i}, {j}) - d({i}, {i})) = "
        f"{math.exp(sq_dist[i, j] - sq_dist[i, i]):.4f}, got {ratio:.4f}"
    )
