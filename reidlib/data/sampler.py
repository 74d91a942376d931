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
