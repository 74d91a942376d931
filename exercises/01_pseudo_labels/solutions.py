"""Reference solutions of exercises/01_pseudo_labels (instructors only, never in the notebook).

Each function replaces the stub of the same name in ``01_pseudo_labels.py``; ``grade.py
--solutions`` and tests/test_exercises_01.py paste them into the notebook and check that every
public and hidden check passes. Keep each function self-contained apart from the imports below:
they are pasted into the notebook one cell at a time, with these imports above them.
"""

import numpy as np


def k_reciprocal_set(dist, i, k):
    """R(i, k) = {j in N(i, k) : i in N(j, k)} (survey §3.1; Zhong et al. 2017, Eq. 4)."""
    dist = np.asarray(dist)

    def neighbours(p):
        # p itself, then its k nearest others; a stable sort puts the lower index first on ties.
        others = np.delete(np.arange(len(dist)), p)
        order = others[np.argsort(dist[p, others], kind="stable")]
        return {p, *order[:k].tolist()}

    mine = neighbours(i)
    return np.array(sorted(j for j in mine if i in neighbours(j)), dtype=np.int64)


def buc_merge_cost(dist, labels, a, b, lam):
    """BUC criterion D(A, B) = min d(x_a, x_b) + lam (|A| + |B|) (survey §3.1, Eq. 2)."""
    dist, labels = np.asarray(dist), np.asarray(labels)
    in_a, in_b = labels == a, labels == b
    return float(dist[np.ix_(in_a, in_b)].min() + lam * (in_a.sum() + in_b.sum()))


def buc_next_merge(dist, labels, lam):
    """The pair (a, b), a < b, of clusters with the smallest Eq. 2 criterion (ties: lowest pair)."""
    dist, labels = np.asarray(dist), np.asarray(labels)
    ids, sizes = np.unique(labels, return_counts=True)  # sorted ids: pairs come in (a, b) order
    member = labels[None, :] == ids[:, None]
    best, pair = np.inf, None
    for s in range(len(ids)):
        for t in range(s + 1, len(ids)):
            cost = dist[np.ix_(member[s], member[t])].min() + lam * (sizes[s] + sizes[t])
            if cost < best:  # strict: the first (lowest) pair wins a tie
                best, pair = cost, (int(ids[s]), int(ids[t]))
    return pair


def purity(pred, true):
    """Share of non-outlier samples that carry their cluster's majority identity (§3.1)."""
    pred, true = np.asarray(pred), np.asarray(true)
    keep = pred != -1  # outliers belong to no cluster: left out of the count and the total
    if not keep.any():
        return float("nan")
    pred, true = pred[keep], true[keep]
    majority = 0
    for cluster in np.unique(pred):
        _, counts = np.unique(true[pred == cluster], return_counts=True)
        majority += counts.max()
    return float(majority / len(pred))


def pairwise_precision_recall(pred, true):
    """Pair precision and recall over the non-outlier samples (NaN for an empty denominator)."""
    pred, true = np.asarray(pred), np.asarray(true)
    keep = pred != -1
    pred, true = pred[keep], true[keep]
    upper = np.triu(np.ones((len(pred), len(pred)), dtype=bool), k=1)  # each pair once
    same_cluster = (pred[:, None] == pred[None, :]) & upper
    same_person = (true[:, None] == true[None, :]) & upper
    both = (same_cluster & same_person).sum()
    precision = both / same_cluster.sum() if same_cluster.any() else float("nan")
    recall = both / same_person.sum() if same_person.any() else float("nan")
    return float(precision), float(recall)


def gaussian_vectors(sq_dist, sets):
    """V (Zhong et al. 2017, Eq. 7): exp(-d(i, j)) on j in R*(i), each row normalised to sum 1."""
    sq_dist, sets = np.asarray(sq_dist, dtype=np.float64), np.asarray(sets, dtype=bool)
    # i is in its own set at distance 0, so every row keeps a weight of 1 before normalising
    # (no 0 / 0 however far apart the other members are).
    weights = np.where(sets, np.exp(-sq_dist), 0.0)
    return weights / weights.sum(axis=1, keepdims=True)


def local_query_expansion(v, neighbours):
    """Local query expansion (Zhong et al. 2017, Eq. 11): V_i <- mean of V_j, j in N(i, k2)."""
    v, neighbours = np.asarray(v, dtype=np.float64), np.asarray(neighbours)
    return v[neighbours].mean(axis=1)


def jaccard_from_vectors(v):
    """d_J(i, j) = 1 - sum_k min(V_ik, V_jk) / sum_k max(V_ik, V_jk) (Zhong et al., Eq. 10)."""
    v = np.asarray(v, dtype=np.float64)
    out = np.empty((len(v), len(v)))
    for i in range(len(v)):  # one row at a time: an (N, N) block, never (N, N, N)
        out[i] = 1.0 - np.minimum(v[i], v).sum(axis=1) / np.maximum(v[i], v).sum(axis=1)
    return out


def knee_eps(dist, min_samples):
    """DBSCAN's eps from the knee of the sorted k-distance curve, k = min_samples - 1."""
    dist = np.asarray(dist, dtype=np.float64)
    n = len(dist)
    others = np.where(np.eye(n, dtype=bool), np.inf, dist)  # an image is not its own neighbour
    k_dist = np.sort(np.sort(others, axis=1)[:, min_samples - 2])
    if k_dist[-1] == k_dist[0]:
        return float(k_dist[0])
    x = np.arange(n) / (n - 1)
    y = (k_dist - k_dist[0]) / (k_dist[-1] - k_dist[0])
    return float(k_dist[np.argmax(x - y)])  # the point farthest below the chord (first on ties)
