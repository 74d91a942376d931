"""k-reciprocal Jaccard distance for clustering pseudo-labels (survey §3.1).

Clustering methods of §3.1 (SSG [56], SpCL [119], Cluster Contrast) run DBSCAN not on the
plain feature distance but on the Jaccard distance of k-reciprocal neighbour sets (Zhong,
Zheng, Cao, Li, "Re-ranking person re-identification with k-reciprocal encoding", CVPR
2017), the ``compute_jaccard_distance`` of those codebases. Two images of one person share
many reciprocal neighbours, so the distance is more robust to hard negatives than a single
feature distance; SMP [71] uses reciprocal neighbours in the same spirit. On N images:

1. N(i, k): the k nearest neighbours of i (i itself first), by exact search (faiss or torch).
2. R(i, k) = {j in N(i, k) : i in N(j, k)}, the k-reciprocal neighbours (paper Eq. 4).
3. R*(i) = R(i, k1) grown by R(c, k1/2) for each c in R(i, k1) with
   |R(c, k1/2) & R(i, k1)| > 2/3 |R(c, k1/2)| (Eq. 6).
4. V_i: weight exp(-d(i, j)) on j in R*(i), normalised to sum 1 (Eq. 7); d is the squared
   Euclidean distance (2 - 2 cos on L2-normalised features, as in those codebases).
5. Local query expansion: V_i <- mean of V_j over i's k2 nearest neighbours (Eq. 11).
6. d_J(i, j) = 1 - sum_k min(V_ik, V_jk) / sum_k max(V_ik, V_jk) (Eq. 10). Rows of V sum to
   1, so sum max = 2 - sum min.

Differences from the SpCL / Cluster Contrast code, on purpose:

- N(i, k1) holds i and k1 others (the paper and our ``evaluation.rerank``); those codebases
  ask faiss for only k1 neighbours, self included, so their sets are one smaller.
- Everything is sparse: V is a scipy.sparse CSR matrix with O(N k) entries, and sum min is
  computed only for pairs sharing a column of V, through the column (inverted) index, one
  block of rows at a time. The codebases build several dense N x N matrices in Python loops
  (18-23 s a round on Market-1501, tens of GB at MSMT17 scale).

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
):
    """k-reciprocal Jaccard distance between all pairs of rows of ``features`` (Zhong et al.
    2017, Eqs. 4-11; survey §3.1).

    Args:
        features: (N, D) float array or tensor (any device; it is copied to the CPU).
        k1: size of the k-reciprocal neighbourhood, 1 <= k1 < N.
        k2: size of the local query expansion, 1 <= k2 <= N (1 switches it off).
        metric: "cosine" (rows L2-normalised, faiss IndexFlatIP, d = 2 - 2 cos) or
            "euclidean" (faiss IndexFlatL2, d = squared Euclidean distance).
        dense: return a dense (N, N) float32 array (1 where no neighbour is shared) instead
            of the sparse matrix; only allowed for N <= ``max_dense``.
        block_pairs: about how many (row, shared column) terms are held at once; bounds the
            working memory of the last step.
        progress: show a tqdm bar over the blocks of the last step.
        search: exact nearest-neighbour search with "faiss" (IndexFlatIP / IndexFlatL2) or
            "torch" (blocked matmul + topk, on the features' device when given a tensor).
            Both are exact; see benchmarks/bench_jaccard.py for which is faster where.

    Returns:
        scipy.sparse.csr_matrix (N, N) float32, symmetric up to rounding; stored entries =
        pairs sharing a reciprocal neighbour, absent pairs are at distance 1. Or a dense
        array, see ``dense``.
    """
    x, device = _check_features(features, k1, k2, metric, dense, max_dense, search)
    n = len(x)
    sq_dist, rank = nearest_neighbours(x, max(k1 + 1, k2), metric, search, device)
    recip = reciprocal_sets(rank[:, : k1 + 1])
    half = int(np.around(k1 / 2.0))
    recip_half = reciprocal_sets(rank[:, : half + 1])
    expanded = expand_sets(recip, recip_half)
    v = gaussian_weights(x, expanded, rank, sq_dist)
    del sq_dist
    if k2 != 1:
        v = query_expansion(v, rank[:, :k2])
    out = jaccard_from_weights(v, block_pairs=block_pairs, progress=progress)
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
    dist = np.maximum(dist, 0.0)
    own = np.arange(len(x))
    for i in np.flatnonzero(rank[:, 0] != own):  # rare: only with duplicate features
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


def _torch_search(x: np.ndarray, k: int, metric: str, device) -> tuple[np.ndarray, np.ndarray]:
    """Exact k-NN by blocks of rows: one matmul and one topk per block, ~2^25 scores held."""
    import torch

    xt = torch.from_numpy(x).to(device)
    sq_norm = (xt * xt).sum(1)
    step = max(1, (1 << 25) // len(x))
    dists, ranks = [], []
    for start in range(0, len(x), step):
        block = xt[start : start + step]
        # Ranking by ||b||^2 - 2 a.b (one fused addmm) is ranking by ||a - b||^2: the
        # query's own ||a||^2 is added back to the k kept scores only.
        score = torch.addmm(sq_norm[None, :], block, xt.T, alpha=-2.0)
        top = torch.topk(score, k, dim=1, largest=False, sorted=True)
        dists.append((top.values + sq_norm[start : start + step, None]).cpu())
        ranks.append(top.indices.cpu())
    return torch.cat(dists).numpy(), torch.cat(ranks).numpy().astype(np.int64)


def reciprocal_sets(neighbours: np.ndarray) -> sp.csr_matrix:
    """R(i, k) as a boolean CSR matrix: row i marks the j in ``neighbours[i]`` that also
    have i in ``neighbours[j]`` (paper Eq. 4). ``neighbours``: (N, k + 1), self first."""
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
    recip: sp.csr_matrix, recip_half: sp.csr_matrix, block_terms: int = 4_000_000
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
        keys_out.append(np.unique(np.concatenate([row_keys[e0:e1], probe[grow]])))
    keys = np.concatenate(keys_out) if keys_out else np.zeros(0, dtype=np.int64)
    return _bool_csr(keys // n, keys % n, n)


def gaussian_weights(
    x: np.ndarray, sets: sp.csr_matrix, rank: np.ndarray, sq_dist: np.ndarray
) -> sp.csr_matrix:
    """V (paper Eq. 7): weight exp(-d(i, j)) on each j in R*(i), each row normalised to
    sum 1 (a softmax over the set, as the codebases' F.softmax(-dist)).

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
    # Subtracting the row minimum keeps exp() from underflowing on far-apart raw features;
    # it cancels in the normalisation.
    starts = sets.indptr[:-1]
    weight = np.exp(-(dist - np.minimum.reduceat(dist, starts)[rows]))
    weight /= np.add.reduceat(weight, starts)[rows]
    return sp.csr_matrix((weight, sets.indices, sets.indptr), shape=(n, n))


def _pair_sq_dist(x: np.ndarray, rows: np.ndarray, cols: np.ndarray, chunk: int = 8192):
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
    v: sp.csr_matrix, block_pairs: int = 2_000_000, progress: bool = False
) -> sp.csr_matrix:
    """d_J(i, j) = 1 - s / (2 - s), s = sum_k min(V_ik, V_jk) (paper Eq. 10), for the pairs
    that share a column k of V; rows of V must sum to 1.

    The inverted index (V by columns) lists, for each k, the rows j with V_jk > 0; each row i
    meets only those lists, never all N rows. Rows are processed in blocks holding about
    ``block_pairs`` (i, j, k) terms, so the working memory stays bounded."""
    n = v.shape[0]
    by_col = v.tocsc()
    col_count = np.diff(by_col.indptr)
    # Terms contributed by each row: sum over its columns of that column's length.
    entry_terms = col_count[v.indices]
    row_terms = np.add.reduceat(entry_terms, v.indptr[:-1]) if len(entry_terms) else 0
    bounds = _blocks(np.asarray(row_terms, dtype=np.int64), block_pairs)
    parts = []
    for start, stop in tqdm(bounds, desc="Jaccard distance", disable=not progress):
        lo, hi = v.indptr[start], v.indptr[stop]
        owner_row = np.repeat(np.arange(stop - start), np.diff(v.indptr[start : stop + 1]))
        k = v.indices[lo:hi]
        entry, at = _ragged(by_col.indptr[k], col_count[k])
        shared = np.minimum(v.data[lo:hi][entry], by_col.data[at])
        # The COO -> CSR conversion sums the terms that land on one (i, j).
        block = sp.csr_matrix(
            (shared, (owner_row[entry], by_col.indices[at])), shape=(stop - start, n)
        )
        block.sum_duplicates()
        s = block.data
        block.data = np.maximum(1.0 - s / (2.0 - s), 0.0).astype(np.float32)
        parts.append(block)
    if not parts:
        return sp.csr_matrix((n, n), dtype=np.float32)
    return sp.vstack(parts, format="csr", dtype=np.float32)


def _blocks(row_terms: np.ndarray, budget: int) -> list[tuple[int, int]]:
    """Split rows 0..N into consecutive blocks of about ``budget`` terms (at least 1 row)."""
    n = len(row_terms)
    cum = np.concatenate([[0], np.cumsum(row_terms)])
    bounds, start = [], 0
    while start < n:
        stop = int(np.searchsorted(cum, cum[start] + budget, side="right")) - 1
        stop = min(max(stop, start + 1), n)
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


def _bool_csr(rows: np.ndarray, cols: np.ndarray, n: int) -> sp.csr_matrix:
    """Sorted, duplicate-free boolean CSR matrix with ones at (rows, cols)."""
    keys = np.unique(rows * n + cols)
    out = sp.csr_matrix(
        (np.ones(len(keys), dtype=bool), (keys // n, keys % n)), shape=(n, n)
    )
    out.has_sorted_indices = True
    return out


def _check_features(features, k1, k2, metric, dense, max_dense, search):
    device = None
    if hasattr(features, "detach"):
        device = features.device
        features = features.detach().cpu().numpy()
    x = np.asarray(features)
    if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 1:
        raise ValueError(f"features must be a 2-D (N, D) array with N >= 2, got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.number):
        raise TypeError(f"features must be numeric, got dtype {x.dtype}")
    x = np.ascontiguousarray(x, dtype=np.float32)
    if not np.isfinite(x).all():
        raise ValueError("features contain NaN or infinite values")
    n = len(x)
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    if search not in SEARCHES:
        raise ValueError(f"search must be one of {SEARCHES}, got {search!r}")
    if not 1 <= int(k1) < n:
        raise ValueError(f"k1 must satisfy 1 <= k1 < N = {n}, got k1={k1}")
    if not 1 <= int(k2) <= n:
        raise ValueError(f"k2 must satisfy 1 <= k2 <= N = {n}, got k2={k2}")
    if dense and n > max_dense:
        raise ValueError(
            f"dense=True needs N <= max_dense = {max_dense} (an N x N float32 array), got "
            f"N = {n}; use the sparse result"
        )
    if metric == "cosine":
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        if (norms == 0).any():
            raise ValueError("metric='cosine' needs non-zero feature rows (some have norm 0)")
        x = x / norms
    return x, device
