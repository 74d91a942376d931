"""Global plus upper- and lower-body features (survey §3.2: SSG [56], PAST [66]).

SSG (Fu, Wei, Wang, Zhou, Shi, Huang, "Self-similarity grouping: a simple unsupervised cross
domain adaptation approach for person re-identification", ICCV 2019) describes a person by
three features: the whole image, the upper body and the lower body. It clusters each feature
separately, so an image gets three pseudo-labels, and trains each feature with a triplet loss
on its own labels. A wrong global cluster (two people in the same coat) is then partly
corrected by the lower-body cluster (different trousers). PAST (Zhang, Cao, Shen, Wang, Xu,
"Self-training with progressive augmentation framework for unsupervised cross-domain person
re-identification", ICCV 2019) also trains on such local features with triplet losses.

The parts are the horizontal halves of the backbone's feature map (rows, top to bottom),
each pooled by its own pooling layer (a GeM keeps its own learnt p) and given its own BNNeck.
The global branch is the wrapped ``ReidModel`` itself, unchanged: a ``PartReidModel``'s
global embedding equals that of the ``ReidModel`` it wraps. When the map has an odd number of
rows, the middle row goes to both halves, as ``nn.AdaptiveAvgPool2d((2, 1))`` would do.

Eval mode returns, per ``output``:

- "concat" (default): ``[global, upper, lower]``, each L2-normalised, concatenated (B, 3D).
  After ``extract_features`` normalises the whole row again, the cosine similarity of two
  such rows is the mean of the three per-branch cosine similarities, so each branch weighs
  the same in retrieval (SSG's test-time descriptor is this concatenation).
- "global" | "upper" | "lower": that branch's embedding alone (B, D).
- "raw": the three embeddings concatenated without normalisation (B, 3D); what
  :func:`extract_part_features` uses to get all three branches in one pass.
"""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from reidlib.models.heads import ReidModel, ReidOutput, bnneck, check_image_batch
from reidlib.training.features import extract_features, model_device

BRANCHES = ("global", "upper", "lower")
OUTPUTS = ("concat", *BRANCHES, "raw")


