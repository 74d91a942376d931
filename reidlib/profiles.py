"""Run profiles: how big a world, which network, how long to train.

``smoke`` exists for CI (every step runs once; its numbers mean nothing), ``quick``
gives meaningful numbers on a laptop CPU and ``full`` is the papers' setting on a GPU
(docs/course_plan.md, "Profiles"). ``REID_PROFILE`` chooses one; the default is ``full``
where CUDA is present and ``quick`` elsewhere.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Profile:
    """The few numbers that differ between profiles; everything else is an argument."""

    name: str
    height: int  # rendered / resized image height
    width: int
    arch: str  # backbone name for reidlib.models.build_model
    epochs: int  # supervised training epochs
    p: int  # identities per batch (P x K sampling)
    k: int  # images per identity per batch
    lr: float

    @property
    def image_size(self) -> tuple[int, int]:
        return (self.height, self.width)


PROFILES: dict[str, Profile] = {
    "smoke": Profile("smoke", 64, 32, "small", epochs=1, p=8, k=4, lr=1e-3),
    # quick: 27 supervised epochs = the plateau of the validation mAP (held-out training
    # identities, never the test split) traced over 40 epochs by
    # benchmarks/upper_bound_epochs.py (benchmarks/results/upper-bound-quick.json).
    "quick": Profile("quick", 64, 32, "small", epochs=27, p=16, k=4, lr=1e-3),
    "full": Profile("full", 256, 128, "resnet50", epochs=60, p=16, k=4, lr=3.5e-4),
}


def get_profile(name: str | None = None) -> Profile:
    """Return the profile called ``name``, else ``$REID_PROFILE``, else the machine default."""
    if name is None:
        name = os.environ.get("REID_PROFILE") or ("full" if torch.cuda.is_available() else "quick")
    try:
        return PROFILES[name]
    except KeyError:
        valid = ", ".join(sorted(PROFILES))
        raise ValueError(f"unknown profile {name!r}: expected one of {valid}") from None
