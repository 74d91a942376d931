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

import dataclasses
import time
from dataclasses import dataclass

import numpy as np

from reidlib.data.imageset import ImageSet
from reidlib.pseudo_labels.labels import contiguous, drop_small_clusters, trainable
from reidlib.pseudo_labels.quality import majority_correct, record_round
from reidlib.training.classification import PseudoLabelClassification
from reidlib.training.features import extract_features
from reidlib.training.loop import History, fit
from reidlib.utils import progress_enabled
from reidlib.viz.explorer import Snapshot

__all__ = ["LoopRun", "Round", "cluster_features", "drop_small_clusters", "majority_correct",
           "pseudo_label_loop", "pseudo_label_rounds", "record_round", "slice_snapshot"]


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
    history = _fit_rounds(model, train, cluster, rounds, epochs_per_round, p, k, lr, seed,
                          progress, rows=None)
    out = []
    for r in range(rounds):
        records = history.records[r * epochs_per_round:(r + 1) * epochs_per_round]
        first = records[0]
        snapshot = first.snapshot  # all rows: its features are the ones clustered
        snapshot.title = f"round {r}\n" + snapshot.title.split("\n", 1)[1]
        out.append(Round(r, snapshot.features, first.labels, first.quality,
                         sum(e.seconds for e in records), snapshot))
    return out


def _fit_rounds(model, train, cluster, rounds, epochs_per_round, p, k, lr, seed, progress,
                rows, val=None, keep_best=False, checkpoint=None) -> History:
    """The loop itself: :func:`~reidlib.training.fit` re-clustering every round (``val``,
    ``keep_best`` and ``checkpoint`` go to fit unchanged)."""
    if rounds < 1 or epochs_per_round < 1:
        raise ValueError(f"rounds and epochs_per_round must be >= 1, got {rounds}, "
                         f"{epochs_per_round}")
    method = PseudoLabelClassification(model, classifier_init="random", seed=seed)
    return fit(method, train, cluster=cluster, recluster_every=epochs_per_round,
               epochs=rounds * epochs_per_round, p=p, k=k, lr=lr, schedule="constant",
               decay="matrices", seed=seed, progress=progress, snapshot_rows=rows,
               val=val, keep_best=keep_best, checkpoint=checkpoint)


@dataclass
class LoopRun:
    """A whole run of :func:`pseudo_label_loop`.

    ``history``: the loop's :class:`~reidlib.training.History` (one record per epoch; the
    first epoch of each round carries its labels, quality and snapshot); ``labels`` /
    ``quality`` / ``snapshot``: the re-clustering of the final model's features (what the
    next round would train on); ``seconds``: wall time, training and final clustering,
    with the epochs trained before a kill when the run was resumed from its checkpoint.
    """

    history: History
    labels: np.ndarray
    quality: dict
    snapshot: Snapshot
    seconds: float

    @property
    def qualities(self) -> list[dict]:
        """Label quality at the start of every round, then after the last round's training."""
        return [r.quality for r in self.history if r.quality is not None] + [self.quality]

    @property
    def snapshots(self) -> list[Snapshot]:
        """Explorer snapshots of every round, then after training (titles say which)."""
        return [r.snapshot for r in self.history if r.snapshot is not None] + [self.snapshot]


def pseudo_label_loop(model, train: ImageSet, cluster, *, rounds: int, epochs_per_round: int,
                      p: int, k: int, lr: float, seed: int = 0, rows=None,
                      progress: bool = True, val=None, keep_best: bool = False,
                      checkpoint=None) -> LoopRun:
    """:func:`pseudo_label_rounds`, then one more clustering of the trained model's features.

    Same arguments; ``rows`` (default: all) are the training-set rows kept in the snapshots
    (a few identities make a readable explorer and a small replay), while every quality is
    that of the whole clustering. Progress bars and per-epoch lines follow
    :func:`reidlib.utils.progress_enabled` (none in a static build). ``val`` (a validation
    query / gallery of held-out *training* identities), ``keep_best`` and ``checkpoint``
    (resumed after a kill) are :func:`~reidlib.training.fit`'s (the command-line recipes,
    ``reidlib.recipes``, use them); the defaults are the chapter's loop.
    """
    start = time.perf_counter()
    history = _fit_rounds(model, train, cluster, rounds, epochs_per_round, p, k, lr, seed,
                          progress_enabled(progress), rows, val=val, keep_best=keep_best,
                          checkpoint=checkpoint)
    # epochs trained before a kill count too: a resumed run is not a faster one
    start -= history.earlier_seconds(time.perf_counter() - start)
    features = extract_features(model, train, flip=False, progress=False).numpy()
    labels = contiguous(cluster_features(cluster, features, rounds))[0]
    quality, snapshot = record_round(rounds, features, labels, train, name="after training",
                                     rows=rows)
    return LoopRun(history, labels, quality, snapshot, time.perf_counter() - start)


def slice_snapshot(snapshot: Snapshot, rows, title: str | None = None) -> Snapshot:
    """The snapshot's points ``rows`` only (every per-point field sliced alike)."""
    rows = np.asarray(rows)
    n = len(snapshot)
    fields = {f.name: getattr(snapshot, f.name) for f in dataclasses.fields(snapshot)}
    sliced = {name: value[rows] if isinstance(value, np.ndarray) and len(value) == n else value
              for name, value in fields.items()}
    if title is not None:
        sliced["title"] = title
    return Snapshot(**sliced)
