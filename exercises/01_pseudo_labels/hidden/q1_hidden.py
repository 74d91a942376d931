"""Hidden checks of q1 (instructors; exercises/grade.py): R(i, k) against a brute-force
transcription of the definition and against reidlib's k-reciprocal sets on a faiss search."""

import numpy as np
from otter.test_files import test_case

from reidlib.pseudo_labels.jaccard import nearest_neighbours, reciprocal_sets

OK_FORMAT = False
name = "q1_hidden"


def _set(function, dist, i, k):
    assert callable(function), "define a function called k_reciprocal_set"
    got = function(dist, i, k)
    assert got is not None, "k_reciprocal_set returned None"
    array = np.asarray(got)
    assert array.ndim == 1 and (array.size == 0 or np.issubdtype(array.dtype, np.integer)), (
        f"expected a 1-D numpy array of integer indices, got {got!r}"
    )
    assert np.all(np.diff(array) > 0), f"expected sorted indices, each once, got {array.tolist()}"
    return array.tolist()


def _brute_force(dist, i, k):
    """R(i, k) from the definition: N(p, k) = p plus its k nearest others, lower index on ties."""
    n = len(dist)

    def near(p):
        others = sorted((q for q in range(n) if q != p), key=lambda q: (dist[p, q], q))
        return {p, *others[:k]}

    return sorted(j for j in near(i) if i in near(j))


@test_case(name="q1_hidden - random points against brute force", hidden=True)
def against_brute_force(k_reciprocal_set):
    rng = np.random.default_rng(20)
    for _ in range(25):
        n = int(rng.integers(2, 25))
        points = rng.normal(size=(n, int(rng.integers(1, 5))))
        dist = np.linalg.norm(points[:, None] - points[None, :], axis=-1)
        i, k = int(rng.integers(n)), int(rng.integers(1, n))
        expected = _brute_force(dist, i, k)
        got = _set(k_reciprocal_set, dist, i, k)
        assert got == expected, (
            f"k_reciprocal_set({n} random points, i={i}, k={k}) returned {got}, "
            f"expected {expected}"
        )


@test_case(name="q1_hidden - every row against reidlib (faiss search)", hidden=True)
def against_reidlib(k_reciprocal_set):
    rng = np.random.default_rng(21)
    points = rng.normal(size=(30, 8)).astype(np.float32)
    dist = np.linalg.norm(points[:, None] - points[None, :], axis=-1).astype(np.float64)
    for k in (1, 5, 12):
        _, rank = nearest_neighbours(points, k + 1, "euclidean")  # self first, then k others
        reference = reciprocal_sets(rank)
        for i in range(30):
            expected = reference[i].indices.tolist()
            got = _set(k_reciprocal_set, dist, i, k)
            assert got == sorted(expected), (
                f"k_reciprocal_set(30 random points, i={i}, k={k}) returned {got}, "
                f"expected {sorted(expected)} (reidlib.pseudo_labels.jaccard.reciprocal_sets)"
            )


@test_case(name="q1_hidden - k = N - 1 keeps everyone", hidden=True)
def largest_k(k_reciprocal_set):
    dist = np.array([[0.0, 1.0, 5.0, 2.0], [1.0, 0.0, 3.0, 4.0],
                     [5.0, 3.0, 0.0, 6.0], [2.0, 4.0, 6.0, 0.0]])
    for i in range(4):
        got = _set(k_reciprocal_set, dist, i, 3)
        assert got == [0, 1, 2, 3], (
            f"k_reciprocal_set(4 images, i={i}, k=3) returned {got}, expected [0, 1, 2, 3]: "
            "with k = N - 1 every image is in every neighbour set"
        )


@test_case(name="q1_hidden - duplicate images: i is always in N(i, k)", hidden=True)
def duplicates(k_reciprocal_set):
    # Images 0, 1, 2 are identical (distance 0 to each other); image 3 is far away.
    dist = np.array([[0.0, 0.0, 0.0, 9.0], [0.0, 0.0, 0.0, 9.0],
                     [0.0, 0.0, 0.0, 9.0], [9.0, 9.0, 9.0, 0.0]])
    for i, expected in ((0, [0, 1]), (1, [0, 1]), (2, [2]), (3, [3])):
        got = _set(k_reciprocal_set, dist, i, 1)
        assert got == expected, (
            f"k_reciprocal_set(three identical images 0, 1, 2 and a far image 3, i={i}, k=1) "
            f"returned {got}, expected {expected}: N(p, 1) is p itself plus one OTHER image, "
            "dist[p, p] left out of the ranking (N(2, 1) = {2, 0}: 0 and 1 tie, the lower index "
            "wins; N(0, 1) = {0, 1} does not hold 2)"
        )


@test_case(name="q1_hidden - distance matrix left unchanged", hidden=True)
def dist_unchanged(k_reciprocal_set):
    rng = np.random.default_rng(22)
    points = rng.normal(size=(8, 2))
    dist = np.linalg.norm(points[:, None] - points[None, :], axis=-1)
    before = dist.copy()
    for i in range(8):
        _set(k_reciprocal_set, dist, i, 3)
    assert np.array_equal(dist, before), (
        "k_reciprocal_set changed the distance matrix it was given (e.g. its diagonal); "
        "work on a copy"
    )
