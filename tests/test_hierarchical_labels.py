"""BUC / HCT pseudo-labels, SMP reciprocal filtering (survey §3.1, Eq. 2-3) vs brute force."""

import itertools

import numpy as np
import pytest
from scipy.cluster.hierarchy import fcluster, linkage
from sklearn.metrics import adjusted_rand_score

from reidlib.pseudo_labels import buc_labels, hct_labels, reciprocal_filter


def first_seen(labels):
    """Canonical form of a partition: ids 0, 1, ... in order of first appearance."""
    ids = {}
    return np.array([ids.setdefault(int(v), len(ids)) for v in labels], dtype=np.int64)


def to_labels(clusters, n):
    labels = np.empty(n, dtype=np.int64)
    for c, members in enumerate(clusters):
        labels[members] = c
    return first_seen(labels)


def d(x, i, j):
    return float(np.sqrt(((x[i] - x[j]) ** 2).sum()))


def buc_criterion(x, lam):
    """Eq. 2 written out with loops."""
    return lambda a, b: min(d(x, i, j) for i in a for j in b) + lam * (len(a) + len(b))


def hct_criterion(x):
    """Eq. 3 (as a distance): mean of all pairwise Euclidean distances, written out with loops."""
    return lambda a, b: sum(d(x, i, j) for i in a for j in b) / (len(a) * len(b))


def brute_agglomerate(n, n_clusters, crit):
    """Recompute the criterion for every pair of clusters at every merge."""
    clusters = [[i] for i in range(n)]
    while len(clusters) > n_clusters:
        _, p, q = min(
            (crit(clusters[p], clusters[q]), p, q)
            for p, q in itertools.combinations(range(len(clusters)), 2)
        )
        clusters[p] = clusters[p] + clusters.pop(q)
    return to_labels(clusters, n)


def brute_buc_staged(x, n_clusters, lam, per_stage):
    """BUC stages: all Eq. 2 values on stage-start clusters, merge the smallest first."""
    n = len(x)
    clusters = [[i] for i in range(n)]
    crit = buc_criterion(x, lam)
    while len(clusters) > n_clusters:
        todo = min(per_stage, len(clusters) - n_clusters)
        pairs = sorted(
            (crit(clusters[p], clusters[q]), p, q)
            for p, q in itertools.combinations(range(len(clusters)), 2)
        )
        group = list(range(len(clusters)))
        done = 0
        for _, p, q in pairs:
            if group[p] != group[q]:
                old, new = max(group[p], group[q]), min(group[p], group[q])
                group = [new if g == old else g for g in group]
                done += 1
                if done == todo:
                    break
        merged = {}
        for c, g in enumerate(group):
            merged.setdefault(g, []).extend(clusters[c])
        clusters = list(merged.values())
    return to_labels(clusters, n)


def blobs(per_blob=15, n_blobs=4, dim=6, seed=0, spread=20.0):
    rng = np.random.default_rng(seed)
    centres = spread * rng.normal(size=(n_blobs, dim))
    truth = np.repeat(np.arange(n_blobs), per_blob)
    return centres[truth] + rng.normal(size=(len(truth), dim)), truth


@pytest.mark.parametrize("seed, n_clusters, lam", [(0, 5, 0.0), (1, 3, 0.05), (2, 8, 0.3)])
def test_buc_matches_brute_force_one_merge_at_a_time(seed, n_clusters, lam):
    x = np.random.default_rng(seed).normal(size=(30, 4))
    got = buc_labels(x, n_clusters, diversity=lam)
    assert got.dtype == np.int64 and got.shape == (30,)
    assert len(np.unique(got)) == n_clusters
    np.testing.assert_array_equal(got, brute_agglomerate(30, n_clusters, buc_criterion(x, lam)))


@pytest.mark.parametrize("seed, n_clusters, lam, fraction", [(3, 4, 0.1, 0.1), (4, 7, 0.5, 0.2)])
def test_buc_staged_matches_brute_force(seed, n_clusters, lam, fraction):
    x = np.random.default_rng(seed).normal(size=(30, 4))
    got = buc_labels(x, n_clusters, diversity=lam, merge_fraction=fraction)
    assert len(np.unique(got)) == n_clusters
    want = brute_buc_staged(x, n_clusters, lam, per_stage=int(np.ceil(fraction * 30)))
    np.testing.assert_array_equal(got, want)


