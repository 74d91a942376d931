"""k-reciprocal Jaccard distance for clustering pseudo-labels (survey §3.1).

Clustering methods of §3.1 (SSG [56], SpCL [119], Cluster Contrast) run DBSCAN not on the
plain feature distance but on the Jaccard distance of k-reciprocal neighbour sets (Zhong,
Zheng, Cao, Li, "Re-ranking person re-identification with k-reciprocal encoding", CVPR
2017), the ``compute_jaccard_distance`` of those codebases. Two images of one person share
many reciprocal neighbours, so the distance is more robust to hard negatives than a single
feature distance; SMP [71] uses reciprocal neighbours in the same spirit. On N images:

1. N(i, k): the k nearest neighbours of i, i itself included (first), by exact search.
2. R(i, k) = {j in N(i, k) : i in N(j, k)}, the k-reciprocal neighbours (paper Eq. 4).
3. R*(i) = R(i, k1) grown by R(c, h + 1), h = round(k1 / 2), for each c in R(i, k1) with
   |R(c, h + 1) & R(i, k1)| > 2/3 |R(c, h + 1)| (Eq. 6).
4. V_i: weight exp(-d(i, j)) on j in R*(i), normalised to sum 1 (Eq. 7); d is the squared
   Euclidean distance (2 - 2 cos on L2-normalised features, as in those codebases).
5. Local query expansion: V_i <- mean of V_j over N(i, k2) (Eq. 11).
6. d_J(i, j) = 1 - sum_k min(V_ik, V_jk) / sum_k max(V_ik, V_jk) (Eq. 10). Rows of V sum to
   1, so sum max = 2 - sum min.

What k1 and k2 mean: as in SpCL / Cluster Contrast's ``compute_jaccard_distance``, so
their recipes (k1 = 30 or 20, k2 = 6) carry over unchanged. k1 counts the image itself:
R(i, k1) is drawn from i and its k1 - 1 nearest others. The expansion sets of step 3 are
drawn from i and round(k1 / 2) others (numpy's round, half to even: k1 = 25 gives 12), one
wider than "half of k1" suggests; that asymmetry is the reference code's, kept on purpose.
k2 counts the image itself too (k2 = 1: no expansion). The paper, Zhong et al.'s own
re-ranking code and our ``evaluation.rerank`` count k1 *besides* the image (k1 + 1 with
it), so ``rerank``'s k1 = 20 builds the R(i, k1) of our k1 = 21. tests/test_jaccard_reference.py
checks this function against a dense transcription of the reference's behaviour.

Differences from the SpCL / Cluster Contrast code, on purpose:

- The image is put first in its own neighbour list even when an exact duplicate ties with
  it (the reference takes faiss's order). With k2 > k1 we average over k2 neighbours as
  asked; the reference's neighbour table has only k1 columns, so it averages over k1.
- metric "euclidean" uses the squared Euclidean distance for search and weights alike; the
  reference searches by L2 but weighs by 2 - 2 x.y, which is the same only on unit rows.
- Everything is sparse: V is a scipy.sparse CSR matrix with O(N k) entries, and sum min is
  computed only for pairs sharing a column of V, through the column (inverted) index, one
  block of rows at a time, each pair once (i <= j; the result is mirrored, so it is exactly
  symmetric where the reference's is so up to rounding). The codebases build several
  dense N x N matrices in Python loops (18-23 s a round on Market-1501, tens of GB at
  MSMT17 scale).
- ``max_distance`` (``jaccard_dbscan`` passes DBSCAN's eps) drops the pairs DBSCAN never
  reads; the reference returns all of them.

The result is a sparse matrix whose *stored* entries are the pairs with overlapping V rows
(explicit zeros included, e.g. the diagonal); a pair that is not stored has distance 1, the
maximum. scikit-learn's DBSCAN(metric="precomputed") reads a sparse matrix exactly this way
(absent = not a neighbour).

Why by hand: no maintained library ships this distance; faiss (or a torch matmul + topk,
faster on CPUs that the faiss-cpu wheel's bundled OpenBLAS does not recognise, and on a GPU)
does the neighbour search.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from tqdm.auto import tqdm

from reidlib._faiss import faiss
from reidlib.checks import features_2d, int_in_range, one_of, unit_rows
from reidlib.utils import progress_enabled

METRICS = ("cosine", "euclidean")
SEARCHES = ("faiss", "torch")


def jaccard_distance(
    features,
    k1: int = 20,
    k2: int = 6,
    metric: str = "cosine",
    dense: bool = False,
    max_dense: int = 10_000,
    block_pairs: int = 2_000_000,
    progress: bool = True,
    search: str = "faiss",
    max_distance: float | None = None,
):
    """k-reciprocal Jaccard distance between all pairs of rows of ``features`` (Zhong et al.
    2017, Eqs. 4-11; survey §3.1).

    Args:
        features: (N, D) float array or tensor (any device; it is copied to the CPU).
        k1: size of the k-reciprocal neighbourhood, the image itself included (SpCL /
            Cluster Contrast's meaning, one less than the paper's; module docstring),
            1 <= k1 <= N.
        k2: size of the local query expansion, the image itself included, 1 <= k2 <= N (1
            switches it off).
        metric: "cosine" (rows L2-normalised, faiss IndexFlatIP, d = 2 - 2 cos) or
            "euclidean" (faiss IndexFlatL2, d = squared Euclidean distance).
        dense: return a dense (N, N) float32 array (1 where no neighbour is shared) instead
            of the sparse matrix; only allowed for N <= ``max_dense``.
        block_pairs: about how many (row, shared column) terms are held at once; bounds the
            working memory of the last step.
        progress: show a tqdm bar over the blocks of the last step.
        max_distance: keep only the pairs at distance <= max_distance in the sparse result
            (None: every pair sharing a reciprocal neighbour). DBSCAN with eps <= max_distance
            reads only those pairs, so passing its eps gives the same clusters from a result
            ~100x smaller (Market-1501, k1 = 30: 18 instead of ~2,600 pairs a row).
        search: exact nearest-neighbour search with "faiss" (IndexFlatIP / IndexFlatL2) or
            "torch" (:func:`tiled_search`: tiles of the symmetric distance matrix, each
            computed once for its rows and its columns, so about half of faiss's
            multiply-adds; on the features' device when given a tensor). Both are exact;
            see benchmarks/bench_jaccard.py for which is faster where.

    Returns:
        scipy.sparse.csr_matrix (N, N) float32, symmetric, sorted indices; stored entries =
        pairs sharing a reciprocal neighbour (and within ``max_distance``), absent pairs are
        at distance 1. Or a dense array, see ``dense`` (pairs left out by ``max_distance``
        are 1 there too).
    """
    x, device = _check_features(features, k1, k2, metric, dense, max_dense, search)
    if max_distance is not None and not (np.isscalar(max_distance) and max_distance >= 0):
        raise ValueError(f"max_distance must be None or a number >= 0, got {max_distance!r}")
    n = len(x)
    # The reference's two neighbour widths: k1 (self included) for R(i, k1), and
    # round(k1 / 2) + 1 (self included) for the expansion sets; the latter is never wider.
    half = int(np.around(k1 / 2.0))
    sq_dist, rank = nearest_neighbours(x, max(k1, k2), metric, search, device)
    recip = reciprocal_sets(rank[:, :k1])
    recip_half = reciprocal_sets(rank[:, : half + 1])
    expanded = expand_sets(recip, recip_half)
    v = gaussian_weights(x, expanded, rank, sq_dist)
    del sq_dist
    if k2 != 1:
        v = query_expansion(v, rank[:, :k2])
    out = jaccard_from_weights(
        v, block_pairs=block_pairs, progress=progress, max_distance=max_distance
    )
    if not dense:
        return out
    full = np.ones((n, n), dtype=np.float32)
    coo = out.tocoo()
    full[coo.row, coo.col] = coo.data
    return full


def nearest_neighbours(
    x: np.ndarray, k: int, metric: str, search: str = "faiss", device=None
) -> tuple[np.ndarray, np.ndarray]:
    """(N, k) squared distances and indices of each row's k nearest rows, nearest first,
    with the row itself always in column 0 (a search may rank an exact duplicate first).
    ``x`` is float32, already L2-normalised for metric "cosine"."""
    if search == "faiss":
        dist, rank = _faiss_search(x, k, metric)
    else:
        dist, rank = _torch_search(x, k, metric, device)
    return self_first(np.maximum(dist, 0.0), rank)


def self_first(dist: np.ndarray, rank: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Put each row's own index first in its neighbour list (at distance 0), in place: a
    search may rank an exact duplicate first, or even leave the row itself out."""
    k = rank.shape[1]
    for i in np.flatnonzero(rank[:, 0] != np.arange(len(rank))):  # rare: duplicates only
        others = rank[i] != i
        rank[i] = np.concatenate([[i], rank[i][others][: k - 1]])
        dist[i] = np.concatenate([[0.0], dist[i][others][: k - 1]])
    return dist, rank


def _faiss_search(x: np.ndarray, k: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
    index = faiss.IndexFlatIP(x.shape[1]) if metric == "cosine" else faiss.IndexFlatL2(x.shape[1])
    index.add(x)
    dist, rank = index.search(x, k)
    if metric == "cosine":
        dist = 2.0 - 2.0 * dist
    return dist, rank.astype(np.int64)


def _torch_search(
    x: np.ndarray, k: int, metric: str, device, tile: int = 2048, symmetric=None
) -> tuple[np.ndarray, np.ndarray]:
    """Exact k-NN with :func:`tiled_search`, on the features' device."""
    import torch

    dist, rank, _ = tiled_search(torch.from_numpy(x).to(device), k, tile, symmetric=symmetric)
    return dist.cpu().numpy(), rank.cpu().numpy().astype(np.int64)


def tiled_search(xt, k: int, tile: int = 2048, on_tile=None, symmetric: bool | None = None):
    """Exact k-NN by squared Euclidean distance among the rows of the tensor ``xt``, from
    square tiles of the symmetric distance matrix, ``tile`` rows a side.

    With ``symmetric`` (default: for 512 or more dimensions), tile (I, J) with J >= I is
    computed once, by one matmul, and serves both row block I (its rows) and row block J
    (its columns, transposed): half the multiply-adds of a full product, which dominate
    the cost in high dimension. In low dimension the top-k selection dominates instead, and
    selecting along a transposed tile costs about twice as much, so each row block is then
    compared with all rows at once. Each row keeps a running top-k, merged tile by tile, and
    its running maximum. ``on_tile(row_start, col_start, dist)`` sees each tile once; every
    pair (i, j) with i <= j lies in one of them as it is (not transposed).

    Returns (N, k) distances and indices (nearest first; ties in any order) and (N,) row
    maxima, tensors on ``xt``'s device.
    """
    import torch

    n = len(xt)
    k = min(k, n)
    sq_norm = (xt * xt).sum(1)
    if symmetric is None:
        symmetric = xt.shape[1] >= 512
    if not symmetric:
        return _row_block_search(xt, k, sq_norm, max(1, (1 << 25) // n), on_tile)
    step = max(k, min(n, tile))
    starts = list(range(0, n, step))
    best_d, best_i = [None] * len(starts), [None] * len(starts)
    row_max = [None] * len(starts)

    def merge(b, dist, offset):
        top = torch.topk(dist, min(k, dist.shape[1]), dim=1, largest=False, sorted=False)
        cand_d, cand_i = top.values, top.indices + offset
        high = dist.amax(dim=1)
        if best_d[b] is not None:
            cand_d = torch.cat([best_d[b], cand_d], dim=1)
            cand_i = torch.cat([best_i[b], cand_i], dim=1)
            high = torch.maximum(row_max[b], high)
        if cand_d.shape[1] > k:
            top = torch.topk(cand_d, k, dim=1, largest=False, sorted=False)
            cand_d, cand_i = top.values, cand_i.gather(1, top.indices)
        best_d[b], best_i[b], row_max[b] = cand_d, cand_i, high

    for bi, si in enumerate(starts):
        rows = xt[si : si + step]
        for bj in range(bi, len(starts)):
            sj = starts[bj]
            # ||a||^2 + ||b||^2 - 2 a.b: one fused addmm, then the rows' norms.
            dist = torch.addmm(sq_norm[sj : sj + step][None, :], rows, xt[sj : sj + step].T,
                               alpha=-2.0)
            dist += sq_norm[si : si + step, None]
            if on_tile is not None:
                on_tile(si, sj, dist)
            merge(bi, dist, sj)
            if bj != bi:
                merge(bj, dist.T, si)
    dist, rank = torch.cat(best_d), torch.cat(best_i)
    order = torch.argsort(dist, dim=1, stable=True)  # nearest first
    return dist.gather(1, order), rank.gather(1, order), torch.cat(row_max)


def _row_block_search(xt, k: int, sq_norm, step: int, on_tile):
    """:func:`tiled_search` by blocks of ``step`` rows against all rows (no transposes)."""
    import torch

    dists, ranks, highs = [], [], []
    for start in range(0, len(xt), step):
        # ||a||^2 + ||b||^2 - 2 a.b: one fused addmm, then the rows' norms.
        dist = torch.addmm(sq_norm[None, :], xt[start : start + step], xt.T, alpha=-2.0)
        dist += sq_norm[start : start + step, None]
        if on_tile is not None:
            on_tile(start, 0, dist)
        top = torch.topk(dist, k, dim=1, largest=False, sorted=True)
        dists.append(top.values)
        ranks.append(top.indices)
        highs.append(dist.amax(dim=1))
    return torch.cat(dists), torch.cat(ranks), torch.cat(highs)


def reciprocal_sets(neighbours: np.ndarray) -> sp.csr_matrix:
    """R(i, k) as a boolean CSR matrix: row i marks the j in ``neighbours[i]`` that also
    have i in ``neighbours[j]`` (paper Eq. 4). ``neighbours``: (N, k), self first."""
    n, width = neighbours.shape
    rows = np.repeat(np.arange(n, dtype=np.int64), width)
    cols = neighbours.ravel()
    forward = np.sort(rows * n + cols)
    # (i, j) is reciprocal iff the reversed key (j, i) is also a forward edge.
    back = cols * n + rows
    pos = np.minimum(np.searchsorted(forward, back), len(forward) - 1)
    keep = forward[pos] == back
    return _bool_csr(rows[keep], cols[keep], n)


def expand_sets(
    recip: sp.csr_matrix, recip_half: sp.csr_matrix, block_terms: int = 1_000_000
) -> sp.csr_matrix:
    """R*(i): R(i, k1) plus R(c, k1/2) of every c in R(i, k1) that overlaps R(i, k1) in more
    than 2/3 of its elements (paper Eq. 6). Boolean CSR (sorted indices) in and out; rows
    are processed in blocks of about ``block_terms`` (i, c, member) triples."""
    n = recip.shape[0]
    half_len = np.diff(recip_half.indptr)
    edge_row = np.repeat(np.arange(n, dtype=np.int64), np.diff(recip.indptr))
    cand = recip.indices.astype(np.int64)
    row_keys = edge_row * n + cand  # R(i, k1) of every i: sorted, as CSR rows are
    row_terms = np.bincount(edge_row, weights=half_len[cand], minlength=n).astype(np.int64)
    keys_out = []
    for start, stop in _blocks(row_terms, block_terms):
        e0, e1 = recip.indptr[start], recip.indptr[stop]
        c, r = cand[e0:e1], edge_row[e0:e1]
        # One segment per (i, c) edge: the members m of R(c, k1/2).
        edge, at = _ragged(recip_half.indptr[c], half_len[c])
        member = recip_half.indices[at].astype(np.int64)
        probe = r[edge] * n + member
        pos = np.minimum(np.searchsorted(row_keys, probe), len(row_keys) - 1)
        overlap = np.bincount(edge[row_keys[pos] == probe], minlength=len(c))
        # Integer form of the paper's |overlap| > 2/3 |R(c, k1/2)|.
        grow = (3 * overlap > 2 * half_len[c])[edge]
        keys_out.append(_sorted_unique(np.concatenate([row_keys[e0:e1], probe[grow]])))
    keys = np.concatenate(keys_out) if keys_out else np.zeros(0, dtype=np.int64)
    return _bool_csr(keys // n, keys % n, n)


def gaussian_weights(
    x: np.ndarray,
    sets: sp.csr_matrix,
    rank: np.ndarray,
    sq_dist: np.ndarray,
    row_scale: np.ndarray | None = None,
    power: float = 1.0,
) -> sp.csr_matrix:
    """V (paper Eq. 7): weight exp(-d(i, j)) on each j in R*(i), each row normalised to
    sum 1 (a softmax over the set, as the codebases' F.softmax(-dist)). d is the squared
    Euclidean distance e, or (e / row_scale[i]) ** power when ``row_scale`` is given (the
    re-ranking code's distances, divided by their row maximum).

    Most pairs of R*(i) are among i's searched neighbours, whose squared distances
    ``sq_dist`` (aligned with ``rank``) are reused; the few the expansion adds from further
    away are computed from ``x``."""
    n = sets.shape[0]
    rows = np.repeat(np.arange(n, dtype=np.int64), np.diff(sets.indptr))
    cols = sets.indices.astype(np.int64)
    keys = rows * n + cols
    known_keys = (np.arange(n, dtype=np.int64)[:, None] * n + rank).ravel()
    order = np.argsort(known_keys)
    known_keys, known = known_keys[order], sq_dist.ravel()[order].astype(np.float64)
    pos = np.minimum(np.searchsorted(known_keys, keys), len(known_keys) - 1)
    found = known_keys[pos] == keys
    dist = np.where(found, known[pos], 0.0)
    missing = np.flatnonzero(~found)
    dist[missing] = _pair_sq_dist(x, rows[missing], cols[missing])
    dist = np.maximum(dist, 0.0)  # rounding can push ||a||^2 + ||b||^2 - 2ab below 0
    if row_scale is not None:
        dist = (dist / np.asarray(row_scale, dtype=np.float64)[rows]) ** power
    # Subtracting the row minimum keeps exp() from underflowing on far-apart raw features;
    # it cancels in the normalisation.
    starts = sets.indptr[:-1]
    weight = np.exp(-(dist - np.minimum.reduceat(dist, starts)[rows]))
    weight /= np.add.reduceat(weight, starts)[rows]
    return sp.csr_matrix((weight, sets.indices, sets.indptr), shape=(n, n))


def _pair_sq_dist(x: np.ndarray, rows: np.ndarray, cols: np.ndarray, chunk: int = 1024):
    """Squared Euclidean distance of the listed row pairs, a few thousand pairs at a time."""
    out = np.empty(len(rows), dtype=np.float64)
    for s in range(0, len(rows), chunk):
        a, b = x[rows[s : s + chunk]], x[cols[s : s + chunk]]
        out[s : s + chunk] = ((a - b).astype(np.float64) ** 2).sum(1)
    return out


def query_expansion(v: sp.csr_matrix, neighbours: np.ndarray) -> sp.csr_matrix:
    """V_i <- mean of V_j over i's k2 nearest neighbours j (paper Eq. 11): the sparse
    product A V with A[i, j] = 1 / k2 on the neighbours."""
    n, k2 = neighbours.shape
    rows = np.repeat(np.arange(n), k2)
    avg = sp.csr_matrix((np.full(n * k2, 1.0 / k2), (rows, neighbours.ravel())), shape=(n, n))
    out = (avg @ v).tocsr()
    out.sort_indices()
    return out


def jaccard_from_weights(
    v: sp.csr_matrix,
    block_pairs: int = 2_000_000,
    progress: bool = False,
    max_distance: float | None = None,
    accumulate: str = "auto",
) -> sp.csr_matrix:
    """d_J(i, j) = 1 - s / (2 - s), s = sum_k min(V_ik, V_jk) (paper Eq. 10), for the pairs
    that share a column k of V (with ``max_distance``: only those at d_J <= max_distance);
    rows of V must sum to 1.

    The inverted index (V by columns, rows sorted) lists, for each k, the rows j with
    V_jk > 0; row i meets only those lists, never all N rows, and only their part j >= i:
    d_J is symmetric, so each pair is summed once and mirrored at the end. Rows are
    processed in blocks holding about ``block_pairs`` (i, j, k) terms. The terms of a block
    are summed per pair by ``np.bincount`` into a dense (rows, N - first row) array where
    that costs no more than sorting the terms would (N^2 / 2 cells against ~25x the
    terms: up to N ~ 5 10^4 at k1 = 30), else by sorting their (i, j) keys
    (``accumulate``: "auto", "dense" or "sort")."""
    n = v.shape[0]
    entry_row = np.repeat(np.arange(n, dtype=np.int64), np.diff(v.indptr))
    # Stable sort by column of the row-ordered entries = the CSC order, rows sorted.
    to_csc = np.argsort(v.indices, kind="stable")
    csc_pos = np.empty(len(to_csc), dtype=np.int64)
    csc_pos[to_csc] = np.arange(len(to_csc))
    col_row, col_val = entry_row[to_csc], v.data[to_csc]
    col_end = np.cumsum(np.bincount(v.indices, minlength=n))
    # Entry (i, k) pairs with the rows j >= i of column k: its own CSC position to the end.
    count = col_end[v.indices] - csc_pos
    row_terms = np.bincount(entry_row, weights=count, minlength=n).astype(np.int64)
    total_terms = int(row_terms.sum())
    # Measured here: a sorted term costs ~25-30x a dense cell (allocate, add, scan).
    dense_acc = n * n / 2 <= 25 * total_terms if accumulate == "auto" else accumulate == "dense"
    s_floor = -1.0
    if max_distance is not None:
        # d <= max_distance  <=>  s >= 2 (1 - max_distance) / (2 - max_distance); a margin
        # for rounding, then the exact test on d below.
        s_floor = 2.0 * (1.0 - max_distance) / (2.0 - max_distance) - 1e-6
    rows_out, cols_out, vals_out = [], [], []
    bounds = _blocks(row_terms, block_pairs, max_rows=max(1, (1 << 22) // n) if dense_acc else n)
    for start, stop in tqdm(bounds, desc="Jaccard distance",
                            disable=not progress_enabled(progress)):
        lo, hi = v.indptr[start], v.indptr[stop]
        entry, at = _ragged(csc_pos[lo:hi], count[lo:hi])
        shared = np.minimum(v.data[lo:hi][entry], col_val[at])
        i, j = entry_row[lo:hi][entry], col_row[at]
        del entry, at
        if dense_acc:
            width = n - start
            acc = np.bincount((i - start) * width + (j - start), shared,
                              minlength=(stop - start) * width)
            key = np.flatnonzero(acc > max(s_floor, 0.0))
            s = acc[key]
            i, j = key // width + start, key % width + start
        else:
            key, s = _sum_by_key(i * n + j, shared)
            keep = s > max(s_floor, 0.0)
            key, s = key[keep], s[keep]
            i, j = key // n, key % n
        d = np.maximum(1.0 - s / (2.0 - s), 0.0).astype(np.float32)
        if max_distance is not None:
            keep = d <= max_distance
            i, j, d = i[keep], j[keep], d[keep]
        rows_out.append(i.astype(np.int32))
        cols_out.append(j.astype(np.int32))
        vals_out.append(d)
    return _mirror(rows_out, cols_out, vals_out, n)


def shared_mass_blocks(v: sp.csr_matrix, row_stop: int, col_start: int,
                       max_cells: int = 1 << 22):
    """Yield (start, stop, s) for consecutive row blocks of rows < ``row_stop``: s is the
    dense (stop - start, N - col_start) array of s(i, j) = sum_k min(V_ik, V_jk) over the
    columns j >= col_start (the query x gallery block of re-ranking), summed through the
    inverted index by ``np.bincount``; ``max_cells`` bounds a block's size."""
    n = v.shape[0]
    width = n - col_start
    by_col = v.tocsc()
    by_col.sort_indices()
    col_of = np.repeat(np.arange(n), np.diff(by_col.indptr))
    # In each column, the entries of rows >= col_start start after those of the others.
    first = by_col.indptr[:-1] + np.bincount(col_of[by_col.indices < col_start], minlength=n)
    count = by_col.indptr[1:] - first
    del col_of
    step = max(1, max_cells // max(width, 1))
    for start in range(0, row_stop, step):
        stop = min(start + step, row_stop)
        lo, hi = v.indptr[start], v.indptr[stop]
        k = v.indices[lo:hi]
        entry, at = _ragged(first[k], count[k])
        i = np.repeat(np.arange(stop - start), np.diff(v.indptr[start : stop + 1]))[entry]
        shared = np.minimum(v.data[lo:hi][entry], by_col.data[at])
        s = np.bincount(i * width + (by_col.indices[at] - col_start), shared,
                        minlength=(stop - start) * width)
        yield start, stop, s.reshape(stop - start, width)


def _sum_by_key(keys: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct keys (sorted) and the sum of the values of each."""
    order = np.argsort(keys)
    keys, values = keys[order], values[order]
    first = np.flatnonzero(np.concatenate([[True], keys[1:] != keys[:-1]]))
    return keys[first], np.add.reduceat(values, first) if len(first) else values[:0]


def _mirror(rows_out, cols_out, vals_out, n) -> sp.csr_matrix:
    """Symmetric CSR (float32) from the pairs i <= j: each i < j pair also stored as (j, i)."""
    if not rows_out:
        return sp.csr_matrix((n, n), dtype=np.float32)
    i, j, d = (np.concatenate(parts) for parts in (rows_out, cols_out, vals_out))
    off = i != j
    rows = np.concatenate([i, j[off]])
    cols = np.concatenate([j, i[off]])
    data = np.concatenate([d, d[off]])
    del i, j, d, off
    out = sp.coo_matrix((data, (rows, cols)), shape=(n, n)).tocsr()  # no duplicates to sum
    out.sort_indices()
    return out


def _blocks(row_terms: np.ndarray, budget: int, max_rows: int | None = None):
    """Split rows 0..N into consecutive blocks of about ``budget`` terms (at least 1 row,
    at most ``max_rows``)."""
    n = len(row_terms)
    max_rows = n if max_rows is None else max(1, int(max_rows))
    cum = np.concatenate([[0], np.cumsum(row_terms)])
    bounds, start = [], 0
    while start < n:
        stop = int(np.searchsorted(cum, cum[start] + budget, side="right")) - 1
        stop = min(max(stop, start + 1), n, start + max_rows)
        bounds.append((start, stop))
        start = stop
    return bounds


def _ragged(starts: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flatten segments [starts[s], starts[s] + counts[s]): (segment of each item, position).
    Same idea as ``evaluation.rerank._ragged_gather``, in numpy."""
    counts = np.asarray(counts, dtype=np.int64)
    owner = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    seg_begin = np.cumsum(counts) - counts
    offset = np.arange(len(owner), dtype=np.int64) - seg_begin[owner]
    return owner, np.asarray(starts, dtype=np.int64)[owner] + offset


def _sorted_unique(keys: np.ndarray) -> np.ndarray:
    """np.unique for int64 keys by one sort (numpy 2's hash-based unique is slower here)."""
    keys = np.sort(keys)
    if len(keys) < 2:
        return keys
    return keys[np.concatenate([[True], keys[1:] != keys[:-1]])]


def _bool_csr(rows: np.ndarray, cols: np.ndarray, n: int) -> sp.csr_matrix:
    """Sorted, duplicate-free boolean CSR matrix with ones at (rows, cols)."""
    keys = _sorted_unique(rows * n + cols)
    out = sp.csr_matrix(
        (np.ones(len(keys), dtype=bool), (keys // n, keys % n)), shape=(n, n)
    )
    out.has_sorted_indices = True
    return out


def _check_features(features, k1, k2, metric, dense, max_dense, search):
    """Checked float32 features (unit rows for the cosine metric) and their torch device."""
    device = features.device if hasattr(features, "detach") else None
    x = features_2d(features, min_rows=2)
    n = len(x)
    one_of(metric, "metric", METRICS)
    one_of(search, "search", SEARCHES)
    int_in_range(k1, "k1", 1, n, hi_name="N")
    int_in_range(k2, "k2", 1, n, hi_name="N")
    if dense and n > max_dense:
        raise ValueError(
            f"dense=True needs N <= max_dense = {max_dense} (an N x N float32 array), got "
            f"N = {n}; use the sparse result"
        )
    if metric == "cosine":
        x = unit_rows(x, purpose="metric='cosine'")
    return x, device
