"""Hidden checks of q2 (instructors; exercises/grade.py): the loss and its gradient against
reidlib.feature_learning.memory.ClusterMemory and against a log-sum-exp written out."""

import math

import torch
import torch.nn.functional as F
from otter.test_files import test_case

from reidlib.feature_learning.memory import ClusterMemory

OK_FORMAT = False
name = "q2_hidden"


def _loss(function, embedding, centroids, target, temperature):
    assert callable(function), "define a function called cluster_contrast_loss"
    got = function(embedding, centroids, target, temperature)
    assert isinstance(got, torch.Tensor) and got.numel() == 1, (
        f"expected a torch scalar (the mean loss over the batch), got {got!r}"
    )
    return got.reshape(())


@test_case(name="q2_hidden - random batches against ClusterMemory", hidden=True)
def against_cluster_memory(cluster_contrast_loss):
    gen = torch.Generator().manual_seed(50)
    for tau in (0.05, 0.1, 1.0):
        features = torch.randn(40, 8, generator=gen)
        labels = torch.randint(0, 6, (40,), generator=gen) * 3 + 1  # ids 1, 4, ... 16
        memory = ClusterMemory(features, labels, temperature=tau)
        indices = torch.randint(0, 40, (12,), generator=gen)
        embeddings = 5 * torch.randn(12, 8, generator=gen)  # not unit length
        expected = float(memory(embeddings, indices))
        got = float(_loss(cluster_contrast_loss, embeddings.clone(), memory.centroids.clone(),
                          memory.labels[indices], tau))
        assert abs(got - expected) < 1e-4 * max(1.0, abs(expected)), (
            f"cluster_contrast_loss(12 random embeddings, {memory.num_classes} centroids, "
            f"temperature={tau}) returned {got:.5f}, but ClusterMemory's loss is {expected:.5f}"
        )


@test_case(name="q2_hidden - the gradient reaches the embeddings", hidden=True)
def gradient(cluster_contrast_loss):
    gen = torch.Generator().manual_seed(51)
    centroids = F.normalize(torch.randn(5, 6, generator=gen, dtype=torch.float64), dim=1)
    embeddings = torch.randn(7, 6, generator=gen, dtype=torch.float64)
    target = torch.randint(0, 5, (7,), generator=gen)
    x = embeddings.clone().requires_grad_(True)
    got = _loss(cluster_contrast_loss, x, centroids, target, 0.05)
    assert got.requires_grad, (
        "cluster_contrast_loss's result has no gradient: build it from torch operations on the "
        "embedding (no .item(), .numpy() or float() inside)"
    )
    got.backward()
    y = embeddings.clone().requires_grad_(True)
    F.cross_entropy(F.normalize(y, dim=1) @ centroids.T / 0.05, target).backward()
    assert x.grad is not None and torch.allclose(x.grad, y.grad, atol=1e-8), (
        "the gradient of cluster_contrast_loss with respect to the embeddings is not the one "
        "of the mean InfoNCE loss"
    )


@test_case(name="q2_hidden - one embedding against a log-sum-exp", hidden=True)
def single_embeddings(cluster_contrast_loss):
    gen = torch.Generator().manual_seed(52)
    centroids = F.normalize(torch.randn(9, 4, generator=gen, dtype=torch.float64), dim=1)
    for target in range(9):
        x = torch.randn(4, generator=gen, dtype=torch.float64)
        unit = (x / x.norm()).tolist()
        logits = [sum(c * u for c, u in zip(row, unit, strict=True)) / 0.2
                  for row in centroids.tolist()]
        expected = math.log(sum(math.exp(v) for v in logits)) - logits[target]
        got = float(_loss(cluster_contrast_loss, x, centroids, target, 0.2))
        assert abs(got - expected) < 1e-9, (
            f"cluster_contrast_loss(one random embedding, 9 centroids, target={target}, "
            f"temperature=0.2) returned {got:.6f}, expected {expected:.6f}"
        )


@test_case(name="q2_hidden - inputs left unchanged", hidden=True)
def inputs_unchanged(cluster_contrast_loss):
    x = torch.tensor([[3.0, 4.0], [1.0, 1.0]])
    centroids = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    _loss(cluster_contrast_loss, x, centroids, torch.tensor([0, 1]), 0.05)
    assert torch.equal(x, torch.tensor([[3.0, 4.0], [1.0, 1.0]])) and \
        torch.equal(centroids, torch.eye(2)), (
            "cluster_contrast_loss changed the embeddings or centroids it was given "
            "(normalise into a new tensor, not in place)"
        )
