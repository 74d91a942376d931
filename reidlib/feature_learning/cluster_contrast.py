"""Cluster Contrast (Dai et al., "Cluster Contrast for Unsupervised Person
Re-Identification", 2021): a memory of one centroid per pseudo-identity (survey §3.2; the
look-up-table loss of §3.3, Eq. 6-7, with centroids as the table).

Each epoch: cluster (DBSCAN on the Jaccard distance), drop the outliers, build the memory
from the cluster means of the clustered features, then train on the clustered images only,
with InfoNCE against every centroid; after each step the batch's centroids move towards its
embeddings (momentum 0.1). The published recipe (``ClusterContrast.recipe``): ResNet-50 with
GeM, 256x128, batch 256 as 16 pseudo-identities x 16 images drawn by the reference sampler
(which prefers other cameras than the anchor's), 200 iterations per epoch, Adam 3.5e-4 with
weight decay 5e-4 on every parameter, StepLR(20) over 50 epochs, temperature 0.05, Jaccard
k1 = 30 / k2 = 6, DBSCAN eps 0.6 (min_samples 4).
"""

from __future__ import annotations

from reidlib.feature_learning.contrast import MemoryMethod
from reidlib.feature_learning.memory import ClusterMemory


class ClusterContrast(MemoryMethod):
    """Cluster Contrast: a fresh centroid memory at every clustering, trained with InfoNCE.

    ``hard=True``: the paper's hard update (each centroid moves towards its least similar
    batch member). ``sampler`` / ``other_cameras``: see :class:`reidlib.training.Method`;
    the reference script's sampler uses camera ids (``other_cameras=True``).
    """

    name = "Cluster Contrast"
    memory_class = ClusterMemory
    recipe = {"epochs": 50, "iters": 200, "lr": 3.5e-4, "weight_decay": 5e-4, "decay": "all",
              "schedule": "step", "milestones": (20, 40), "p": 16, "k": 16}

    def __init__(self, model, momentum: float = 0.1, temperature: float = 0.05,
                 hard: bool = False, sampler: str = "multi_gallery",
                 other_cameras: bool = True):
        super().__init__(model, momentum, temperature, sampler=sampler,
                         other_cameras=other_cameras)
        self.hard = bool(hard)

    def new_labels(self, features, labels, train) -> None:
        self.memory = ClusterMemory(features, labels, momentum=self.momentum,
                                    temperature=self.temperature, hard=self.hard)

    def config(self) -> dict:
        return {**super().config(), "hard": self.hard}
