"""Credible-sample selection for training on noisy pseudo-labels (survey §3.2, DCML [89]).

DCML (Chen, Lu, Lu, Zhou, "Deep credible metric learning for unsupervised domain adaptation
person re-identification", ECCV 2020) does not train on every pseudo-labelled image: it keeps
the *credible* ones, judged by two measures of how well an image sits in its cluster:

- k-NN similarity (density): the mean cosine similarity between the image and its k nearest
  neighbours among the images with the same pseudo-label. An image of a wrongly merged person
  sits apart from the rest of its cluster, so its nearest same-label neighbours are far.
- prototype similarity (centrality): the cosine similarity between the image and its
  cluster's prototype, the mean of the cluster's (L2-normalised) features.

Both are cosine similarities in [-1, 1]; higher is more credible. :func:`knn_agreement` is a
label-only variant of the k-NN measure, the share of an image's k nearest neighbours in the
whole set that carry its pseudo-label (the form that does not need a cluster to be searched
separately; a "share of same-label neighbours" in [0, 1]).

Outliers (pseudo-label -1, DBSCAN's noise) belong to no cluster: their scores are NaN and
they are never credible. An image alone in its cluster has no same-label neighbour: its k-NN
similarity is NaN (not credible when that criterion is used); its prototype similarity is 1.

Nearest neighbours are found by exact search (faiss, via
``reidlib.pseudo_labels.jaccard.nearest_neighbours``), cluster by cluster for the k-NN
similarity, so memory stays O(N k) even for a giant cluster.
"""

from __future__ import annotations

import numpy as np

from reidlib.checks import features_2d, int_in_range, labels_1d, one_of, real_in_range, unit_rows
from reidlib.pseudo_labels.jaccard import nearest_neighbours
from reidlib.pseudo_labels.labels import OUTLIER

KNN_MEASURES = ("similarity", "agreement")


def knn_similarity(features, labels, k: int = 10) -> np.ndarray:
    """DCML's k-NN similarity (survey §3.2, DCML [89]): for each image, the mean cosine
    similarity to its k nearest *same-label* neighbours (itself excluded).

    Args:
        features: (N, D) float array or tensor (copied to the CPU; rows are L2-normalised).
        labels: (N,) integer pseudo-labels, -1 for outliers.
        k: neighbours per image, >= 1. An image whose cluster has fewer than k + 1 members
            averages over all the others of its cluster.

    Returns:
        (N,) float64 scores in [-1, 1]; NaN for outliers and for singleton clusters.
    """
    x, labels = _check_inputs(features, labels)
    return _knn_similarity(x, labels, _check_k(k, None))


def _knn_similarity(x: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """:func:`knn_similarity` on checked inputs (see :func:`_check_inputs`)."""
    out = np.full(len(x), np.nan)
    for members in _clusters(labels):
        if len(members) < 2:
            continue
        kk = min(k, len(members) - 1)
        sq_dist, _ = nearest_neighbours(x[members], kk + 1, "cosine")
        # column 0 is the image itself; on unit vectors ||a - b||^2 = 2 - 2 cos(a, b)
        out[members] = (1.0 - 0.5 * sq_dist[:, 1:].astype(np.float64)).mean(axis=1)
    return out


def knn_agreement(features, labels, k: int = 10) -> np.ndarray:
    """Share of each image's k nearest neighbours (cosine, whole set, itself excluded) that
    carry its pseudo-label: a label-only form of DCML's k-NN measure (survey §3.2).

    Args as :func:`knn_similarity`, with 1 <= k <= N - 1. Returns (N,) float64 in [0, 1],
    NaN for outliers (an outlier neighbour never agrees).
    """
    x, labels = _check_inputs(features, labels)
    return _knn_agreement(x, labels, _check_k(k, len(x)))


def _knn_agreement(x: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    _, rank = nearest_neighbours(x, k + 1, "cosine")
    same = labels[rank[:, 1:]] == labels[:, None]
    out = same.mean(axis=1)
    out[labels == OUTLIER] = np.nan
    return out


def prototype_similarity(features, labels) -> np.ndarray:
    """DCML's prototype similarity (survey §3.2, DCML [89]): the cosine similarity between
    each image and its cluster's prototype, the mean of the cluster's L2-normalised features.

    Returns (N,) float64 in [-1, 1]; NaN for outliers (-1) and where a prototype is the
    zero vector (features that cancel out, no direction to compare with).
    """
    return _prototype_similarity(*_check_inputs(features, labels))


def _prototype_similarity(x: np.ndarray, labels: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    out = np.full(len(x), np.nan)
    for members in _clusters(labels):
        prototype = x[members].mean(axis=0)
        norm = np.linalg.norm(prototype)
        if norm > 1e-12:
            out[members] = x[members] @ (prototype / norm)
    return out


def credible_mask(features, labels, k: int = 10, knn_threshold: float | None = None,
                  proto_threshold: float | None = None, knn: str = "similarity") -> np.ndarray:
    """DCML's credible samples (survey §3.2, DCML [89]): images whose scores reach both
    thresholds.

    Args:
        features, labels: as :func:`knn_similarity`.
        k: neighbours of the k-NN measure.
        knn_threshold: keep images with k-NN score >= this; None skips the criterion.
        proto_threshold: keep images with :func:`prototype_similarity` >= this; None skips it.
        knn: "similarity" (:func:`knn_similarity`, DCML's density) or "agreement"
            (:func:`knn_agreement`).

    Returns:
        (N,) bool. Outliers are never credible; with both thresholds None, every non-outlier
        is. DCML relaxes the thresholds as training goes on (more, harder images as the
        features improve); that schedule belongs to the training loop.
    """
    one_of(knn, "knn", KNN_MEASURES)
    x, labels = _check_inputs(features, labels)  # once, not again in each score
    keep = labels != OUTLIER
    if knn_threshold is not None:
        if knn == "similarity":
            score = _knn_similarity(x, labels, _check_k(k, None))
        else:
            score = _knn_agreement(x, labels, _check_k(k, len(x)))
        keep &= _at_least(score, knn_threshold, "knn_threshold")
    if proto_threshold is not None:
        keep &= _at_least(_prototype_similarity(x, labels), proto_threshold, "proto_threshold")
    return keep


def _at_least(score: np.ndarray, threshold, name: str) -> np.ndarray:
    threshold = real_in_range(threshold, name, allow_none=True)
    with np.errstate(invalid="ignore"):
        return score >= threshold  # NaN (outlier, singleton) compares False


def _clusters(labels: np.ndarray) -> list[np.ndarray]:
    """Indices of each cluster's members (outliers left out)."""
    order = np.argsort(labels, kind="stable")
    ids, starts = np.unique(labels[order], return_index=True)
    groups = np.split(order, starts[1:])
    return [g for i, g in zip(ids, groups, strict=True) if i != OUTLIER]


def _check_inputs(features, labels) -> tuple[np.ndarray, np.ndarray]:
    """(N, D) float32 L2-normalised rows and (N,) int64 labels (-1 = outlier), on the CPU."""
    x = features_2d(features, dtype=np.float32)
    return unit_rows(x), labels_1d(labels, len(x))


def _check_k(k, n: int | None) -> int:
    if n is None:
        return int_in_range(k, "k", 1)
    return int_in_range(k, "k", 1, n - 1, hi_name="N - 1")
