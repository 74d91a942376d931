"""Controlled label noise, to study how feature learning copes with it (survey §3.2).

§3.2 opens with the problem that the whole chapter is about: "due to the noisy pseudo-labels,
the feature learning process is biased inevitably". To measure that bias we start from the
true identities of the training set and corrupt them on purpose, in the three ways clustering
gets identities wrong:

- "symmetric": a share ``rate`` of the images gets a wrong identity, drawn uniformly among
  the other identities (the textbook noise model; clustering errors are rarely this random,
  which makes it the easy baseline).
- "merge": a share ``rate`` of the identities is absorbed, each into one other identity, in
  disjoint pairs: two people become one pseudo-identity, as when DBSCAN's eps is too large or
  two people wear the same clothes. Every pair is a merge of exactly two people, so at most
  half of the identities can be absorbed (``rate`` <= 0.5).
- "split": a share ``rate`` of the identities is split in two pseudo-identities, as when
  clustering cannot join the views of one person. Without camera ids an identity's images are
  halved at random; with ``camids`` a random half of the person's cameras goes to the new
  pseudo-identity, the split that camera bias causes (survey §3, camera variance).

Counts are exact: symmetric flips ``round(rate * N)`` images (N: images with a label >= 0),
merge absorbs ``min(round(rate * I), I // 2)`` identities and split splits ``round(rate * I)``
(I: distinct identities), rounding halves up. Negative labels (-1: junk or outliers) are
neither changed nor counted nor used as targets. The same ``seed`` gives the same labels.
"""

from __future__ import annotations

import numpy as np

KINDS = ("symmetric", "merge", "split")


def inject_label_noise(pids, rate: float, kind: str = "symmetric", seed: int = 0,
                       camids=None) -> np.ndarray:
    """Corrupt identity labels in a controlled way (survey §3.2; see the module docstring).

    Args:
        pids: (N,) integer identity labels (array or tensor); negative ones are left as they are.
        rate: share of images ("symmetric") or of identities ("merge", "split") to corrupt,
            in [0, 1]; "merge" needs rate <= 0.5.
        kind: "symmetric" | "merge" | "split".
        seed: seed of the random choices.
        camids: optional (N,) camera ids; only "split" uses them (split by camera).

    Returns:
        (N,) int64 new labels. New pseudo-identities made by "split" are numbered from
        ``max(pids) + 1`` up.
    """
    labels = _as_labels(pids, "pids")
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 <= rate <= 1.0:
        raise ValueError(f"rate must be a number in [0, 1], got {rate!r}")
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if camids is not None:
        camids = _as_labels(camids, "camids")
        if camids.shape != labels.shape:
            raise ValueError(f"camids must have the shape of pids {labels.shape}, got "
                             f"{camids.shape}")
    rng = np.random.default_rng(seed)
    if kind == "symmetric":
        return _symmetric(labels, float(rate), rng)
    if kind == "merge":
        return _merge(labels, float(rate), rng)
    return _split(labels, float(rate), rng, camids)


def _count(rate: float, n: int) -> int:
    """round(rate * n), halves up (Python's round() would send 2.5 to 2 and 3.5 to 4)."""
    return int(np.floor(rate * n + 0.5))


def _symmetric(labels: np.ndarray, rate: float, rng: np.random.Generator) -> np.ndarray:
    valid = np.flatnonzero(labels >= 0)
    ids = np.unique(labels[valid])
    n_flip = _count(rate, len(valid))
    if n_flip and len(ids) < 2:
        raise ValueError("symmetric noise needs at least 2 identities to swap between")
    chosen = rng.choice(valid, size=n_flip, replace=False)
    # Uniform over the *other* identities: draw among I - 1 slots, then skip the own slot.
    own = np.searchsorted(ids, labels[chosen])
    slot = rng.integers(0, len(ids) - 1, size=n_flip) if n_flip else np.zeros(0, np.int64)
    slot += slot >= own
    out = labels.copy()
    out[chosen] = ids[slot]
    return out


def _merge(labels: np.ndarray, rate: float, rng: np.random.Generator) -> np.ndarray:
    if rate > 0.5:
        raise ValueError(f"merge noise joins identities in pairs, so at most half of them can "
                         f"be absorbed: rate must be <= 0.5, got {rate}")
    ids = np.unique(labels[labels >= 0])
    n_absorb = min(_count(rate, len(ids)), len(ids) // 2)
    order = rng.permutation(ids)
    absorbed, into = order[:n_absorb], order[n_absorb : 2 * n_absorb]
    out = labels.copy()
    for a, b in zip(absorbed, into, strict=True):
        out[labels == a] = b
    return out


def _split(labels: np.ndarray, rate: float, rng: np.random.Generator,
           camids: np.ndarray | None) -> np.ndarray:
    groups = _groups(labels)
    n_split = _count(rate, len(groups))
    splittable = [i for i, members in groups.items() if _can_split(members, camids)]
    if n_split > len(splittable):
        need = "2 cameras" if camids is not None else "2 images"
        raise ValueError(f"split rate {rate} asks for {n_split} of {len(groups)} identities, but "
                         f"only {len(splittable)} have at least {need}")
    chosen = np.sort(rng.choice(np.array(splittable, dtype=np.int64), n_split, replace=False))
    out = labels.copy()
    next_id = int(labels.max()) + 1 if len(labels) else 0
    for offset, pid in enumerate(chosen):
        moved = _second_half(groups[int(pid)], camids, rng)
        out[moved] = next_id + offset
    return out


def _groups(labels: np.ndarray) -> dict[int, np.ndarray]:
    """identity -> indices of its images, for labels >= 0."""
    valid = np.flatnonzero(labels >= 0)
    order = valid[np.argsort(labels[valid], kind="stable")]
    ids, starts = np.unique(labels[order], return_index=True)
    return dict(zip(ids.tolist(), np.split(order, starts[1:]), strict=True))


def _can_split(members: np.ndarray, camids: np.ndarray | None) -> bool:
    if camids is None:
        return len(members) >= 2
    return len(np.unique(camids[members])) >= 2


def _second_half(members: np.ndarray, camids: np.ndarray | None,
                 rng: np.random.Generator) -> np.ndarray:
    """The images that go to the new pseudo-identity: a random half of the images, or of
    the cameras (rounded down, never empty) when camera ids are given."""
    if camids is None:
        return rng.permutation(members)[: len(members) // 2]
    cams = rng.permutation(np.unique(camids[members]))
    return members[np.isin(camids[members], cams[: len(cams) // 2])]


def _as_labels(values, name: str) -> np.ndarray:
    values = np.asarray(values.detach().cpu() if hasattr(values, "detach") else values)
    if values.ndim != 1:
        raise ValueError(f"{name} must be a 1-D (N,) array, got shape {values.shape}")
    if not (np.issubdtype(values.dtype, np.integer) or values.size == 0):
        raise TypeError(f"{name} must be integers, got dtype {values.dtype}")
    return values.astype(np.int64)
