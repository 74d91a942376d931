"""Hidden checks of q8 (instructors; exercises/grade.py): the knee eps against an independent
reference (k-distances from scikit-learn's NearestNeighbors, the knee as the largest
perpendicular distance below the chord, written out)."""

import numbers

import numpy as np
from otter.test_files import test_case
from scipy.spatial.distance import cdist
from sklearn.neighbors import NearestNeighbors

OK_FORMAT = False
name = "q8_hidden"


def _eps(function, dist, min_samples):
    assert callable(function), "define a function called knee_eps"
    got = function(dist, min_samples)
    assert isinstance(got, numbers.Real) and not isinstance(got, bool), (
        f"knee_eps should return a number, got {got!r}"
    )
    return float(got)


def _reference(dist, min_samples):
    n = len(dist)
    search = NearestNeighbors(n_neighbors=min_samples - 1, metric="precomputed")
    search.fit(np.where(np.eye(n, dtype=bool), 0.0, dist))
    k_dist, _ = search.kneighbors()  # without a query: each point's neighbours exclude itself
    y = np.sort(k_dist[:, -1])
    if y[-1] == y[0]:
        return float(y[0])
    # Perpendicular distance of (t, y_t) to the chord from (0, y_0) to (n - 1, y_n-1), both
    # axes scaled to [0, 1]; only points below the chord (positive side) count.
    p0, p1 = np.array([0.0, 0.0]), np.array([1.0, 1.0])
    points = np.stack([np.arange(n) / (n - 1), (y - y[0]) / (y[-1] - y[0])], axis=1)
    direction = (p1 - p0) / np.linalg.norm(p1 - p0)
    signed = (points - p0) @ np.array([direction[1], -direction[0]])
    best = max(range(n), key=lambda t: (round(signed[t], 12), -t))
    return float(y[best])


@test_case(name="q8_hidden - random clouds against a reference", hidden=True)
def against_reference(knee_eps):
    rng = np.random.default_rng(80)
    for _ in range(25):
        dense = rng.normal(size=(int(rng.integers(5, 40)), 2)) * 0.3
        noise = rng.uniform(-6, 6, size=(int(rng.integers(1, 10)), 2))
        points = np.concatenate([dense, noise])
        dist = cdist(points, points)
        min_samples = int(rng.integers(2, 7))
        expected = _reference(dist, min_samples)
        got = _eps(knee_eps, dist, min_samples)
        assert abs(got - expected) < 1e-9, (
            f"knee_eps({len(points)} random points, min_samples={min_samples}) returned "
            f"{got:.4f}, expected {expected:.4f}"
        )


@test_case(name="q8_hidden - the diagonal is ignored", hidden=True)
def diagonal_ignored(knee_eps):
    rng = np.random.default_rng(81)
    points = np.concatenate([rng.normal(size=(20, 2)) * 0.2, rng.uniform(-5, 5, size=(4, 2))])
    dist = cdist(points, points)
    expected = _reference(dist, 4)
    np.fill_diagonal(dist, 0.5)  # a diagonal that is not 0 must not count as a neighbour
    got = _eps(knee_eps, dist, 4)
    assert abs(got - expected) < 1e-9, (
        f"with dist[i, i] = 0.5, knee_eps returned {got:.4f}, expected {expected:.4f}: an image "
        "is not its own neighbour, leave dist[i, i] out"
    )


@test_case(name="q8_hidden - input left unchanged", hidden=True)
def input_unchanged(knee_eps):
    rng = np.random.default_rng(82)
    points = rng.normal(size=(12, 2))
    dist = cdist(points, points)
    before = dist.copy()
    _eps(knee_eps, dist, 3)
    assert np.array_equal(dist, before), "knee_eps changed the dist it was given"
