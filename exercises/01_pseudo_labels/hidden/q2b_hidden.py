"""Hidden checks of q2b (instructors; exercises/grade.py): the next merge against brute force
and against a whole run of reidlib's buc_labels, one merge at a time."""

import itertools
import numbers

import numpy as np
from otter.test_files import test_case
from scipy.spatial.distance import cdist

from reidlib.pseudo_labels import buc_labels

OK_FORMAT = False
name = "q2b_hidden"


def _pair(function, dist, labels, lam):
    assert callable(function), "define a function called buc_next_merge"
    got = function(dist, labels, lam)
    assert got is not None, "buc_next_merge returned None"
    ok = (
        isinstance(got, tuple | list | np.ndarray)
        and len(got) == 2
        and all(isinstance(c, numbers.Integral) and not isinstance(c, bool) for c in got)
    )
    assert ok, f"buc_next_merge should return a tuple (a, b) of two cluster ids, got {got!r}"
    return int(got[0]), int(got[1])


def _brute_force(dist, labels, lam):
    """Eq. 2 for every pair a < b of ids, the first smallest one (ids in increasing order)."""
    best, pair = None, None
    for a, b in itertools.combinations(sorted(set(labels)), 2):
        closest = min(
            dist[p][q]
            for p in range(len(labels)) if labels[p] == a
            for q in range(len(labels)) if labels[q] == b
        )
        cost = closest + lam * (labels.count(a) + labels.count(b))
        if best is None or cost < best:
            best, pair = cost, (a, b)
    return pair


def _canonical(labels):
    """Cluster ids renumbered by first appearance, to compare partitions."""
    first = {}
    return [first.setdefault(c, len(first)) for c in labels]


@test_case(name="q2b_hidden - random clusterings against brute force", hidden=True)
def against_brute_force(buc_next_merge):
    rng = np.random.default_rng(40)
    for _ in range(30):
        n = int(rng.integers(2, 16))
        points = rng.normal(size=(n, 2))
        dist = cdist(points, points)
        labels = (rng.integers(0, max(2, n // 2), size=n) * 7 - 10).tolist()
        labels[0], labels[-1] = 99, -99  # at least two clusters, ids out of order
        lam = float(rng.choice([0.0, 0.05, 0.5, 3.0]))
        expected = _brute_force(dist, labels, lam)
        got = _pair(buc_next_merge, dist, np.array(labels), lam)
        assert got == expected, (
            f"buc_next_merge({n} random points, labels={labels}, lam={lam}) returned {got}, "
            f"expected {expected}"
        )


@test_case(name="q2b_hidden - ties on whole-number distances", hidden=True)
def ties(buc_next_merge):
    # Rounded distances tie often: the pair (a, b) with the smallest a, then b, must win.
    rng = np.random.default_rng(43)
    for _ in range(30):
        n = int(rng.integers(3, 12))
        points = rng.integers(0, 4, size=(n, 2)).astype(float)
        dist = np.round(cdist(points, points))
        labels = rng.permutation(n) % int(rng.integers(2, n + 1)) * 2  # even ids, shuffled
        lam = float(rng.choice([0.0, 0.5, 1.0]))
        expected = _brute_force(dist, labels.tolist(), lam)
        got = _pair(buc_next_merge, dist, labels, lam)
        assert got == expected, (
            f"buc_next_merge(points={points.astype(int).tolist()} with rounded distances, "
            f"labels={labels.tolist()}, lam={lam}) returned {got}, expected {expected}: when "
            "pairs tie, the one with the smallest a (then the smallest b) wins"
        )


@test_case(name="q2b_hidden - replaying reidlib's buc_labels merge by merge", hidden=True)
def replay_buc_labels(buc_next_merge):
    # Start from singletons and merge the pair the student picks until 1 cluster is left; after
    # each merge the partition must be the one reidlib.pseudo_labels.buc_labels returns.
    rng = np.random.default_rng(41)
    points = rng.normal(size=(14, 3))
    dist = cdist(points, points)
    for lam in (0.0, 0.1, 0.6):
        labels = np.arange(14)
        for c in range(13, 0, -1):
            a, b = _pair(buc_next_merge, dist, labels.copy(), lam)
            assert a < b and {a, b} <= set(labels.tolist()), (
                f"buc_next_merge returned ({a}, {b}) for labels {labels.tolist()}: expected two "
                "ids present in labels, the smaller first"
            )
            labels = np.where(labels == b, a, labels)
            expected = buc_labels(points, c, lam, metric="euclidean")
            assert _canonical(labels.tolist()) == expected.tolist(), (
                f"with lam={lam}, merging your choice ({a}, {b}) gives the clusters "
                f"{_canonical(labels.tolist())}, but reidlib's BUC with {c} clusters gives "
                f"{expected.tolist()}"
            )


@test_case(name="q2b_hidden - inputs left unchanged", hidden=True)
def inputs_unchanged(buc_next_merge):
    rng = np.random.default_rng(42)
    points = rng.normal(size=(6, 2))
    dist = cdist(points, points)
    labels = np.array([2, 2, 5, 1, 5, 0])
    dist_before, labels_before = dist.copy(), labels.copy()
    _pair(buc_next_merge, dist, labels, 0.3)
    assert np.array_equal(dist, dist_before) and np.array_equal(labels, labels_before), (
        "buc_next_merge changed the distance matrix or the labels it was given"
    )
