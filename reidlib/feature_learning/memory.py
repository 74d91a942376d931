"""Memory banks for contrastive feature learning (survey §3.2-3.3, the look-up table of Eq. 6-7).

A memory keeps one L2-normalised vector per *target*: per training image (ECN's exemplar
memory), per pseudo-identity (Cluster Contrast), or per cluster and per un-clustered image
(SpCL's hybrid memory). The loss is the softmax over the targets of survey Eq. 6,

    p(j | x) = exp(m_j . x / tau) / sum_k exp(m_k . x / tau),  loss = -log p(target | x)  (Eq. 7)

with x the L2-normalised embedding and tau = 1 / s the temperature. The targets are not
trained by backpropagation: after each step they move towards the batch's embeddings,

    m <- momentum * m + (1 - momentum) * x,   m <- m / |m|.

Why a memory and not a classifier? Its targets are the features themselves, so they stay in
the embedding space the retrieval uses, they exist as soon as the pseudo-labels do (no
classifier to re-initialise each round), and every target enters every step's softmax,
not only those of the identities sampled into the batch.

All three memories share one API so that a training loop can swap them::

    memory = ClusterMemory(features, labels)       # features: (N, D) of the training set
    loss = memory(out.embeddings, indices)          # indices: the batch's training-set rows
    loss.backward(); optimizer.step()
    memory.update(out.embeddings, indices)          # after the step, without gradients

The reference code bases (ECN, SpCL, Cluster Contrast) update the memory inside autograd's
backward, one sample after the other. ``update`` is an explicit call that gives the same
result: a row that occurs several times in one batch is updated in batch order.
Buffers are registered, so ``memory.to(device)`` moves them; nothing calls ``.cuda()``.
Similarities are computed in float32 even under autocast: with tau = 0.05 the logits
reach 20, where bf16 keeps less than one decimal.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from reidlib.checks import labels_1d
from reidlib.pseudo_labels.labels import OUTLIER, contiguous

__all__ = ["ClusterMemory", "HybridMemory", "InstanceMemory"]


# --- shared helpers ---------------------------------------------------------------------------

def _check_features(features: torch.Tensor) -> torch.Tensor:
    """The (N, D) training-set features as an L2-normalised float32 copy."""
    if not isinstance(features, torch.Tensor) or features.ndim != 2 or len(features) == 0:
        shape = tuple(features.shape) if isinstance(features, torch.Tensor) else type(features)
        raise ValueError(f"features must be a non-empty (N, D) tensor (one row per training "
                         f"image), got {shape}")
    if not features.is_floating_point():
        raise ValueError(f"features must be floating point, got {features.dtype}")
    return F.normalize(features.detach().float(), dim=1).clone()


def _mapped_labels(labels, num_rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Checked (N,) pseudo-labels (-1 = outlier, ids need not be contiguous) as CPU int64
    classes 0..C-1 in sorted id order (-1 stays -1), and the original id of each class.
    Relabelling is bookkeeping, done once per clustering on the CPU."""
    labels = labels_1d(labels, num_rows, name="labels (one pseudo-label per feature row)")
    mapped, _ = contiguous(labels)
    return torch.from_numpy(mapped), torch.from_numpy(np.unique(labels[labels != OUTLIER]))


def _check_hyper(momentum: float, temperature: float) -> None:
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f"momentum must lie in [0, 1] (the weight kept by the old slot), "
                         f"got {momentum}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")


