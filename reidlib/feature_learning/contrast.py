"""What the memory-based methods of survey §3.2 share (the look-up table of §3.3, Eq. 6-7).

ECN, Cluster Contrast and SpCL differ in what their memory holds and when it is rebuilt;
each is a small class on top of :class:`MemoryMethod`, which trains one network with no
classifier, computes the memory loss of a batch's embeddings, moves the memory after each
optimiser step and saves / restores the memory with a checkpoint.
"""

from __future__ import annotations

import torch

from reidlib.training.classification import check_reid_model
from reidlib.training.features import autocast_for, model_device
from reidlib.training.method import Method


class MemoryMethod(Method):
    """One network contrasted with ``self.memory`` (built by the subclass's ``new_labels``)."""

    memory_class: type = None

    def __init__(self, model, momentum: float, temperature: float, **sampler):
        super().__init__(check_reid_model(model), **sampler)
        self.momentum, self.temperature = float(momentum), float(temperature)
        self.memory = None
        self._last: tuple[torch.Tensor, torch.Tensor] | None = None
        self.model.reset_classifier(0)  # the memory replaces the classifier

    def loss(self, batch):
        with autocast_for(batch.images.device):
            out = self.model(batch.augmented())
        loss = self.memory(out.embeddings, batch.indices)
        self._last = (out.embeddings.detach(), batch.indices)
        return loss, {"memory": loss}

    def after_step(self, batch) -> None:
        self.memory.update(*self._last)

    def config(self) -> dict:
        return {**super().config(), "momentum": self.momentum, "temperature": self.temperature}

    def state_dict(self) -> dict:
        memory = None if self.memory is None else {"buffers": self.memory.state_dict(),
                                                   "settings": self.memory.settings()}
        return {**super().state_dict(), "memory": memory}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        saved = state["memory"]
        self.memory = None if saved is None else self.memory_class.from_state(
            saved["buffers"], **saved["settings"]).to(model_device(self.model))
