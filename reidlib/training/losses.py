"""Losses of the supervised baseline: label-smoothed CE and triplet losses (survey §3.2, Eq. 4-5).

The survey writes the triplet losses as sums over anchors; we average over anchors (as
every public implementation does) so that the loss scale does not change with P x K.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _check_labels(rows: torch.Tensor, targets: torch.Tensor, what: str) -> None:
    if targets.ndim != 1 or len(targets) != len(rows):
        raise ValueError(
            f"{what}: targets must be a 1-D tensor with one label per row ({len(rows)}), "
            f"got shape {tuple(targets.shape)}"
        )
    if targets.is_floating_point():
        raise ValueError(f"{what}: targets must be integer labels, got {targets.dtype}")


def cross_entropy_label_smooth(logits: torch.Tensor, targets: torch.Tensor,
                               epsilon: float = 0.1) -> torch.Tensor:
    """Cross-entropy against q = (1 - eps) * onehot + eps / C (Szegedy et al.; Bag of tricks).

    Smoothing keeps the classifier from becoming over-confident on the training identities,
    which do not reappear at test time. Mean over the batch.
    """
    if logits.ndim != 2:
        raise ValueError(f"logits must be (B, C), got shape {tuple(logits.shape)}")
    _check_labels(logits, targets, "cross_entropy_label_smooth")
    num_classes = logits.shape[1]
    # Value checks read the tensor back to Python: a GPU sync every training step, so only
    # on CPU tensors (on CUDA a bad target fails inside gather instead).
    if targets.device.type == "cpu" and len(targets) and \
            (targets.min() < 0 or targets.max() >= num_classes):
        raise ValueError(f"targets must lie in [0, {num_classes}), got "
                         f"[{int(targets.min())}, {int(targets.max())}]")
    log_probs = F.log_softmax(logits.float(), dim=1)
    nll = -log_probs.gather(1, targets[:, None]).squeeze(1)
    uniform = -log_probs.mean(dim=1)
    return ((1 - epsilon) * nll + epsilon * uniform).mean()


def _margin_loss(d_ap: torch.Tensor, d_an: torch.Tensor, margin: float | None) -> torch.Tensor:
    """[m + d_ap - d_an]_+ ; soft margin log(1 + exp(d_ap - d_an)) when ``margin`` is None."""
    if margin is None:  # Hermans et al.'s soft margin: no hyper-parameter, never quite zero
        return F.softplus(d_ap - d_an).mean()
    return F.relu(margin + d_ap - d_an).mean()


def triplet_loss(anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor,
                 margin: float | None = 0.3) -> torch.Tensor:
    """Eq. 4: mean over triplets of [m + D(a, p) - D(a, n)]_+, D Euclidean."""
    if anchor.ndim != 2 or anchor.shape != positive.shape or anchor.shape != negative.shape:
        raise ValueError(
            "anchor, positive and negative must be (B, D) tensors of one shape, got "
            f"{tuple(anchor.shape)}, {tuple(positive.shape)}, {tuple(negative.shape)}"
        )
    d_ap = (anchor.float() - positive.float()).norm(dim=1)
    d_an = (anchor.float() - negative.float()).norm(dim=1)
    return _margin_loss(d_ap, d_an, margin)


def euclidean_dist(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(N, M) Euclidean distances via |x|^2 + |y|^2 - 2 x.y (one matmul).

    Clamping before the square root keeps the gradient finite at zero distance
    (an anchor with itself), where d sqrt(u) / du is infinite.
    """
    sq = (x * x).sum(1, keepdim=True) + (y * y).sum(1)[None] - 2 * x @ y.T
    return sq.clamp(min=1e-12).sqrt()


def batch_hard_triplet_loss(features: torch.Tensor, targets: torch.Tensor,
                            margin: float | None = 0.3, normalize: bool = False) -> torch.Tensor:
    """Eq. 5 (Hermans et al.): each anchor against its farthest positive and closest negative.

    Mining inside the P x K batch costs one distance matrix. The anchor counts as its own
    positive (distance 0), as in the reference implementations, so an identity with a
    single image in the batch still pushes its negatives beyond the margin. A batch of one
    identity has no negatives: an error on CPU (on CUDA the loss would silently be 0).
    ``margin=None`` uses the soft margin; ``normalize`` L2-normalises features first.
    """
    if features.ndim != 2:
        raise ValueError(f"features must be (B, D), got shape {tuple(features.shape)}")
    _check_labels(features, targets, "batch_hard_triplet_loss")
    x = features.float()
    if normalize:
        x = F.normalize(x, dim=1)
    # Exact zeros on the diagonal: the matmul form leaves rounding noise of order |x|^2 * eps.
    eye = torch.eye(len(x), dtype=torch.bool, device=x.device)
    dist = euclidean_dist(x, x).masked_fill(eye, 0.0)
    same = targets[:, None] == targets[None, :]
    if same.device.type == "cpu" and same.all():  # no GPU sync per step (see above)
        raise ValueError("batch_hard_triplet_loss needs at least two identities in the batch")
    d_ap = dist.masked_fill(~same, float("-inf")).amax(dim=1)
    d_an = dist.masked_fill(same, float("inf")).amin(dim=1)
    return _margin_loss(d_ap, d_an, margin)
