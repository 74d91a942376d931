"""DCML (Chen et al., "Deep Credible Metric Learning for Unsupervised Domain Adaptation Person
Re-identification", ECCV 2020; survey §3.2): only credible samples train.

DCML scores each pseudo-labelled image by two credibility measures (its k-NN similarity,
density, and its prototype similarity, centrality; :mod:`~reidlib.feature_learning.selection`)
and trains only on the images that reach both thresholds, relaxing them as the labels grow
more credible. Fixed cosine thresholds depend on how spread out the features are: the
course's generic backbone puts every image within cosine 0.9 of its cluster prototype, so a
threshold of 0.5 drops nothing. :func:`credible_selector` therefore also offers the
thresholds as *shares*: ``drop_share=0.2`` sets each threshold at the 20th percentile of
that measure over the clustered images, whatever the features' spread.
"""

from __future__ import annotations

import numpy as np

from reidlib.checks import real_in_range
from reidlib.feature_learning.selection import credible_mask, knn_similarity, prototype_similarity
from reidlib.pseudo_labels.labels import OUTLIER


class CredibleSelector:
    """DCML's credible-sample selection as the loop's ``select`` (survey §3.2).

    Called with ``(features, labels)``, returns the labels with the non-credible images set
    to -1, so that they neither shape the memory nor enter a batch this epoch. Each call
    appends the share of the clustered images it dropped to ``dropped`` (one per epoch).

    Thresholds: absolute cosine similarities (``knn_threshold``, ``proto_threshold``, see
    :func:`~reidlib.feature_learning.selection.credible_mask`), or ``drop_share``: both
    thresholds at that percentile of their measure over the clustered images (module
    docstring; with ``knn="similarity"``). Give one or the other.
    """

    def __init__(self, k: int = 10, knn_threshold: float | None = None,
                 proto_threshold: float | None = None, knn: str = "similarity",
                 drop_share: float | None = None):
        if drop_share is not None:
            real_in_range(drop_share, "drop_share", 0.0, 1.0)
            if knn_threshold is not None or proto_threshold is not None:
                raise ValueError("give drop_share or the absolute thresholds, not both")
            if knn != "similarity":
                raise ValueError("drop_share ranks DCML's k-NN similarity: use knn='similarity'")
        self.k, self.knn = k, knn
        self.knn_threshold, self.proto_threshold = knn_threshold, proto_threshold
        self.drop_share = drop_share
        self.dropped: list[float] = []

    def __call__(self, features: np.ndarray, labels: np.ndarray) -> np.ndarray:
        labels = np.asarray(labels)
        clustered = labels != OUTLIER
        if self.drop_share is None:
            mask = credible_mask(features, labels, k=self.k, knn_threshold=self.knn_threshold,
                                 proto_threshold=self.proto_threshold, knn=self.knn)
        else:
            mask = clustered.copy()
            for score in (knn_similarity(features, labels, k=self.k),
                          prototype_similarity(features, labels)):
                # NaN (outliers, singletons) is never credible
                threshold = np.nanpercentile(score[clustered], 100 * self.drop_share)
                with np.errstate(invalid="ignore"):
                    mask &= score >= threshold
        self.dropped.append(float((clustered & ~mask).sum() / max(1, clustered.sum())))
        return np.where(mask, labels, OUTLIER)


def credible_selector(k: int = 10, knn_threshold: float | None = None,
                      proto_threshold: float | None = None, knn: str = "similarity",
                      drop_share: float | None = None) -> CredibleSelector:
    """DCML's selection for ``fit(..., select=...)``; see :class:`CredibleSelector`."""
    return CredibleSelector(k, knn_threshold, proto_threshold, knn, drop_share)