def _class_means(features: torch.Tensor, classes: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(C, D) mean of the rows of ``features`` in each class (every class must be non-empty)."""
    sums = features.new_zeros(num_classes, features.shape[1]).index_add_(0, classes, features)
    # Counted with index_add_, not bincount: CUDA's bincount reads the max label back to the
    # host, and SpCL's targets are rebuilt at every step.
    ones = torch.ones_like(classes, dtype=features.dtype)
    counts = features.new_zeros(num_classes).index_add_(0, classes, ones).clamp(min=1)
    return sums / counts[:, None]


def _occurrence(rows: torch.Tensor) -> torch.Tensor:
    """For each batch position, how many earlier positions hold the same row (0, 1, 2, ...)."""
    order = torch.sort(rows, stable=True).indices
    sorted_rows = rows[order]
    pos = torch.arange(len(rows), device=rows.device)
    starts = torch.ones_like(rows, dtype=torch.bool)
    starts[1:] = sorted_rows[1:] != sorted_rows[:-1]
    group_start = torch.cummax(torch.where(starts, pos, torch.zeros_like(pos)), dim=0).values
    rank = torch.empty_like(pos)
    rank[order] = pos - group_start
    return rank


@torch.no_grad()
def momentum_update(bank: torch.Tensor, rows: torch.Tensor, x: torch.Tensor,
                    momentum: float) -> None:
    """In place: bank[r] <- normalise(momentum * bank[r] + (1 - momentum) * x) for each (r, x).

    Equal to a Python loop over the batch in order (what the reference code bases run in
    backward). Rows that repeat are handled in rounds: round t updates the t-th occurrence
    of every row at once, so there are as many vectorised rounds as the largest
    multiplicity (K under P x K sampling for a cluster memory, 1 for an instance memory).
    The batch positions are sorted by round once, so each round is a slice: one host sync
    (the round boundaries) per call, not a boolean mask (a sync on CUDA) per round.
    """
    if len(rows) == 0:
        return
    rank = _occurrence(rows)
    order = torch.sort(rank, stable=True).indices  # round by round, batch order within
    sizes = torch.zeros_like(rank).index_add_(0, rank, torch.ones_like(rank))
    start = 0
    for end in sizes.cumsum(0).tolist():
        if end == start:  # past the last round
            break
        sel = order[start:end]
        r = rows[sel]
        bank[r] = F.normalize(momentum * bank[r] + (1.0 - momentum) * x[sel], dim=1)
        start = end


class _Memory(nn.Module):
    """What the three memories share: input checks, float32 similarities, the update."""

    def __init__(self, features: torch.Tensor, momentum: float, temperature: float):
        super().__init__()
        _check_hyper(momentum, temperature)
        self.momentum = float(momentum)
        self.temperature = float(temperature)
        self.register_buffer("features", _check_features(features))

    @classmethod
    def from_state(cls, state: dict, **settings):
        """A memory rebuilt from ``memory.state_dict()`` and its settings (``momentum``,
        ``temperature`` and the class's own, e.g. ``k``, ``hard``): resuming a run."""
        memory = cls.__new__(cls)
        nn.Module.__init__(memory)
        _check_hyper(settings["momentum"], settings["temperature"])
        for name, value in settings.items():
            setattr(memory, name, value)
        for name, value in state.items():
            memory.register_buffer(name, value.clone())
        memory._restored()
        return memory

    def settings(self) -> dict:
        """The constructor settings that :meth:`from_state` needs besides the buffers."""
        return {"momentum": self.momentum, "temperature": self.temperature}

    def _restored(self) -> None:
        """Derived Python-side state after :meth:`from_state` (none by default)."""

    @property
    def num_rows(self) -> int:
        """N, the number of training images the memory indexes."""
        return len(self.labels)

    @property
    def dim(self) -> int:
        return self.features.shape[1]

    def _check_batch(self, embeddings: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        """Checks a batch; returns ``indices`` as int64. Rows labelled -1 have no target
        (ClusterMemory's outliers; the other memories give every row a class >= 0)."""
        if embeddings.ndim != 2 or embeddings.shape[1] != self.dim or len(embeddings) == 0:
            raise ValueError(f"embeddings must be (B, {self.dim}) with B >= 1, "
                             f"got {tuple(embeddings.shape)}")
        if not isinstance(indices, torch.Tensor) or indices.ndim != 1 \
                or len(indices) != len(embeddings):
            got = tuple(indices.shape) if isinstance(indices, torch.Tensor) else type(indices)
            raise ValueError(f"indices must be a 1-D tensor of training-set rows, one per "
                             f"embedding ({len(embeddings)}), got {got}")
        if indices.is_floating_point() or indices.dtype == torch.bool:
            raise ValueError(f"indices must be integer row numbers, got {indices.dtype}")
        if embeddings.device != self.features.device or indices.device != self.features.device:
            raise ValueError(f"embeddings ({embeddings.device}) and indices ({indices.device}) "
                             f"must be on the memory's device ({self.features.device}): "
                             "move the memory with memory.to(device)")
        # One host sync per call (range and outlier count read together), also on CUDA:
        # there a bad row would instead stop the CUDA context with a device-side assert,
        # which a notebook cannot recover from. The clamp keeps the label look-up in range
        # before the range is known.
        indices = indices.long()
        outlier = self.labels[indices.clamp(0, self.num_rows - 1)] < 0
        lo, hi, outliers = torch.stack([indices.min(), indices.max(), outlier.sum()]).tolist()
        if lo < 0 or hi >= self.num_rows:
            raise ValueError(f"indices must be training-set rows in [0, {self.num_rows}), "
                             f"got [{lo}, {hi}]")
        if outliers:
            raise ValueError(f"{type(self).__name__} got outlier rows (label -1) in the batch, "
                             f"e.g. {indices[outlier][:5].tolist()}: sample only clustered "
                             "images")
        return indices

    def _logits(self, x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """(B, T) cosine similarities / tau; x already normalised, float32."""
        return x @ targets.T / self.temperature

    def _normalized(self, embeddings: torch.Tensor) -> torch.Tensor:
        return F.normalize(embeddings.float(), dim=1)

    def forward(self, embeddings: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        """The memory loss of a batch: ``embeddings`` (B, D) of training rows ``indices`` (B,)."""
        indices = self._check_batch(embeddings, indices)
        with torch.autocast(device_type=embeddings.device.type, enabled=False):
            return self._loss(self._normalized(embeddings), indices)

    @torch.no_grad()
    def update(self, embeddings: torch.Tensor, indices: torch.Tensor) -> None:
        """Move the batch's targets towards its (detached, L2-normalised) embeddings."""
        indices = self._check_batch(embeddings, indices)
        with torch.autocast(device_type=embeddings.device.type, enabled=False):
            self._update(self._normalized(embeddings.detach()), indices)

    def _loss(self, x: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _update(self, x: torch.Tensor, indices: torch.Tensor) -> None:
        raise NotImplementedError


# --- ECN: exemplar memory ---------------------------------------------------------------------

class InstanceMemory(_Memory):
    """ECN's exemplar memory (Zhong et al., CVPR 2019): every image is its own class.

    The survey's look-up table (§3.3, Eq. 6-7) with one slot per training image, used
    without any clustering:

    * exemplar invariance (``k=0``): -log p(i | x_i), Eq. 6-7 with the image's own slot i
      as the target; it pushes each image away from all others, which learns what makes
      images distinct but also separates images of one person;
    * neighbourhood invariance (``k>0``): -sum_j w_ij log p(j | x_i) over soft targets
      built as ECN's code builds them: weight 1/k on the k slots most similar to x_i
      (detached similarities, the image's own slot *included*, so usually k - 1 others),
      then weight 1 on the own slot i. Those neighbours are probably the same person, so
      they are pulled closer as soft positives. The weights are not renormalised.

    ECN's schedule (exemplar invariance only for epochs 0-4, momentum 0.01 x epoch, slots
    starting at zero) is the method's business: :class:`reidlib.feature_learning.ECN` sets
    ``memory.k`` and ``memory.momentum`` each epoch.
    """

    def __init__(self, features: torch.Tensor, momentum: float = 0.5,
                 temperature: float = 0.05, k: int = 6):
        super().__init__(features, momentum, temperature)
        self.k = k
        self._check_k()
        # Each row is its own class: the uniform `labels` attribute of the three memories.
        self.register_buffer("labels", torch.arange(len(self.features)))

    @property
    def num_classes(self) -> int:
        return len(self.features)

    def _check_k(self) -> None:
        if not isinstance(self.k, int) or not 0 <= self.k <= len(self.features):
            raise ValueError(f"k (neighbours per image, its own slot included) must be an int "
                             f"in [0, {len(self.features)}], got {self.k!r}")

    def _loss(self, x: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        self._check_k()
        logits = self._logits(x, self.features)
        if self.k == 0:
            return F.cross_entropy(logits, indices)
        weights = torch.zeros_like(logits)
        neighbours = logits.detach().topk(self.k, dim=1).indices  # the own slot may be one
        weights.scatter_(1, neighbours, 1.0 / self.k)
        weights.scatter_(1, indices[:, None], 1.0)
        return -(weights * F.log_softmax(logits, dim=1)).sum(dim=1).mean()

    def _update(self, x: torch.Tensor, indices: torch.Tensor) -> None:
        momentum_update(self.features, indices, x, self.momentum)

    def settings(self) -> dict:
        return {**super().settings(), "k": self.k}

    def extra_repr(self) -> str:
        return (f"slots={len(self.features)}, dim={self.dim}, k={self.k}, "
                f"momentum={self.momentum}, temperature={self.temperature}")


# --- Cluster Contrast: one centroid per pseudo-identity ---------------------------------------

class ClusterMemory(_Memory):
    """Cluster Contrast's memory (Dai et al., 2021): one centroid per pseudo-identity.

    Centroids start as the L2-normalised mean of the L2-normalised features of each
    cluster; the loss is the InfoNCE of survey Eq. 6-7 with the centroids as the look-up
    table: -log softmax(c . x / tau)[y], y the cluster of the image. Keeping one vector per
    identity (not per image) makes the update consistent: every centroid moves at the same
    rate whatever the cluster size, which instance memories cannot offer.

    ``labels``: (N,) pseudo-labels, -1 = outlier, any integer ids (mapped to 0..C-1 in
    sorted order; ``cluster_ids[c]`` is the original id of centroid c). Outliers have no
    centroid: the sampler must not put them in a batch, and a batch that contains one
    raises a ValueError (silently skipping it would hide a sampler bug and change the
    effective batch size).

    ``update``: each batch member moves the centroid of its cluster, in batch order.
    ``hard=True``: Cluster Contrast's hard update instead moves each centroid once, with
    its batch member that is *least* similar to it (its hardest instance), so that the
    centroid keeps up with the cluster's spread rather than its easy majority.
    """

    def __init__(self, features: torch.Tensor, labels, momentum: float = 0.1,
                 temperature: float = 0.05, hard: bool = False):
        features = _check_features(features)
        mapped, cluster_ids = _mapped_labels(labels, len(features))
        if len(cluster_ids) == 0:
            raise ValueError("ClusterMemory needs at least one cluster: every label is -1")
        mapped, cluster_ids = mapped.to(features.device), cluster_ids.to(features.device)
        clustered = mapped >= 0
        centroids = _class_means(features[clustered], mapped[clustered], len(cluster_ids))
        super().__init__(centroids, momentum, temperature)  # normalises the centroids
        self.hard = bool(hard)
        self.register_buffer("labels", mapped)
        self.register_buffer("cluster_ids", cluster_ids)

    @property
    def num_classes(self) -> int:
        return len(self.features)

    @property
    def centroids(self) -> torch.Tensor:
        """(C, D) the centroid bank (the same tensor as ``features``)."""
        return self.features

    def _loss(self, x: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        # _check_batch has rejected outlier rows: every label here is a centroid
        return F.cross_entropy(self._logits(x, self.features), self.labels[indices])

    def _update(self, x: torch.Tensor, indices: torch.Tensor) -> None:
        y = self.labels[indices]
        if not self.hard:
            momentum_update(self.features, y, x, self.momentum)
            return
        # Per cluster in the batch, the first member of lowest cosine to its centroid
        # (ties: earliest, like the reference's numpy argmin).
        sim = (x * self.features[y]).sum(dim=1)
        lowest = torch.full((self.num_classes,), float("inf"), device=x.device)
        lowest = lowest.scatter_reduce(0, y, sim, reduce="amin")
        pos = torch.arange(len(y), device=x.device)
        candidate = torch.where(sim == lowest[y], pos, torch.full_like(pos, len(y)))
        first = torch.full((self.num_classes,), len(y), device=x.device, dtype=torch.long)
        first = first.scatter_reduce(0, y, candidate, reduce="amin")
        chosen = first[first < len(y)]
        momentum_update(self.features, y[chosen], x[chosen], self.momentum)

    def settings(self) -> dict:
        return {**super().settings(), "hard": self.hard}

    def extra_repr(self) -> str:
        outliers = int((self.labels < 0).sum())
        return (f"clusters={self.num_classes}, outliers={outliers}, dim={self.dim}, "
                f"hard={self.hard}, momentum={self.momentum}, temperature={self.temperature}")


# --- SpCL: hybrid memory ----------------------------------------------------------------------

class HybridMemory(_Memory):
    """SpCL's hybrid memory (Ge et al., NeurIPS 2020): clusters *and* un-clustered instances.

    It stores every training image's feature (the instance level; ``update`` moves the
    batch's own slots). The classes of the softmax are the C clusters plus each of the O
    outliers on its own, so the images that clustering could not place still take part in
    training instead of being dropped. SpCL's unified contrastive loss (its Eq. 1-2, the
    survey's Eq. 6-7 over a mixed table):

        -log exp(z+ . x / tau) / (sum_c exp(c_c . x / tau) + sum_o exp(v_o . x / tau))

    with c_c the cluster centroids, v_o the outliers' instance features and z+ the image's
    own cluster centroid, or its own instance feature if it is an outlier. The centroids are
    recomputed at every call from the current instance features as their plain mean, *not*
    re-normalised: this is SpCL's code (it averages the similarities to the members, and
    x . mean(v) = mean(x . v)); a spread-out cluster then has a shorter centroid and a
    softer pull. SpCL's code adds 1e-6 inside its softmax and log; we use the exact
    log-softmax.

    ``labels``: (N,) pseudo-labels, -1 = outlier. After mapping, ``labels`` holds each row's
    class: clusters 0..C-1 (sorted original ids, see ``cluster_ids``), outliers C..C+O-1 in
    row order. SpCL keeps the instance features across re-clusterings: call
    :meth:`set_labels` each round instead of building a new memory.
    """

    def __init__(self, features: torch.Tensor, labels, momentum: float = 0.2,
                 temperature: float = 0.05):
        super().__init__(features, momentum, temperature)
        self.register_buffer("labels", torch.empty(0, dtype=torch.long))
        self.register_buffer("cluster_ids", torch.empty(0, dtype=torch.long))
        self.num_clusters = self.num_outliers = 0
        self.set_labels(labels)

    def set_labels(self, labels) -> None:
        """New pseudo-labels (a new clustering round); the instance features are kept."""
        mapped, cluster_ids = _mapped_labels(labels, len(self.features))
        outliers = mapped < 0
        num_clusters = len(cluster_ids)
        num_outliers = int(outliers.sum())
        mapped[outliers] = num_clusters + torch.arange(num_outliers)
        self.labels = mapped.to(self.features.device)
        self.cluster_ids = cluster_ids.to(self.features.device)
        # Python ints, so that num_classes costs no host sync during training.
        self.num_clusters, self.num_outliers = num_clusters, num_outliers

    @property
    def num_classes(self) -> int:
        """C clusters + O outliers: the number of targets in the softmax."""
        return self.num_clusters + self.num_outliers

    def targets(self) -> torch.Tensor:
        """(C + O, D): the cluster centroids, then the outliers' instance features."""
        return _class_means(self.features, self.labels, self.num_classes)

    def _restored(self) -> None:
        self.num_clusters = len(self.cluster_ids)
        self.num_outliers = len(self.labels) and int(self.labels.max()) + 1 - self.num_clusters

    def _loss(self, x: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(self._logits(x, self.targets()), self.labels[indices])

    def _update(self, x: torch.Tensor, indices: torch.Tensor) -> None:
        momentum_update(self.features, indices, x, self.momentum)

    def extra_repr(self) -> str:
        return (f"instances={len(self.features)}, clusters={self.num_clusters}, "
                f"outliers={self.num_outliers}, dim={self.dim}, momentum={self.momentum}, "
                f"temperature={self.temperature}")
