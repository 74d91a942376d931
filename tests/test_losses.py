"""Losses (survey Eq. 4-5, MMT's soft losses) against brute-force references written with loops."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from reidlib.training.losses import (
    batch_hard_triplet_loss,
    cross_entropy_label_smooth,
    euclidean_dist,
    soft_cross_entropy,
    soft_triplet_loss,
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


# --- MMT's soft losses ----------------------------------------------------------------------


def soft_ce_reference(logits, target_logits):
    total = 0.0
    rows = zip(logits.double().tolist(), target_logits.double().tolist(), strict=True)
    for row, target_row in rows:
        z = sum(math.exp(t) for t in target_row)
        log_z = math.log(sum(math.exp(v) for v in row))
        total -= sum(math.exp(t) / z * (v - log_z) for v, t in zip(row, target_row, strict=True))
    return total / len(logits)


def test_soft_cross_entropy_matches_loop_and_torch():
    g = torch.Generator().manual_seed(7)
    logits, target_logits = torch.randn(6, 5, generator=g) * 2, torch.randn(6, 5, generator=g)
    loss = soft_cross_entropy(logits, target_logits)
    assert loss.item() == pytest.approx(soft_ce_reference(logits, target_logits), rel=1e-5)
    # torch's cross_entropy accepts class probabilities as the target
    ref = F.cross_entropy(logits, F.softmax(target_logits, dim=1))
    torch.testing.assert_close(loss, ref, rtol=1e-6, atol=1e-6)


def test_soft_cross_entropy_hand_case_and_gradient_only_to_student():
    # student p = softmax([0, ln 3]) = [1/4, 3/4]; teacher q = softmax([ln 2, 0]) = [2/3, 1/3]
    logits = torch.tensor([[0.0, math.log(3.0)]], requires_grad=True)
    target_logits = torch.tensor([[math.log(2.0), 0.0]], requires_grad=True)
    loss = soft_cross_entropy(logits, target_logits)
    expected = -(2 / 3 * math.log(0.25) + 1 / 3 * math.log(0.75))  # 1.020110...
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    loss.backward()
    # d/dlogits = p - q = [1/4 - 2/3, 3/4 - 1/3]
    torch.testing.assert_close(logits.grad, torch.tensor([[-5 / 12, 5 / 12]]))
    assert target_logits.grad is None


def test_soft_cross_entropy_errors_and_dtype():
    with pytest.raises(ValueError, match="one shape"):
        soft_cross_entropy(torch.randn(4, 3), torch.randn(4, 2))
    with pytest.raises(ValueError, match=r"\(B, C\)"):
        soft_cross_entropy(torch.randn(4), torch.randn(4))
    loss = soft_cross_entropy(torch.randn(4, 3).bfloat16(), torch.randn(4, 3).bfloat16())
    assert loss.dtype == torch.float32


def soft_triplet_reference(x, labels, teacher=None, w_pos=0.0):
    """Loops over anchors; mining by the student's distances (self counts as a positive)."""
    x = x.double()
    t = None if teacher is None else teacher.double()
    n = len(x)
    total = 0.0
    for a in range(n):
        d = [0.0 if j == a else float((x[a] - x[j]).norm()) for j in range(n)]
        pos = max((j for j in range(n) if labels[j] == labels[a]), key=lambda j: d[j])
        neg = min((j for j in range(n) if labels[j] != labels[a]), key=lambda j: d[j])
        log_z = math.log(math.exp(d[pos]) + math.exp(d[neg]))
        log_t = [d[pos] - log_z, d[neg] - log_z]
        if t is None:
            q = [w_pos, 1.0 - w_pos]
        else:
            dp = 0.0 if pos == a else float((t[a] - t[pos]).norm())
            dn = float((t[a] - t[neg]).norm())
            q = [math.exp(dp) / (math.exp(dp) + math.exp(dn)),
                 math.exp(dn) / (math.exp(dp) + math.exp(dn))]
        total -= q[0] * log_t[0] + q[1] * log_t[1]
    return total / n


