"""Four states of a pseudo-label, one colour each in every chapter (survey §3.1).

The survey's §3.1 names the two ways clustering goes wrong: different people put into one
cluster, and one person cut into several. ``label_states`` gives each image one of four
states, so that a picture can show where each happens:

- ``"outlier"``: the clustering left the image out (pseudo-label -1, DBSCAN's noise).
- ``"merged"``: the image's cluster is led by another person: the cluster's majority
  identity (the identity with most images in it; ties go to the smallest id) is not the
  image's own. Training pulls it towards a stranger.
- ``"split"`` (a split fragment): the image's cluster is led by its own identity, but that
  identity leads more than one cluster and this is not its home cluster. The home cluster of
  an identity is, among the clusters it leads, the one holding most of its images (ties go
  to the smallest cluster id). Training pushes the fragment away from the rest of its person.
- ``"correct"``: the image sits in its identity's home cluster.

So "correct" or "split" holds exactly where ``quality.majority_correct`` is True, and an
identity that leads a single cluster has no split fragments, even if some of its images are
merged into other people's clusters or left out (those images are "merged" / "outlier").
"""

from __future__ import annotations

import numpy as np

STATES = ("correct", "merged", "split", "outlier")
# One fixed palette: green / vermillion / blue / grey of Okabe & Ito's colour-blind-safe set
STATE_COLOURS = {
    "correct": "#009E73",
    "merged": "#D55E00",
    "split": "#0072B2",
    "outlier": "#BBBBBB",
}
STATE_LABELS = {"correct": "correct", "merged": "merged", "split": "split fragment",
                "outlier": "outlier"}


def label_states(pseudo, pids) -> np.ndarray:
    """(N,) strings among ``STATES`` for pseudo-labels ``pseudo`` and true ids ``pids``.

    Args:
        pseudo: (N,) integer cluster ids, -1 for an outlier.
        pids: (N,) integer true identities (drop junk images first).

    The definitions are in the module docstring.
    """
    pseudo = np.asarray(pseudo.detach().cpu() if hasattr(pseudo, "detach") else pseudo)
    pids = np.asarray(pids.detach().cpu() if hasattr(pids, "detach") else pids)
    if pseudo.ndim != 1 or pseudo.shape != pids.shape:
        raise ValueError(f"pseudo and pids must be (N,) arrays of one length, got shapes "
                         f"{pseudo.shape} and {pids.shape}")
    if not (np.issubdtype(pseudo.dtype, np.integer) and np.issubdtype(pids.dtype, np.integer)):
        raise ValueError(f"pseudo and pids must be integers, got {pseudo.dtype} and {pids.dtype}")
    if (pseudo < -1).any():
        raise ValueError("pseudo-labels must be >= 0, or -1 for an outlier")
    states = np.full(len(pseudo), "outlier", dtype="<U7")
    kept = np.flatnonzero(pseudo >= 0)
    if len(kept) == 0:
        return states
    # one row per (cluster, identity) pair present, with its image count
    pairs, pair_of, counts = np.unique(np.column_stack([pseudo[kept], pids[kept]]), axis=0,
                                       return_inverse=True, return_counts=True)
    pair_of = pair_of.ravel()
    cluster, identity = pairs[:, 0], pairs[:, 1]
    # majority: per cluster, the largest count, then the smallest id
    order = np.lexsort((identity, -counts, cluster))
    lead = order[np.unique(cluster[order], return_index=True)[1]]  # one pair per cluster
    leads = np.zeros(len(pairs), dtype=bool)
    leads[lead] = True
    # home: per identity, among the clusters it leads, the largest count, then the smallest id
    order = np.lexsort((cluster[lead], -counts[lead], identity[lead]))
    home = lead[order[np.unique(identity[lead][order], return_index=True)[1]]]
    is_home = np.zeros(len(pairs), dtype=bool)
    is_home[home] = True
    states[kept] = np.where(~leads[pair_of], "merged",
                            np.where(is_home[pair_of], "correct", "split"))
    return states


def state_shares(states: np.ndarray) -> dict[str, float]:
    """The share of images in each state (keys in ``STATES`` order); NaN for no images."""
    states = np.asarray(states)
    return {s: float(np.mean(states == s)) if len(states) else float("nan") for s in STATES}
