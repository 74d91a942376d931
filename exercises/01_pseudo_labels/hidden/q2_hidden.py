"""Hidden checks of q2 (instructors; exercises/grade.py): Eq. 2 against a brute-force double
loop, and against the merges reidlib's buc_labels makes."""

import itertools
import numbers

import numpy as np
from otter.test_files import test_case
from scipy.spatial.distance import cdist

from reidlib.pseudo_labels import buc_labels

OK_FORMAT = False
name = "q2_hidden"


def _cost(function, dist, labels, a, b, lam):
    assert callable(function), "define a function called buc_merge_cost"
    got = function(dist, labels, a, b, lam)
    assert got is not None, "buc_merge_cost returned None"
    assert isinstance(got, numbers.Real) and not isinstance(got, bool), (
        f"buc_merge_cost should return a number, got {got!r}"
    )
    return float(got)


def _brute_force(dist, labels, a, b, lam):
    members_a = [p for p, c in enumerate(labels) if c == a]
    members_b = [q for q, c in enumerate(labels) if c == b]
    closest = min(dist[p][q] for p in members_a for q in members_b)
    return closest + lam * (len(members_a) + len(members_b))


@test_case(name="q2_hidden - random clusterings against brute force", hidden=True)
def against_brute_force(buc_merge_cost):
    rng = np.random.default_rng(30)
    for _ in range(30):
        n = int(rng.integers(2, 20))
        points = rng.normal(size=(n, 3))
        dist = cdist(points, points)
        labels = rng.integers(0, max(2, n // 2), size=n) * 10 - 5  # arbitrary ids
        labels[0], labels[1] = 1000, 2000  # at least two clusters
        present = np.unique(labels).tolist()
        a, b = rng.choice(present, size=2, replace=False).tolist()
        lam = float(rng.choice([0.0, 0.01, 0.3, 2.0]))
        expected = _brute_force(dist, labels.tolist(), a, b, lam)
        got = _cost(buc_merge_cost, dist, labels, a, b, lam)
        assert abs(got - expected) < 1e-9, (
            f"buc_merge_cost({n} random points, labels={labels.tolist()}, a={a}, b={b}, "
            f"lam={lam}) returned {got:.4f}, expected {expected:.4f}"
        )


def _merged_pair(labels, fewer):
    """The two clusters of ``labels`` that are one cluster of ``fewer`` (one merge apart)."""
    groups = {}
    for old, new in zip(labels.tolist(), fewer.tolist(), strict=True):
        groups.setdefault(new, set()).add(old)
    merged = [group for group in groups.values() if len(group) > 1]
    assert len(merged) == 1 and len(merged[0]) == 2, "buc_labels did not make exactly one merge"
    return merged[0]


@test_case(name="q2_hidden - the pair reidlib's BUC merges has the lowest cost", hidden=True)
def against_buc_labels(buc_merge_cost):
    # buc_labels(x, c - 1) is buc_labels(x, c) plus one greedy merge: the pair of clusters it
    # joins must have the smallest Eq. 2 criterion among all pairs.
    rng = np.random.default_rng(31)
    points = rng.normal(size=(12, 2))
    dist = cdist(points, points)
    for lam in (0.0, 0.2, 1.0):
        for c in range(12, 1, -1):
            # the exercise's cost uses the plain distance (cdist), not BUC's squared one
            labels = buc_labels(points, c, lam, metric="euclidean")
            fewer = buc_labels(points, c - 1, lam, metric="euclidean")
            joined = _merged_pair(labels, fewer)
            costs = {
                (a, b): _cost(buc_merge_cost, dist, labels, a, b, lam)
                for a, b in itertools.combinations(np.unique(labels).tolist(), 2)
            }
            best = min(costs, key=costs.get)
            assert set(best) == joined, (
                f"with lam={lam} and {c} clusters, reidlib.pseudo_labels.buc_labels merges "
                f"clusters {sorted(joined)} next, but your costs make {best} the cheapest "
                f"({costs[best]:.4f} against {costs[tuple(sorted(joined))]:.4f})"
            )


@test_case(name="q2_hidden - lists in, inputs left unchanged", hidden=True)
def lists_and_unchanged(buc_merge_cost):
    dist = np.array([[0.0, 2.0, 5.0], [2.0, 0.0, 4.0], [5.0, 4.0, 0.0]])
    labels = [4, 4, 9]
    before = dist.copy()
    got = _cost(buc_merge_cost, dist, labels, 4, 9, 0.25)
    assert abs(got - 4.75) < 1e-9, (
        f"buc_merge_cost(dist, labels=[4, 4, 9] as a list, a=4, b=9, lam=0.25) returned "
        f"{got:.4f}, expected 4.7500 (closest pair at 4, plus 0.25 x (2 + 1))"
    )
    assert np.array_equal(dist, before) and labels == [4, 4, 9], (
        "buc_merge_cost changed the distance matrix or the labels it was given"
    )