LABELS_PK = torch.arange(4).repeat_interleave(3)  # P=4, K=3
LABELS_ODD = torch.tensor([5, 5, 1, 1, 1, 8, 2, 2, 5, 2])  # unbalanced, 8 is a singleton


@pytest.mark.parametrize("labels", [LABELS_PK, LABELS_ODD])
def test_soft_triplet_soft_version_matches_loop_reference(labels):
    g = torch.Generator().manual_seed(8)
    student = torch.randn(len(labels), 6, generator=g)
    teacher = student + 0.5 * torch.randn(len(labels), 6, generator=g)
    loss = soft_triplet_loss(student, labels, teacher)
    ref = soft_triplet_reference(student, labels.tolist(), teacher)
    assert loss.item() == pytest.approx(ref, rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("margin", [None, 0.0, 0.3])
def test_soft_triplet_hard_version_matches_loop_reference(margin):
    g = torch.Generator().manual_seed(9)
    x = torch.randn(len(LABELS_ODD), 5, generator=g)
    loss = soft_triplet_loss(x, LABELS_ODD, None, margin=margin)
    ref = soft_triplet_reference(x, LABELS_ODD.tolist(), None, w_pos=margin or 0.0)
    assert loss.item() == pytest.approx(ref, rel=1e-5, abs=1e-6)


def test_soft_triplet_hard_version_is_soft_margin_batch_hard():
    # -log T = log(1 + exp(d_ap - d_an)): Hermans et al.'s soft-margin batch-hard loss
    g = torch.Generator().manual_seed(10)
    x = torch.randn(12, 4, generator=g)
    torch.testing.assert_close(soft_triplet_loss(x, LABELS_PK, None),
                               batch_hard_triplet_loss(x, LABELS_PK, margin=None))


class _HostValues(TorchFunctionMode):
    """Counts tensors made from Python values: on CUDA each is a copy that waits for the GPU."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.count += func in (torch.tensor, torch.as_tensor)
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("margin", [None, 0.3])
def test_soft_triplet_hard_version_copies_nothing_from_the_host(margin):
    x = torch.randn(12, 4, generator=torch.Generator().manual_seed(12))
    with _HostValues() as made:
        soft_triplet_loss(x, LABELS_PK, None, margin=margin)
    assert made.count == 0


def _anchor_term(d_ap, d_an, t_ap, t_an):
    """-(q log T' + (1 - q) log T) with T = sigmoid(d_an - d_ap), q = sigmoid(t_ap - t_an)."""
    q_pos = 1 / (1 + math.exp(t_an - t_ap))

    def log_sigmoid(v):
        return -math.log1p(math.exp(-v))

    return -(q_pos * log_sigmoid(d_ap - d_an) + (1 - q_pos) * log_sigmoid(d_an - d_ap))


def test_soft_triplet_hand_case_mines_with_the_student():
    # Points on a line plus one negative. Identity 0 = rows 0-2, identity 1 = row 3.
    student = torch.tensor([[0.0, 0.0], [3.0, 0.0], [1.0, 0.0], [0.0, 5.0]])
    teacher = torch.tensor([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0], [0.0, 5.0]])
    labels = torch.tensor([0, 0, 0, 1])
    r26, r34 = math.sqrt(26), math.sqrt(34)
    # (student d_ap, d_an, teacher at the student's pairs) per anchor, mined by hand:
    # anchor 0: p=1 (3 > 1), n=3; anchor 1: p=0 (3 > 2), n=3; anchor 2: p=1 (2 > 1), n=3;
    # anchor 3: p=itself, n=0 (5 < sqrt 26 < sqrt 34).
    terms = [(3, 5, 1, 5), (3, r34, 1, r26), (2, r26, 2, r34), (0, 5, 0, 5)]
    expected = sum(_anchor_term(*t) for t in terms) / 4
    loss = soft_triplet_loss(student, labels, teacher)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    # Mining with the teacher's distances instead (anchor 0: p=2, anchor 2: p=0) differs.
    by_teacher = [(1, 5, 3, 5), (3, r34, 1, r26), (1, r26, 3, r34), (0, 5, 0, 5)]
    assert loss.item() != pytest.approx(sum(_anchor_term(*t) for t in by_teacher) / 4, rel=1e-3)


def test_soft_triplet_gradient_reaches_the_student_only():
    g = torch.Generator().manual_seed(11)
    base = torch.randn(len(LABELS_ODD), 4, generator=g)
    teacher = (base + 0.3 * torch.randn(base.shape, generator=g)).requires_grad_()
    ours = base.clone().requires_grad_()
    soft_triplet_loss(ours, LABELS_ODD, teacher).backward()
    assert teacher.grad is None

    # Reference autograd through per-anchor loops, with the pairs the reference mines.
    ref = base.clone().double().requires_grad_()
    t = teacher.detach().double()
    labels = LABELS_ODD.tolist()
    total = 0
    for a in range(len(labels)):
        d = [(ref[a] - ref[j]).norm() if j != a else torch.zeros((), dtype=torch.double)
             for j in range(len(labels))]
        pos = max((j for j in range(len(labels)) if labels[j] == labels[a]), key=lambda j: d[j])
        neg = min((j for j in range(len(labels)) if labels[j] != labels[a]), key=lambda j: d[j])
        dt = torch.stack([(t[a] - t[pos]).norm(), (t[a] - t[neg]).norm()])
        total = total - (F.softmax(dt, 0) * F.log_softmax(torch.stack([d[pos], d[neg]]), 0)).sum()
    (total / len(labels)).backward()
    torch.testing.assert_close(ours.grad, ref.grad.float(), rtol=1e-4, atol=1e-5)


def test_soft_triplet_float32_under_autocast():
    g = torch.Generator().manual_seed(12)
    x, t = torch.randn(12, 8, generator=g), torch.randn(12, 8, generator=g)
    plain = soft_triplet_loss(x.bfloat16().float(), LABELS_PK, t.bfloat16().float())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = soft_triplet_loss(x.bfloat16(), LABELS_PK, t.bfloat16())
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss, plain, rtol=1e-5, atol=1e-6)  # float32 distances inside


