"""DCML (Chen et al., "Deep Credible Metric Learning for Unsupervised Domain Adaptation Person
Re-identification", ECCV 2020; survey §3.2): only credible samples train."""

from __future__ import annotations

import numpy as np

from reidlib.feature_learning.selection import credible_mask
from reidlib.pseudo_labels.labels import OUTLIER


def credible_selector(k: int = 10, knn_threshold: float | None = None,
                      proto_threshold: float | None = None, knn: str = "similarity"):
    """DCML's credible-sample selection as the loop's ``select`` (survey §3.2).

    Returns ``(features, labels) -> labels`` where samples below either threshold (see
    :func:`reidlib.feature_learning.selection.credible_mask`) become -1, so they neither
    shape the memory nor enter a batch this epoch.
    """
    def select(features: np.ndarray, labels: np.ndarray) -> np.ndarray:
        mask = credible_mask(features, labels, k=k, knn_threshold=knn_threshold,
                             proto_threshold=proto_threshold, knn=knn)
        return np.where(mask, labels, OUTLIER)

    return select