def test_buc_one_merge_per_stage_equals_one_by_one_on_more_points():
    # the cached-row fast path and the staged path are independent implementations
    x = np.random.default_rng(11).normal(size=(200, 8))
    np.testing.assert_array_equal(
        buc_labels(x, 20, diversity=0.05), buc_labels(x, 20, diversity=0.05, merge_fraction=1 / 200)
    )


def test_buc_staged_differs_from_one_by_one_when_sizes_matter():
    # stage-start sizes make a stage merge differently from size-aware single merges
    x = np.random.default_rng(5).normal(size=(30, 4))
    one = buc_labels(x, 4, diversity=0.5)
    staged = buc_labels(x, 4, diversity=0.5, merge_fraction=0.5)
    np.testing.assert_array_equal(staged, brute_buc_staged(x, 4, 0.5, per_stage=15))
    assert adjusted_rand_score(one, staged) < 1.0


def test_buc_diversity_term_lets_the_small_cluster_merge_first():
    # a tight big cluster near 0, a single image at 2.0 and a probe at 1.0 that is slightly
    # closer to the big cluster (0.97) than to the small one (1.0)
    x = np.array([0.0, 0.01, 0.02, 0.03, 2.0, 1.0])[:, None]
    plain = buc_labels(x, 2, diversity=0.0)
    np.testing.assert_array_equal(plain, [0, 0, 0, 0, 1, 0])  # minimum distance: joins the big
    diverse = buc_labels(x, 2, diversity=0.1)  # 0.97 + 0.1 * 5 > 1.0 + 0.1 * 2
    np.testing.assert_array_equal(diverse, [0, 0, 0, 0, 1, 1])
    np.testing.assert_array_equal(
        diverse, brute_agglomerate(len(x), 2, buc_criterion(x, 0.1))
    )


def test_buc_separates_blobs_and_accepts_tensors():
    torch = pytest.importorskip("torch")
    x, truth = blobs(seed=6)
    for fraction in (None, 0.05):
        labels = buc_labels(torch.from_numpy(x), 4, diversity=0.005, merge_fraction=fraction)
        assert adjusted_rand_score(truth, labels) == 1.0


def test_buc_edge_counts():
    x = np.random.default_rng(7).normal(size=(10, 3))
    np.testing.assert_array_equal(buc_labels(x, 10), np.arange(10))
    np.testing.assert_array_equal(buc_labels(x, 1), np.zeros(10))
    np.testing.assert_array_equal(buc_labels(x, 1, merge_fraction=1.0), np.zeros(10))
    np.testing.assert_array_equal(buc_labels(x[:1], 1), [0])


@pytest.mark.parametrize(
    "x, kwargs, match",
    [
        (np.zeros(5), {"n_clusters": 1}, r"\(N, D\)"),
        (np.zeros((0, 3)), {"n_clusters": 1}, r"\(N, D\)"),
        (np.full((4, 2), np.nan), {"n_clusters": 1}, "NaN"),
        (np.zeros((4, 2)), {"n_clusters": 0}, "n_clusters"),
        (np.zeros((4, 2)), {"n_clusters": 5}, "n_clusters"),
        (np.zeros((4, 2)), {"n_clusters": 2, "diversity": -1.0}, "diversity"),
        (np.zeros((4, 2)), {"n_clusters": 2, "merge_fraction": 0.0}, "merge_fraction"),
        (np.zeros((4, 2)), {"n_clusters": 2, "merge_fraction": 1.5}, "merge_fraction"),
        (np.zeros((4, 2)), {"n_clusters": 2, "max_n": 3}, "max_n"),
    ],
)
def test_buc_rejects_bad_input(x, kwargs, match):
    with pytest.raises(ValueError, match=match):
        buc_labels(x, **kwargs)


