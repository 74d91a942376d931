"""Losses (survey Eq. 4-5) against brute-force references written with explicit loops."""

import math

import pytest
import torch
import torch.nn.functional as F

from reidlib.training.losses import (
    batch_hard_triplet_loss,
    cross_entropy_label_smooth,
    euclidean_dist,
    triplet_loss,
)


def _hinge(value, margin):
    return math.log1p(math.exp(value)) if margin is None else max(0.0, margin + value)


def batch_hard_reference(x, labels, margin, normalize=False):
    """Eq. 5 with loops over anchors: farthest positive (self included), closest negative."""
    x = x.double()
    if normalize:
        x = x / x.norm(dim=1, keepdim=True)
    total = 0.0
    for a in range(len(x)):
        pos = [float((x[a] - x[j]).norm()) for j in range(len(x)) if labels[j] == labels[a]]
        neg = [float((x[a] - x[j]).norm()) for j in range(len(x)) if labels[j] != labels[a]]
        total += _hinge(max(pos) - min(neg), margin)
    return total / len(x)


def test_label_smooth_matches_torch_cross_entropy():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(16, 7, generator=g) * 3
    targets = torch.randint(0, 7, (16,), generator=g)
    for eps in (0.0, 0.1, 0.3):
        ours = cross_entropy_label_smooth(logits, targets, eps)
        ref = F.cross_entropy(logits, targets, label_smoothing=eps)
        torch.testing.assert_close(ours, ref, rtol=1e-6, atol=1e-6)


def test_label_smooth_hand_case():
    # p = softmax([0, ln 3]) = [1/4, 3/4]; target 1, eps 0.2, C=2 -> q = [0.1, 0.9]
    logits = torch.tensor([[0.0, math.log(3.0)]])
    loss = cross_entropy_label_smooth(logits, torch.tensor([1]), epsilon=0.2)
    expected = -(0.1 * math.log(0.25) + 0.9 * math.log(0.75))  # 0.397543...
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    assert expected == pytest.approx(0.397543, abs=1e-6)


def test_label_smooth_errors():
    logits = torch.randn(4, 3)
    with pytest.raises(ValueError, match=r"\(B, C\)"):
        cross_entropy_label_smooth(torch.randn(4), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="one label per row"):
        cross_entropy_label_smooth(logits, torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        cross_entropy_label_smooth(logits, torch.tensor([0, 1, 2, 3]))
    with pytest.raises(ValueError, match="integer"):
        cross_entropy_label_smooth(logits, torch.zeros(4))


@pytest.mark.parametrize("margin", [0.3, 1.0, None])
def test_triplet_loss_matches_loop_reference(margin):
    g = torch.Generator().manual_seed(1)
    a, p, n = (torch.randn(10, 5, generator=g) for _ in range(3))
    ref = (
        sum(_hinge(float((a[i] - p[i]).norm() - (a[i] - n[i]).norm()), margin) for i in range(10))
        / 10
    )
    assert triplet_loss(a, p, n, margin).item() == pytest.approx(ref, rel=1e-5, abs=1e-6)


def test_triplet_loss_matches_torch_module():
    g = torch.Generator().manual_seed(2)
    a, p, n = (torch.randn(12, 8, generator=g) for _ in range(3))
    ref = torch.nn.TripletMarginLoss(margin=0.5)(a, p, n)  # its eps=1e-6 shifts distances a hair
    torch.testing.assert_close(triplet_loss(a, p, n, 0.5), ref, rtol=1e-4, atol=1e-4)


def test_triplet_loss_shape_error():
    with pytest.raises(ValueError, match="one shape"):
        triplet_loss(torch.randn(3, 4), torch.randn(3, 4), torch.randn(2, 4))


def test_euclidean_dist_matches_cdist():
    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(6, 4, generator=g), torch.randn(5, 4, generator=g)
    torch.testing.assert_close(euclidean_dist(x, y), torch.cdist(x, y), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("margin", [0.3, None])
@pytest.mark.parametrize("normalize", [False, True])
def test_batch_hard_matches_loop_reference(margin, normalize):
    g = torch.Generator().manual_seed(4)
    x = torch.randn(16, 6, generator=g)
    labels = torch.arange(4).repeat_interleave(4)  # a P x K batch: P=4, K=4
    loss = batch_hard_triplet_loss(x, labels, margin, normalize)
    ref = batch_hard_reference(x, labels.tolist(), margin, normalize)
    assert loss.item() == pytest.approx(ref, rel=1e-5, abs=1e-6)


def test_batch_hard_unbalanced_labels_and_singletons():
    g = torch.Generator().manual_seed(5)
    x = torch.randn(9, 3, generator=g)
    labels = torch.tensor([7, 7, 7, 2, 2, 9, 4, 4, 4])  # 9 has no positive but itself
    ref = batch_hard_reference(x, labels.tolist(), 2.0)
    assert batch_hard_triplet_loss(x, labels, 2.0).item() == pytest.approx(ref, rel=1e-5)


def test_batch_hard_gradients_match_reference_autograd():
    g = torch.Generator().manual_seed(6)
    base = torch.randn(8, 5, generator=g)
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    ours = base.clone().requires_grad_()
    batch_hard_triplet_loss(ours, labels, 0.5).backward()

    ref = base.clone().requires_grad_()
    total = 0
    for a in range(8):
        d = [(ref[a] - ref[j]).norm() if j != a else torch.zeros(()) for j in range(8)]
        pos = torch.stack([d[j] for j in range(8) if labels[j] == labels[a]]).max()
        neg = torch.stack([d[j] for j in range(8) if labels[j] != labels[a]]).min()
        total = total + F.relu(0.5 + pos - neg)
    (total / 8).backward()
    torch.testing.assert_close(ours.grad, ref.grad, rtol=1e-4, atol=1e-5)


def test_batch_hard_finite_gradient_on_duplicates():
    x = torch.ones(4, 3, requires_grad=True)  # all distances zero
    loss = batch_hard_triplet_loss(x, torch.tensor([0, 0, 1, 1]), 0.3)
    loss.backward()
    assert loss.item() == pytest.approx(0.3, abs=1e-4)
    assert torch.isfinite(x.grad).all()


def test_batch_hard_low_precision_input_gives_float32():
    x = torch.randn(8, 4).bfloat16()
    loss = batch_hard_triplet_loss(x, torch.arange(4).repeat_interleave(2))
    assert loss.dtype == torch.float32


def test_batch_hard_errors():
    with pytest.raises(ValueError, match="two identities"):
        batch_hard_triplet_loss(torch.randn(4, 3), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\(B, D\)"):
        batch_hard_triplet_loss(torch.randn(4), torch.arange(4))
    with pytest.raises(ValueError, match="one label per row"):
        batch_hard_triplet_loss(torch.randn(4, 3), torch.arange(3))
