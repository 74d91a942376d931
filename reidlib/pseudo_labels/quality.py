"""How good are pseudo-labels? Scores against the hidden true identities (survey §3.1).

The survey's §3.1 stresses that clustering-based pseudo-labels are noisy ("label noises so
that incorrect labels are predicted to guide model training") and that the number of
identities is unknown. In the course the true identities of the training set are known but
hidden from the method, so we can measure that noise directly:

- ``n_clusters`` / ``n_identities``: does the clustering find the right number of people?
- ``outlier_share``: how much data DBSCAN throws away (label -1).
- ``nmi`` / ``ari``: standard clustering agreement (scikit-learn). Outliers are each given
  their own singleton cluster first: an outlier is then "a cluster of one", which costs
  recall-like terms when its identity has other images but is never a wrong merge. Dropping
  the outliers instead would reward a clustering that discards every hard image.
- ``pairwise_precision`` / ``pairwise_recall`` / ``pairwise_f``: over the pairs of
  *non-outlier* samples. Precision: of the pairs put into one cluster, the share that are the
  same person (wrong merges lower it). Recall: of the same-person pairs, the share put into one
  cluster (split identities lower it). The discarded samples are reported by
  ``outlier_share`` instead of being counted twice.
- ``purity``: share of non-outlier samples whose cluster's majority identity is their own.
- ``single_camera_share``: among clusters of size >= 2, the share whose members all come from
  one camera. Re-ID needs cross-camera matches, and such clusters teach none (§3, the camera
  variance challenge).

Ratios whose denominator is empty (no pair in any cluster, no cluster of size >= 2, no camera
ids given) are NaN, not a made-up 0 or 1.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
from sklearn.metrics.cluster import contingency_matrix

from reidlib.data.imageset import ImageSet
from reidlib.pseudo_labels.labels import OUTLIER
from reidlib.viz.explorer import Snapshot


def label_quality(pred, true, camids=None) -> dict:
    """Score pseudo-labels ``pred`` against true identities ``true`` (survey §3.1).

    Args:
        pred: (N,) integer cluster ids; -1 marks an outlier (DBSCAN's noise label).
        true: (N,) integer identity ids (any integers; drop junk images before calling).
        camids: optional (N,) integer camera ids, for ``single_camera_share``.

    Returns:
        dict with ``n_clusters`` (int, excluding -1), ``n_identities`` (int),
        ``outlier_share``, ``nmi``, ``ari``, ``pairwise_precision``, ``pairwise_recall``,
        ``pairwise_f``, ``purity``, ``single_camera_share`` (floats; NaN when undefined,
        see the module docstring).
    """
    pred, true, camids = _check_labels(pred, true, camids)
    keep = pred != OUTLIER
    precision, recall, f_score = _pairwise_scores(pred[keep], true[keep])
    singled = _outliers_as_singletons(pred)
    return {
        "n_clusters": int(len(np.unique(pred[keep]))),
        "n_identities": int(len(np.unique(true))),
        "outlier_share": float(np.mean(~keep)),
        "nmi": float(normalized_mutual_info_score(true, singled)),
        "ari": float(adjusted_rand_score(true, singled)),
        "pairwise_precision": precision,
        "pairwise_recall": recall,
        "pairwise_f": f_score,
        "purity": _purity(pred[keep], true[keep]),
        "single_camera_share": _single_camera_share(pred, camids),
    }


def _outliers_as_singletons(pred: np.ndarray) -> np.ndarray:
    """Give every -1 a fresh id of its own, so each outlier is a cluster of one."""
    out = pred.copy()
    is_out = out == OUTLIER
    start = (out.max() + 1) if (~is_out).any() else 0
    out[is_out] = start + np.arange(is_out.sum())
    return out


def _pairs(counts) -> float:
    """Number of unordered pairs inside groups of the given sizes: sum n (n - 1) / 2."""
    counts = np.asarray(counts, dtype=np.float64)
    return float((counts * (counts - 1)).sum() / 2.0)


def _pairwise_scores(pred: np.ndarray, true: np.ndarray) -> tuple[float, float, float]:
    """Pair precision / recall / F from the contingency table (no O(N^2) pair loop):
    same-cluster-and-same-id pairs are the pairs inside each table cell."""
    if len(pred) == 0:
        return float("nan"), float("nan"), float("nan")
    table = contingency_matrix(true, pred, sparse=True)
    both = _pairs(table.data)
    same_pred = _pairs(np.asarray(table.sum(axis=0)).ravel())
    same_true = _pairs(np.asarray(table.sum(axis=1)).ravel())
    precision = both / same_pred if same_pred else float("nan")
    recall = both / same_true if same_true else float("nan")
    if np.isnan(precision) or np.isnan(recall):
        f_score = float("nan")
    elif precision + recall == 0:
        f_score = 0.0
    else:
        f_score = 2 * precision * recall / (precision + recall)
    return precision, recall, f_score


def _purity(pred: np.ndarray, true: np.ndarray) -> float:
    """Share of samples that carry their cluster's majority identity."""
    if len(pred) == 0:
        return float("nan")
    table = contingency_matrix(true, pred, sparse=True).tocsc()
    return float(table.max(axis=0).toarray().sum() / len(pred))


def _single_camera_share(pred: np.ndarray, camids) -> float:
    """Share of clusters with >= 2 members whose members all share one camera."""
    if camids is None:
        return float("nan")
    keep = pred != OUTLIER
    clusters, sizes = np.unique(pred[keep], return_counts=True)
    big = clusters[sizes >= 2]
    if len(big) == 0:
        return float("nan")
    sel = keep & np.isin(pred, big)
    # Count distinct (cluster, camera) pairs per cluster: 1 means a single-camera cluster.
    pairs = np.unique(np.stack([pred[sel], camids[sel]]), axis=1)
    _, cams_per_cluster = np.unique(pairs[0], return_counts=True)
    return float(np.mean(cams_per_cluster == 1))


def _check_labels(pred, true, camids):
    arrays = []
    for name, x in (("pred", pred), ("true", true), ("camids", camids)):
        if x is None:
            arrays.append(None)
            continue
        x = np.asarray(x.cpu() if hasattr(x, "cpu") else x)
        if x.ndim != 1:
            raise ValueError(f"{name} must be a 1-D array of integer labels, got shape {x.shape}")
        if x.size and not np.issubdtype(x.dtype, np.integer):
            raise TypeError(f"{name} must hold integers, got dtype {x.dtype}")
        arrays.append(x.astype(np.int64))
    pred, true, camids = arrays
    if len(pred) != len(true) or (camids is not None and len(camids) != len(pred)):
        lengths = [len(pred), len(true)] + ([len(camids)] if camids is not None else [])
        raise ValueError(f"pred, true (and camids) must have the same length, got {lengths}")
    if len(pred) == 0:
        raise ValueError("pred and true are empty: need at least one sample")
    if (pred < OUTLIER).any():
        raise ValueError(f"pred must be cluster ids >= 0 or -1 for outliers, got {pred.min()}")
    return pred, true, camids


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
