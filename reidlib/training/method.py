"""What every method of the course shares: the interface that :func:`reidlib.training.fit` calls.

A method is one small class per paper. It names the networks it trains and evaluates,
builds what it needs when labels change (a classifier, a memory), chooses its batches,
computes the loss of a batch and updates whatever is not trained by backpropagation (a
memory, a mean teacher). Subclasses write ``loss`` and, where they need them, the hooks::

    class MyMethod(Method):
        name = "my method"
        def new_labels(self, features, labels, train): ...   # labels (N,) 0..C-1, -1 = none
        def loss(self, batch): return loss, {"part": value}  # batch: reidlib.training.Batch
        def after_step(self, batch): ...                     # memory / teacher updates

``batch.camids`` and ``batch.domains`` are there for camera-aware and domain-adaptation
methods; ``batches`` may be overridden to feed the loop other batches (a camera-aware
sampler, source + target batches).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from reidlib.data.sampler import RandomIdentitySampler, iteration_batches

SAMPLERS = ("pk", "multi_gallery")


def load_model_state(model: nn.Module, state: dict) -> None:
    """``model.load_state_dict(state)`` after resizing every classifier to the saved one.

    Classifiers are rebuilt whenever the number of pseudo-identities changes, so a saved
    model may hold one of another size (or none) than the model it is loaded into.
    """
    from reidlib.models.backbones import load_state_dict_checked

    for name, module in model.named_modules():
        if hasattr(module, "reset_classifier"):
            key = f"{name}.classifier.weight" if name else "classifier.weight"
            size = int(state[key].shape[0]) if key in state else 0
            if getattr(module, "num_classes", None) != size:
                module.reset_classifier(size)
    load_state_dict_checked(model, state, f"saved {type(model).__name__}")


class Method:
    """Base class: one network, trained, clustered and evaluated (module docstring).

    ``sampler``: ``"pk"`` (P x K batches, one pass over the labelled rows per epoch: our
    chapter-0 recipe) or ``"multi_gallery"`` (the reference samplers of SpCL, MMT and
    Cluster Contrast: ``iters`` batches per epoch, each label's ``k`` images preferring
    other cameras than the anchor's when ``other_cameras`` is true; see
    :func:`reidlib.data.sampler.multi_gallery_pass`).
    """

    name = "method"
    #: the paper's full-profile settings, as arguments of :func:`reidlib.training.fit`
    recipe: dict = {}

    def __init__(self, model: nn.Module, sampler: str = "pk", other_cameras: bool = False):
        self.model = model
        self.set_sampler(sampler, other_cameras)

    def set_sampler(self, sampler: str, other_cameras: bool) -> None:
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
        self.sampler, self.other_cameras = sampler, bool(other_cameras)

    # --- what the loop trains, clusters and evaluates
    def parameters(self) -> list[nn.Parameter]:
        return list(self.model.parameters())

    def models(self) -> list[nn.Module]:
        return [self.model]

    def feature_model(self) -> nn.Module:
        return self.model

    def cluster_features(self) -> torch.Tensor | None:
        """Features to cluster instead of extracting them afresh (None: extract)."""
        return None

    # --- hooks
    def new_labels(self, features: torch.Tensor | None, labels: np.ndarray, train) -> None:
        """Labels changed: (N,) 0..C-1, -1 = not trained on; ``features``: (N, D) on the
        model's device, those clustered (or, with fixed labels, extracted once)."""

    def start_epoch(self, epoch: int) -> None:
        """Called before every epoch's batches (per-epoch schedules)."""

    def batches(self, labels: np.ndarray, camids: np.ndarray, *, p: int, k: int,
                iters: int | None, seed: int, epoch: int) -> list[np.ndarray]:
        """The row indices of each batch of ``epoch``; depends only on (seed, epoch)."""
        if self.sampler == "multi_gallery":
            return iteration_batches(labels, camids, p * k, k, iters, seed, epoch,
                                     other_cameras=self.other_cameras)
        if iters is not None:
            raise ValueError("the 'pk' sampler runs one pass per epoch; iters applies to "
                             "sampler='multi_gallery'")
        return RandomIdentitySampler(labels, p, k, seed=seed).batches(epoch)

    def loss(self, batch) -> tuple[torch.Tensor, dict]:
        raise NotImplementedError

    def after_step(self, batch) -> None:
        """After each optimiser step (memory and teacher updates)."""

    # --- checkpoints and run settings
    def config(self) -> dict:
        """The settings a checkpoint must agree on to be resumed."""
        return {"class": type(self).__name__, "sampler": self.sampler,
                "other_cameras": self.other_cameras}

    def state_dict(self) -> dict:
        """Everything a resumed run needs; subclasses add their memories."""
        return {"models": [m.state_dict() for m in self.models()]}

    def load_state_dict(self, state: dict) -> None:
        for model, saved in zip(self.models(), state["models"], strict=True):
            load_model_state(model, saved)
