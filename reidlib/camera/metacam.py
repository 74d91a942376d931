"""MetaCam: meta-learning across cameras (Yang et al., "Joint Noise-Tolerant Learning and Meta
Camera Shift Adaptation for Unsupervised Person Re-Identification", CVPR 2021; survey §3.3).

A model that has only been trained on some cameras should still work on the others. MetaCam
simulates that during training: the cameras are split in two disjoint groups, and each step

1. takes a batch of *meta-train* cameras and computes its memory loss L_tr(theta);
2. takes one SGD step on it, without touching the model: theta' = theta - alpha grad L_tr;
3. computes the loss of a batch of the *meta-test* cameras with the stepped weights,
   L_te(theta');
4. optimises L_tr(theta) + L_te(theta') with respect to theta. The gradient of the second
   term flows through theta' into grad L_tr, so it rewards updates that, learnt on some
   cameras, also lower the loss on unseen ones.

As the official code does it (github.com/FlyingRoastDuck/MetaCam_DSCE,
``meta_train_usl_knn_merge.py``, ``reid/trainers.py`` ``MetaTrainer``, ``reid/models/em.py``,
``reid/utils/tools.py``):

- the camera ids are split once per epoch, half of them (``--mRatio 0.5``) meta-train; at
  each step a coin decides which group plays meta-train, and each group gives a P x K batch
  of its own images (16 x 4, its own sampler): :func:`meta_batches`;
- the memory is an instance memory (every training image's feature, momentum 0.2,
  temperature 0.05), clustered every epoch (DBSCAN eps 0.6 on the k1 = 30 / k2 = 6 Jaccard
  distance); its loss contrasts each image with the cluster centroids, the plain means of
  the member features: our :class:`~reidlib.feature_learning.memory.HybridMemory` (SpCL's),
  not ``ClusterMemory``, whose centroids are momentum vectors of their own;
- DBSCAN's outliers are not dropped: each joins the cluster of its nearest clustered image
  (``generate_pseudo_labels``; :func:`assign_outliers`);
- the look-ahead is an SGD step with the optimiser's current learning rate (3.5e-4, x 0.1
  at epoch 20) and ``create_graph=True``: a **second-order** meta-gradient (``second_order``);
- after the optimiser step the memory moves towards the meta-test images, embedded again by
  the updated model, then towards the meta-train embeddings of the step (in that order).

BatchNorm: the meta-train forward is an ordinary training-mode forward (it updates the
running statistics, as in the reference). The look-ahead forward runs the same module with
``torch.func.functional_call`` on theta' and on *copies* of the buffers, so its batch
statistics update only the copies (the reference runs a deep copy of the model); the model's
running statistics never see the look-ahead pass.

Deliberate differences: no instance-level (exemplar) pre-training before the first
clustering (the reference's ``--startE 5`` epochs), no symmetric cross-entropy (DSCE, the
paper's noise-tolerant half, ``--symmetric``), and model selection on a validation split.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from reidlib.checks import features_2d, labels_1d, real_in_range
from reidlib.data.sampler import RandomIdentitySampler, iteration_batches
from reidlib.feature_learning.contrast import MemoryMethod
from reidlib.feature_learning.memory import HybridMemory
from reidlib.pseudo_labels.labels import OUTLIER
from reidlib.training.features import autocast_for

__all__ = ["MetaCam", "assign_outliers", "forward_with", "look_ahead", "meta_batches",
           "split_cameras"]


# --- data: disjoint camera groups ------------------------------------------------------------

def split_cameras(cameras, ratio: float, rng: np.random.Generator
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(meta-train, meta-test) camera ids: a random ``int(ratio * C)`` of the C distinct
    ``cameras`` (at least one, at most C - 1) and the rest (the reference's ``split_cam``)."""
    cams = np.unique(np.asarray(cameras))
    if len(cams) < 2:
        raise ValueError(f"MetaCam needs images from at least 2 cameras, got {cams.tolist()}")
    ratio = real_in_range(ratio, "ratio", lo=0.0, hi=1.0, lo_open=True, hi_open=True)
    n_train = min(max(int(ratio * len(cams)), 1), len(cams) - 1)
    chosen = rng.permutation(cams)
    return np.sort(chosen[:n_train]), np.sort(chosen[n_train:])


