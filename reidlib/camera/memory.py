"""Intra- and inter-camera look-up-table losses (survey §3.3, Eq. 8-10).

The look-up table (LUT) of Eq. 6-7 normalises a sample's similarity to an entry over *every*
entry. Within one camera, different people can look more alike than one person across
cameras (same light, background, viewpoint), so the nearest entries of a sample are mostly
from its own camera, and pulling them closer teaches the camera as much as the person
(HHL [61] learns camera invariance from camera-style transferred images, and the survey
notes that it overfits such visually similar pairs). The survey's Mixup [99] (Luo, Song,
Zhang, "Generalizing Person Re-Identification by Camera-Aware Invariance Learning and
Cross-Domain Mixup", ECCV 2020) splits the softmax by camera. For a sample x_i of camera c,

    p_intra(j | x_i) = exp(s m_j . x_i) / sum_{k in O_intra(i)} exp(s m_k . x_i)   (Eq. 8)
    p_inter(t | x_i) = exp(s m_t . x_i) / sum_{k in O_inter(i)} exp(s m_k . x_i)   (Eq. 9)
    L = - sum_j w_ij log p_intra(j | x_i) - sum_t w_it log p_inter(t | x_i)       (Eq. 10)

with O_intra(i) the entries of camera c, O_inter(i) those of the other cameras, m_k the
L2-normalised entries, x_i L2-normalised and s = 1 / temperature. Each softmax competes
only within one kind of pair, so an inter-camera neighbour is not drowned by the easier
intra-camera ones.

How the weights w are chosen (the survey leaves them open). ECN's neighbourhood gives
weight 1/k to a fixed number k of nearest entries. Luo et al.'s code, which the survey's
Eq. 8-10 describe, uses a *relative* neighbourhood instead, and we follow it:

- the neighbours of x_i in a set (O_intra without x_i's own entry, or O_inter) are the
  entries whose cosine to x_i exceeds ``eps`` times the cosine of the nearest entry of that
  set (``eps = 0.8``; detached similarities), each weighted 1 / (number of neighbours);
- the intra term adds weight 1 on x_i's own entry (exemplar invariance, as in ECN);
- the memory holds one entry per training image (an exemplar memory), updated after each
  step as m <- a m + (1 - a) x, then re-normalised (a = 0.6 in their code);
- the scale of their cross-domain configurations, s = 10 (temperature 0.1); the intra
  term is weighted 1 and the inter term 0.5, switched on only after epochs 10 and 30
  respectively (a schedule for the method that uses this memory).

The relative threshold adapts the number of neighbours to how crowded the neighbourhood
is, where ECN's k is the same for a lonely image and for one of a large identity.

Deliberate differences: their code clamps probabilities at 1e-5 before the log; we use the
exact log-softmax. A sample with no neighbour in a set (a camera that holds only that
image, or no entry of positive cosine, where their code divides by zero) adds nothing to
that term. Their memory starts from small random entries and takes the first epoch's
features as they come (momentum 0 in epoch 1); ours starts from the features it is given.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from reidlib.checks import labels_1d
from reidlib.feature_learning.memory import _check_features, _Memory, momentum_update

__all__ = ["CameraExemplarMemory", "camera_neighbourhood_loss", "relative_neighbours"]


def _check_eps(eps: float) -> None:
    if not 0.0 < eps < 1.0:
        raise ValueError(f"eps must lie in (0, 1) (neighbours are the entries closer than eps "
                         f"x the nearest one's cosine), got {eps}")


def relative_neighbours(similarities: torch.Tensor, candidates: torch.Tensor,
                        eps: float = 0.8) -> torch.Tensor:
    """(B, N) bool: the candidate entries whose cosine exceeds ``eps`` x the nearest one's.

    Luo et al.'s neighbourhood (module docstring). ``similarities``: (B, N) cosines;
    ``candidates``: (B, N) bool, the set each row chooses from. The nearest candidate is
    a neighbour whenever its cosine is positive; a row with none (or no candidate) gets none.
    """
    nearest = similarities.masked_fill(~candidates, float("-inf")).max(dim=1, keepdim=True)
    return candidates & (similarities > eps * nearest.values)


def _masked_log_softmax(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """log softmax over the entries of ``mask`` only (-inf elsewhere)."""
    return F.log_softmax(logits.masked_fill(~mask, float("-inf")), dim=1)


def _weighted_nll(log_p: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """(B,) -sum_j w_ij log p_ij, with 0 where w = 0 (log p may be -inf there)."""
    return -torch.where(weights > 0, weights * log_p, torch.zeros_like(log_p)).sum(dim=1)


def _uniform_over(mask: torch.Tensor) -> torch.Tensor:
    """Weights 1 / |neighbours| on each row's neighbours (rows without any: all 0)."""
    return mask / mask.sum(dim=1, keepdim=True).clamp(min=1)


