"""Pseudo-label bookkeeping in one place: the outlier mark, small clusters, relabelling.

Every clustering of survey §3.1 returns one integer per image with ``OUTLIER`` (-1) for the
images it could not place (DBSCAN's noise). Training then needs two more steps, which every
chapter shares: clusters too small to train on become outliers (:func:`drop_small_clusters`),
and the remaining cluster ids become classifier targets 0..C-1 (:func:`contiguous`).
"""

from __future__ import annotations

import numpy as np

from reidlib.checks import labels_1d

OUTLIER = -1


def check_labels(labels, n: int, where: str = "labels") -> np.ndarray:
    """(n,) int64 copy of ``labels`` (>= 0, -1 = outlier), else a ValueError naming ``where``."""
    return labels_1d(labels, n, name=where).copy()


def drop_small_clusters(labels: np.ndarray, min_size: int = 2) -> np.ndarray:
    """Copy of ``labels`` where clusters with fewer than ``min_size`` members are -1.

    A one-image cluster has no positive for the batch-hard triplet loss and no second view
    for a centroid, so it is treated as an outlier (survey §3.1; Cluster Contrast does the
    same before building its memory).
    """
    labels = np.asarray(labels, dtype=np.int64).copy()
    clusters, sizes = np.unique(labels[labels != OUTLIER], return_counts=True)
    labels[np.isin(labels, clusters[sizes < min_size])] = OUTLIER
    return labels


def trainable(labels, n: int, where: str = "labels") -> np.ndarray:
    """Checked labels (:func:`check_labels`) with clusters of one made outliers: what a
    clustering hands to training, whichever loop asked for it."""
    return drop_small_clusters(check_labels(labels, n, where))


def contiguous(labels: np.ndarray) -> tuple[np.ndarray, int]:
    """(targets, C): cluster ids mapped to 0..C-1 in sorted order; -1 stays -1."""
    labels = np.asarray(labels, dtype=np.int64)
    out = np.full(len(labels), OUTLIER, dtype=np.int64)
    keep = labels != OUTLIER
    ids, out[keep] = np.unique(labels[keep], return_inverse=True)
    return out, len(ids)


def outliers_as_classes(labels: np.ndarray) -> np.ndarray:
    """Clusters 0..C-1 (sorted ids), then each outlier its own class C, C+1, ... in row order.

    SpCL's ``generate_pseudo_labels``: an un-clustered image is an instance of its own.
    """
    out, num_clusters = contiguous(labels)
    outliers = out == OUTLIER
    out[outliers] = num_clusters + np.arange(outliers.sum())
    return out


def class_count(labels: np.ndarray) -> int:
    """Number of pseudo-identities (label -1 = outlier, not a class)."""
    labels = np.asarray(labels)
    return len(np.unique(labels[labels != OUTLIER]))
