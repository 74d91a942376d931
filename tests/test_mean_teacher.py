"""Mean teacher (survey §3.2, MMT / Mean Teacher): EMA updates against hand-written references."""

import pytest
import torch
from torch import nn

from reidlib.feature_learning.mean_teacher import (
    MeanTeacherPair,
    ema_update,
    make_teacher,
    warmup_alpha,
)
from reidlib.models import build_model
from reidlib.training.features import extract_features


def tiny_net():
    """Conv + BatchNorm + Linear: parameters, float buffers and an integer buffer."""
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, bias=False), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
        nn.Linear(4 * 4 * 4, 3),
    )


def drift(model, seed):
    """Move every parameter and BN statistic of ``model`` somewhere else, reproducibly."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g))
    model.train()
    model(torch.randn(8, 3, 6, 6, generator=g))  # updates running_mean / var / counter


def snapshot(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("buffers", ["average", "keep", "copy"])
def test_ema_update_matches_manual_reference(buffers):
    torch.manual_seed(0)
    student = tiny_net()
    teacher = make_teacher(student)
    drift(teacher, 1)
    drift(student, 2)
    drift(student, 3)  # the counters now differ too: teacher 1 batch, student 2
    t0, s0 = snapshot(teacher), snapshot(student)
    alpha = 0.7
    ema_update(teacher, student, alpha, buffers=buffers)
    params = {name for name, _ in student.named_parameters()}
    for name, value in teacher.state_dict().items():
        if name in params:
            expected = alpha * t0[name] + (1 - alpha) * s0[name]
        elif buffers == "keep":
            expected = t0[name]
        elif buffers == "copy" or not value.is_floating_point():
            expected = s0[name]
        else:
            expected = alpha * t0[name] + (1 - alpha) * s0[name]
        torch.testing.assert_close(value, expected, msg=f"{buffers}: {name}")
    assert teacher.state_dict()["1.num_batches_tracked"].dtype == torch.int64
    for name, value in student.state_dict().items():  # the student is never touched
        torch.testing.assert_close(value, s0[name])


def test_alpha_bounds_copy_or_keep():
    student, teacher = tiny_net(), tiny_net()
    before = snapshot(teacher)
    ema_update(teacher, student, 1.0)
    for k, v in teacher.state_dict().items():
        torch.testing.assert_close(v, before[k])
    ema_update(teacher, student, 0.0)
    for k, v in teacher.state_dict().items():
        torch.testing.assert_close(v, student.state_dict()[k])


def test_repeated_updates_match_closed_form():
    """teacher_T = a^T t_0 + sum_i (1 - a) a^(T - i) s_i, the definition of the EMA."""
    torch.manual_seed(0)
    teacher, student = nn.Linear(3, 2), nn.Linear(3, 2)
    alpha, t0 = 0.9, teacher.weight.detach().clone()
    expected = alpha**5 * t0
    for step in range(1, 6):
        with torch.no_grad():
            student.weight.copy_(torch.randn(2, 3))
        expected = expected + (1 - alpha) * alpha ** (5 - step) * student.weight.detach()
        ema_update(teacher, student, alpha)
    torch.testing.assert_close(teacher.weight.detach(), expected)


def test_update_builds_no_graph_and_leaves_student_grads():
    student = tiny_net()
    teacher = make_teacher(student)
    student(torch.randn(2, 3, 6, 6)).sum().backward()
    grads = {n: p.grad.clone() for n, p in student.named_parameters()}
    drift(student, 4)
    ema_update(teacher, student, 0.5)
    for p in teacher.parameters():
        assert p.grad_fn is None and p.grad is None and not p.requires_grad
    for n, p in student.named_parameters():
        torch.testing.assert_close(p.grad, grads[n])


def test_make_teacher_is_frozen_independent_copy():
    torch.manual_seed(0)
    student = build_model("small", num_classes=4)
    teacher = make_teacher(student)
    assert teacher is not student and teacher.training == student.training
    assert all(not p.requires_grad for p in teacher.parameters())
    assert any(p.requires_grad for p in student.parameters())  # the student stays trainable
    for k, v in student.state_dict().items():
        torch.testing.assert_close(teacher.state_dict()[k], v)
    with torch.no_grad():
        next(student.parameters()).add_(1.0)
    assert not torch.equal(next(student.parameters()), next(teacher.parameters()))
    # eval-compatible: the chapter extracts clustering features with the teacher
    images = torch.randint(0, 256, (3, 3, 64, 32), dtype=torch.uint8)
    feats = extract_features(teacher, images, progress=False)
    assert feats.shape == (3, 256) and teacher.training  # mode restored
    teacher.train()
    assert teacher(torch.randn(2, 3, 64, 32)).logits.shape == (2, 4)  # MMT's soft targets


def test_warmup_alpha():
    assert warmup_alpha(0.999, 0) == 0.0
    assert warmup_alpha(0.999, 1) == 0.5
    assert warmup_alpha(0.999, 3) == 0.75
    assert warmup_alpha(0.999, 10_000) == 0.999
    assert warmup_alpha(0.9, 9) == pytest.approx(0.9)
    with pytest.raises(ValueError, match="step"):
        warmup_alpha(0.9, -1)
    with pytest.raises(ValueError, match="step"):
        warmup_alpha(0.9, 1.5)


def test_pair_running_mean_during_warmup():
    """With warm-up, the teacher after T updates is the plain mean of the student's T weights
    while 1 - 1/(step+1) < alpha (Mean Teacher's "true average" start)."""
    torch.manual_seed(0)
    student = nn.Linear(4, 2)
    pair = MeanTeacherPair.from_student(student, alpha=0.99)
    seen = []
    for _ in range(5):
        with torch.no_grad():
            student.weight.copy_(torch.randn(2, 4))
            student.bias.copy_(torch.randn(2))
        seen.append(student.weight.detach().clone())
        used = pair.update()
        torch.testing.assert_close(pair.teacher.weight, torch.stack(seen).mean(0))
    assert pair.step == 5 and used == 0.8


def test_errors():
    student = build_model("small", num_classes=5)
    teacher = make_teacher(student)
    with pytest.raises(ValueError, match=r"alpha must be a number in \[0, 1\]"):
        ema_update(teacher, student, 1.5)
    with pytest.raises(ValueError, match="alpha"):
        MeanTeacherPair.from_student(student, alpha=-0.1)
    with pytest.raises(ValueError, match="buffers must be one of"):
        ema_update(teacher, student, 0.9, buffers="mean")
    with pytest.raises(ValueError, match="same module"):
        ema_update(student, student, 0.9)
    with pytest.raises(TypeError, match="nn.Module"):
        make_teacher({"weight": torch.zeros(1)})
    student.reset_classifier(7)  # re-clustered the student only
    with pytest.raises(ValueError, match=r"classifier.weight.*\(5, 256\).*\(7, 256\)"):
        ema_update(teacher, student, 0.9)
    student.reset_classifier(0)
    with pytest.raises(ValueError, match="only in the teacher.*classifier.weight"):
        ema_update(teacher, student, 0.9)
