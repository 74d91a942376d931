"""Neighbour lists and their precision, for comparing distances (survey §3.1).

Chapter 1 asks whether the k-reciprocal Jaccard distance ranks the same person nearer than
the plain cosine distance does. :func:`ranked_by_sparse` turns a sparse distance (absent
pairs at distance 1) into ranked neighbour lists; :func:`precision_at_k` reads the share of
the same person among the first k neighbours, for every k at once, over all neighbours or
only those from other cameras (the ones that link a person's tracklets across the camera
network). :func:`identities_upto` picks whole identities to fit a size budget.
"""

from __future__ import annotations

import numpy as np

from reidlib.checks import int_in_range


def ranked_by_sparse(dist, depth: int) -> np.ndarray:
    """(N, depth) nearest other rows under a sparse distance, nearest first (-1: none).

    Absent entries are at distance 1, beyond every stored one, so sorting the stored
    entries of each row is enough: one lexsort over all of them, no dense matrix. Ties go
    to the lower index.
    """
    depth = int_in_range(depth, "depth", 1)
    coo = dist.tocoo()
    off = coo.row != coo.col
    row, col, value = coo.row[off], coo.col[off], coo.data[off]
    order = np.lexsort((col, value, row))  # by row, then distance, then index
    row, col = row[order], col[order]
    position = np.arange(len(row)) - np.searchsorted(row, np.arange(dist.shape[0]))[row]
    out = np.full((dist.shape[0], depth), -1, dtype=np.int64)
    near = position < depth
    out[row[near], position[near]] = col[near]
    return out


def precision_at_k(ranked: np.ndarray, pids, camids=None, other_camera: bool = False
                   ) -> np.ndarray:
    """(depth,) share of the same identity among each row's first 1, 2, ... neighbours.

    ``ranked``: (N, depth) neighbour rows, nearest first, -1 = none (skipped: the share is
    over the neighbours that exist). With ``other_camera``, only neighbours from another
    camera than the row's count, in their order: entry k - 1 is the precision of the first
    k *other-camera* neighbours (rows with fewer than k of them contribute what they have).
    """
    ranked = np.asarray(ranked)
    pids = np.asarray(pids)
    valid = ranked >= 0
    right = valid & (pids[ranked] == pids[:, None])
    if other_camera:
        if camids is None:
            raise ValueError("other_camera=True needs camids")
        camids = np.asarray(camids)
        keep = valid & (camids[ranked] != camids[:, None])
        # move each row's other-camera neighbours to the front, keeping their order
        order = np.argsort(~keep, axis=1, kind="stable")
        valid = np.take_along_axis(keep, order, axis=1)
        right = np.take_along_axis(right, order, axis=1) & valid
    return np.cumsum(right.sum(0)) / np.maximum(np.cumsum(valid.sum(0)), 1)


def identities_upto(pids, max_points: int, seed: int) -> np.ndarray:
    """Random whole identities (each keeps all its crops), as many as fit in ``max_points``
    (sorted ids)."""
    pids = np.asarray(pids)
    max_points = int_in_range(max_points, "max_points", 1)
    ids = np.random.default_rng(seed).permutation(np.unique(pids))
    sizes = np.array([(pids == i).sum() for i in ids])
    return np.sort(ids[np.cumsum(sizes) <= max_points])