def test_hct_matches_scipy_and_eq3_brute_force_on_a_hand_case():
    # a chain 0 .. 4.3 and a pair 5.6 / 6.0. By hand, average linkage merges the pair (0.4),
    # {0, 1} (1.0), {2.05, 3.15} (1.1), then 4.3 with the pair (mean(1.3, 1.7) = 1.5 beats
    # mean(1.15, 2.25) = 1.7 to its chain neighbours). Single linkage keeps the chain whole.
    x = np.array([0.0, 1.0, 2.05, 3.15, 4.3, 5.6, 6.0])[:, None]
    got = hct_labels(x, 2)
    np.testing.assert_array_equal(got, [0, 0, 0, 0, 1, 1, 1])
    want = first_seen(fcluster(linkage(x, method="average"), t=2, criterion="maxclust"))
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(got, brute_agglomerate(len(x), 2, hct_criterion(x)))
    np.testing.assert_array_equal(buc_labels(x, 2, diversity=0.0), [0, 0, 0, 0, 0, 1, 1])


def test_hct_matches_eq3_brute_force_on_random_points():
    x = np.random.default_rng(8).normal(size=(25, 3))
    np.testing.assert_array_equal(hct_labels(x, 6), brute_agglomerate(25, 6, hct_criterion(x)))


def test_hct_separates_blobs():
    x, truth = blobs(seed=9)
    labels = hct_labels(x, 4)
    assert labels.dtype == np.int64 and adjusted_rand_score(truth, labels) == 1.0


@pytest.mark.parametrize(
    "x, n, match",
    [(np.zeros((2, 3, 4)), 1, r"\(N, D\)"), (np.zeros((4, 2)), 0, "n_clusters"),
     (np.zeros((4, 2)), 5, "n_clusters"), (np.full((3, 2), np.inf), 1, "infinite")],
)
def test_hct_rejects_bad_input(x, n, match):
    with pytest.raises(ValueError, match=match):
        hct_labels(x, n)


def brute_reciprocal_filter(x, labels, k):
    n = len(x)
    dist = np.array([[d(x, i, j) for j in range(n)] for i in range(n)])
    np.fill_diagonal(dist, np.inf)
    knn = [set(np.argsort(dist[i], kind="stable")[:k]) for i in range(n)]
    out = labels.copy()
    for i in range(n):
        mutual = [j for j in knn[i] if i in knn[j]]
        if labels[i] < 0 or not any(labels[j] == labels[i] for j in mutual):
            out[i] = -1
    return out


def test_reciprocal_filter_drops_a_mislabelled_point():
    # group A near 0 (label 0), group B near 10 (label 1), and a point at 0.17 labelled 1.
    # k = 2 reciprocal pairs by hand: 0-0.1, 0.25-0.35, all of B, and 0.17 with 0.1 and 0.25,
    # which carry label 0, so 0.17 is the only one left unconfirmed
    x = np.array([0.0, 0.1, 0.25, 0.35, 10.0, 10.1, 10.3, 0.17])[:, None]
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    got = reciprocal_filter(x, labels, k=2)
    np.testing.assert_array_equal(got, [0, 0, 0, 0, 1, 1, 1, -1])
    np.testing.assert_array_equal(got, brute_reciprocal_filter(x, labels, 2))
    assert labels[-1] == 1  # the input is not modified


def test_reciprocal_filter_matches_brute_force_and_keeps_outliers_out():
    rng = np.random.default_rng(10)
    x = rng.normal(size=(40, 5))
    labels = rng.integers(-1, 3, size=40)
    for k in (1, 3, 6):
        got = reciprocal_filter(x, labels, k)
        np.testing.assert_array_equal(got, brute_reciprocal_filter(x, labels, k))
        assert (got[labels == -1] == -1).all()
    # a point whose reciprocal neighbours are only outliers is not confirmed by them
    np.testing.assert_array_equal(
        reciprocal_filter(np.array([[0.0], [1.0]]), np.array([-1, 0]), 1), [-1, -1]
    )


def test_reciprocal_filter_handles_duplicate_points():
    x = np.zeros((3, 2))
    np.testing.assert_array_equal(reciprocal_filter(x, np.array([4, 4, 4]), 2), [4, 4, 4])


@pytest.mark.parametrize(
    "labels, k, match",
    [(np.zeros(3, dtype=int), 1, "shape"), (np.zeros((4, 1), dtype=int), 1, "shape"),
     (np.zeros(4), 1, "integers"), (np.zeros(4, dtype=int), 0, "k must"),
     (np.zeros(4, dtype=int), 4, "k must")],
)
def test_reciprocal_filter_rejects_bad_input(labels, k, match):
    with pytest.raises(ValueError, match=match):
        reciprocal_filter(np.random.default_rng(0).normal(size=(4, 2)), labels, k)
