"""P x K identity sampling (Hermans et al., "In defense of the triplet loss").

Batch-hard triplet mining (survey Eq. 5) needs positives in every batch: each batch
holds P identities with K images each. Chapters 1-2 feed pseudo-labels here; label -1
(a clustering outlier, or a junk image) is never sampled.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np


def one_random_per_group(keys, rng: np.random.Generator) -> np.ndarray:
    """Positions of one randomly drawn element for each distinct value of ``keys``.

    The Market-1501 query rule (survey §4.1): one random image per (identity, camera)
    becomes a query; the synthetic world and the validation split both use it.
    """
    order = rng.permutation(len(keys))
    _, first = np.unique(np.asarray(keys)[order], return_index=True)
    return order[first]


class RandomIdentitySampler:
    """Batches of ``p`` distinct identities x ``k`` images, an epoch covering every image.

    Each identity's images are shuffled and cut into chunks of ``k`` (the last chunk, and
    identities with fewer than ``k`` images, are topped up by drawing that identity's own
    images again, with replacement). A batch takes one chunk from each of ``p`` identities,
    drawn without replacement with probability proportional to their remaining chunks, so
    identities run out together and few batches need filling at the end; when fewer
    than ``p`` identities have chunks left, the batch is completed with random chunks of
    other identities. So every image appears at least once per epoch and an epoch is about
    ``len(pids) / (p * k)`` batches. The batches of an epoch depend only on
    ``(seed, epoch)``, so a resumed run sees the same batches as an uninterrupted one.
    """

    def __init__(self, pids, p: int, k: int, seed: int = 0):
        pids = np.asarray(pids)
        if pids.ndim != 1:
            raise ValueError(f"pids must be a 1-D array of labels, got shape {pids.shape}")
        if p < 1 or k < 1:
            raise ValueError(f"p and k must be >= 1, got p={p}, k={k}")
        valid = np.flatnonzero(pids >= 0)
        ids, inverse = np.unique(pids[valid], return_inverse=True)
        if len(ids) < p:
            raise ValueError(
                f"P x K sampling needs at least p={p} identities with label >= 0, found {len(ids)}"
            )
        self.p, self.k, self.seed, self.epoch = p, k, seed, 0
        self.index_of = [valid[inverse == i] for i in range(len(ids))]
        self._cache: tuple[int, list[np.ndarray]] | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _chunks(self, rng: np.random.Generator) -> list[list[np.ndarray]]:
        chunks = []
        for idx in self.index_of:
            idx = rng.permutation(idx)
            short = -len(idx) % self.k
            idx = np.concatenate([idx, rng.choice(idx, short, replace=True)])
            chunks.append(list(idx.reshape(-1, self.k)))
        return chunks

    def _random_chunk(self, rng: np.random.Generator, identity: int) -> np.ndarray:
        idx = self.index_of[identity]
        return rng.choice(idx, self.k, replace=len(idx) < self.k)

    def batches(self, epoch: int | None = None) -> list[np.ndarray]:
        """All batches of ``epoch`` (default: the current one), each an int64 index array."""
        epoch = self.epoch if epoch is None else epoch
        if self._cache is not None and self._cache[0] == epoch:
            return self._cache[1]
        rng = np.random.default_rng([self.seed, epoch])
        chunks = self._chunks(rng)
        left = np.array([len(c) for c in chunks], dtype=float)
        out = []
        while left.sum() > 0:
            n = min(self.p, int((left > 0).sum()))
            chosen = rng.choice(len(chunks), n, replace=False, p=left / left.sum())
            fill = rng.choice(np.flatnonzero(~np.isin(np.arange(len(chunks)), chosen)),
                              self.p - n, replace=False)
            parts = [chunks[i].pop() for i in chosen]
            parts += [self._random_chunk(rng, i) for i in fill]
            left[chosen] -= 1
            out.append(np.concatenate(parts).astype(np.int64))
        self._cache = (epoch, out)
        return out

    def __iter__(self) -> Iterator[np.ndarray]:
        return iter(self.batches())

    def __len__(self) -> int:
        return len(self.batches())


def multi_gallery_pass(labels, camids, k: int, rng: np.random.Generator,
                       other_cameras: bool = True) -> np.ndarray:
    """One pass of the reference samplers of SpCL, MMT and Cluster Contrast, as row indices.

    Their ``RandomMultipleGallerySampler``: every label >= 0 once, in random order; for
    each, one random image (the anchor), then ``k - 1`` more of that label drawn from the
    images of *other cameras* than the anchor's when there are any (without replacement
    when at least ``k`` such images exist, else with replacement), otherwise from its
    other images; a label with a single image contributes the anchor alone (SpCL's
    outliers enter a pass once each). ``other_cameras=False`` is their camera-free
    variant (``...NoCam``): the ``k - 1`` are drawn from all other images of the label.

    The camera preference quietly uses camera labels, which "camera-free" recipes report
    as unsupervised; the flag makes that use explicit (chapter 3 teaches it).
    """
    labels, camids = np.asarray(labels), np.asarray(camids)
    valid = np.flatnonzero(labels >= 0)
    ids, inverse = np.unique(labels[valid], return_inverse=True)
    members = np.split(valid[np.argsort(inverse, kind="stable")],
                       np.cumsum(np.bincount(inverse, minlength=len(ids)))[:-1])
    out = []
    for c in rng.permutation(len(ids)):
        rows = members[c]
        anchor = rng.choice(rows)
        out.append(anchor)
        pool = rows[camids[rows] != camids[anchor]] if other_cameras else rows[:0]
        if len(pool) == 0:
            pool = rows[rows != anchor]
        if len(pool):
            out.extend(rng.choice(pool, k - 1, replace=len(pool) < k))
    return np.asarray(out, dtype=np.int64)


def iteration_batches(labels, camids, batch_size: int, k: int, iters: int | None, seed: int,
                      epoch: int, other_cameras: bool = True) -> list[np.ndarray]:
    """``iters`` batches of ``batch_size`` rows, cut from consecutive sampler passes.

    The reference training scripts (SpCL, MMT, Cluster Contrast) run a fixed number of
    iterations per epoch (``--iters``): a DataLoader with ``drop_last`` cuts each pass of
    :func:`multi_gallery_pass` into batches, and a new pass starts when one runs out. A
    batch is therefore about ``batch_size / k`` labels of ``k`` images, plus single images
    of one-image labels. ``iters=None``: the batches of one pass. Depends only on
    ``(seed, epoch)``: a resumed run repeats it.
    """
    if batch_size < 1 or k < 1 or (iters is not None and iters < 1):
        raise ValueError(f"batch_size, k and iters must be >= 1, got {batch_size}, {k}, {iters}")
    rng = np.random.default_rng([seed, epoch])
    batches: list[np.ndarray] = []
    while not batches or (iters is not None and len(batches) < iters):
        stream = multi_gallery_pass(labels, camids, k, rng, other_cameras)
        full = len(stream) // batch_size
        if full == 0:
            raise ValueError(f"one sampler pass holds {len(stream)} images, fewer than "
                             f"batch_size={batch_size}: lower the batch size")
        batches.extend(stream[:full * batch_size].reshape(full, batch_size))
    return batches if iters is None else batches[:iters]


def shuffled_batches(n: int, batch_size: int, seed: int, epoch: int,
                     iters: int | None = None) -> list[np.ndarray]:
    """Plain random batches over ``n`` rows (instance-level methods, ECN), a fresh
    permutation per pass; one full pass (the tail dropped) unless ``iters`` is given."""
    if n < 1 or batch_size < 1:
        raise ValueError(f"need n >= 1 rows and batch_size >= 1, got {n}, {batch_size}")
    size = min(batch_size, n)
    rng = np.random.default_rng([seed, epoch])
    batches: list[np.ndarray] = []
    while not batches or (iters is not None and len(batches) < iters):
        order = rng.permutation(n)
        batches.extend(order[:n // size * size].reshape(-1, size))
    return batches if iters is None else batches[:iters]
