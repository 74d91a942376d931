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
