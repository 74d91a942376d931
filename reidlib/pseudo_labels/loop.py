"""The cluster -> train -> re-cluster loop of clustering-based methods (survey §3.1).

PUL (Fan et al., the survey's [55]) alternates K-means on the current features with
fine-tuning on the cluster ids; SSG / SpCL / Cluster Contrast keep the same outer loop with
DBSCAN on the Jaccard distance. :func:`pseudo_label_rounds` is that loop in chapter 1's
terms, a thin call of the course's one loop (:func:`reidlib.training.fit`) that re-clusters
every ``epochs_per_round`` epochs. One round:

1. extract L2-normalised features of every training image with the current model;
2. ``cluster(features) -> labels`` (-1 = outlier), any of :mod:`reidlib.pseudo_labels`;
3. clusters with fewer than 2 members become outliers, because P x K sampling and the
   batch-hard triplet loss need at least two images per identity (a singleton has no
   positive); this is also what Cluster Contrast does before building its memory;
4. score the labels against the hidden true identities (:func:`label_quality`) and keep a
   :class:`~reidlib.viz.Snapshot` for the embedding explorer;
5. train the model for a few epochs on the non-outlier images with CE + batch-hard triplet,
   the pseudo-labels standing in for identities, with a fresh random classifier (PUL
   re-initialises its classification layer after each clustering). No validation split:
   the true identities are hidden from the method, so they may not pick the epoch either.

One optimiser and one learning-rate schedule (constant ``lr`` here) run through all rounds;
a new classifier brings a new Adam state, as in the reference code bases.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reidlib.data.imageset import ImageSet
from reidlib.pseudo_labels.labels import drop_small_clusters, trainable
from reidlib.pseudo_labels.quality import majority_correct, record_round
from reidlib.training.classification import PseudoLabelClassification
from reidlib.training.loop import fit
from reidlib.viz.explorer import Snapshot

__all__ = ["Round", "cluster_features", "drop_small_clusters", "majority_correct",
           "pseudo_label_rounds", "record_round"]


@dataclass
class Round:
    """What one round of :func:`pseudo_label_rounds` saw (before its training step).

    ``features``: (N, D) float32, the features that were clustered; ``labels``: (N,) int64
    pseudo-labels after clusters of one became -1 (the labels training used); ``quality``:
    :func:`label_quality` of ``labels``; ``train_seconds``: wall time of the round;
    ``snapshot``: the same features and labels for :class:`~reidlib.viz.EmbeddingExplorer`.
    """

    round: int
    features: np.ndarray
    labels: np.ndarray
    quality: dict
    train_seconds: float
    snapshot: Snapshot


def cluster_features(cluster, features: np.ndarray, round_index: int) -> np.ndarray:
    """``cluster(features)``, checked (one integer >= -1 per row), clusters of one -> -1."""
    return trainable(cluster(features), len(features), f"round {round_index}: cluster(features)")


def pseudo_label_rounds(model, train: ImageSet, cluster, *, rounds: int, epochs_per_round: int,
                        p: int, k: int, lr: float, seed: int = 0,
                        progress: bool = True) -> list[Round]:
    """Run ``rounds`` rounds of cluster -> train (survey §3.1; the PUL / Cluster Contrast loop).

    Args:
        model: a ReidModel; trained in place, on its own device.
        train: the unlabelled training set. Its ``pids`` are only used to score the
            pseudo-labels and colour the snapshots, never for training or model selection.
        cluster: ``features (N, D) float32, L2-normalised -> (N,) int labels`` (-1 =
            outlier), e.g. ``lambda f: kmeans_labels(f, 700)`` or DBSCAN on
            ``jaccard_distance(f)``. Clusters of one become outliers (module docstring).
        rounds, epochs_per_round: loop length; each round trains ``epochs_per_round`` epochs.
        p, k, lr: P x K batch shape and Adam's learning rate.
        seed: the seed of batches, augmentations and the classifiers.

    Returns:
        One :class:`Round` per round, with the features and labels *before* that round's
        training; extract features once more to see the final model.
    """
    if rounds < 1 or epochs_per_round < 1:
        raise ValueError(f"rounds and epochs_per_round must be >= 1, got {rounds}, "
                         f"{epochs_per_round}")
    method = PseudoLabelClassification(model, classifier_init="random", seed=seed)
    history = fit(method, train, cluster=cluster, recluster_every=epochs_per_round,
                  epochs=rounds * epochs_per_round, p=p, k=k, lr=lr, schedule="constant",
                  decay="matrices", seed=seed, progress=progress)
    out = []
    for r in range(rounds):
        records = history.records[r * epochs_per_round:(r + 1) * epochs_per_round]
        first = records[0]
        snapshot = first.snapshot  # all rows: its features are the ones clustered
        snapshot.title = f"round {r}\n" + snapshot.title.split("\n", 1)[1]
        out.append(Round(r, snapshot.features, first.labels, first.quality,
                         sum(e.seconds for e in records), snapshot))
    return out
