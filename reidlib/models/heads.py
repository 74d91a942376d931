"""The Re-ID head: pooling -> BNNeck -> classifier, and the model that joins it to a backbone.

BNNeck (Luo et al., "Bag of tricks and a strong baseline for deep person re-identification"):
the triplet loss (survey Eq. 4-5) acts on the pooled feature *before* a BatchNorm1d and
the identity classifier on the feature *after* it. The two losses then stop fighting over
one embedding space; the post-BN feature is the one used for retrieval. Its bias is frozen
at zero and the classifier has no bias, so the classifier's decision boundaries pass
through the origin of the (normalisable) embedding space.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from reidlib.models.backbones import build_backbone, load_backbone_weights


class GeM(nn.Module):
    """Generalised-mean pooling (Radenovic et al.): (mean x^p)^(1/p) per channel, p learnt.

    p = 1 is average pooling, p -> inf is max pooling; re-id models learn p ~ 3, which
    favours the few strongly activated locations of a person's distinctive parts.
    """

    def __init__(self, p: float = 3.0, eps: float = 1e-6):
        super().__init__()
        self.p = nn.Parameter(torch.tensor(float(p)))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # float32: x^p in bf16 loses most of its mantissa under autocast.
        p = self.p.float()
        pooled = x.float().clamp(min=self.eps).pow(p).mean(dim=(-2, -1))
        return pooled.pow(1.0 / p)


class AvgPool(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.float().mean(dim=(-2, -1))


def bnneck(dim: int) -> nn.BatchNorm1d:
    """BatchNorm1d whose shift is frozen at zero (the "bias-free" BNNeck of Bag of tricks)."""
    bn = nn.BatchNorm1d(dim)
    nn.init.ones_(bn.weight)
    nn.init.zeros_(bn.bias)
    bn.bias.requires_grad_(False)
    return bn


@dataclass
class ReidOutput:
    """What a ``ReidModel`` returns in training mode.

    ``features``: pooled, pre-BN (for triplet losses); ``embeddings``: post-BN (what eval
    mode returns; memory-based methods of chapter 2 use these); ``logits``: the
    identity classifier on the embeddings, ``None`` without a classifier.
    """

    features: torch.Tensor
    embeddings: torch.Tensor
    logits: torch.Tensor | None = None

    def __getitem__(self, key: str):  # dict-style access: out["features"]
        return getattr(self, key)


def check_image_batch(x: torch.Tensor, who: str) -> None:
    """A clear error unless ``x`` is a normalised float batch (B, 3, H, W) for model ``who``."""
    if x.ndim != 4 or x.shape[1] != 3 or not x.is_floating_point():
        raise ValueError(
            f"{who} expects normalised float images (B, 3, H, W); got {x.dtype} "
            f"{tuple(x.shape)} (use reidlib.data.augment.to_float on uint8 batches)"
        )


class ReidModel(nn.Module):
    """backbone -> pooling -> BNNeck -> (optional) bias-free linear classifier.

    ``forward`` returns a ``ReidOutput`` in training mode and the post-BN embedding
    (the pooled feature when ``neck=False``) in eval mode.
    """

    def __init__(self, backbone: nn.Module, pooling: str = "gem", neck: bool = True,
                 num_classes: int = 0, arch: str = ""):
        super().__init__()
        poolings = {"gem": GeM, "avg": AvgPool}
        if pooling not in poolings:
            raise ValueError(f"unknown pooling {pooling!r}: expected 'gem' or 'avg'")
        self.arch = arch
        self.backbone = backbone
        self.pool = poolings[pooling]()
        self.feature_dim = backbone.out_dim
        self.neck = bnneck(self.feature_dim) if neck else nn.Identity()
        self.classifier: nn.Linear | None = None
        self.reset_classifier(num_classes)

    @property
    def num_classes(self) -> int:
        return 0 if self.classifier is None else self.classifier.out_features

    def reset_classifier(self, num_classes: int, generator: torch.Generator | None = None):
        """Replace the classifier by a fresh one with ``num_classes`` outputs (0: none).

        Chapters 1-2 call this at every re-clustering, when the number of pseudo-identities
        changes. Init N(0, 0.001^2) as in Bag of tricks.
        """
        if num_classes < 0:
            raise ValueError(f"num_classes must be >= 0, got {num_classes}")
        if num_classes == 0:
            self.classifier = None
            return
        layer = nn.Linear(self.feature_dim, num_classes, bias=False)
        nn.init.normal_(layer.weight, std=0.001, generator=generator)
        self.classifier = layer.to(device=next(self.backbone.parameters()).device)

    def forward(self, x: torch.Tensor) -> ReidOutput | torch.Tensor:
        check_image_batch(x, "ReidModel")
        features = self.pool(self.backbone(x))
        embeddings = self.neck(features)
        if not self.training:
            return embeddings
        logits = None if self.classifier is None else self.classifier(embeddings)
        return ReidOutput(features=features, embeddings=embeddings, logits=logits)


def build_model(arch: str, num_classes: int = 0, pooling: str = "gem", neck: bool = True,
                weights=None, last_stride: int = 1) -> ReidModel:
    """The course's Re-ID network (chapter 0's supervised baseline, reused by chapters 1-6).

    ``arch``: 'small' | 'resnet18' | 'resnet50'; ``weights``: None, 'imagenet' (local
    cache only), a name registered with ``register_weights``, or a backbone checkpoint
    (path or state dict). Inputs are normalised floats (see ``reidlib.data.augment``).
    """
    backbone = build_backbone(arch, last_stride=last_stride)
    load_backbone_weights(backbone, arch, weights)
    return ReidModel(backbone, pooling=pooling, neck=neck, num_classes=num_classes, arch=arch)

