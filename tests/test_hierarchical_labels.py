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


def sq(x, i, j):
    """Squared Euclidean distance, the d of BUC's official code (reid/bottom_up.py)."""
    return float(((x[i] - x[j]) ** 2).sum())


def buc_criterion(x, lam, dist=sq):
    """Eq. 2 written out with loops (squared distance unless told otherwise)."""
    return lambda a, b: min(dist(x, i, j) for i in a for j in b) + lam * (len(a) + len(b))


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


def reference_buc(x, n_clusters, lam, per_stage, dist=sq):
    """BUC's stages the way its official code makes them, as plain loops over image pairs.

    A stage scores every pair of images i < j in different clusters by
    dist(i, j) + lam * (|C(i)| + |C(j)|), sizes taken at the stage start; it walks the pairs in
    increasing order (ties: lower (i, j) first, a stable sort) and joins their clusters, the
    smaller label winning, until per_stage clusters are gone; a pair whose clusters were joined
    earlier in the stage changes nothing. The first pair met of two clusters is their closest
    pair: single linkage is never computed, it falls out of the walk. Labels start as the image
    indices and end renumbered in sorted order, as BUC does. Unlike BUC (a fixed number of
    stages) this stops at n_clusters.
    """
    n = len(x)
    table = [[dist(x, i, j) for j in range(n)] for i in range(n)]
    label = list(range(n))
    while len(set(label)) > n_clusters:
        before = len(set(label))
        todo = min(per_stage, before - n_clusters)
        size = {c: label.count(c) for c in label}
        pairs = sorted(
            (table[i][j] + lam * (size[label[i]] + size[label[j]]), i, j)
            for i in range(n) for j in range(i + 1, n) if label[i] != label[j]
        )
        for _, i, j in pairs:
            keep, gone = min(label[i], label[j]), max(label[i], label[j])
            label = [keep if c == gone else c for c in label]
            if before - len(set(label)) == todo:
                break
    return np.unique(label, return_inverse=True)[1].ravel()


