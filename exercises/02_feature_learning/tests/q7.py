"""Public checks of q7, MMT's soft triplet loss (students run grader.check("q7"))."""

import math
import numbers

import torch
from otter.test_files import test_case

OK_FORMAT = False
name = "q7"

HINT = (
    "Hint: dist = torch.cdist(features, features); same = labels[:, None] == labels[None, :]; "
    "pos = dist.detach().masked_fill(~same, -inf).argmax(dim=1, keepdim=True) and "
    "neg = dist.detach().masked_fill(same, inf).argmin(dim=1, keepdim=True); gather the pair "
    "(D(i, p), D(i, n)) from the student's and (under torch.no_grad()) the teacher's distances; "
    "loss = -(F.softmax(teacher pair, dim=1) * F.log_softmax(student pair, dim=1)).sum(1).mean()."
)

STUDENT = torch.tensor([[0.0], [1.0], [3.0]], dtype=torch.float64)
TEACHER = torch.tensor([[0.0], [2.0], [3.0]], dtype=torch.float64)
LABELS = torch.tensor([0, 0, 1])


def _bce(student_pair, teacher_pair):
    """-[T' log T + (1 - T') log(1 - T)] with T = e^dn / (e^dp + e^dn)."""
    t = math.exp(student_pair[1]) / (math.exp(student_pair[0]) + math.exp(student_pair[1]))
    q = math.exp(teacher_pair[1]) / (math.exp(teacher_pair[0]) + math.exp(teacher_pair[1]))
    return -(q * math.log(t) + (1 - q) * math.log(1 - t))


def _loss(function, features, labels, teacher, what):
    assert callable(function), "define a function called soft_triplet_loss (run its cell first)"
    got = function(features, labels, teacher)
    assert got is not None, "soft_triplet_loss returned None: did you forget the return?"
    if isinstance(got, torch.Tensor):
        assert got.numel() == 1, (
            f"soft_triplet_loss({what}) should return one number (the mean over the anchors), "
            f"got a tensor of shape {tuple(got.shape)}"
        )
        return float(got)
    assert isinstance(got, numbers.Real) and not isinstance(got, bool), (
        f"soft_triplet_loss({what}) should return a torch scalar, got {got!r}"
    )
    return float(got)


@test_case(name="q7 - worked example", failure_message=HINT)
def worked_example(soft_triplet_loss):
    # anchor 0: p = 1, n = 2; anchor 1: p = 0, n = 2; anchor 2: alone, p = 2 (itself), n = 1
    expected = (_bce((1, 3), (2, 3)) + _bce((1, 2), (2, 1)) + _bce((0, 2), (0, 1))) / 3
    what = "student at 0, 1, 3, teacher at 0, 2, 3, labels [0, 0, 1]"
    got = _loss(soft_triplet_loss, STUDENT, LABELS, TEACHER, what)
    assert abs(got - expected) < 1e-6, (
        f"soft_triplet_loss({what}) returned {got:.4f}, expected {expected:.4f}: anchor 0 pairs "
        "(1, 3) for the student and (2, 3) for the teacher, anchor 1 (1, 2) and (2, 1), anchor "
        "2 (its own positive at 0, negative 1) (0, 2) and (0, 1)"
    )


def _line_loss(student, teacher, labels):
    """The loss for images on a line, with plain loops (lower index first on ties)."""
    total = 0.0
    for i in range(len(student)):
        same = [j for j in range(len(student)) if labels[j] == labels[i]]  # i included
        other = [j for j in range(len(student)) if labels[j] != labels[i]]
        p = max(same, key=lambda j: (abs(student[j] - student[i]), -j))
        n = min(other, key=lambda j: (abs(student[j] - student[i]), j))
        total += _bce((abs(student[p] - student[i]), abs(student[n] - student[i])),
                      (abs(teacher[p] - teacher[i]), abs(teacher[n] - teacher[i])))
    return total / len(student)


@test_case(name="q7 - the teacher's pairs are the student's", failure_message=HINT)
def same_pairs(soft_triplet_loss):
    # The teacher ranks anchor 0's positives the other way round (image 1 farther than 2);
    # its T' must still be read at the student's p(0) = 2.
    student, teacher, labels = [0.0, 1.0, 3.0, 4.0, 10.0], [0.0, 3.0, 1.0, 4.0, 10.0], \
        [0, 0, 0, 1, 1]
    expected = _line_loss(student, teacher, labels)
    what = "student at 0, 1, 3, 4, 10, teacher at 0, 3, 1, 4, 10, labels [0, 0, 0, 1, 1]"
    got = _loss(soft_triplet_loss, torch.tensor(student, dtype=torch.float64)[:, None],
                torch.tensor(labels), torch.tensor(teacher, dtype=torch.float64)[:, None], what)
    assert abs(got - expected) < 1e-6, (
        f"soft_triplet_loss({what}) returned {got:.4f}, expected {expected:.4f}: mine p(i) and "
        "n(i) with the STUDENT's distances, then read the teacher's distances at those pairs"
    )


@test_case(name="q7 - no gradient reaches the teacher", failure_message=HINT)
def teacher_detached(soft_triplet_loss):
    features = STUDENT.clone().requires_grad_()
    teacher = TEACHER.clone().requires_grad_()
    got = soft_triplet_loss(features, LABELS, teacher)
    assert isinstance(got, torch.Tensor) and got.requires_grad, (
        "soft_triplet_loss's result has no gradient: build it from torch operations on features"
    )
    got.backward()
    assert features.grad is not None, "no gradient reached the student's features"
    assert teacher.grad is None or not teacher.grad.any(), (
        "a gradient reached teacher_features: compute the teacher's side under torch.no_grad() "
        "(or from teacher_features.detach())"
    )
