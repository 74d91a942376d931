"""ECN (Zhong et al., "Invariance Matters: Exemplar Memory for Domain Adaptive Person
Re-identification", CVPR 2019): one memory slot per training image (survey §3.3, the
look-up-table loss of Eq. 6-7), no clustering at all.

As ECN's code does it:

- the slots start at zero and move after each step, ``m <- a m + (1 - a) x`` then back to
  unit length, with ``a = 0.01 x epoch`` (so in epoch 0 a slot becomes the new feature);
- exemplar invariance alone (each image against its own slot) for epochs 0-4, then the
  neighbourhood term too (k = 6 soft positives, the own slot counted among them;
  :class:`~reidlib.feature_learning.memory.InstanceMemory`);
- batches are plain random images (no identities to sample by).

Deliberate differences: ECN is a domain-adaptation method that also trains on labelled
source images (chapter 4); here it is its target-domain, unsupervised part. ECN uses SGD
(lr 0.1 for new layers, 0.01 for the backbone); the course trains every method with Adam.
"""

from __future__ import annotations

import torch

from reidlib.data.sampler import shuffled_batches
from reidlib.feature_learning.contrast import MemoryMethod
from reidlib.feature_learning.memory import InstanceMemory
from reidlib.training.features import model_device


class ECN(MemoryMethod):
    """ECN's exemplar memory with its schedules (module docstring)."""

    name = "ECN (exemplar memory)"
    memory_class = InstanceMemory
    recipe = {"epochs": 60, "lr": 3.5e-4, "weight_decay": 5e-4, "decay": "all",
              "schedule": "step", "milestones": (40,), "p": 32, "k": 4}

    def __init__(self, model, k: int = 6, temperature: float = 0.05,
                 momentum_per_epoch: float = 0.01, neighbour_epoch: int = 5):
        super().__init__(model, 0.0, temperature)
        self.k, self.momentum_per_epoch = k, momentum_per_epoch
        self.neighbour_epoch = neighbour_epoch

    def new_labels(self, features, labels, train) -> None:
        if self.memory is None:  # the slots persist; labels are only scored
            zeros = torch.zeros(len(labels), self.model.feature_dim,
                                device=model_device(self.model))
            self.memory = InstanceMemory(zeros, momentum=0.0, temperature=self.temperature,
                                         k=0)

    def start_epoch(self, epoch: int) -> None:
        self.memory.momentum = min(1.0, self.momentum_per_epoch * epoch)
        self.memory.k = self.k if epoch >= self.neighbour_epoch else 0

    def batches(self, labels, camids, *, p, k, iters, seed, epoch):
        return shuffled_batches(len(labels), p * k, seed, epoch, iters)

    def config(self) -> dict:
        return {**super().config(), "k": self.k, "momentum_per_epoch": self.momentum_per_epoch,
                "neighbour_epoch": self.neighbour_epoch}