def meta_batches(labels, camids, *, p: int, k: int, iters: int | None, seed: int, epoch: int,
                 ratio: float = 0.5, sampler: str = "multi_gallery",
                 other_cameras: bool = True) -> list[np.ndarray]:
    """Each step's rows: a meta-train batch, then a meta-test batch, ``p * k`` rows each,
    from the two disjoint camera groups of the epoch (:func:`split_cameras`), the roles drawn
    by a coin at every step. Each group is sampled on its own, by the reference sampler
    (``"multi_gallery"``, ``iters`` batches) or P x K (``"pk"``, one pass; the shorter group
    ends the epoch). Rows labelled -1 are never drawn; depends only on (seed, epoch)."""
    labels, cams = np.asarray(labels), np.asarray(camids)
    if labels.ndim != 1 or labels.shape != cams.shape:
        raise ValueError(f"labels and camids must be (N,) arrays of one shape, got "
                         f"{labels.shape} and {cams.shape}")
    rng = np.random.default_rng([seed, epoch, 1])
    groups = split_cameras(cams[labels >= 0], ratio, rng)
    per_group = []
    for g, group in enumerate(groups):
        own = np.where(np.isin(cams, group), labels, OUTLIER)
        group_seed = int(np.random.SeedSequence([seed, g]).generate_state(1)[0])
        if sampler == "multi_gallery":
            per_group.append(iteration_batches(own, cams, p * k, k, iters, group_seed, epoch,
                                               other_cameras=other_cameras))
        elif sampler == "pk" and iters is None:
            per_group.append(RandomIdentitySampler(own, p, k, seed=group_seed).batches(epoch))
        else:
            raise ValueError(f"sampler must be 'multi_gallery' or 'pk' (with iters=None), got "
                             f"{sampler!r} with iters={iters}")
    steps = min(len(b) for b in per_group)
    swap = rng.random(steps) < 0.5
    return [np.concatenate([per_group[1][i], per_group[0][i]] if swap[i]
                           else [per_group[0][i], per_group[1][i]]) for i in range(steps)]


def assign_outliers(features, labels) -> np.ndarray:
    """Labels with every outlier (-1) given the label of its nearest clustered row, by
    Euclidean distance (the reference's ``generate_pseudo_labels``). ``features``: (N, D)."""
    x = torch.from_numpy(features_2d(features))
    labels = labels_1d(labels, len(x))
    clustered = np.flatnonzero(labels != OUTLIER)
    outliers = np.flatnonzero(labels == OUTLIER)
    if len(clustered) == 0:
        raise ValueError("assign_outliers needs at least one clustered row; every label is -1")
    out = labels.copy()
    for start in range(0, len(outliers), 4096):
        rows = outliers[start:start + 4096]
        nearest = torch.cdist(x[rows], x[clustered]).argmin(dim=1).numpy()
        out[rows] = labels[clustered[nearest]]
    return out


# --- the look-ahead ----------------------------------------------------------------------------

def look_ahead(model: nn.Module, loss: torch.Tensor, lr: float,
               second_order: bool = True) -> dict[str, torch.Tensor]:
    """theta' = theta - lr * grad(loss) for every trainable parameter, by name, as tensors
    that stay connected to theta (the model itself is not changed).

    ``second_order``: the gradient is itself differentiable (``create_graph=True``, as in
    MetaCam's code), so a loss at theta' back-propagates through it into theta; otherwise
    it is detached (first-order MAML). ``loss``' graph is kept for a later backward.
    """
    lr = real_in_range(lr, "lr", lo=0.0)
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not named:
        raise ValueError("the model has no trainable parameters to look ahead with")
    grads = torch.autograd.grad(loss, [p for _, p in named], create_graph=second_order,
                                retain_graph=True, allow_unused=True)
    return {n: p if g is None else p - lr * (g if second_order else g.detach())
            for (n, p), g in zip(named, grads, strict=True)}


def forward_with(model: nn.Module, params: dict[str, torch.Tensor], *inputs):
    """``model(*inputs)`` computed with ``params`` in place of those parameters and with
    copies of the buffers: a training-mode BatchNorm normalises with the batch statistics
    as usual, but its running statistics are updated in the copies only."""
    buffers = {n: b.clone() for n, b in model.named_buffers()}
    return functional_call(model, {**buffers, **params}, inputs)


