"""Hierarchical pseudo-labels: BUC, HCT and SMP-style reciprocal filtering (survey §3.1).

- :func:`buc_labels`: bottom-up clustering (BUC [52], Lin et al., AAAI 2019). Every image starts
  as its own cluster; the pair with the smallest Eq. 2 criterion
  ``D(A, B) = min_{a in A, b in B} d(a, b) + lambda (|A| + |B|)`` is merged, where d is the
  Euclidean distance. The diversity term lambda (|A| + |B|) makes big clusters expensive to grow,
  so small ones are absorbed first and no dominant cluster swallows the data set.
- :func:`hct_labels`: HCT [54] (Zeng et al., CVPR 2020) replaces the minimum by the mean of all
  pairwise distances (Eq. 3, average linkage), which one hard pair cannot dominate.
- :func:`reciprocal_filter`: SMP [71] (Liu, Wang and Lu, ICCV 2017) drops labels that no
  k-reciprocal nearest neighbour confirms.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import pdist, squareform

from reidlib.pseudo_labels.jaccard import nearest_neighbours


def _as_features(features) -> np.ndarray:
    """(N, D) finite float64 array from an array or tensor (copied to the CPU)."""
    if hasattr(features, "detach"):
        features = features.detach().cpu().numpy()
    x = np.asarray(features)
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(f"features must be a 2-D (N, D) array with N, D >= 1, got shape {x.shape}")
    x = x.astype(np.float64)
    if not np.isfinite(x).all():
        raise ValueError("features contain NaN or infinite values")
    return x


def _check_n_clusters(n_clusters, n: int) -> int:
    if not 1 <= int(n_clusters) <= n:
        raise ValueError(f"n_clusters must satisfy 1 <= n_clusters <= N = {n}, got {n_clusters}")
    return int(n_clusters)


def _first_seen_ids(groups: np.ndarray) -> np.ndarray:
    """Relabel arbitrary group ids to 0..C-1 in order of first appearance (int64)."""
    _, first, inverse = np.unique(groups, return_index=True, return_inverse=True)
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    return rank[inverse.ravel()]


def buc_labels(
    features, n_clusters: int, diversity: float = 0.005, merge_fraction: float | None = None,
    max_n: int = 5000,
) -> np.ndarray:
    """BUC bottom-up clustering pseudo-labels with the Eq. 2 criterion (survey §3.1, BUC [52]).

    ``D(A, B) = min_{a in A, b in B} ||a - b|| + diversity * (|A| + |B|)``. BUC's default
    lambda 0.005 assumes L2-normalised features (distances in [0, 2]).

    Args:
        features: (N, D) float array or tensor.
        n_clusters: clusters left at the end, 1 <= n_clusters <= N.
        diversity: lambda >= 0 of Eq. 2; 0 gives plain single linkage.
        merge_fraction: None merges one pair at a time, recomputing cluster sizes after each
            merge (exact greedy agglomeration). A value f in (0, 1] mimics BUC's training
            stages: each stage evaluates D on the clusters (and sizes) at the start of the
            stage, then walks the pairs from the smallest D up and merges ceil(f N) of them
            (fewer in the last stage, so that exactly ``n_clusters`` remain), skipping a pair
            already joined earlier in the same stage (as BUC's code does).
        max_n: refuse N above this. The cluster-level distance matrix is dense N x N float64
            (N = 5000 takes 200 MB).

    Returns:
        (N,) int64 cluster ids 0..n_clusters-1 (numbered by first appearance); no outliers.

    Why by hand: no library agglomerates with a size-dependent criterion; single-linkage
    minima are kept in a cluster-level matrix updated by ``min`` on each merge.
    """
    x = _as_features(features)
    n = len(x)
    if n > int(max_n):
        raise ValueError(
            f"buc_labels keeps a dense N x N distance matrix; N = {n} > max_n = {max_n} "
            "(raise max_n if you have the memory, about 8 N^2 bytes)"
        )
    n_clusters = _check_n_clusters(n_clusters, n)
    if not (np.isfinite(diversity) and diversity >= 0):
        raise ValueError(f"diversity must be a finite lambda >= 0, got {diversity}")
    if merge_fraction is not None and not 0 < merge_fraction <= 1:
        raise ValueError(f"merge_fraction must be None or in (0, 1], got {merge_fraction}")
    dist = squareform(pdist(x)) if n > 1 else np.zeros((1, 1))
    if merge_fraction is None:
        groups = _buc_one_by_one(dist, n_clusters, float(diversity))
    else:
        per_stage = max(1, math.ceil(merge_fraction * n))
        groups = _buc_staged(dist, n_clusters, float(diversity), per_stage)
    return _first_seen_ids(groups)


def _buc_one_by_one(dist: np.ndarray, n_clusters: int, lam: float) -> np.ndarray:
    """Greedy agglomeration, one merge at a time. Cluster ids are the index of a member; each
    row caches its best partner, so a merge costs O(C) plus a full rescan only of the rows
    whose cached partner took part in it (the only rows whose minimum can have gone up)."""
    n = len(dist)
    m = dist.copy()  # m[a, b]: min distance between clusters a and b; inf = inactive / self
    np.fill_diagonal(m, np.inf)
    size = np.ones(n)
    owner = np.arange(n)  # owner[i]: cluster of sample i

    def scan(rows):
        crit = m[rows] + lam * (size[rows, None] + size[None, :])
        return crit.argmin(axis=1), crit.min(axis=1)

    best_col, best_val = scan(np.arange(n))
    best_val[~np.isfinite(best_val)] = np.inf
    for _ in range(n - n_clusters):
        a = int(np.argmin(best_val))
        b = int(best_col[a])
        a, b = min(a, b), max(a, b)
        m[a] = np.minimum(m[a], m[b])  # single linkage: min over the union
        m[:, a] = m[a]
        m[a, a] = np.inf
        m[b] = np.inf
        m[:, b] = np.inf
        size[a] += size[b]
        owner[owner == b] = a
        best_val[b] = np.inf
        # rows whose cached partner was a or b may have lost their minimum: rescan them
        stale = np.flatnonzero((best_col == a) | (best_col == b))
        stale = np.union1d(stale[np.isfinite(best_val[stale])], [a])
        # every other active row only sees column a change: compare with its cache
        crit_a = m[:, a] + lam * (size + size[a])
        better = crit_a < best_val
        best_col[better] = a
        best_val[better] = crit_a[better]
        if len(stale):
            best_col[stale], best_val[stale] = scan(stale)
    return owner


def _buc_staged(dist: np.ndarray, n_clusters: int, lam: float, per_stage: int) -> np.ndarray:
    """BUC training-stage merging: ``per_stage`` merges per stage on stage-start criteria."""
    owner = np.arange(len(dist))  # sample -> cluster index into the current m
    m = dist.copy()
    size = np.ones(len(dist))
    while len(m) > n_clusters:
        c = len(m)
        todo = min(per_stage, c - n_clusters)
        iu, ju = np.triu_indices(c, k=1)
        crit = m[iu, ju] + lam * (size[iu] + size[ju])
        parent = np.arange(c)  # union-find over this stage's merges
        done, window = 0, 0
        while done < todo:
            # sort only as many candidate pairs as needed; widen if too many were skipped
            # (all pairs up to a threshold, so each window is a prefix of the full order)
            want = min(len(crit), max(4 * todo, 2 * window))
            cut = np.partition(crit, want - 1)[want - 1]
            part = np.flatnonzero(crit <= cut)
            part = part[np.lexsort((part, crit[part]))]  # ties: lower pair index first
            order, start, window = part, window, len(part)
            for p in order[start:]:
                ra, rb = _root(parent, iu[p]), _root(parent, ju[p])
                if ra != rb:
                    parent[max(ra, rb)] = min(ra, rb)
                    done += 1
                    if done == todo:
                        break
        roots = np.array([_root(parent, i) for i in range(c)])
        _, group = np.unique(roots, return_inverse=True)
        group = group.ravel()
        g = group.max() + 1
        # single linkage of the merged clusters: min over members, rows then columns
        by_group = np.argsort(group, kind="stable")
        starts = np.searchsorted(group[by_group], np.arange(g))
        m = np.minimum.reduceat(m[by_group], starts, axis=0)
        m = np.minimum.reduceat(m[:, by_group], starts, axis=1)
        np.fill_diagonal(m, 0.0)
        size = np.bincount(group, weights=size, minlength=g)
        owner = group[owner]
    return owner


def _root(parent: np.ndarray, i: int) -> int:
    """Union-find root of i, halving the path on the way."""
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return int(i)


def hct_labels(features, n_clusters: int) -> np.ndarray:
    """HCT pseudo-labels: average-linkage hierarchical clustering (survey §3.1, Eq. 3, HCT [54]).

    The distance between clusters is the mean of all pairwise Euclidean distances between
    their members; scipy's ``linkage(method="average")`` builds the tree and ``fcluster`` cuts
    it. With tied merge heights ``fcluster`` can return fewer than ``n_clusters`` clusters.

    Args:
        features: (N, D) float array or tensor.
        n_clusters: 1 <= n_clusters <= N.

    Returns:
        (N,) int64 cluster ids 0..C-1 (numbered by first appearance); no outliers.
    """
    x = _as_features(features)
    n_clusters = _check_n_clusters(n_clusters, len(x))
    if len(x) == 1:
        return np.zeros(1, dtype=np.int64)
    tree = linkage(x, method="average", metric="euclidean")
    return _first_seen_ids(fcluster(tree, t=n_clusters, criterion="maxclust"))


def reciprocal_filter(features, labels, k: int) -> np.ndarray:
    """SMP-style reciprocal-neighbour label filtering (survey §3.1, SMP [71]).

    Sample i keeps its label only if some k-reciprocal nearest neighbour j (j among i's k
    nearest neighbours and i among j's, self excluded, Euclidean) has the same label;
    otherwise it becomes -1. Samples already labelled -1 stay -1 and confirm nobody.

    Args:
        features: (N, D) float array or tensor.
        labels: (N,) integer labels, -1 for outliers.
        k: neighbours per sample, 1 <= k <= N - 1. Exact search with faiss.

    Returns:
        (N,) int64 filtered labels (a copy; ids are not renumbered).
    """
    x = _as_features(features)
    n = len(x)
    labels = np.asarray(labels.detach().cpu() if hasattr(labels, "detach") else labels)
    if labels.shape != (n,):
        raise ValueError(f"labels must have shape (N,) = ({n},), got {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integers, got dtype {labels.dtype}")
    if not 1 <= int(k) <= n - 1:
        raise ValueError(f"k must satisfy 1 <= k <= N - 1 = {n - 1}, got k={k}")
    k = int(k)
    # the k nearest *other* rows: nearest_neighbours puts each row itself in column 0
    _, nn = nearest_neighbours(np.ascontiguousarray(x, dtype=np.float32), k + 1, "euclidean")
    nn = nn[:, 1:]
    rows = np.repeat(np.arange(n), k)
    knn = sp.csr_matrix((np.ones(n * k, dtype=bool), (rows, nn.ravel())), shape=(n, n))
    mutual = knn.multiply(knn.T).tocoo()  # j in kNN(i) and i in kNN(j)
    agree = (labels[mutual.row] == labels[mutual.col]) & (labels[mutual.row] >= 0)
    confirmed = np.zeros(n, dtype=bool)
    confirmed[mutual.row[agree]] = True
    out = labels.astype(np.int64)
    out[~confirmed] = -1
    return out
