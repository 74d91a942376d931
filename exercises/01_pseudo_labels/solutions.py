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
