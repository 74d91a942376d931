"""Hidden checks of q6 (instructors; exercises/grade.py): against
reidlib.training.losses.soft_cross_entropy, values and gradients."""

import torch
from otter.test_files import test_case

from reidlib.training.losses import soft_cross_entropy as reference

OK_FORMAT = False
name = "q6_hidden"


@test_case(name="q6_hidden - random logits against reidlib", hidden=True)
def against_reidlib(soft_cross_entropy):
    gen = torch.Generator().manual_seed(66)
    for scale in (0.1, 1.0, 5.0, 400.0):  # 400: confident nets, log(softmax) gives -inf
        logits = (scale * torch.randn(9, 7, generator=gen, dtype=torch.float64)).requires_grad_()
        teacher = scale * torch.randn(9, 7, generator=gen, dtype=torch.float64)
        got = soft_cross_entropy(logits, teacher)
        assert isinstance(got, torch.Tensor) and got.numel() == 1, (
            f"expected a torch scalar, got {got!r}"
        )
        mine = logits.detach().clone().requires_grad_()
        expected = reference(mine, teacher)
        value, wanted = float(got.detach()), float(expected.detach())
        assert torch.isfinite(got.detach()) and abs(value - wanted) < 1e-6 * max(1.0, wanted), (
            f"soft_cross_entropy(9 x 7 random logits of scale {scale}) returned {value:.6f}, "
            f"expected {wanted:.6f}"
        )
        got.backward()
        expected.backward()
        assert logits.grad is not None and torch.allclose(logits.grad, mine.grad, atol=1e-8), (
            f"the gradient with respect to the logits (scale {scale}) is not the soft "
            "cross-entropy's"
        )


@test_case(name="q6_hidden - no gradient reaches the teacher", hidden=True)
def teacher_detached(soft_cross_entropy):
    gen = torch.Generator().manual_seed(67)
    logits = torch.randn(4, 5, generator=gen, requires_grad=True)
    teacher = torch.randn(4, 5, generator=gen, requires_grad=True)
    soft_cross_entropy(logits, teacher).backward()
    assert teacher.grad is None or not teacher.grad.any(), (
        "a gradient reached teacher_logits: detach the teacher"
    )


@test_case(name="q6_hidden - inputs left unchanged", hidden=True)
def inputs_unchanged(soft_cross_entropy):
    logits, teacher = torch.tensor([[1.0, 2.0]]), torch.tensor([[3.0, -1.0]])
    soft_cross_entropy(logits, teacher)
    assert torch.equal(logits, torch.tensor([[1.0, 2.0]])) and \
        torch.equal(teacher, torch.tensor([[3.0, -1.0]])), (
            "soft_cross_entropy changed the logits it was given"
        )
