"""A dense, loop-by-loop transcription of k-reciprocal encoding (Zhong et al., CVPR 2017,
Eqs. 4-11), shared by the re-ranking and Jaccard-distance tests as their brute-force oracle.
Written for clarity only: sets are Python sets, V is a dense N x N array."""

import functools

import numpy as np


def kreciprocal_weights(d: np.ndarray, k1: int, k2: int) -> np.ndarray:
    """V (N x N): Gaussian weights on each expanded k-reciprocal set, then averaged over the
    k2 nearest neighbours (local query expansion). ``d`` is a dense distance matrix."""
    n = len(d)
    order = np.argsort(d, axis=1, kind="stable")

    @functools.cache
    def reciprocal(i, k):
        return frozenset(j for j in order[i, : k + 1] if i in order[j, : k + 1])

    half = int(np.around(k1 / 2.0))
    v = np.zeros((n, n))
    for i in range(n):
        r = reciprocal(i, k1)
        expanded = set(r)
        for c in r:
            rc = reciprocal(c, half)
            if len(rc & r) > 2.0 / 3.0 * len(rc):
                expanded |= rc
        idx = sorted(expanded)
        w = np.exp(-d[i, idx])
        v[i, idx] = w / w.sum()
    if k2 != 1:
        v = np.stack([v[order[i, :k2]].mean(axis=0) for i in range(n)])
    return v


def dense_kreciprocal_jaccard(d, k1, k2):
    """SpCL's k-reciprocal Jaccard distance written densely from a distance matrix ``d``
    (its k1 counts the image itself; each image first in its own list), loop by loop: the
    oracle of ``tests/test_jaccard_reference.py`` and of the inter-camera Jaccard of IICS."""
    n = len(d)
    forced = d.copy()
    np.fill_diagonal(forced, -np.inf)  # self first, as the library's self_first
    table = np.argsort(forced, axis=1, kind="stable")

    def reciprocal(i, width):
        return [j for j in table[i, :width] if i in table[j, :width]]

    half_width = int(np.around(k1 / 2)) + 1
    v = np.zeros((n, n))
    for i in range(n):
        core = reciprocal(i, k1)
        members = set(core)
        for c in core:
            cand = reciprocal(c, half_width)
            if len(set(cand) & set(core)) > 2 / 3 * len(cand):
                members |= set(cand)
        idx = sorted(members)
        w = np.exp(-(d[i, idx] - d[i, idx].min()))
        v[i, idx] = w / w.sum()
    if k2 != 1:
        v = np.stack([v[table[i, :k2]].mean(axis=0) for i in range(n)])
    out = np.ones((n, n))
    for i in range(n):
        s = np.minimum(v[i][None, :], v).sum(axis=1)
        out[i] = 1.0 - s / (2.0 - s)
    return np.maximum(out, 0.0)
