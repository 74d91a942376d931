"""Losses on (pseudo-)labels: label-smoothed CE and triplet losses (survey §3.2, Eq. 4-5),
and the soft losses of mutual mean teaching (MMT, Ge et al., ICLR 2020; survey §3.1-3.2).

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


def _same_identity(targets: torch.Tensor, what: str) -> torch.Tensor:
    """(B, B) bool, True where rows share a label. A batch of one identity has no negative:
    an error on CPU only (the check reads the tensor back, a GPU sync every step)."""
    same = targets[:, None] == targets[None, :]
    if same.device.type == "cpu" and same.all():
        raise ValueError(f"{what} needs at least two identities in the batch")
    return same


def _distance_matrix(x: torch.Tensor) -> torch.Tensor:
    """(B, B) Euclidean distances in float32 (see ``euclidean_dist``), exact zeros on the
    diagonal: the matmul form leaves rounding noise of order |x|^2 * eps there."""
    eye = torch.eye(len(x), dtype=torch.bool, device=x.device)
    return euclidean_dist(x, x).masked_fill(eye, 0.0)


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
    (an anchor with itself), where d sqrt(u) / du is infinite. Computed in float32 with
    autocast off: under AMP the matmul would otherwise run in bf16 / fp16 whatever the
    inputs' dtype, and triplet losses compare small gaps between distances.
    """
    with torch.autocast(device_type=x.device.type, enabled=False):
        x, y = x.float(), y.float()
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
    dist = _distance_matrix(x)
    same = _same_identity(targets, "batch_hard_triplet_loss")
    d_ap = dist.masked_fill(~same, float("-inf")).amax(dim=1)
    d_an = dist.masked_fill(same, float("inf")).amin(dim=1)
    return _margin_loss(d_ap, d_an, margin)


# --- Mutual mean teaching (MMT, Ge et al., ICLR 2020) -------------------------------------
# MMT trains two students; each learns from the other's temporally averaged "mean teacher"
# through soft targets, which are less committed to the noisy clustering labels than the
# hard ones. Both soft losses stop gradients at the teacher: it is an EMA of weights,
# never trained by backpropagation.


def soft_cross_entropy(logits: torch.Tensor, target_logits: torch.Tensor) -> torch.Tensor:
    """MMT's soft classification loss: mean over the batch of -sum_c q_c log p_c.

    p = softmax(``logits``) (student), q = softmax(``target_logits``) (the peer's mean
    teacher, detached). Equal to the cross-entropy against hard labels when q is one-hot;
    minimised (at the entropy of q) when p = q.
    """
    if logits.ndim != 2 or logits.shape != target_logits.shape:
        raise ValueError(
            "soft_cross_entropy: logits and target_logits must be (B, C) tensors of one shape, "
            f"got {tuple(logits.shape)} and {tuple(target_logits.shape)}"
        )
    targets = F.softmax(target_logits.detach().float(), dim=1)
    return -(targets * F.log_softmax(logits.float(), dim=1)).sum(dim=1).mean()


def soft_triplet_loss(features: torch.Tensor, targets: torch.Tensor,
                      target_features: torch.Tensor | None,
                      margin: float | None = None) -> torch.Tensor:
    """MMT's softmax-triplet loss, soft (teacher targets) or hard (pseudo-label targets).

    For each anchor i, the hardest positive p(i) and hardest negative n(i) of the batch
    (``targets`` = the hard pseudo-labels; the anchor counts as its own positive, as in
    :func:`batch_hard_triplet_loss`) are mined with the *student*'s distances, as MMT's
    code does. The softmax-triplet of a network is the 2-way softmax over the distances

        T_i = exp(d(i, n(i))) / (exp(d(i, p(i))) + exp(d(i, n(i)))),

    which should be 1 (the negative infinitely farther than the positive). MMT's losses
    are the binary cross-entropy L_bce(p, q) = -q log p - (1 - q) log(1 - p), averaged
    over anchors:

    * soft (``target_features`` given): q = T_i of the peer's mean teacher, measured at the
      *same* p(i), n(i) (its features detached); the student learns the teacher's relative
      confidence instead of an absolute "1";
    * hard (``target_features=None``): q = 1, i.e. -log T_i = log(1 + exp(d_ap - d_an)),
      the soft-margin batch-hard loss.

    ``margin``: the name MMT's code gives to the hard target's weight on the *positive*
    slot, q = 1 - margin (its ``SoftTripletLoss(margin=0.0)`` is the hard loss); it is not
    a distance margin. It applies only to the hard version: ``margin=None`` means 0.
    Distances are Euclidean on the raw features, computed in float32.
    """
    if features.ndim != 2:
        raise ValueError(f"features must be (B, D), got shape {tuple(features.shape)}")
    _check_labels(features, targets, "soft_triplet_loss")
    if target_features is not None and target_features.shape != features.shape:
        raise ValueError(
            "target_features (the teacher's) must have the student's shape "
            f"{tuple(features.shape)}, got {tuple(target_features.shape)}"
        )
    if target_features is not None and margin is not None:
        raise ValueError("margin weights the hard target only: pass margin=None together "
                         "with target_features (soft version), or target_features=None")
    if margin is not None and not 0.0 <= margin <= 1.0:
        raise ValueError(f"margin is the hard target's weight on the positive, in [0, 1]; "
                         f"got {margin}")
    same = _same_identity(targets, "soft_triplet_loss")
    dist = _distance_matrix(features)
    # argmax / argmin return the first extreme index on ties, like a loop with strict >.
    pos = dist.detach().masked_fill(~same, float("-inf")).argmax(dim=1, keepdim=True)
    neg = dist.detach().masked_fill(same, float("inf")).argmin(dim=1, keepdim=True)
    pair = torch.cat([dist.gather(1, pos), dist.gather(1, neg)], dim=1)  # (B, 2): d_ap, d_an
    log_t = F.log_softmax(pair, dim=1)

    if target_features is None:
        # q = (w, 1 - w) as Python numbers: a tensor made from them would be copied to the
        # GPU at every step, and that copy waits for the device
        w_pos = 0.0 if margin is None else float(margin)
        return -(w_pos * log_t[:, 0] + (1.0 - w_pos) * log_t[:, 1]).mean()
    with torch.no_grad():
        ref = _distance_matrix(target_features.detach())
        q = F.softmax(torch.cat([ref.gather(1, pos), ref.gather(1, neg)], dim=1), dim=1)
    return -(q * log_t).sum(dim=1).mean()
