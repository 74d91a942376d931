"""One unsupervised training loop into which each method of survey §3.2 plugs.

Clustering-based methods share one outer loop (SSG, MMT, SpCL, Cluster Contrast); they
differ in what they train on the pseudo-labels. Each epoch here:

1. extract L2-normalised features of every training image with ``method.feature_model()``
   (no flip: the reference code bases cluster single-view features);
2. ``cluster(features) -> labels`` (-1 = outlier), clusters of one become outliers
   (:func:`~reidlib.pseudo_labels.loop.drop_small_clusters`), and an optional
   ``select(features, labels)`` marks doubtful samples -1 too (DCML's credible samples);
3. score the labels against the hidden true ids and keep an explorer snapshot;
4. ``method.start_epoch(features, labels, train)``: build the memory, reset a classifier;
5. one pass of P x K batches over the clustered images (plus the outliers as one-image
   identities for methods that train on them, SpCL; plain random batches for methods
   that need no clusters, ECN), calling ``method.loss(batch)`` and then
   ``method.after_step()`` (memory update, teacher update) after each optimiser step.

Cluster Contrast re-clusters every epoch like this; PUL / chapter 1's loop re-cluster every
few epochs (:func:`reidlib.pseudo_labels.pseudo_label_rounds`). The optimiser (Adam,
Cluster Contrast's 3.5e-4) is built once and only rebuilt when the method's parameters
change (a classifier replaced for a new number of pseudo-identities).

A method is a small class (see :mod:`reidlib.feature_learning.methods`)::

    class Method:
        name: str
        needs_clusters: bool = True     # False: random batches (ECN's exemplar memory)
        uses_outliers: bool = False     # True: outliers are sampled as their own identity
        def parameters(self): ...       # what the optimiser trains
        def feature_model(self): ...    # whose features are clustered and evaluated
        def models(self): ...           # every network the loop puts in train / eval mode
        def start_epoch(self, features, labels, train): ...
        def loss(self, batch) -> (loss, {"name": value, ...}): ...
        def after_step(self): ...
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from reidlib.data.augment import train_augment
from reidlib.data.imageset import ImageSet
from reidlib.data.sampler import RandomIdentitySampler
from reidlib.pseudo_labels.loop import cluster_features, drop_small_clusters, record_round
from reidlib.pseudo_labels.quality import OUTLIER
from reidlib.training.features import extract_features, model_device
from reidlib.training.supervised import epoch_generator, lr_at, param_groups
from reidlib.viz.explorer import Snapshot


@dataclass
class Batch:
    """One P x K batch as a method sees it.

    ``images``: uint8 (B, 3, H, W) on the model's device; ``indices``: (B,) training-set
    rows (what memories are indexed by); ``targets``: (B,) pseudo-identities 0..C-1 of
    this epoch (outliers that a method trains on have their own ids after the clusters).
    ``augmented()`` gives a fresh random view each call (MMT gives each network its own).
    """

    images: torch.Tensor
    indices: torch.Tensor
    targets: torch.Tensor
    generator: torch.Generator
    colour: float = 0.0

    def augmented(self) -> torch.Tensor:
        x = train_augment(self.images, self.generator, colour=self.colour)
        if x.device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        return x


@dataclass
class Epoch:
    """What one epoch saw and did: the clustering it trained on and the losses it got."""

    epoch: int
    labels: np.ndarray
    quality: dict
    losses: dict
    seconds: float
    cluster_seconds: float
    images: int
    snapshot: Snapshot
    extra: dict = field(default_factory=dict)


def sampling_labels(labels: np.ndarray, needs_clusters: bool, uses_outliers: bool) -> np.ndarray:
    """Labels for the P x K sampler and the targets: clusters first, then (SpCL) outliers.

    Returns (N,) ids 0..C-1 for clustered rows, C.. for outliers when ``uses_outliers``
    (each its own identity), -1 for rows not trained on; ``needs_clusters=False`` makes
    every row its own identity (instance-level methods, ECN).
    """
    labels = np.asarray(labels)
    if not needs_clusters:
        return np.arange(len(labels), dtype=np.int64)
    out = np.full(len(labels), OUTLIER, dtype=np.int64)
    clustered = labels != OUTLIER
    _, out[clustered] = np.unique(labels[clustered], return_inverse=True)
    if uses_outliers:
        first = out.max() + 1 if clustered.any() else 0
        out[~clustered] = first + np.arange((~clustered).sum())
    return out


def epoch_batches(targets: np.ndarray, p: int, k: int, seed: int, epoch: int,
                  instance_level: bool) -> list[np.ndarray]:
    """Row indices of each batch: P x K over ``targets`` >= 0, or shuffled rows of p*k."""
    if instance_level:  # ECN: every image is its own class; a batch is any p*k images
        rng = np.random.default_rng([seed, epoch])
        order = rng.permutation(len(targets))
        size = p * k
        return [order[i:i + size] for i in range(0, len(order) - size + 1, size)] or [order]
    sampler = RandomIdentitySampler(targets, p, k, seed=seed)
    return sampler.batches(epoch)


def _params_key(params: list[torch.nn.Parameter]) -> tuple[int, ...]:
    return tuple(id(p) for p in params)


def train_unsupervised(method, train: ImageSet, cluster: Callable[[np.ndarray], np.ndarray], *,
                       epochs: int, p: int, k: int, lr: float, weight_decay: float = 5e-4,
                       select: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
                       schedule: str = "step", warmup_epochs: int = 0,
                       colour_jitter: float = 0.15, seed: int = 0,
                       snapshot_rows: np.ndarray | None = None, progress: bool = True,
                       on_epoch_end: Callable[[Epoch], None] | None = None) -> list[Epoch]:
    """Train ``method`` on ``train`` without its labels (survey §3.2; module docstring).

    Args:
        method: a method object (``reidlib.feature_learning.methods``); its models are
            trained in place, on their own device.
        train: the training set; its pids only score the pseudo-labels and colour the
            snapshots (junk rows, pid < 0, must be dropped first).
        cluster: ``(N, D) float32 features -> (N,) int labels``, -1 = outlier.
        epochs, p, k, lr, weight_decay: loop length, P x K batch shape, Adam's settings.
        select: optional ``(features, labels) -> labels`` that marks doubtful rows -1.
        schedule, warmup_epochs: the learning-rate schedule of
            :func:`~reidlib.training.supervised.lr_at` ("step": / 10 at 40% and 70%).
        snapshot_rows: the rows kept in each epoch's snapshot (default: all).
        on_epoch_end: called with each :class:`Epoch` (e.g. to plot as training goes).

    Returns one :class:`Epoch` per epoch (its labels, quality and snapshot are those the
    epoch trained on); extract features once more to see the final model.
    """
    if epochs < 1 or p < 1 or k < 1:
        raise ValueError(f"epochs, p and k must be >= 1, got {epochs}, {p}, {k}")
    if (train.pids < 0).any():
        raise ValueError(f"train has {(train.pids < 0).sum()} junk images (pid < 0) that cannot "
                         "be scored; drop them first: train.subset(train.pids >= 0)")
    device = model_device(method.feature_model())
    images = train.tensor(device)
    optimizer, key, history = None, None, []
    for epoch in tqdm(range(epochs), desc=method.name, disable=not progress):
        t0 = time.perf_counter()
        features = extract_features(method.feature_model(), train, flip=False, progress=False)
        labels = cluster_features(cluster, features.numpy(), epoch)
        if select is not None:
            labels = drop_small_clusters(select(features.numpy(), labels))
        quality, snapshot = record_round(epoch, features.numpy(), labels, train,
                                         name=f"{method.name}, epoch {epoch}",
                                         rows=snapshot_rows)
        method.start_epoch(features.to(device), labels, train)
        cluster_seconds = time.perf_counter() - t0

        params = [q for q in method.parameters() if q.requires_grad]
        if optimizer is None or _params_key(params) != key:
            optimizer = torch.optim.Adam(_groups(params, weight_decay), lr=lr)
            key = _params_key(params)
        targets = sampling_labels(labels, method.needs_clusters, method.uses_outliers)
        batches = epoch_batches(targets, p, k, seed, epoch, not method.needs_clusters)
        if method.uses_outliers:  # an epoch is as long as one pass over the clustered rows
            batches = batches[:max(1, -(-int((labels != OUTLIER).sum()) // (p * k)))]
        losses = _train_epoch(method, optimizer, images, targets, batches, epoch,
                              lambda t: lr_at(t, lr, epochs, warmup_epochs, schedule),
                              epoch_generator(seed, epoch), colour_jitter, progress)
        record = Epoch(epoch, labels, quality, losses, time.perf_counter() - t0,
                       cluster_seconds, sum(len(b) for b in batches), snapshot)
        history.append(record)
        if progress:
            tqdm.write(f"{snapshot.title.replace(chr(10), ': ')}; NMI {quality['nmi']:.2f}; loss "
                       f"{losses.get('loss', float('nan')):.3f}; {record.seconds:.1f} s")
        if on_epoch_end is not None:
            on_epoch_end(record)
    for model in method.models():
        model.eval()
    return history


def _groups(params: list[torch.nn.Parameter], weight_decay: float) -> list[dict]:
    """Weight decay on matrices only, as ``param_groups`` does for one model."""
    holder = torch.nn.ParameterList(params)
    return param_groups(holder, weight_decay)


def _train_epoch(method, optimizer, images, targets, batches, epoch, lr_of, generator,
                 colour, progress) -> dict:
    for model in method.models():
        model.train()
    device = images.device
    targets_t = torch.as_tensor(targets, device=device)
    sums: dict[str, torch.Tensor] = {}
    bar = tqdm(batches, desc=f"epoch {epoch + 1}", disable=not progress, leave=False)
    for i, idx in enumerate(bar):
        for group in optimizer.param_groups:
            group["lr"] = lr_of(epoch + i / len(batches))
        rows = torch.as_tensor(idx, device=device)
        batch = Batch(images[rows], rows, targets_t[rows], generator, colour)
        loss, parts = method.loss(batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        method.after_step()
        for name, value in {"loss": loss, **parts}.items():
            sums[name] = sums.get(name, 0) + value.detach().float()
        if i % 20 == 0:  # .item() waits for the GPU: only now and then
            bar.set_postfix(loss=f"{sums['loss'].item() / (i + 1):.3f}")
    return {name: (total / len(batches)).item() for name, total in sums.items()}
