"""Public checks of q6, MMT's soft cross-entropy (students run grader.check("q6"))."""

import math
import numbers

import torch
from otter.test_files import test_case

OK_FORMAT = False
name = "q6"

HINT = (
    "Hint: q = F.softmax(teacher_logits.detach(), dim=1) and log_p = F.log_softmax(logits, "
    "dim=1); the loss is -(q * log_p).sum(dim=1).mean()."
)


def _loss(function, logits, teacher_logits, what):
    assert callable(function), "define a function called soft_cross_entropy (run its cell first)"
    got = function(logits, teacher_logits)
    assert got is not None, "soft_cross_entropy returned None: did you forget the return?"
    if isinstance(got, torch.Tensor):
        assert got.numel() == 1, (
            f"soft_cross_entropy({what}) should return one number (the mean over the batch), "
            f"got a tensor of shape {tuple(got.shape)}"
        )
        return float(got)
    assert isinstance(got, numbers.Real) and not isinstance(got, bool), (
        f"soft_cross_entropy({what}) should return a torch scalar, got {got!r}"
    )
    return float(got)


@test_case(name="q6 - worked example", failure_message=HINT)
def worked_example(soft_cross_entropy):
    logits = torch.tensor([[0.0, 0.0]], dtype=torch.float64)
    teacher = torch.tensor([[math.log(3), 0.0]], dtype=torch.float64)
    got = _loss(soft_cross_entropy, logits, teacher, "student (0, 0), teacher (log 3, 0)")
    assert abs(got - math.log(2)) < 1e-9, (
        f"soft_cross_entropy(student (0, 0), teacher (log 3, 0)) returned {got:.4f}, expected "
        "log 2 = 0.6931: q = (0.75, 0.25), p = (0.5, 0.5), -(0.75 log 0.5 + 0.25 log 0.5)"
    )


@test_case(name="q6 - a one-hot teacher gives the hard cross-entropy", failure_message=HINT)
def one_hot(soft_cross_entropy):
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]], dtype=torch.float64)
    teacher = torch.tensor([[100.0, 0.0, 0.0], [0.0, 0.0, 100.0]], dtype=torch.float64)
    expected = float(torch.nn.functional.cross_entropy(logits, torch.tensor([0, 2])))
    got = _loss(soft_cross_entropy, logits, teacher, "a near one-hot teacher, 2 images")
    assert abs(got - expected) < 1e-6, (
        f"with a (near) one-hot teacher the soft cross-entropy is the ordinary cross-entropy "
        f"{expected:.4f} (the mean over the 2 images), got {got:.4f}"
    )


@test_case(name="q6 - no gradient reaches the teacher", failure_message=HINT)
def teacher_detached(soft_cross_entropy):
    logits = torch.tensor([[1.0, 2.0], [0.0, -1.0]], requires_grad=True)
    teacher = torch.tensor([[0.5, 0.0], [2.0, 1.0]], requires_grad=True)
    got = soft_cross_entropy(logits, teacher)
    assert isinstance(got, torch.Tensor) and got.requires_grad, (
        "soft_cross_entropy's result has no gradient: build it from torch operations on logits"
    )
    got.backward()
    assert logits.grad is not None, "no gradient reached the student's logits"
    assert teacher.grad is None or not teacher.grad.any(), (
        "a gradient reached teacher_logits: detach the teacher (teacher_logits.detach()), it is "
        "a temporal average of weights, never trained by backpropagation"
    )
