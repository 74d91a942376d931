"""Global + part features, each clustered and contrasted on its own (SSG / PAST, survey §3.2)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from reidlib.feature_learning.memory import ClusterMemory
from reidlib.feature_learning.parts import BRANCHES, PartReidModel
from reidlib.models.heads import ReidModel
from reidlib.pseudo_labels.labels import OUTLIER, class_count, drop_small_clusters
from reidlib.training.features import autocast_for, model_device
from reidlib.training.method import Method


class PartContrast(Method):
    """Global + upper- and lower-body features, each clustered and contrasted on its own.

    SSG (Fu et al., ICCV 2019) and PAST (Zhang et al., ICCV 2019), survey §3.2: a person's
    halves give extra, partly independent evidence, so each branch gets its own clustering
    (``cluster``) and its own cluster memory (Cluster Contrast's, §3.3 Eq. 6-7); the loss is the
    mean over branches, each on the rows that its clustering did not leave out. The loop
    samples batches by the clustering of the concatenated features (the reference sampler,
    as Cluster Contrast).
    """

    name = "parts (global + upper + lower)"

    def __init__(self, model: PartReidModel | ReidModel,
                 cluster: Callable[[np.ndarray], np.ndarray], momentum: float = 0.1,
                 temperature: float = 0.05, sampler: str = "multi_gallery",
                 other_cameras: bool = True):
        if isinstance(model, ReidModel):
            model = PartReidModel(model)
        if not isinstance(model, PartReidModel):
            raise TypeError(f"expected a PartReidModel or ReidModel, got {type(model).__name__}")
        model.output = "concat"
        model.base.reset_classifier(0)
        super().__init__(model, sampler=sampler, other_cameras=other_cameras)
        self.cluster, self.momentum, self.temperature = cluster, momentum, temperature
        self.memories: dict[str, ClusterMemory] = {}
        self.branch_labels: dict[str, torch.Tensor] = {}
        self._last: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def new_labels(self, features, labels, train) -> None:
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

    def after_step(self, batch) -> None:
        for name, (emb, rows) in self._last.items():
            self.memories[name].update(emb, rows)

    def config(self) -> dict:
        return {**super().config(), "momentum": self.momentum, "temperature": self.temperature}

    def state_dict(self) -> dict:
        return {**super().state_dict(),
                "memories": {name: {"buffers": m.state_dict(), "settings": m.settings()}
                             for name, m in self.memories.items()},
                "branch_labels": dict(self.branch_labels)}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        device = model_device(self.model)
        self.memories = {name: ClusterMemory.from_state(m["buffers"], **m["settings"]).to(device)
                         for name, m in state["memories"].items()}
        self.branch_labels = {name: t.to(device) for name, t in state["branch_labels"].items()}