# --- the method --------------------------------------------------------------------------------

class MetaCam(MemoryMethod):
    """MetaCam: meta-train / meta-test cameras, a look-ahead step and the meta loss.

    Train it on a clustering of its memory's features::

        metacam = MetaCam(model)
        fit(metacam, train, cluster=jaccard_dbscan(), **MetaCam.recipe)

    Each step sees ``2 p k`` images (:meth:`batches`: the meta-train rows first). ``ratio``:
    share of the cameras in the meta-train group; ``inner_lr`` / ``inner_milestones``: the
    look-ahead learning rate and its x 0.1 steps (the reference uses the optimiser's lr);
    ``second_order``: as the reference (``create_graph=True``), else first-order.
    """

    name = "MetaCam"
    memory_class = HybridMemory
    recipe = {"epochs": 40, "iters": 200, "lr": 3.5e-4, "weight_decay": 5e-4, "decay": "all",
              "schedule": "step", "milestones": (20,), "p": 16, "k": 4}

    def __init__(self, model, ratio: float = 0.5, inner_lr: float = 3.5e-4,
                 inner_milestones=(20,), second_order: bool = True, momentum: float = 0.2,
                 temperature: float = 0.05, sampler: str = "multi_gallery",
                 other_cameras: bool = True):
        super().__init__(model, momentum, temperature, sampler=sampler,
                         other_cameras=other_cameras)
        self.ratio = real_in_range(ratio, "ratio", lo=0.0, hi=1.0, lo_open=True, hi_open=True)
        self.inner_lr = real_in_range(inner_lr, "inner_lr", lo=0.0)
        self.inner_milestones = tuple(int(m) for m in inner_milestones)
        self.second_order = bool(second_order)
        self.current_inner_lr = self.inner_lr

    def cluster_features(self):
        return None if self.memory is None else self.memory.features

    def new_labels(self, features, labels, train) -> None:
        full = assign_outliers(features.float().cpu(), labels)
        if self.memory is None:  # instance features persist across epochs
            self.memory = HybridMemory(features, full, momentum=self.momentum,
                                       temperature=self.temperature)
        else:
            self.memory.set_labels(full)

    def start_epoch(self, epoch: int) -> None:
        self.current_inner_lr = self.inner_lr * 0.1 ** sum(epoch >= m
                                                           for m in self.inner_milestones)

    def batches(self, labels, camids, *, p, k, iters, seed, epoch):
        """:func:`meta_batches` on the memory's labels (outliers assigned to clusters)."""
        full = self.memory.labels.cpu().numpy()
        return meta_batches(full, camids, p=p, k=k, iters=iters, seed=seed, epoch=epoch,
                            ratio=self.ratio, sampler=self.sampler,
                            other_cameras=self.other_cameras)

    def loss(self, batch):
        half = len(batch.indices) // 2
        cams = batch.camids
        if cams.device.type == "cpu" and \
                bool(torch.isin(cams[:half], cams[half:]).any()):  # a GPU sync: CPU only
            raise ValueError("a MetaCam batch holds meta-train rows then meta-test rows from "
                             "disjoint cameras (MetaCam.batches); these halves share cameras")
        x = batch.augmented()
        train_rows, test_rows = batch.indices[:half], batch.indices[half:]
        with autocast_for(x.device):
            out = self.model(x[:half])
        meta_train = self.memory(out.embeddings, train_rows)
        params = look_ahead(self.model, meta_train, self.current_inner_lr, self.second_order)
        with autocast_for(x.device):
            stepped = forward_with(self.model, params, x[half:])
        meta_test = self.memory(stepped.embeddings, test_rows)
        self._last = (out.embeddings.detach(), train_rows, x[half:], test_rows)
        return meta_train + meta_test, {"meta_train": meta_train, "meta_test": meta_test}

    def after_step(self, batch) -> None:
        train_emb, train_rows, test_x, test_rows = self._last
        with torch.no_grad(), autocast_for(test_x.device):
            test_emb = self.model(test_x).embeddings
        self.memory.update(test_emb, test_rows)
        self.memory.update(train_emb, train_rows)
        self._last = None

    def config(self) -> dict:
        return {**super().config(), "ratio": self.ratio, "inner_lr": self.inner_lr,
                "inner_milestones": list(self.inner_milestones),
                "second_order": self.second_order}
