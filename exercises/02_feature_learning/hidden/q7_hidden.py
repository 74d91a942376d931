"""Hidden checks of q7 (instructors; exercises/grade.py): against
reidlib.training.losses.soft_triplet_loss, values and gradients, on P x K batches and batches
with lone anchors."""

import torch
from otter.test_files import test_case

from reidlib.training.losses import soft_triplet_loss as reference

OK_FORMAT = False
name = "q7_hidden"


def _batches(gen):
    for p, k in ((4, 4), (8, 2), (3, 5)):
        yield torch.arange(p).repeat_interleave(k)
    for _ in range(5):
        labels = torch.randint(0, 6, (12,), generator=gen)
        if len(labels.unique()) > 1:
            yield labels  # some identities have one image: the anchor is its own positive


@test_case(name="q7_hidden - random batches against reidlib", hidden=True)
def against_reidlib(soft_triplet_loss):
    gen = torch.Generator().manual_seed(77)
    for labels in _batches(gen):
        b = len(labels)
        features = torch.randn(b, 5, generator=gen, dtype=torch.float64).requires_grad_()
        teacher = torch.randn(b, 5, generator=gen, dtype=torch.float64)
        got = soft_triplet_loss(features, labels, teacher)
        assert isinstance(got, torch.Tensor) and got.numel() == 1, (
            f"expected a torch scalar, got {got!r}"
        )
        mine = features.detach().clone().requires_grad_()
        expected = reference(mine, labels, teacher)
        assert abs(float(got.detach()) - float(expected.detach())) < 1e-4, (
            f"soft_triplet_loss(a batch of {b}, labels {labels.tolist()}) returned "
            f"{float(got.detach()):.6f}, expected {float(expected.detach()):.6f}"
        )
        got.backward()
        expected.backward()
        assert features.grad is not None and torch.allclose(features.grad, mine.grad,
                                                            atol=1e-4), (
            f"the gradient with respect to the features (labels {labels.tolist()}) is not the "
            "soft triplet loss's"
        )


@test_case(name="q7_hidden - ties go to the lower index", hidden=True)
def ties(soft_triplet_loss):
    # Integer positions: anchors with two equally far positives or negatives.
    features = torch.tensor([[0.0], [1.0], [-1.0], [2.0], [-2.0], [4.0]], dtype=torch.float64)
    teacher = torch.tensor([[0.0], [3.0], [-0.5], [1.0], [-4.0], [2.0]], dtype=torch.float64)
    labels = torch.tensor([0, 0, 0, 1, 1, 2])
    got = float(soft_triplet_loss(features, labels, teacher))
    expected = float(reference(features, labels, teacher))
    assert abs(got - expected) < 1e-6, (
        f"with tied distances soft_triplet_loss returned {got:.6f}, expected {expected:.6f}: on "
        "ties the lower index wins (argmax / argmin)"
    )


@test_case(name="q7_hidden - inputs left unchanged", hidden=True)
def inputs_unchanged(soft_triplet_loss):
    features = torch.tensor([[0.0, 1.0], [1.0, 1.0], [3.0, 0.0], [2.0, 2.0]])
    teacher = features.flip(0).clone()
    labels = torch.tensor([0, 0, 1, 1])
    before = features.clone(), teacher.clone(), labels.clone()
    soft_triplet_loss(features, labels, teacher)
    assert all(torch.equal(a, b) for a, b in zip(before, (features, teacher, labels),
                                                 strict=True)), (
        "soft_triplet_loss changed the features, labels or teacher features it was given"
    )
