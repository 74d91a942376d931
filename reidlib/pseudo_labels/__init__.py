"""Pseudo-label estimation (course chapter 1, survey §3.1).

- :func:`jaccard_distance`: the k-reciprocal Jaccard distance that SSG / SpCL / Cluster
  Contrast cluster on (Zhong et al. 2017), sparse and O(N k) in memory.
- :func:`dbscan_labels`, :func:`kmeans_labels`: hard pseudo-labels from clustering.
- :func:`buc_labels` (Eq. 2, bottom-up with a diversity term), :func:`hct_labels` (Eq. 3,
  average linkage), :func:`reciprocal_filter` (SMP-style reciprocal-neighbour filtering).
- :func:`label_quality`: how far pseudo-labels are from the hidden true identities.
- :func:`pseudo_label_rounds` / :func:`pseudo_label_loop`: the cluster -> train ->
  re-cluster loop (PUL, Cluster Contrast), with a snapshot per round for the embedding
  explorer (the latter also re-clusters the final model's features).
- ``neighbours``: ranked neighbour lists of a sparse distance and their precision at k;
  ``settings``: chapter 1's clustering and loop settings per profile; ``states``: the four
  states of a pseudo-label.
"""

from reidlib.pseudo_labels.generators import dbscan_labels, jaccard_dbscan, kmeans_labels
from reidlib.pseudo_labels.hierarchical import buc_labels, hct_labels, reciprocal_filter
from reidlib.pseudo_labels.jaccard import jaccard_distance
from reidlib.pseudo_labels.labels import OUTLIER, drop_small_clusters
from reidlib.pseudo_labels.quality import label_quality


def __getattr__(name: str):
    # The loop trains through reidlib.training, which itself imports this package's
    # label helpers: loaded on first use to keep the import graph acyclic.
    if name in ("LoopRun", "Round", "pseudo_label_loop", "pseudo_label_rounds"):
        from reidlib.pseudo_labels import loop

        return getattr(loop, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "OUTLIER",
    "LoopRun",
    "Round",
    "buc_labels",
    "dbscan_labels",
    "drop_small_clusters",
    "hct_labels",
    "jaccard_dbscan",
    "jaccard_distance",
    "kmeans_labels",
    "label_quality",
    "pseudo_label_loop",
    "pseudo_label_rounds",
    "reciprocal_filter",
]
