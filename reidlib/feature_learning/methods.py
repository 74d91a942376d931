"""The methods of survey §3.2, each a few lines on top of :func:`train_unsupervised`.

- :class:`PseudoLabelClassification` (PUL / BUC / HCT style): CE in the Eq. 12 form and /
  or the batch-hard triplet of Eq. 5 on the pseudo-labels;
- :class:`MemoryContrast` ``"instance"`` (ECN): an exemplar memory with k-NN soft positives
  (Eq. 6); ``"cluster"`` (Cluster Contrast): a centroid memory and InfoNCE (Eq. 7);
  ``"hybrid"`` (SpCL): centroids and outlier instances in one memory;
- :class:`MutualMeanTeaching` (MMT): two nets taught by each other's mean teacher;
- :class:`PartContrast` (SSG / PAST): global, upper and lower features, each clustered;
- :func:`credible_selector` (DCML): only credible samples train (the loop's ``select``).

Every class has the small interface that :mod:`reidlib.feature_learning.loop` documents.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from reidlib.data.imageset import ImageSet
from reidlib.feature_learning.mean_teacher import MeanTeacherPair
from reidlib.feature_learning.memory import ClusterMemory, HybridMemory, InstanceMemory
from reidlib.feature_learning.parts import BRANCHES, PartReidModel
from reidlib.feature_learning.selection import credible_mask
from reidlib.models.heads import ReidModel
from reidlib.pseudo_labels.loop import drop_small_clusters
from reidlib.pseudo_labels.quality import OUTLIER
from reidlib.training.features import autocast_for, model_device
from reidlib.training.losses import (
    batch_hard_triplet_loss,
    cross_entropy_label_smooth,
    soft_cross_entropy,
    soft_triplet_loss,
)


def _check_model(model) -> ReidModel:
    if not isinstance(model, ReidModel):
        raise TypeError(f"expected a reidlib ReidModel (build_model(...)), got "
                        f"{type(model).__name__}")
    return model


def class_count(labels: np.ndarray) -> int:
    """Number of pseudo-identities (label -1 = outlier, not a class)."""
    return len(np.unique(labels[labels != OUTLIER]))


def centroid_classifier(model: ReidModel, features: torch.Tensor, labels: np.ndarray) -> None:
    """A fresh classifier whose rows are the L2-normalised cluster centroids (MMT's init).

    Starting from the centroids, the classifier agrees with the clustering from the first
    step instead of spending the epoch's first batches learning it from random weights.
    """
    keep = labels != OUTLIER
    _, inverse = np.unique(labels[keep], return_inverse=True)
    model.reset_classifier(int(inverse.max()) + 1)
    index = torch.as_tensor(inverse, device=features.device)
    sums = torch.zeros(model.num_classes, features.shape[1], device=features.device)
    sums.index_add_(0, index, features[torch.as_tensor(keep, device=features.device)].float())
    with torch.no_grad():
        model.classifier.weight.copy_(F.normalize(sums, dim=1))


class SingleModelMethod:
    """What the methods that train one network share: it is trained, clustered and scored.

    Subclasses set ``name`` and write ``start_epoch`` and ``loss``; the loop's interface
    is in :mod:`reidlib.feature_learning.loop`.
    """

    name = "method"
    needs_clusters = True
    uses_outliers = False

    def __init__(self, model: nn.Module):
        self.model = model

    def parameters(self):
        return list(self.model.parameters())

    def feature_model(self) -> nn.Module:
        return self.model

    def models(self) -> list[nn.Module]:
        return [self.model]

    def after_step(self) -> None:
        pass


class PseudoLabelClassification(SingleModelMethod):
    """Pseudo-labels as identities: CE with label smoothing and / or batch-hard triplet.

    The Eq. 12-form cross-entropy and the Eq. 5 triplet of survey §3.2 (PUL, BUC, HCT,
    chapter 0's recipe on pseudo-labels). A fresh classifier each epoch, because the number
    of pseudo-identities changes at every clustering; it starts from the cluster centroids
    (:func:`centroid_classifier`, as MMT does) rather than from random weights, whose large
    first gradients would undo the backbone when the loop re-clusters every epoch.
    """

    def __init__(self, model: ReidModel, ce: bool = True, triplet: bool = True,
                 margin: float | None = 0.3, epsilon: float = 0.1):
        if not (ce or triplet):
            raise ValueError("choose at least one loss: ce=True and / or triplet=True")
        super().__init__(_check_model(model))
        self.ce, self.triplet, self.margin, self.epsilon = ce, triplet, margin, epsilon
        self.name = " + ".join(n for n, on in (("CE", ce), ("triplet", triplet)) if on)

    def start_epoch(self, features: torch.Tensor, labels: np.ndarray, train: ImageSet) -> None:
        if self.ce:
            centroid_classifier(self.model, features, labels)
        else:
            self.model.reset_classifier(0)

    def loss(self, batch):
        with autocast_for(batch.images.device):
            out = self.model(batch.augmented())
        parts = {}
        if self.ce:
            parts["ce"] = cross_entropy_label_smooth(out.logits.float(), batch.targets,
                                                     self.epsilon)
        if self.triplet:
            parts["triplet"] = batch_hard_triplet_loss(out.features, batch.targets, self.margin)
        return sum(parts.values()), parts


MEMORIES = ("instance", "cluster", "hybrid")


class MemoryContrast(SingleModelMethod):
    """Contrast each embedding with a memory of targets (survey §3.2, Eq. 6-7).

    ``memory``: "instance" (ECN: one slot per image, kept across epochs; trained on random
    batches, the clustering is only scored), "cluster" (Cluster Contrast: centroids rebuilt
    from the new clustering each epoch), "hybrid" (SpCL: instance features kept across
    epochs, targets = centroids + outliers, outliers trained on too). ``momentum`` and
    ``temperature`` default to each paper's value; ``**memory_args`` go to the memory (e.g.
    ``k`` for ECN's neighbours, ``hard`` for Cluster Contrast's hard update).
    """

    DEFAULT_MOMENTUM = {"instance": 0.5, "cluster": 0.1, "hybrid": 0.2}
    NAMES = {"instance": "ECN (exemplar memory)", "cluster": "Cluster Contrast",
             "hybrid": "SpCL (hybrid memory)"}

    def __init__(self, model: ReidModel, memory: str = "cluster", momentum: float | None = None,
                 temperature: float = 0.05, **memory_args):
        if memory not in MEMORIES:
            raise ValueError(f"memory must be one of {MEMORIES}, got {memory!r}")
        super().__init__(_check_model(model))
        self.kind = memory
        self.momentum = self.DEFAULT_MOMENTUM[memory] if momentum is None else momentum
        self.temperature, self.memory_args = temperature, memory_args
        self.name = self.NAMES[memory]
        self.needs_clusters = memory != "instance"
        self.uses_outliers = memory == "hybrid"
        self.memory: nn.Module | None = None
        self._last: tuple[torch.Tensor, torch.Tensor] | None = None
        self.model.reset_classifier(0)  # the memory replaces the classifier

    def start_epoch(self, features: torch.Tensor, labels: np.ndarray, train: ImageSet) -> None:
        args = {"momentum": self.momentum, "temperature": self.temperature, **self.memory_args}
        if self.kind == "cluster":
            self.memory = ClusterMemory(features, labels, **args)
        elif self.memory is None:  # instance features persist across epochs (ECN, SpCL)
            self.memory = (InstanceMemory(features, **args) if self.kind == "instance"
                           else HybridMemory(features, labels, **args))
        elif self.kind == "hybrid":
            self.memory.set_labels(labels)

    def loss(self, batch):
        with autocast_for(batch.images.device):
            out = self.model(batch.augmented())
        loss = self.memory(out.embeddings, batch.indices)
        self._last = (out.embeddings.detach(), batch.indices)
        return loss, {"memory": loss}

    def after_step(self) -> None:
        self.memory.update(*self._last)


class _AverageOf(nn.Module):
    """Eval-mode embedding averaged over several networks (MMT clusters on its two teachers)."""

    def __init__(self, *networks: nn.Module):
        super().__init__()
        self.networks = nn.ModuleList(networks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([net(x).float() for net in self.networks]).mean(0)


class MutualMeanTeaching:
    """MMT (Ge et al., ICLR 2020; survey §3.2): two networks, each with a mean teacher.

    Each student learns from the hard pseudo-labels (CE + softmax-triplet) and from the soft
    outputs of the *other* student's temporal-average teacher (soft CE + soft triplet), so
    the errors of one network's pseudo-labels are damped by the other's memory:

        L = (1 - w_ce) CE + w_ce soft-CE + (1 - w_tri) triplet + w_tri soft-triplet,

    summed over both students (MMT's weights w_ce = 0.5, w_tri = 0.8). Clustering uses the
    average of the two teachers' features. MMT starts its two nets from two source models
    pre-trained with different seeds; here ``model2`` defaults to a copy of ``model`` and
    the two diverge through their own augmentations and batches' dropout of identities.
    """

    def __init__(self, model: ReidModel, model2: ReidModel | None = None, alpha: float = 0.999,
                 ce_soft_weight: float = 0.5, triplet_soft_weight: float = 0.8,
                 epsilon: float = 0.1):
        model = _check_model(model)
        model2 = copy.deepcopy(model) if model2 is None else _check_model(model2)
        # teachers run in train mode like MMT's, so they keep their own BN statistics
        self.pairs = [MeanTeacherPair.from_student(m, alpha=alpha, buffers="keep")
                      for m in (model, model2)]
        self.w_ce, self.w_tri, self.epsilon = ce_soft_weight, triplet_soft_weight, epsilon
        self.name = "MMT"
        self.needs_clusters, self.uses_outliers = True, False
        self._features = _AverageOf(*(p.teacher for p in self.pairs))

    @property
    def model(self) -> ReidModel:
        """The network to evaluate: the first mean teacher (MMT reports a teacher)."""
        return self.pairs[0].teacher

    def parameters(self):
        return [q for p in self.pairs for q in p.student.parameters()]

    def feature_model(self) -> nn.Module:
        return self._features

    def models(self) -> list[nn.Module]:
        return [m for p in self.pairs for m in (p.student, p.teacher)]

    def start_epoch(self, features: torch.Tensor, labels: np.ndarray, train: ImageSet) -> None:
        for pair in self.pairs:
            for net in (pair.student, pair.teacher):
                centroid_classifier(net, features, labels)
            for q in pair.teacher.parameters():
                q.requires_grad_(False)

    def loss(self, batch):
        outs, teachers = [], []
        with autocast_for(batch.images.device):
            for pair in self.pairs:
                x = batch.augmented()  # each network sees its own view
                outs.append(pair.student(x))
                with torch.no_grad():
                    teachers.append(pair.teacher(x))
        parts = {"ce": 0.0, "soft_ce": 0.0, "triplet": 0.0, "soft_triplet": 0.0}
        for me, peer in ((0, 1), (1, 0)):
            out, teacher = outs[me], teachers[peer]
            parts["ce"] += cross_entropy_label_smooth(out.logits.float(), batch.targets,
                                                      self.epsilon)
            parts["soft_ce"] += soft_cross_entropy(out.logits, teacher.logits)
            parts["triplet"] += soft_triplet_loss(out.features, batch.targets, None)
            parts["soft_triplet"] += soft_triplet_loss(out.features, batch.targets,
                                                       teacher.features)
        loss = ((1 - self.w_ce) * parts["ce"] + self.w_ce * parts["soft_ce"]
                + (1 - self.w_tri) * parts["triplet"] + self.w_tri * parts["soft_triplet"])
        return loss, parts

    def after_step(self) -> None:
        for pair in self.pairs:
            pair.update()


class PartContrast(SingleModelMethod):
    """Global + upper- and lower-body features, each clustered and contrasted on its own.

    SSG (Fu et al., ICCV 2019) and PAST (Zhang et al., ICCV 2019), survey §3.2: a person's
    halves give extra, partly independent evidence, so each branch gets its own clustering
    (``cluster``) and its own cluster memory (Cluster Contrast's, Eq. 7); the loss is the
    mean over branches, each on the rows that its clustering did not leave out. The loop
    samples batches by the clustering of the concatenated features.
    """

    def __init__(self, model: PartReidModel | ReidModel,
                 cluster: Callable[[np.ndarray], np.ndarray], momentum: float = 0.1,
                 temperature: float = 0.05):
        if isinstance(model, ReidModel):
            model = PartReidModel(model)
        if not isinstance(model, PartReidModel):
            raise TypeError(f"expected a PartReidModel or ReidModel, got {type(model).__name__}")
        model.output = "concat"
        model.base.reset_classifier(0)
        super().__init__(model)
        self.cluster, self.momentum, self.temperature = cluster, momentum, temperature
        self.name = "parts (global + upper + lower)"
        self.memories: dict[str, ClusterMemory] = {}
        self.branch_labels: dict[str, torch.Tensor] = {}
        self._last: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def start_epoch(self, features: torch.Tensor, labels: np.ndarray, train: ImageSet) -> None:
        device = model_device(self.model)
        # The loop clustered the "concat" output [g, u, l] / sqrt(3) (each block unit length,
        # then the whole row): each block, re-normalised, is that branch's feature, so no
        # second pass over the images is needed.
        if self.model.output != "concat" or features.shape[1] != 3 * self.model.embedding_dim:
            raise ValueError(
                f"PartContrast clusters the 'concat' output (3 x {self.model.embedding_dim} "
                f"columns); got {features.shape[1]} columns with output={self.model.output!r}"
            )
        blocks = features.split(self.model.embedding_dim, dim=1)
        self.memories, self.branch_labels = {}, {}
        for name, block in zip(BRANCHES, blocks, strict=True):
            f = F.normalize(block.float(), dim=1)
            branch = drop_small_clusters(np.asarray(self.cluster(f.cpu().numpy())))
            if class_count(branch) == 0:
                continue  # this branch found no cluster this epoch: it sits the epoch out
            self.memories[name] = ClusterMemory(f, branch, momentum=self.momentum,
                                                temperature=self.temperature)
            self.branch_labels[name] = torch.as_tensor(branch, device=device)

    def loss(self, batch):
        with autocast_for(batch.images.device):
            out = self.model(batch.augmented())
        branches = out.branches()
        parts, self._last = {}, {}
        for name, memory in self.memories.items():
            keep = self.branch_labels[name][batch.indices] != OUTLIER
            emb, rows = branches[name].embeddings[keep], batch.indices[keep]
            if len(rows):
                parts[name] = memory(emb, rows)
                self._last[name] = (emb.detach(), rows)
        if not parts:  # every row of the batch is an outlier in every branch
            zero = sum(q.sum() * 0.0 for q in self.model.parameters())
            return zero, {}
        return sum(parts.values()) / len(parts), parts

    def after_step(self) -> None:
        for name, (emb, rows) in self._last.items():
            self.memories[name].update(emb, rows)


def credible_selector(k: int = 10, knn_threshold: float | None = None,
                      proto_threshold: float | None = None, knn: str = "similarity"):
    """DCML's credible-sample selection as the loop's ``select`` (survey §3.2).

    Returns ``(features, labels) -> labels`` where samples below either threshold (see
    :func:`reidlib.feature_learning.selection.credible_mask`) become -1, so they neither
    shape the memory nor enter a batch this epoch.
    """
    def select(features: np.ndarray, labels: np.ndarray) -> np.ndarray:
        mask = credible_mask(features, labels, k=k, knn_threshold=knn_threshold,
                             proto_threshold=proto_threshold, knn=knn)
        return np.where(mask, labels, OUTLIER)

    return select
