"""k-reciprocal Jaccard distance (Zhong et al. 2017; survey §3.1) against a dense reference
written straight from the paper's equations."""

import numpy as np
import pytest
import scipy.sparse as sp
from kreciprocal_reference import kreciprocal_weights

from reidlib.pseudo_labels import jaccard_distance


def clustered(n, dim=16, n_clusters=6, spread=0.35, seed=0):
    """n points in a few Gaussian blobs (a toy 'few identities' feature space)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_clusters, dim))
    return (centres[rng.integers(0, n_clusters, n)] + spread * rng.normal(size=(n, dim))).astype(
        np.float32
    )


def reference_jaccard(x, k1, k2, metric):
    """Dense, loop-by-loop transcription of the paper (Eqs. 4, 6, 7, 10, 11), for clarity only:
    sets are Python sets, V is a dense N x N array, sum max is summed, not derived."""
    x = x.astype(np.float64)
    if metric == "cosine":
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
    d = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)  # squared Euclidean
    n = len(x)
    v = kreciprocal_weights(d, k1, k2)
    dist = np.ones((n, n))
    overlap = np.zeros((n, n), dtype=bool)
    for i in range(n):
        for j in range(n):
            low = np.minimum(v[i], v[j]).sum()
            dist[i, j] = 1.0 - low / np.maximum(v[i], v[j]).sum()
            overlap[i, j] = low > 0
    return dist, overlap


def our_k1(paper_k1):
    """The k1 of ``jaccard_distance`` that builds the shared oracle's sets for ``paper_k1``.

    The oracle (shared with the re-ranking tests) follows the paper and Zhong et al.'s code:
    R(i, k1) looks at k1 neighbours *besides* i, the expansion sets at round(k1/2) besides.
    ``jaccard_distance`` follows SpCL / Cluster Contrast (tests/test_jaccard_reference.py):
    k1 neighbours *including* i, round(k1/2) besides i for the expansion. So ours is one
    larger, and the expansion widths agree only where round(k1/2) = round((k1 + 1)/2); the
    cases below are chosen so. paper_k1 = 1 is the exception that changes nothing: every
    R(i) is i and at most its mutual nearest neighbour m, and R(m) = {m, i} adds nothing.
    """
    half = int(np.around(paper_k1 / 2.0))
    assert paper_k1 == 1 or half == int(np.around((paper_k1 + 1) / 2.0)), paper_k1
    return paper_k1 + 1


CASES = [  # n, k1 (the paper's meaning, see our_k1), k2, metric
    (120, 20, 6, "cosine"),
    (200, 11, 3, "euclidean"),  # was k1 = 10, whose expansion width has no match in ours
    (90, 7, 1, "cosine"),  # odd k1 (k1/2 rounds), no query expansion
    (60, 1, 1, "cosine"),  # smallest k1: R(i, 1) = i and at most a mutual nearest neighbour
    (60, 59, 60, "euclidean"),  # k1 = N - 1 (ours N) and k2 = N: every pair is a neighbour
    (70, 4, 12, "cosine"),  # k2 > k1 + 1: the search must reach k2 neighbours
]


@pytest.mark.parametrize("search", ["faiss", "torch"])
@pytest.mark.parametrize("n, k1, k2, metric", CASES)
def test_matches_dense_reference(n, k1, k2, metric, search):
    x = clustered(n, seed=n + k1)
    want, overlap = reference_jaccard(x, k1, k2, metric)
    k1 = our_k1(k1)
    got = jaccard_distance(x, k1=k1, k2=k2, metric=metric, progress=False, search=search)
    assert sp.issparse(got) and got.shape == (n, n) and got.dtype == np.float32
    stored = np.zeros((n, n), dtype=bool)
    coo = got.tocoo()
    stored[coo.row, coo.col] = True
    # Stored entries are exactly the pairs whose V rows overlap ...
    np.testing.assert_array_equal(stored, overlap)
    np.testing.assert_allclose(coo.data, want[coo.row, coo.col], atol=1e-5, rtol=0)
    # ... and every other pair is at the maximum distance 1.
    np.testing.assert_array_equal(want[~overlap], 1.0)
    # The dense form agrees everywhere.
    full = jaccard_distance(x, k1=k1, k2=k2, metric=metric, dense=True, progress=False)
    assert full.shape == (n, n) and full.dtype == np.float32
    np.testing.assert_allclose(full, want, atol=1e-5, rtol=0)


def test_symmetric_zero_diagonal_and_in_range():
    x = clustered(150, seed=3)
    got = jaccard_distance(x, progress=False)
    assert abs(got - got.T).max() < 1e-6
    np.testing.assert_allclose(got.diagonal(), 0.0, atol=1e-6)  # rows of V sum to 1 +- eps
    assert got.data.min() >= 0.0 and got.data.max() <= 1.0
    assert (got.getnnz(axis=1) < 150).all()  # sparse: not every pair shares a neighbour


def test_blocking_does_not_change_the_result():
    x = clustered(150, seed=4)
    whole = jaccard_distance(x, progress=False).toarray()
    tiny_blocks = jaccard_distance(x, block_pairs=50, progress=False).toarray()
    np.testing.assert_array_equal(whole, tiny_blocks)


def test_clusters_are_closer_than_strangers():
    """The point of the distance: same-blob pairs are near, different-blob pairs at 1."""
    rng = np.random.default_rng(5)
    centres = 10 * rng.normal(size=(4, 8))
    blob = np.repeat(np.arange(4), 30)
    x = centres[blob] + 0.5 * rng.normal(size=(120, 8))
    dist = jaccard_distance(x, k1=10, k2=3, dense=True, progress=False)
    same = blob[:, None] == blob[None, :]
    assert dist[same].mean() < 0.7
    np.testing.assert_array_equal(dist[~same], 1.0)


def test_exact_duplicates_keep_self_first_and_are_at_distance_zero():
    x = clustered(80, seed=6)
    x[1] = x[0]  # faiss may list either copy first for both
    dist = jaccard_distance(x, k1=8, k2=3, dense=True, progress=False)
    np.testing.assert_allclose(np.diag(dist), 0.0, atol=1e-6)
    assert dist[0, 1] < 1e-6


def test_large_raw_euclidean_features_do_not_underflow():
    # exp(-d) of squared distances ~1e4 underflows to 0 without the per-row shift.
    x = 100.0 * clustered(100, seed=7)
    got = jaccard_distance(x, k1=10, k2=3, metric="euclidean", progress=False)
    assert np.isfinite(got.data).all()
    np.testing.assert_allclose(got.diagonal(), 0.0, atol=1e-6)


def test_accepts_torch_tensors():
    torch = pytest.importorskip("torch")
    x = clustered(70, seed=8)
    a = jaccard_distance(torch.from_numpy(x).double(), k1=6, k2=2, progress=False)
    b = jaccard_distance(x, k1=6, k2=2, progress=False)
    np.testing.assert_allclose(a.toarray(), b.toarray(), atol=1e-6)


@pytest.mark.parametrize(
    "x, kwargs, match",
    [
        (np.zeros(10), {}, "2-D"),
        (np.zeros((1, 4)), {"k1": 1}, "N >= 2"),
        (np.ones((10, 4)), {"k1": 11}, "k1 <= N = 10"),  # k1 counts the image itself: N is fine
        (np.ones((10, 4)), {"k1": 0}, "1 <= k1"),
        (np.ones((10, 4)), {"k1": 3, "k2": 11}, "k2 <= N = 10"),
        (np.ones((10, 4)), {"k1": 3, "k2": 0}, "1 <= k2"),
        (np.ones((10, 4)), {"k1": 3, "metric": "manhattan"}, "metric must be one of"),
        (np.ones((10, 4)), {"k1": 3, "search": "annoy"}, "search must be one of"),
        (np.ones((10, 4)), {"k1": 3, "dense": True, "max_dense": 5}, "max_dense"),
        (np.full((10, 4), np.nan), {"k1": 3}, "NaN"),
        (np.zeros((10, 4)), {"k1": 3}, "norm 0"),
        (np.array([["a", "b"], ["c", "d"]]), {"k1": 1}, "numeric"),
    ],
)
def test_bad_input_is_rejected(x, kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        jaccard_distance(x, progress=False, **kwargs)


def test_expansion_in_row_blocks_matches_one_block():
    from reidlib.pseudo_labels.jaccard import expand_sets, nearest_neighbours, reciprocal_sets

    x = clustered(150, seed=9)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    _, rank = nearest_neighbours(x, 21, "cosine")
    recip, half = reciprocal_sets(rank), reciprocal_sets(rank[:, :11])
    one = expand_sets(recip, half)
    many = expand_sets(recip, half, block_terms=30)
    assert (one != many).nnz == 0 and one.nnz > recip.nnz  # and the expansion did add members


@pytest.mark.parametrize("search", ["faiss", "torch"])
def test_neighbour_table_puts_self_first_and_stays_aligned(search):
    from reidlib.pseudo_labels.jaccard import nearest_neighbours

    x = clustered(40, seed=10)
    x[1:6] = x[0]  # six copies: with k = 4 a search may even leave a copy's own index out
    dist, rank = nearest_neighbours(x, 4, "euclidean", search)
    np.testing.assert_array_equal(rank[:, 0], np.arange(40))
    assert (np.diff(dist, axis=1) >= -1e-4).all()  # nearest first
    true_sq = ((x[:, None, :] - x[rank]) ** 2).sum(-1)
    np.testing.assert_allclose(dist, true_sq, atol=1e-3)
    assert all(len(set(row)) == 4 for row in rank)


def brute_force_neighbours(x, k):
    """k nearest rows by a full float64 distance matrix and a stable sort."""
    x = x.astype(np.float64)
    d = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    return np.argsort(d, axis=1, kind="stable")[:, :k], d


@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("tile", [16, 37, 2048])  # many tiles, a ragged last tile, one tile
def test_tiled_torch_search_is_exact(tile, symmetric):
    """The symmetric tiled search (each tile serves its rows and, transposed, its columns)
    and the row-block one find exactly the brute-force neighbours, in order, on data
    without near-ties."""
    from reidlib.pseudo_labels.jaccard import _torch_search

    x = clustered(150, dim=8, seed=11)
    want, d = brute_force_neighbours(x, 12)
    ordered = np.sort(d, axis=1)[:, :13]
    assert np.diff(ordered, axis=1).min() > 1e-5  # no near-ties: the order is well defined
    dist, rank = _torch_search(x, 12, "euclidean", None, tile=tile, symmetric=symmetric)
    np.testing.assert_array_equal(rank, want)
    np.testing.assert_allclose(dist, np.take_along_axis(d, want, 1), atol=1e-4)


@pytest.mark.parametrize("eps", [0.3, 0.6, 0.85])
def test_max_distance_keeps_exactly_the_pairs_dbscan_reads(eps):
    """Pruning to d <= max_distance keeps those pairs unchanged, drops the rest, and DBSCAN
    with that eps gives the same clusters as on the full result."""
    from reidlib.pseudo_labels import dbscan_labels

    x = clustered(300, seed=12, spread=0.5)
    full = jaccard_distance(x, k1=20, k2=6, progress=False)
    pruned = jaccard_distance(x, k1=20, k2=6, max_distance=eps, progress=False)
    f, p = full.tocoo(), pruned.tocoo()
    within = f.data <= eps
    assert 0 < within.sum() < len(f.data)  # the pruning did drop pairs, and kept some
    want = {(a, b): d for a, b, d in zip(f.row[within], f.col[within], f.data[within],
                                         strict=True)}
    got = {(a, b): d for a, b, d in zip(p.row, p.col, p.data, strict=True)}
    assert got == want
    np.testing.assert_array_equal(
        dbscan_labels(pruned, eps=eps, min_samples=4), dbscan_labels(full, eps=eps, min_samples=4)
    )


@pytest.mark.parametrize("max_distance", [None, 0.6])
def test_dense_and_sorting_accumulation_agree(max_distance):
    """Both ways of summing the (i, j, k) terms per pair give the same matrix, also when the
    rows are cut into many small blocks."""
    from reidlib.pseudo_labels.jaccard import jaccard_from_weights

    x = clustered(200, seed=13)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    want = reference_jaccard(x, 11, 4, "cosine")[0]
    if max_distance is not None:
        want[want > max_distance] = 1.0
    # The V of jaccard_distance, rebuilt from its parts (k1 = 12 is the oracle's 11).
    from reidlib.pseudo_labels import jaccard as jac

    dist, rank = jac.nearest_neighbours(x, 12, "cosine")
    recip, half = jac.reciprocal_sets(rank[:, :12]), jac.reciprocal_sets(rank[:, :7])
    v = jac.query_expansion(jac.gaussian_weights(x, jac.expand_sets(recip, half), rank, dist),
                            rank[:, :4])
    for accumulate in ("dense", "sort"):
        for block_pairs in (2_000_000, 300):
            got = jaccard_from_weights(v, block_pairs=block_pairs, max_distance=max_distance,
                                       accumulate=accumulate)
            full = np.ones((200, 200))
            coo = got.tocoo()
            full[coo.row, coo.col] = coo.data
            np.testing.assert_allclose(full, want, atol=1e-5, rtol=0)
            assert (got != got.T).nnz == 0  # exactly symmetric


def test_bad_max_distance_is_rejected():
    with pytest.raises(ValueError, match="max_distance"):
        jaccard_distance(clustered(30), k1=5, max_distance=-0.1, progress=False)