def split_halves(feature_map: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Upper rows [0, ceil(h/2)) and lower rows [floor(h/2), h) of a (B, C, h, w) map."""
    if feature_map.ndim != 4:
        raise ValueError(f"expected a (B, C, h, w) feature map, got shape "
                         f"{tuple(feature_map.shape)}")
    h = feature_map.shape[2]
    if h < 2:
        raise ValueError(f"the feature map has {h} row(s); upper and lower parts need at least "
                         "2 (use taller inputs or a backbone with last_stride=1)")
    return feature_map[:, :, : (h + 1) // 2], feature_map[:, :, h // 2 :]


@dataclass
class PartOutput(ReidOutput):
    """What a ``PartReidModel`` returns in training mode.

    ``features`` / ``embeddings`` / ``logits`` are the global branch's, as in ``ReidOutput``
    (so code written for a ``ReidModel`` keeps working); ``upper`` and ``lower`` hold each
    part's pre-BN ``features`` and post-BN ``embeddings`` (parts have no classifier: SSG and
    PAST train them with triplet losses only).
    """

    upper: ReidOutput | None = None
    lower: ReidOutput | None = None

    def branches(self) -> dict[str, ReidOutput]:
        """{"global": ..., "upper": ..., "lower": ...}, one ``ReidOutput`` per branch."""
        whole = ReidOutput(self.features, self.embeddings, self.logits)
        return {"global": whole, "upper": self.upper, "lower": self.lower}


class PartReidModel(nn.Module):
    """A ``ReidModel`` with upper- and lower-body branches on its feature map (survey §3.2,
    SSG [56], PAST [66]); see the module docstring for the layout and the eval outputs.

    Args:
        base: the ``ReidModel`` whose backbone, pooling, BNNeck and classifier form the global
            branch (shared, not copied: training the part model trains ``base``).
        output: what eval mode returns, one of ``OUTPUTS``; may be changed later.

    The part branches start as a copy of the global pooling (a GeM keeps the learnt p) and
    a fresh BNNeck each (part features have their own statistics), on ``base``'s device.
    """

    def __init__(self, base: ReidModel, output: str = "concat"):
        super().__init__()
        if not isinstance(base, ReidModel):
            raise TypeError(f"base must be a reidlib ReidModel, got {type(base).__name__}")
        self.base = base
        self.output = output
        dim = base.feature_dim
        with_neck = isinstance(base.neck, nn.BatchNorm1d)
        self.part_pools = nn.ModuleDict({p: copy.deepcopy(base.pool) for p in BRANCHES[1:]})
        self.part_necks = nn.ModuleDict(
            {p: bnneck(dim) if with_neck else nn.Identity() for p in BRANCHES[1:]}
        )
        self.part_necks.to(model_device(base))

    @property
    def output(self) -> str:
        return self._output

    @output.setter
    def output(self, value: str) -> None:
        if value not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}, got {value!r}")
        self._output = value

    @property
    def arch(self) -> str:
        return self.base.arch

    @property
    def embedding_dim(self) -> int:
        """Width D of one branch's embedding."""
        return self.base.feature_dim

    @property
    def feature_dim(self) -> int:
        """Width of what eval mode returns: 3 D for "concat" / "raw", D for one branch."""
        return self.embedding_dim * (3 if self.output in ("concat", "raw") else 1)

    @property
    def classifier(self) -> nn.Linear | None:
        return self.base.classifier

    @property
    def num_classes(self) -> int:
        return self.base.num_classes

    def reset_classifier(self, num_classes: int, generator: torch.Generator | None = None):
        """The global branch's classifier, as ``ReidModel.reset_classifier``."""
        self.base.reset_classifier(num_classes, generator=generator)

    def forward(self, x: torch.Tensor) -> PartOutput | torch.Tensor:
        check_image_batch(x, "PartReidModel")
        feature_map = self.base.backbone(x)
        features = {"global": self.base.pool(feature_map)}
        halves = split_halves(feature_map)
        for name, half in zip(BRANCHES[1:], halves, strict=True):
            features[name] = self.part_pools[name](half)
        necks = {"global": self.base.neck, **self.part_necks}
        embeddings = {name: necks[name](f) for name, f in features.items()}
        if not self.training:
            return self._eval_output(embeddings)
        g = embeddings["global"]
        return PartOutput(
            features=features["global"], embeddings=g,
            logits=None if self.base.classifier is None else self.base.classifier(g),
            upper=ReidOutput(features["upper"], embeddings["upper"]),
            lower=ReidOutput(features["lower"], embeddings["lower"]),
        )

    def _eval_output(self, embeddings: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.output in BRANCHES:
            return embeddings[self.output]
        blocks = [embeddings[name] for name in BRANCHES]
        if self.output == "concat":
            blocks = [F.normalize(b, dim=1) for b in blocks]
        return torch.cat(blocks, dim=1)


@contextlib.contextmanager
def _output_as(model: PartReidModel, output: str):
    """Temporarily switch what ``model`` returns in eval mode."""
    before = model.output
    model.output = output
    try:
        yield model
    finally:
        model.output = before


def extract_part_features(model: PartReidModel, images, batch_size: int = 256, flip: bool = True,
                          device=None, size=None, progress: bool = True) -> dict[str, torch.Tensor]:
    """Per-branch features for SSG's separate clusterings (survey §3.2, SSG [56]).

    One pass over ``images`` (an ImageSet or a uint8 (N, 3, H, W) tensor, as
    ``extract_features``); returns ``{"global", "upper", "lower"}`` -> (N, D) float32 CPU
    tensors, each L2-normalised. Each equals ``extract_features`` on the model with
    ``output`` set to that branch (flip averaging is linear, so it commutes with the split).
    """
    if not isinstance(model, PartReidModel):
        raise TypeError(f"model must be a PartReidModel, got {type(model).__name__} "
                        "(wrap a ReidModel: PartReidModel(model))")
    with _output_as(model, "raw"):
        raw = extract_features(model, images, batch_size=batch_size, flip=flip, device=device,
                               normalize=False, size=size, progress=progress)
    blocks = raw.split(model.embedding_dim, dim=1)
    return {name: F.normalize(b, dim=1) for name, b in zip(BRANCHES, blocks, strict=True)}
