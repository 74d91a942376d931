"""Public checks of q1, k-reciprocal neighbours (students run grader.check("q1"))."""

import numpy as np
from otter.test_files import test_case

OK_FORMAT = False
name = "q1"

HINT = (
    "Hint: write a helper for N(p, k): drop p from the ranking (np.delete(np.arange(N), p)), "
    "sort the others by dist[p] with np.argsort(..., kind='stable'), keep the first k and add "
    "p itself. Then keep the j in N(i, k) whose own N(j, k) contains i."
)

# Six images on a line; dist[p, q] = |position p - position q| (the notebook's example).
POSITIONS = np.array([0.0, 1.0, 2.5, 6.0, 7.0, 12.0])
LINE = np.abs(POSITIONS[:, None] - POSITIONS[None, :])


def _set(function, dist, i, k, what):
    """The student's R(i, k), checked to be a sorted 1-D integer array; returned as a list."""
    assert callable(function), "define a function called k_reciprocal_set (run its cell first)"
    got = function(dist, i, k)
    assert got is not None, "k_reciprocal_set returned None: did you forget the return?"
    array = np.asarray(got)
    assert array.ndim == 1 and (array.size == 0 or np.issubdtype(array.dtype, np.integer)), (
        f"k_reciprocal_set({what}, i={i}, k={k}) should return a 1-D numpy array of integer "
        f"indices, got {got!r}"
    )
    assert np.all(np.diff(array) > 0), (
        f"k_reciprocal_set({what}, i={i}, k={k}) returned {array.tolist()}: return the indices "
        "sorted, each once (np.array(sorted(...)))"
    )
    return array.tolist()


def _brute_force(dist, i, k):
    """R(i, k) straight from the definition, with Python sets."""
    n = len(dist)

    def near(p):
        others = sorted((q for q in range(n) if q != p), key=lambda q: (dist[p, q], q))
        return {p, *others[:k]}

    return sorted(j for j in near(i) if i in near(j))


@test_case(name="q1 - six images on a line, k = 2", failure_message=HINT)
def line_k2(k_reciprocal_set):
    expected = [[0, 1, 2], [0, 1, 2], [0, 1, 2], [3, 4], [3, 4], [5]]
    why = {
        0: "N(0, 2) = {0, 1, 2} and both 1 and 2 have 0 among their nearest two",
        2: "N(2, 2) = {2, 1, 0}, and 2 is in N(1, 2) = {1, 0, 2} and in N(0, 2) = {0, 1, 2}",
        3: "N(3, 2) = {3, 4, 2}, but N(2, 2) = {2, 1, 0} does not hold 3",
        5: "N(5, 2) = {5, 4, 3}, but neither 4 nor 3 has 5 among its nearest two",
    }
    for i in range(6):
        got = _set(k_reciprocal_set, LINE, i, 2, "the six images on a line")
        assert got == expected[i], (
            f"k_reciprocal_set(line, i={i}, k=2) returned {got}, expected {expected[i]}"
            + (f" ({why[i]})" if i in why else "")
            + ". Remember: N(p, k) is p itself plus its k nearest OTHER images."
        )


@test_case(name="q1 - six images on a line, k = 1", failure_message=HINT)
def line_k1(k_reciprocal_set):
    expected = [[0, 1], [0, 1], [2], [3, 4], [3, 4], [5]]
    for i in range(6):
        got = _set(k_reciprocal_set, LINE, i, 1, "the six images on a line")
        assert got == expected[i], (
            f"k_reciprocal_set(line, i={i}, k=1) returned {got}, expected {expected[i]} "
            "(with k = 1, N(p, 1) = {p, its nearest other image}; i itself is always in R(i, k))"
        )


@test_case(name="q1 - ties go to the lower index", failure_message=HINT)
def ties(k_reciprocal_set):
    # Image 0 at position 0, image 1 at +1, image 2 at -1: 1 and 2 are both at distance 1.
    positions = np.array([0.0, 1.0, -1.0])
    dist = np.abs(positions[:, None] - positions[None, :])
    for i, expected in ((0, [0, 1]), (1, [0, 1]), (2, [2])):
        got = _set(k_reciprocal_set, dist, i, 1, "images at 0, +1, -1")
        assert got == expected, (
            f"k_reciprocal_set(images at 0, +1, -1, i={i}, k=1) returned {got}, expected "
            f"{expected}: images 1 and 2 are both at distance 1 from image 0, so the lower index "
            "wins and N(0, 1) = {0, 1}; image 2's nearest is 0, but 0 does not pick 2 back"
        )


@test_case(name="q1 - reciprocity is symmetric", failure_message=HINT)
def symmetric(k_reciprocal_set):
    rng = np.random.default_rng(10)
    points = rng.normal(size=(12, 3))
    dist = np.linalg.norm(points[:, None] - points[None, :], axis=-1)
    k = 3
    sets = [_set(k_reciprocal_set, dist, i, k, "12 random points") for i in range(12)]
    for i in range(12):
        assert i in sets[i] and len(sets[i]) <= k + 1, (
            f"R({i}, {k}) = {sets[i]} on 12 random points: it must hold {i} itself and at most "
            f"k + 1 = {k + 1} indices"
        )
        for j in sets[i]:
            assert i in sets[j], (
                f"on 12 random points with k = {k}, {j} is in R({i}, {k}) = {sets[i]} but {i} is "
                f"not in R({j}, {k}) = {sets[j]}: j in R(i, k) means i and j are in each "
                "other's neighbour sets, so it must work both ways"
            )


@test_case(name="q1 - random points against the definition", failure_message=HINT)
def random_points(k_reciprocal_set):
    rng = np.random.default_rng(11)
    points = rng.normal(size=(15, 4))
    dist = np.linalg.norm(points[:, None] - points[None, :], axis=-1)
    for i, k in ((0, 4), (7, 2), (14, 6)):
        expected = _brute_force(dist, i, k)
        got = _set(k_reciprocal_set, dist, i, k, "15 random points")
        assert got == expected, (
            f"k_reciprocal_set(15 random points, i={i}, k={k}) returned {got}, "
            f"expected {expected}"
        )