def camera_neighbourhood_loss(similarities: torch.Tensor, rows: torch.Tensor,
                              entry_camids: torch.Tensor, camids: torch.Tensor,
                              temperature: float = 0.1,
                              eps: float = 0.8) -> tuple[torch.Tensor, torch.Tensor]:
    """(intra, inter): the two terms of survey Eq. 10 over a batch, each a batch mean.

    ``similarities``: (B, N) cosines between the batch's L2-normalised embeddings and the N
    entries; ``rows``: (B,) each sample's own entry; ``entry_camids``: (N,) the camera of
    each entry; ``camids``: (B,) the camera of each sample. Eq. 8 and 9 are softmaxes of
    ``similarities / temperature`` over the own-camera and other-camera entries; the
    weights are :func:`relative_neighbours` with 1 / count, plus 1 on the own entry in the
    intra term (module docstring). The loss of Eq. 10 is ``intra + inter`` (Luo et al.
    weight the inter term 0.5).
    """
    logits = similarities / temperature
    same = camids[:, None] == entry_camids[None, :]
    own = torch.zeros_like(same).scatter_(1, rows[:, None], True)  # no host sync, unlike one_hot
    sims = similarities.detach()
    w_intra = _uniform_over(relative_neighbours(sims, same & ~own, eps))
    w_inter = _uniform_over(relative_neighbours(sims, ~same, eps))
    log_intra = _masked_log_softmax(logits, same)
    intra = _weighted_nll(log_intra, w_intra + own.float())
    inter = _weighted_nll(_masked_log_softmax(logits, ~same), w_inter)
    return intra.mean(), inter.mean()


class CameraExemplarMemory(_Memory):
    """Luo et al.'s camera-aware exemplar memory (ECCV 2020; survey §3.3, Eq. 8-10).

    One L2-normalised entry per training image with the image's camera; ``memory(x, rows)``
    returns the (intra, inter) losses of :func:`camera_neighbourhood_loss` for a batch of
    embeddings ``x`` (B, D) of training-set ``rows`` (B,), and ``memory.update(x, rows)``
    moves the batch's own entries after the optimiser step (``momentum``: the weight kept
    by the old entry, 0.6 in their code). Needs images of at least two cameras.
    """

    def __init__(self, features: torch.Tensor, camids, momentum: float = 0.6,
                 temperature: float = 0.1, eps: float = 0.8):
        features = _check_features(features)
        camids = labels_1d(camids, len(features), name="camids (one camera id per feature "
                           "row)", allow_outliers=False)
        if len(np.unique(camids)) < 2:
            raise ValueError("CameraExemplarMemory needs images of at least two cameras "
                             "(the inter-camera softmax of Eq. 9 has no entries otherwise)")
        _check_eps(eps)
        super().__init__(features, momentum, temperature)
        self.eps = float(eps)
        self.register_buffer("camids", torch.as_tensor(camids, device=features.device))
        # every row is its own entry: the `labels` attribute the memories share
        self.register_buffer("labels", torch.arange(len(features), device=features.device))

    def settings(self) -> dict:
        return {**super().settings(), "eps": self.eps}

    def _loss(self, x: torch.Tensor, indices: torch.Tensor):
        _check_eps(self.eps)  # may be changed between steps
        return camera_neighbourhood_loss(x @ self.features.T, indices, self.camids,
                                         self.camids[indices], self.temperature, self.eps)

    def _update(self, x: torch.Tensor, indices: torch.Tensor) -> None:
        momentum_update(self.features, indices, x, self.momentum)

    def extra_repr(self) -> str:
        cameras = len(torch.unique(self.camids))
        return (f"entries={len(self.features)}, cameras={cameras}, dim={self.dim}, "
                f"eps={self.eps}, momentum={self.momentum}, temperature={self.temperature}")
