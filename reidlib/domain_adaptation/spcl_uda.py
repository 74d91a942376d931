"""SpCL for domain adaptation: labelled source classes in the hybrid memory (survey §3.4).

Ge, Zhu, Chen, Zhao, Li, "Self-paced Contrastive Learning with Hybrid Memory for Domain
Adaptive Object Re-ID" (NeurIPS 2020; code: yxgeee/SpCL). The survey's §3.4 pairs the
source loss of Eq. 11 with the target's pseudo-labels of Eq. 12; SpCL puts both in *one*
softmax: its hybrid memory holds

- the *source class centroids*: one slot per labelled source identity, initialised as the
  L2-normalised mean of that identity's (L2-normalised) features;
- the target clusters: the plain mean of their members' instance features (as in the
  unsupervised :class:`~reidlib.feature_learning.memory.HybridMemory`);
- the un-clustered target instances, one slot each;

and every image, source or target, is contrasted against all of them (SpCL's Eq. 1-2, the
survey's Eq. 6-7): a source image's positive is its class centroid, a target image's its
cluster centroid or, un-clustered, its own instance feature.

What the reference does (``examples/spcl_train_uda.py``, ``spcl/trainers.py``,
``spcl/models/hm.py``) and how we match it:

- the memory table is [source class slots, target instance slots]; the labels of the
  table are ``[0..S-1, S + target pseudo-labels]`` with each un-clustered target image a
  class of its own after the clusters: exactly what :class:`SourceHybridMemory` hands to
  :class:`~reidlib.feature_learning.memory.HybridMemory` (a source "cluster" is its one
  slot, so its centroid is the slot itself);
- a source image indexes its class slot, a target image its own instance slot
  (``t_indexes + source_classes``); after each step every batch member moves the slot it
  indexes, ``m <- normalise(0.2 m + 0.8 x)``, in batch order (several source images of one
  identity move its centroid one after the other); temperature 0.05;
- each step draws a source batch of 64 (16 identities x 4, the multiple-gallery sampler
  over the true ids) and a target batch of 64 (the same sampler over the target's
  clusters, each un-clustered image a label of its own), forwards them as *one* batch,
  source first, and adds two losses, ``loss_s + loss_t``, each the mean over its own half;
- each epoch the target slots of the memory (not fresh features) are clustered with
  SpCL's self-paced criterion (:class:`reidlib.feature_learning.SpCL`); the source slots
  are never clustered; 400 iterations per epoch, Adam 3.5e-4, weight decay 5e-4,
  StepLR(20);
- SpCL's UDA backbone has domain-specific BN (``convert_dsbn``: the source half through
  the source BN, the target half through the target BN; in eval mode, for every
  extraction including the source centroids', the target BN). Convert the model with
  ``convert_domain_bn(model, 2)`` (:mod:`reidlib.domain_adaptation.dsbn`) before building
  the method and :class:`SpCLUDA` does the same: each training batch's source half goes
  through the source BN and its target half through the target BN, and the first
  extraction (memory initialisation) uses the target's BN. A plain model trains as given
  (one BN over the mixed batch).

Deliberate differences: (1) the reference updates the memory inside backward, so one
half's gradient may already see the other half's updated slots; we compute both halves'
gradients from the slots before the step, then update. (2) The exact log-softmax instead
of the reference's ``+1e-6`` (as in ``HybridMemory``). (3) With DSBN, ``fit``'s ``val=``
cannot be used (its forwards carry no domain): evaluate inside
``with domains(model, TARGET):``.

Usage (source rows labelled, target rows not)::

    train, domain_ids = source_target_set(source, target)
    convert_domain_bn(model, 2)                     # optional: SpCL's DSBN
    method = SpCLUDA(model, train, domain_ids)
    fit(method, train, domains=domain_ids, cluster=method.cluster, **SpCLUDA.recipe)
    with domains(model, TARGET):
        scores = evaluate(...)
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch

from reidlib.checks import labels_1d
from reidlib.data.imageset import ImageSet
from reidlib.data.sampler import iteration_batches
from reidlib.domain_adaptation.dsbn import domain_bn_layers, domains
from reidlib.feature_learning.memory import HybridMemory, _check_features, _class_means
from reidlib.feature_learning.spcl import SpCL
from reidlib.pseudo_labels.labels import OUTLIER, contiguous, outliers_as_classes
from reidlib.training.features import autocast_for, extract_features

__all__ = ["SOURCE", "TARGET", "SourceHybridMemory", "SpCLUDA", "source_target_set"]

SOURCE, TARGET = 0, 1  # domain ids (DSBN's convention: the target's BN is domain 1)


def source_target_set(source: ImageSet, target: ImageSet) -> tuple[ImageSet, np.ndarray]:
    """(source rows then target rows as one ImageSet, (N,) domains: 0 source, 1 target).

    The target's pids are shifted past the source's largest so that the two domains never
    share an id: ``fit`` only uses them to score the pseudo-labels, never to train.
    """
    for name, part in (("source", source), ("target", target)):
        if not isinstance(part, ImageSet) or len(part) == 0:
            raise ValueError(f"{name} must be a non-empty ImageSet, got {type(part).__name__}")
    if source.image_size != target.image_size:
        raise ValueError(f"source and target images must have one size, got "
                         f"{source.image_size} and {target.image_size}")
    if (source.pids < 0).any() or (target.pids < 0).any():
        raise ValueError("drop junk rows (pid < 0) from source and target first")
    shift = int(source.pids.max()) + 1
    joined = ImageSet(np.concatenate([source.images, target.images]),
                      np.concatenate([source.pids, target.pids + shift]),
                      np.concatenate([source.camids, target.camids]))
    domain_ids = np.repeat(np.array([SOURCE, TARGET], np.int64), [len(source), len(target)])
    return joined, domain_ids


def _check_domains(domain_ids, n: int) -> np.ndarray:
    ids = labels_1d(domain_ids, n, "domain_ids (one per training row)", allow_outliers=False)
    if not np.isin(ids, (SOURCE, TARGET)).all() or not (ids == SOURCE).any() \
            or not (ids == TARGET).any():
        raise ValueError(f"domain_ids must hold {SOURCE} (source) and {TARGET} (target) only,"
                         f" both present, got values {np.unique(ids).tolist()}")
    return ids


class SourceHybridMemory(HybridMemory):
    """SpCL's UDA hybrid memory: source class centroids + target clusters + target outliers.

    A :class:`HybridMemory` whose table is [S source class slots, T target instance
    slots], indexed, like every memory, by training-set rows: ``slots[row]`` is the slot a
    row reads and moves (its class slot for a source row, its own slot for a target row).
    One softmax over [source classes, target clusters, target outliers] (module
    docstring); ``update`` moves each batch member's slot in batch order.

    ``features``: (N, D) of every training row; ``labels``: (N,) the true ids on the source
    rows (any ids >= 0), the target pseudo-labels on the target rows (-1 = un-clustered);
    ``is_source``: (N,) bool. :meth:`set_target_labels` starts a new clustering round and
    keeps every slot.
    """

    def __init__(self, features: torch.Tensor, labels, is_source, momentum: float = 0.2,
                 temperature: float = 0.05):
        features = _check_features(features)
        n = len(features)
        labels = labels_1d(labels, n, "labels (one per feature row)")
        is_source = np.asarray(is_source)
        if is_source.shape != (n,) or is_source.dtype != bool:
            raise ValueError(f"is_source must be a ({n},) bool array, got "
                             f"{is_source.dtype} {is_source.shape}")
        if is_source.all() or not is_source.any():
            raise ValueError("SourceHybridMemory needs source rows and target rows")
        if (labels[is_source] < 0).any():
            raise ValueError("every source row needs its true id (>= 0), got -1")
        source_ids, source_class = np.unique(labels[is_source], return_inverse=True)
        num_source, target_rows = len(source_ids), np.flatnonzero(~is_source)
        slots = np.empty(n, np.int64)
        slots[is_source] = source_class
        slots[target_rows] = num_source + np.arange(len(target_rows))
        classes = torch.from_numpy(source_class).to(features.device)
        centroids = _class_means(features[torch.from_numpy(is_source).to(features.device)],
                                 classes, num_source)
        table = torch.cat([centroids, features[torch.from_numpy(target_rows)
                                               .to(features.device)]])
        self.num_source = num_source
        self._target_rows = target_rows
        super().__init__(table, self._slot_labels(labels), momentum, temperature)
        self.register_buffer("slots", torch.from_numpy(slots).to(features.device))
        self.register_buffer("source_ids", torch.from_numpy(source_ids).to(features.device))

    def _slot_labels(self, labels: np.ndarray) -> np.ndarray:
        """Per slot: source class 0..S-1, then S + the target row's cluster (-1 stays)."""
        target, _ = contiguous(labels[self._target_rows])
        return np.concatenate([np.arange(self.num_source),
                               np.where(target == OUTLIER, OUTLIER, target + self.num_source)])

    def set_target_labels(self, labels) -> None:
        """A new clustering of the target: (N,) labels, only the target rows are read."""
        labels = labels_1d(labels, len(self.slots), "labels (one per training row)")
        self.set_labels(self._slot_labels(labels))

    def _restored(self) -> None:
        super()._restored()
        self.num_source = len(self.source_ids)
        self._target_rows = (self.slots >= self.num_source).nonzero().flatten().cpu().numpy()

    @property
    def num_target_clusters(self) -> int:
        return self.num_clusters - self.num_source

    def _slots_of(self, indices: torch.Tensor) -> torch.Tensor:
        """Training rows -> memory slots (checked: integer rows in [0, N) on our device)."""
        n = len(self.slots)
        if not isinstance(indices, torch.Tensor) or indices.ndim != 1 \
                or indices.is_floating_point() or indices.dtype == torch.bool:
            got = (f"{indices.dtype} {tuple(indices.shape)}" if isinstance(indices, torch.Tensor)
                   else type(indices).__name__)
            raise ValueError(f"indices must be a 1-D integer tensor of training rows, got {got}")
        if indices.device != self.slots.device:
            raise ValueError(f"indices ({indices.device}) must be on the memory's device "
                             f"({self.slots.device}): move the memory with memory.to(device)")
        if len(indices):
            lo, hi = torch.stack([indices.min(), indices.max()]).tolist()
            if lo < 0 or hi >= n:
                raise ValueError(f"indices must be training rows in [0, {n}), got [{lo}, {hi}]")
        return self.slots[indices.long()]

    def forward(self, embeddings: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        """The loss of ``embeddings`` (B, D) of training rows ``indices`` (B,)."""
        return super().forward(embeddings, self._slots_of(indices))

    @torch.no_grad()
    def update(self, embeddings: torch.Tensor, indices: torch.Tensor) -> None:
        """Move the slot of each training row in ``indices`` (batch order)."""
        super().update(embeddings, self._slots_of(indices))

    def row_features(self) -> torch.Tensor:
        """(N, D): each training row's slot (its class centroid for a source row)."""
        return self.features[self.slots]

    def extra_repr(self) -> str:
        return (f"source_classes={self.num_source}, target_clusters="
                f"{self.num_target_clusters}, target_outliers={self.num_outliers}, "
                f"dim={self.dim}, momentum={self.momentum}, temperature={self.temperature}")


class SpCLUDA(SpCL):
    """SpCL's domain-adaptation setting (module docstring): source classes and target
    clusters / instances in one hybrid memory; batches of a source half and a target half.

    ``train``: the concatenated source + target ImageSet that ``fit`` trains on (see
    :func:`source_target_set`), ``domain_ids``: (N,) 0 = source (its pids are the true
    ids), 1 = target (its pids are never read); pass the same array as ``fit``'s
    ``domains``. A model converted with ``convert_domain_bn(model, 2)`` trains with DSBN.
    Train with ``fit(method, train, domains=domain_ids, cluster=method.cluster, ...)``:
    :meth:`cluster` clusters the target rows only (:meth:`cluster_target`, SpCL's
    self-paced clustering) and gives the source rows their true class. ``p``, ``k``: the
    shape of *each* half (SpCL: 16 x 4 + 16 x 4).
    """

    name = "SpCL (UDA: source classes + target hybrid memory)"
    memory_class = SourceHybridMemory

    def __init__(self, model, train: ImageSet, domain_ids, **settings):
        if not isinstance(train, ImageSet):
            raise ValueError(f"train must be the ImageSet that fit trains on, got "
                             f"{type(train).__name__}")
        if "sampler" in settings:
            raise ValueError("SpCLUDA always uses SpCL's multiple-gallery sampler per domain")
        super().__init__(model, **settings)
        domain_ids = _check_domains(domain_ids, len(train))
        self.train_set = train
        self.dsbn = bool(domain_bn_layers(self.model, required=False))
        self.is_source = domain_ids == SOURCE
        self.source_rows = np.flatnonzero(self.is_source)
        self.target_rows = np.flatnonzero(~self.is_source)
        _, classes = np.unique(train.pids[self.is_source], return_inverse=True)
        self.num_source_classes = int(classes.max()) + 1
        self.source_class = np.full(len(train), OUTLIER, np.int64)
        self.source_class[self.is_source] = classes

    # --- labels
    def cluster_target(self, features: np.ndarray) -> np.ndarray:
        """The target rows' labels (-1 = un-clustered): SpCL's self-paced clustering."""
        return SpCL.cluster(self, features)

    def cluster(self, features: np.ndarray) -> np.ndarray:
        """(N,) labels for ``fit``: source classes 0..S-1 (true ids) on the source rows,
        S + the target clusters on the target rows (-1 un-clustered). Only the target rows'
        features are clustered."""
        labels = self.source_class.copy()
        target, _ = contiguous(self.cluster_target(features[self.target_rows]))
        labels[self.target_rows] = np.where(target == OUTLIER, OUTLIER,
                                            target + self.num_source_classes)
        return labels

    def cluster_features(self):
        if self.memory is not None:
            return self.memory.row_features()
        if not self.dsbn:
            return None  # fit extracts
        with domains(self.model, TARGET):  # SpCL's DSBN in eval mode: the target's BN
            return extract_features(self.model, self.train_set, flip=False, progress=False)

    def new_labels(self, features, labels, train) -> None:
        if self.memory is None:
            memory_labels = np.where(self.is_source, self.source_class, labels)
            self.memory = SourceHybridMemory(features, memory_labels, self.is_source,
                                             momentum=self.momentum,
                                             temperature=self.temperature)
        else:
            self.memory.set_target_labels(labels)

    # --- batches and loss
    def batches(self, labels, camids, *, p, k, iters, seed, epoch):
        """Each batch: ``p * k`` source rows (true ids), then ``p * k`` target rows (target
        clusters, each un-clustered image a label of its own); ``iters`` of them, or as
        many as one pass of the target sampler gives."""
        target = np.full(len(labels), OUTLIER, np.int64)
        target[self.target_rows] = outliers_as_classes(np.asarray(labels)[self.target_rows])
        target_batches = iteration_batches(target, camids, p * k, k, iters, seed, epoch,
                                           other_cameras=self.other_cameras)
        source_seed = int(np.random.SeedSequence([seed, SOURCE]).generate_state(1)[0])
        source_batches = iteration_batches(self.source_class, camids, p * k, k,
                                           len(target_batches), source_seed, epoch,
                                           other_cameras=self.other_cameras)
        return [np.concatenate(pair) for pair in zip(source_batches, target_batches,
                                                     strict=True)]

    def loss(self, batch):
        half = len(batch.indices) // 2  # our batches: the source half first
        # DSBN: route by position (our batches are built source half first), so a fit
        # called without domains= cannot send the target half through the source BN
        sides = np.repeat([SOURCE, TARGET], [half, len(batch.indices) - half])
        route = domains(self.model, sides) if self.dsbn else contextlib.nullcontext()
        with route, autocast_for(batch.images.device):
            out = self.model(batch.augmented())
        loss_s = self.memory(out.embeddings[:half], batch.indices[:half])
        loss_t = self.memory(out.embeddings[half:], batch.indices[half:])
        self._last = (out.embeddings.detach(), batch.indices)
        return loss_s + loss_t, {"source": loss_s, "target": loss_t}

    def config(self) -> dict:
        return {**super().config(), "source_rows": len(self.source_rows),
                "target_rows": len(self.target_rows), "dsbn": self.dsbn}
