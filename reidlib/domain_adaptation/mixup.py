"""Cross-domain mixup (survey §3.4, "Mixup [99]"): a transition state between the domains.

Luo, Song, Zhang, "Generalizing Person Re-Identification by Camera-Aware Invariance
Learning and Cross-Domain Mixup" (ECCV 2020; code: LuckyDC/generalizing-reid). Instead of
jumping from the labelled source to the unlabelled target, the model also learns on
*interpolations* of a source image and a target image, labelled by the same interpolation
of their labels. What is mixed and how, as their code does it (``models/model.py``,
``Model.mix_source_target`` and ``mixed_st_forward``; ``configs/duke2market.yml``):

- **what**: the input images. A batch holds a source half and a target half of equal
  size; the i-th source image is mixed with the i-th target image,
  ``x_mix = lam * x_s + (1 - lam) * x_t``; the mixed images replace the source half in the
  forward pass (the target half is still forwarded for the target's own loss);
- **lambda**: one value per batch, ``lam ~ Beta(alpha, alpha)`` (``alpha = 0.6`` in their
  Duke <-> Market configs, 0.5 their default); mixing starts after the first epoch;
- **labels**: the source image's identity with weight ``lam`` and the target image's own
  identity with weight ``1 - lam``. The target has no classes: each target image is a
  class of its own, the *virtual class* of its exemplar-memory slot ``m_t`` (ECN-style
  memory, L2-normalised). So the mixed soft label lives on S + 1 classes: the S source
  classes, plus one column for the paired target image;
- **loss** (:func:`mixup_loss`): the source classifier W (S, D, no bias) on the mixed
  feature f, extended by one logit for the virtual class, ``(f . m_t) * |W_{y_s}|`` (the
  target slot scaled to the length of the source class's weight, the norm detached), then
  ``lam * CE(scores, y_s) + (1 - lam) * CE(scores, S)``: the cross-entropy with the soft
  label. f is the model's feature before any normalisation (their BN-neck output, with
  the mixed half's own batch statistics).

Usage::

    mix = cross_domain_mixup(source_images, source_ids, target_images, target_rows, rng=rng)
    f = model(mix.x).embeddings                     # post-BN-neck, not L2-normalised
    loss = mixup_loss(f, model.classifier.weight, memory.features[mix.target_y], mix)

The functions mix whatever they are given (images or features of any shape (B, ...)).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["CrossDomainMix", "cross_domain_mixup", "mixup_loss", "sample_lambda"]


@dataclass
class CrossDomainMix:
    """Mixed samples and their soft labels: weight ``lam`` on source class ``source_y``,
    ``1 - lam`` on the virtual class of target instance ``target_y`` (its memory row)."""

    x: torch.Tensor
    lam: float
    source_y: torch.Tensor
    target_y: torch.Tensor

    def soft_labels(self, num_source_classes: int) -> torch.Tensor:
        """(B, S + 1): ``lam`` at the source class, ``1 - lam`` in the last column (each
        row's own target image, the virtual class)."""
        if not num_source_classes > int(self.source_y.max()):
            raise ValueError(f"num_source_classes must exceed the largest source label "
                             f"{int(self.source_y.max())}, got {num_source_classes}")
        out = torch.zeros(len(self.source_y), num_source_classes + 1, device=self.x.device)
        out[torch.arange(len(out), device=out.device), self.source_y] = self.lam
        out[:, -1] = 1.0 - self.lam
        return out


def sample_lambda(alpha: float, rng=None) -> float:
    """One ``lam ~ Beta(alpha, alpha)``; ``rng``: a numpy Generator or a seed (None: fresh)."""
    if not alpha > 0:
        raise ValueError(f"alpha must be > 0 (Beta(alpha, alpha)), got {alpha}")
    if not isinstance(rng, np.random.Generator):
        rng = np.random.default_rng(rng)
    return float(rng.beta(alpha, alpha))


def _check_labels(y, n: int, name: str, device) -> torch.Tensor:
    if not isinstance(y, torch.Tensor) or y.shape != (n,) or y.is_floating_point() \
            or y.dtype == torch.bool:
        got = f"{y.dtype} {tuple(y.shape)}" if isinstance(y, torch.Tensor) else type(y).__name__
        raise ValueError(f"{name} must be a ({n},) integer tensor, one per sample, got {got}")
    if y.device != device:
        raise ValueError(f"{name} ({y.device}) must be on the samples' device ({device})")
    return y.long()


def cross_domain_mixup(source_x: torch.Tensor, source_y: torch.Tensor,
                       target_x: torch.Tensor, target_y: torch.Tensor, alpha: float = 0.6,
                       rng=None, lam: float | None = None) -> CrossDomainMix:
    """Mix the i-th source sample with the i-th target sample (module docstring).

    ``source_x``, ``target_x``: (B, ...) float images or features of one shape;
    ``source_y``: (B,) source class ids; ``target_y``: (B,) the target images' rows (their
    virtual classes). ``lam``: None draws one from Beta(alpha, alpha) with ``rng``; a
    number in [0, 1] fixes it.
    """
    for name, x in (("source_x", source_x), ("target_x", target_x)):
        if not isinstance(x, torch.Tensor) or x.ndim < 1 or len(x) == 0 \
                or not x.is_floating_point():
            got = f"{x.dtype} {tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x)
            raise ValueError(f"{name} must be a non-empty floating-point (B, ...) tensor "
                             f"(convert uint8 images first), got {got}")
    if source_x.shape != target_x.shape or source_x.device != target_x.device:
        raise ValueError(f"source_x and target_x must have one shape and device (pairs i, i),"
                         f" got {tuple(source_x.shape)} on {source_x.device} and "
                         f"{tuple(target_x.shape)} on {target_x.device}")
    n = len(source_x)
    source_y = _check_labels(source_y, n, "source_y", source_x.device)
    target_y = _check_labels(target_y, n, "target_y", source_x.device)
    if lam is None:
        lam = sample_lambda(alpha, rng)
    elif not 0.0 <= lam <= 1.0:
        raise ValueError(f"lam must lie in [0, 1], got {lam}")
    mixed = lam * source_x + (1.0 - lam) * target_x
    return CrossDomainMix(mixed, float(lam), source_y, target_y)


def mixup_loss(features: torch.Tensor, classifier_weight: torch.Tensor,
               target_agents: torch.Tensor, mix: CrossDomainMix) -> torch.Tensor:
    """Cross-entropy of the mixed samples with their soft labels (module docstring).

    ``features``: (B, D) of ``mix.x``; ``classifier_weight``: (S, D) the source classifier
    (no bias); ``target_agents``: (B, D) the paired target images' memory slots, e.g.
    ``memory[mix.target_y]`` (not trained here: detached).
    """
    b = len(mix.source_y)
    if features.ndim != 2 or len(features) != b:
        raise ValueError(f"features must be (B, D) with B = {b} (one per mixed sample), got "
                         f"{tuple(features.shape)}")
    d = features.shape[1]
    if classifier_weight.ndim != 2 or classifier_weight.shape[1] != d:
        raise ValueError(f"classifier_weight must be (S, {d}), got "
                         f"{tuple(classifier_weight.shape)}")
    if target_agents.shape != features.shape:
        raise ValueError(f"target_agents must be (B, D) = {tuple(features.shape)}, got "
                         f"{tuple(target_agents.shape)}")
    features = features.float()
    weight = classifier_weight.float()
    scale = weight.detach()[mix.source_y].norm(dim=1)
    virtual = (features * target_agents.detach().float()).sum(dim=1) * scale
    scores = torch.cat([features @ weight.T, virtual[:, None]], dim=1)
    soft = mix.soft_labels(len(weight)).to(scores.dtype)
    return -(soft * F.log_softmax(scores, dim=1)).sum(dim=1).mean()
