"""The cluster -> train -> re-cluster loop of clustering-based methods (survey §3.1).

PUL (Fan et al., the survey's [55]) alternates K-means on the current features with
fine-tuning on the cluster ids; SSG / SpCL / Cluster Contrast keep the same outer loop with
DBSCAN on the Jaccard distance. One round here:

1. extract L2-normalised features of every training image with the current model;
2. ``cluster(features) -> labels`` (-1 = outlier), any of :mod:`reidlib.pseudo_labels`;
3. clusters with fewer than 2 members become outliers, because P x K sampling and the
   batch-hard triplet loss need at least two images per identity (a singleton has no
   positive); this is also what Cluster Contrast does before building its memory;
4. score the labels against the hidden true identities (:func:`label_quality`) and keep a
   :class:`~reidlib.viz.Snapshot` for the embedding explorer;
5. train the model for a few epochs on the non-outlier images, the pseudo-labels standing in
   for identities. ``val_fraction=0``: the true identities are hidden from the method, so
   they may not pick the best epoch either; the last epoch's weights are kept.

:func:`~reidlib.training.supervised.train_supervised` gives every round a fresh classifier
(the number of pseudo-identities changes) and a fresh optimiser, as PUL re-initialises its
classification layer after each clustering.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sklearn.metrics.cluster import contingency_matrix
from tqdm.auto import tqdm

from reidlib.data.imageset import ImageSet
from reidlib.pseudo_labels.quality import OUTLIER, label_quality
from reidlib.training.features import extract_features
from reidlib.training.supervised import train_supervised
from reidlib.viz.explorer import Snapshot


@dataclass
class Round:
    """What one round of :func:`pseudo_label_rounds` saw (before its training step).

    ``features``: (N, D) float32, the features that were clustered; ``labels``: (N,) int64
    pseudo-labels after clusters of one became -1 (the labels training used); ``quality``:
    :func:`label_quality` of ``labels``; ``train_seconds``: wall time of the training step;
    ``snapshot``: the same features and labels for :class:`~reidlib.viz.EmbeddingExplorer`.
    """

    round: int
    features: np.ndarray
    labels: np.ndarray
    quality: dict
    train_seconds: float
    snapshot: Snapshot


def drop_small_clusters(labels: np.ndarray, min_size: int = 2) -> np.ndarray:
    """Copy of ``labels`` where clusters with fewer than ``min_size`` members are -1.

    P x K batches need ``k`` images per identity; a one-image cluster has no positive for
    the batch-hard triplet loss, so it is treated as an outlier (survey §3.1).
    """
    labels = np.asarray(labels, dtype=np.int64).copy()
    clusters, sizes = np.unique(labels[labels != OUTLIER], return_counts=True)
    labels[np.isin(labels, clusters[sizes < min_size])] = OUTLIER
    return labels


def majority_correct(labels: np.ndarray, pids: np.ndarray) -> np.ndarray:
    """(N,) bools: the point's true id is its cluster's majority id; outliers are False.

    Ties go to the smallest id, so the share of True among non-outliers equals
    :func:`label_quality`'s ``purity``.
    """
    labels, pids = np.asarray(labels), np.asarray(pids)
    correct = np.zeros(len(labels), dtype=bool)
    keep = labels != OUTLIER
    if not keep.any():
        return correct
    ids = np.unique(pids[keep])
    clusters, column = np.unique(labels[keep], return_inverse=True)
    # rows = sorted ids, columns = sorted clusters; argmax takes the first (smallest) id on ties
    table = contingency_matrix(pids[keep], labels[keep], sparse=True).tocsc()
    majority = ids[np.asarray(table.argmax(axis=0)).ravel()]
    correct[keep] = pids[keep] == majority[column]
    return correct


def pseudo_labelled_set(train: ImageSet, labels: np.ndarray) -> ImageSet:
    """The non-outlier rows of ``train`` with their pseudo-labels in place of the true pids."""
    keep = labels != OUTLIER
    return dataclasses.replace(train.subset(keep), pids=labels[keep])


def cluster_features(cluster: Callable[[np.ndarray], np.ndarray], features: np.ndarray,
                     round_index: int) -> np.ndarray:
    """Call ``cluster`` and check that it returned one integer label >= -1 per feature."""
    labels = np.asarray(cluster(features))
    if labels.shape != (len(features),) or (labels.size and not np.issubdtype(
            labels.dtype, np.integer)):
        raise ValueError(
            f"round {round_index}: cluster(features) must return ({len(features)},) integer "
            f"labels, got {labels.dtype} {labels.shape}"
        )
    if labels.size and labels.min() < OUTLIER:
        raise ValueError(
            f"round {round_index}: labels must be >= 0, or -1 for outliers; got {labels.min()}"
        )
    return drop_small_clusters(labels)


def record_round(round_index: int, features: np.ndarray, labels: np.ndarray,
                 train: ImageSet, name: str | None = None,
                 rows: np.ndarray | None = None) -> tuple[dict, Snapshot]:
    """Quality against the hidden true ids (all rows) and the explorer snapshot of one round.

    ``name`` heads the snapshot's title (default ``"round {round_index}"``); ``rows``
    keeps only those rows in the snapshot (e.g. a few identities for a readable picture),
    while the quality is always that of the whole clustering.
    """
    quality = label_quality(labels, train.pids, train.camids)
    if rows is not None:
        features, labels, train = features[rows], labels[rows], train.subset(rows)
    name = f"round {round_index}" if name is None else name
    snapshot = Snapshot(
        features,
        # two lines, so that the title fits one panel of the explorer
        title=f"{name}\n{quality['n_clusters']} clusters, "
              f"{quality['outlier_share']:.0%} outliers, purity {quality['purity']:.2f}",
        pid=train.pids, camid=train.camids, pseudo_label=labels,
        correct=majority_correct(labels, train.pids),
    )
    return quality, snapshot


def train_on_pseudo_labels(model, train: ImageSet, labels: np.ndarray, round_index: int, *,
                           epochs: int, p: int, k: int, lr: float, seed: int,
                           progress: bool) -> float:
    """Train ``model`` on the non-outliers with pseudo-labels as ids; returns seconds taken."""
    n_clusters = len(np.unique(labels[labels != OUTLIER]))
    if n_clusters < p:
        raise ValueError(
            f"round {round_index}: the clustering left {n_clusters} clusters with >= 2 "
            f"images, but P x K sampling needs p={p}; loosen the clustering or lower p"
        )
    start = time.perf_counter()
    train_supervised(model, pseudo_labelled_set(train, labels), epochs=epochs, p=p, k=k,
                     lr=lr, val_fraction=0, seed=seed, progress=progress)
    return time.perf_counter() - start


def pseudo_label_rounds(model, train: ImageSet, cluster: Callable[[np.ndarray], np.ndarray],
                        *, rounds: int, epochs_per_round: int, p: int, k: int, lr: float,
                        seed: int = 0, progress: bool = True) -> list[Round]:
    """Run ``rounds`` rounds of cluster -> train (survey §3.1; the PUL / Cluster Contrast loop).

    Args:
        model: a ReidModel; trained in place, on its own device.
        train: the unlabelled training set. Its ``pids`` are only used to score the
            pseudo-labels and colour the snapshots, never for training or model selection.
        cluster: ``features (N, D) float32, L2-normalised -> (N,) int labels`` (-1 =
            outlier), e.g. ``lambda f: kmeans_labels(f, 700)`` or DBSCAN on
            ``jaccard_distance(f)``. Clusters of one become outliers (module docstring).
        rounds, epochs_per_round: loop length; each round trains ``epochs_per_round`` epochs.
        p, k, lr: P x K batch shape and learning rate of :func:`train_supervised`.
        seed: training seed of round 0; round r uses ``seed + r`` (fresh augmentations).

    Returns:
        One :class:`Round` per round, with the features and labels *before* that round's
        training; extract features once more to see the final model.
    """
    if rounds < 1 or epochs_per_round < 1:
        raise ValueError(f"rounds and epochs_per_round must be >= 1, got {rounds}, "
                         f"{epochs_per_round}")
    if (train.pids < 0).any():
        raise ValueError(
            f"train has {(train.pids < 0).sum()} junk images (pid < 0) that cannot be scored; "
            "drop them first: train.subset(train.pids >= 0)"
        )
    history = []
    for r in tqdm(range(rounds), desc="rounds", disable=not progress):
        features = extract_features(model, train, progress=progress).numpy()
        labels = cluster_features(cluster, features, r)
        quality, snapshot = record_round(r, features, labels, train)
        seconds = train_on_pseudo_labels(model, train, labels, r, epochs=epochs_per_round,
                                         p=p, k=k, lr=lr, seed=seed + r, progress=progress)
        history.append(Round(r, features, labels, quality, seconds, snapshot))
        if progress:
            tqdm.write(f"{snapshot.title.replace(chr(10), ': ')}; trained in {seconds:.1f} s")
    return history