def unit_rows(n, dim, seed, n_people=0, spread=0.35):
    """L2-normalised toy features (BUC clusters unit vectors); n_people > 0 gives groups."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, dim))
    if n_people:
        x = rng.normal(size=(n_people, dim))[rng.integers(0, n_people, n)] + spread * x
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def blobs(per_blob=15, n_blobs=4, dim=6, seed=0, spread=20.0):
    rng = np.random.default_rng(seed)
    centres = spread * rng.normal(size=(n_blobs, dim))
    truth = np.repeat(np.arange(n_blobs), per_blob)
    return centres[truth] + rng.normal(size=(len(truth), dim)), truth


# These brute-force references use the squared distance since buc_labels follows BUC's official
# code there; with the plain distance (the old d) the lam > 0 cases merge differently.
@pytest.mark.parametrize("seed, n_clusters, lam", [(0, 5, 0.0), (1, 3, 0.05), (2, 8, 0.3)])
def test_buc_matches_brute_force_one_merge_at_a_time(seed, n_clusters, lam):
    x = np.random.default_rng(seed).normal(size=(30, 4))
    got = buc_labels(x, n_clusters, diversity=lam)
    assert got.dtype == np.int64 and got.shape == (30,)
    assert len(np.unique(got)) == n_clusters
    np.testing.assert_array_equal(got, brute_agglomerate(30, n_clusters, buc_criterion(x, lam)))


@pytest.mark.parametrize("seed, n_clusters, lam", [(1, 3, 0.05), (2, 8, 0.3)])
def test_buc_euclidean_metric_is_eq2_on_the_plain_distance(seed, n_clusters, lam):
    x = np.random.default_rng(seed).normal(size=(30, 4))
    got = buc_labels(x, n_clusters, diversity=lam, metric="euclidean")
    np.testing.assert_array_equal(
        got, brute_agglomerate(30, n_clusters, buc_criterion(x, lam, dist=d)))


@pytest.mark.parametrize(
    "n, seed, people, n_clusters, lam, fraction",
    [
        (60, 0, 0, 12, 0.005, 0.05),  # BUC's defaults: lambda 0.005, merge percent 0.05
        (60, 1, 8, 8, 0.003, 0.05),  # the lambda of BUC's run script
        (45, 0, 0, 6, 0.05, 0.1),  # 4.5 merges per stage: BUC makes int(4.5) = 4
        (70, 1, 0, 10, 0.01, 0.03),  # 2.1: 2 merges per stage
        (45, 3, 6, 5, 0.1, 0.2),
        (80, 1, 10, 10, 0.1, None),  # one merge per stage
        (30, 4, 0, 4, 0.3, 0.5),
        (50, 5, 0, 7, 0.0, 0.1),  # no diversity term: single linkage in stages
    ],
)
def test_buc_matches_the_official_stages(n, seed, people, n_clusters, lam, fraction):
    # in all but the last case lambda changes the reference's partition, and in the 4.5 and 2.1
    # cases so does rounding the merges per stage up instead of down as BUC does
    x = unit_rows(n, 8, seed, people)
    per_stage = 1 if fraction is None else int(n * fraction)
    got = buc_labels(x, n_clusters, diversity=lam, merge_fraction=fraction)
    np.testing.assert_array_equal(got, reference_buc(x, n_clusters, lam, per_stage))


def test_buc_lambda_is_on_the_scale_of_bucs_code():
    # on unit features, BUC's lambda and merge percent give another partition with the plain
    # distance: the metric matters, and the default is the official one
    x = unit_rows(60, 8, 0)
    want = reference_buc(x, 12, 0.005, per_stage=3)
    plain = reference_buc(x, 12, 0.005, per_stage=3, dist=d)
    assert adjusted_rand_score(want, plain) < 1.0
    np.testing.assert_array_equal(buc_labels(x, 12, merge_fraction=0.05), want)
    np.testing.assert_array_equal(
        buc_labels(x, 12, merge_fraction=0.05, metric="euclidean"), plain)


@pytest.mark.parametrize("seed", [10, 15, 82])
def test_buc_ties_on_a_lattice_match_brute_force(seed):
    # whole-number squared distances tie all the time: both paths must take the lowest pair.
    # These seeds once caught the cached path keeping a higher tied partner (lambda 0).
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 14))
    x = rng.integers(0, 6, size=(n, int(rng.integers(1, 3)))).astype(float)
    for lam in (0.0, 0.5):
        for c in range(1, n):
            want = brute_agglomerate(n, c, buc_criterion(x, lam))
            np.testing.assert_array_equal(buc_labels(x, c, diversity=lam), want)
            np.testing.assert_array_equal(buc_labels(x, c, diversity=lam, merge_fraction=1 / n),
                                          want)


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
    np.testing.assert_array_equal(staged, reference_buc(x, 4, 0.5, per_stage=15))
    assert adjusted_rand_score(one, staged) < 1.0


def test_buc_diversity_term_lets_the_small_cluster_merge_first():
    # a tight big cluster near 0, a single image at 2.0 and a probe at 1.0 that is slightly
    # closer to the big cluster (squared distance 0.97^2 = 0.9409) than to the small one (1.0)
    x = np.array([0.0, 0.01, 0.02, 0.03, 2.0, 1.0])[:, None]
    plain = buc_labels(x, 2, diversity=0.0)
    np.testing.assert_array_equal(plain, [0, 0, 0, 0, 1, 0])  # minimum distance: joins the big
    diverse = buc_labels(x, 2, diversity=0.1)  # 0.9409 + 0.1 * 5 > 1.0 + 0.1 * 2
    np.testing.assert_array_equal(diverse, [0, 0, 0, 0, 1, 1])
    np.testing.assert_array_equal(
        diverse, brute_agglomerate(len(x), 2, buc_criterion(x, 0.1))
    )


def test_buc_squared_distance_decides_a_hand_case():
    # a cluster at -1.0 .. -1.02, a probe at 0 and an image at 1.15, lambda 0.1. Squared:
    # probe to cluster 1.0 + 0.1 * 4 = 1.4 < probe to image 1.3225 + 0.1 * 2 = 1.5225.
    # Plain distance: 1.0 + 0.4 = 1.4 > 1.15 + 0.2 = 1.35, the probe joins the image.
    x = np.array([-1.0, -1.01, -1.02, 0.0, 1.15])[:, None]
    np.testing.assert_array_equal(buc_labels(x, 2, diversity=0.1), [0, 0, 0, 0, 1])
    np.testing.assert_array_equal(
        buc_labels(x, 2, diversity=0.1, metric="euclidean"), [0, 0, 0, 1, 1])


def test_buc_ties_go_to_the_lower_pair():
    # 0, 1, 2, 3 on a line: the three neighbour pairs tie at squared distance 1
    x = np.arange(4.0)[:, None]
    # lambda 0: (0, 1) first, then {0, 1}-2 and 2-3 tie at 1 and the lower pair wins
    np.testing.assert_array_equal(buc_labels(x, 2, diversity=0.0), [0, 0, 0, 1])
    # lambda 0.1: {0, 1}-2 costs 1 + 0.3, 2-3 costs 1 + 0.2
    np.testing.assert_array_equal(buc_labels(x, 2, diversity=0.1), [0, 0, 1, 1])
    # one stage of int(4 * 0.5) = 2 merges on singleton sizes: (0, 1) then (1, 2)
    np.testing.assert_array_equal(buc_labels(x, 2, diversity=0.1, merge_fraction=0.5),
                                  [0, 0, 0, 1])
    for lam, per_stage, want in ((0.0, 1, [0, 0, 0, 1]), (0.1, 1, [0, 0, 1, 1]),
                                 (0.1, 2, [0, 0, 0, 1])):
        np.testing.assert_array_equal(reference_buc(x, 2, lam, per_stage), want)


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
    # int(10 * 0.01) = 0 merges per stage would never end: a stage makes at least one
    np.testing.assert_array_equal(buc_labels(x, 3, merge_fraction=0.01), buc_labels(x, 3))


@pytest.mark.parametrize(
    "x, kwargs, match",
    [
        (np.zeros(5), {"n_clusters": 1}, r"\(N, D\)"),
        (np.zeros((0, 3)), {"n_clusters": 1}, r"\(N, D\)"),
        (np.full((4, 2), np.nan), {"n_clusters": 1}, "NaN"),
        (np.zeros((4, 2)), {"n_clusters": 0}, "n_clusters"),
        (np.zeros((4, 2)), {"n_clusters": 5}, "n_clusters"),
        (np.zeros((4, 2)), {"n_clusters": 2.5}, "n_clusters must be an integer"),
        (np.zeros((4, 2)), {"n_clusters": 2, "diversity": float("nan")}, "diversity"),
        (np.zeros((4, 2)), {"n_clusters": 2, "metric": "cosine"}, "metric must be one of"),
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