def test_soft_triplet_errors():
    x = torch.randn(6, 3)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    with pytest.raises(ValueError, match=r"\(B, D\)"):
        soft_triplet_loss(torch.randn(6), labels, None)
    with pytest.raises(ValueError, match="one label per row"):
        soft_triplet_loss(x, labels[:5], None)
    with pytest.raises(ValueError, match="integer"):
        soft_triplet_loss(x, labels.float(), None)
    with pytest.raises(ValueError, match="student's shape"):
        soft_triplet_loss(x, labels, torch.randn(6, 4))
    with pytest.raises(ValueError, match="margin=None"):
        soft_triplet_loss(x, labels, torch.randn(6, 3), margin=0.0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        soft_triplet_loss(x, labels, None, margin=1.5)
    with pytest.raises(ValueError, match="two identities"):
        soft_triplet_loss(x, torch.zeros(6, dtype=torch.long), None)


def test_batch_hard_triplet_float32_under_autocast():
    """AMP would run the distance matmul in bf16; euclidean_dist keeps it in float32."""
    g = torch.Generator().manual_seed(13)
    x = torch.randn(12, 64, generator=g).bfloat16()
    plain = batch_hard_triplet_loss(x.float(), LABELS_PK, margin=0.3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = batch_hard_triplet_loss(x, LABELS_PK, margin=0.3)
        dist = euclidean_dist(x, x)
    assert loss.dtype == torch.float32 and dist.dtype == torch.float32
    torch.testing.assert_close(loss, plain, rtol=1e-6, atol=1e-6)
