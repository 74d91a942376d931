"""MMT (Ge, Chen, Li, "Mutual Mean-Teaching: pseudo label refinery for unsupervised domain
adaptation on person re-identification", ICLR 2020; survey §3.2): two networks, each taught
by the other's temporal-average teacher, on top of the clustering loop.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from reidlib.feature_learning.mean_teacher import MeanTeacherPair
from reidlib.models.heads import ReidModel
from reidlib.training.classification import centroid_classifier, check_reid_model
from reidlib.training.features import autocast_for
from reidlib.training.losses import (
    cross_entropy_label_smooth,
    soft_cross_entropy,
    soft_triplet_loss,
)
from reidlib.training.method import Method


class _AverageOf(nn.Module):
    """Eval-mode embedding: the mean of several networks' L2-normalised embeddings.

    MMT clusters on ``(f_1 + f_2) / 2`` of its two teachers' features, each L2-normalised
    (its models return normalised features in eval mode).
    """

    def __init__(self, *networks: nn.Module):
        super().__init__()
        self.networks = nn.ModuleList(networks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([F.normalize(net(x).float(), dim=1) for net in self.networks]).mean(0)


class MutualMeanTeaching(Method):
    """MMT (Ge et al., ICLR 2020; survey §3.2): two networks, each with a mean teacher.

    Each student learns from the hard pseudo-labels (CE + softmax-triplet) and from the soft
    outputs of the *other* student's temporal-average teacher (soft CE + soft triplet), so
    the errors of one network's pseudo-labels are damped by the other's memory:

        L = (1 - w_ce) CE + w_ce soft-CE + (1 - w_tri) triplet + w_tri soft-triplet,

    summed over both students (MMT's weights w_ce = 0.5, w_tri = 0.8). Clustering uses the
    average of the two teachers' L2-normalised features. MMT starts its two nets from two
    source models pre-trained with different seeds; here ``model2`` defaults to a copy of
    ``model`` and the two diverge through their own augmentations (chapter 4 runs MMT with
    two source models, as the paper). Recipe (``MutualMeanTeaching.recipe``, MMT's DBSCAN
    script): batch 64 as 16 x 4 from the reference sampler, 400 iterations per epoch, 40
    epochs, Adam 3.5e-4 at a constant rate.
    """

    name = "MMT"
    recipe = {"epochs": 40, "iters": 400, "lr": 3.5e-4, "weight_decay": 5e-4, "decay": "all",
              "schedule": "constant", "p": 16, "k": 4}

    def __init__(self, model: ReidModel, model2: ReidModel | None = None, alpha: float = 0.999,
                 ce_soft_weight: float = 0.5, triplet_soft_weight: float = 0.8,
                 epsilon: float = 0.1, sampler: str = "multi_gallery",
                 other_cameras: bool = True):
        model = check_reid_model(model)
        model2 = copy.deepcopy(model) if model2 is None else check_reid_model(model2)
        self.set_sampler(sampler, other_cameras)
        # teachers run in train mode like MMT's, so they keep their own BN statistics
        self.pairs = [MeanTeacherPair.from_student(m, alpha=alpha, buffers="keep")
                      for m in (model, model2)]
        self.alpha = alpha
        self.w_ce, self.w_tri, self.epsilon = ce_soft_weight, triplet_soft_weight, epsilon
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

    def new_labels(self, features, labels, train) -> None:
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
            parts["ce"] += cross_entropy_label_smooth(out.logits.float(), batch.labels,
                                                      self.epsilon)
            parts["soft_ce"] += soft_cross_entropy(out.logits, teacher.logits)
            parts["triplet"] += soft_triplet_loss(out.features, batch.labels, None)
            parts["soft_triplet"] += soft_triplet_loss(out.features, batch.labels,
                                                       teacher.features)
        loss = ((1 - self.w_ce) * parts["ce"] + self.w_ce * parts["soft_ce"]
                + (1 - self.w_tri) * parts["triplet"] + self.w_tri * parts["soft_triplet"])
        return loss, parts

    def after_step(self, batch) -> None:
        for pair in self.pairs:
            pair.update()

    def state_dict(self) -> dict:
        return {**super().state_dict(), "steps": [pair.step for pair in self.pairs]}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        for pair, step in zip(self.pairs, state["steps"], strict=True):
            pair.step = step

    def config(self) -> dict:
        return {**super().config(), "alpha": self.alpha, "w_ce": self.w_ce,
                "w_tri": self.w_tri, "epsilon": self.epsilon}
