"""Public checks of q2, the cluster contrast loss (students run grader.check("q2"))."""

import math
import numbers

import torch
from otter.test_files import test_case

OK_FORMAT = False
name = "q2"

HINT = (
    "Hint: x = F.normalize(torch.atleast_2d(embedding), dim=1) makes one embedding a batch of "
    "one and gives every row length 1; the logits are x @ centroids.T / temperature, and "
    "F.cross_entropy(logits, targets) is the mean of -log softmax(logits)[target] over the "
    "rows (targets as a 1-D integer tensor: torch.as_tensor(target).reshape(-1))."
)

# Two centroids, the notebook's example.
CENTROIDS = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)


def _loss(function, embedding, centroids, target, temperature, what):
    """The student's loss as a float, checked to be a scalar."""
    assert callable(function), "define a function called cluster_contrast_loss (run its cell first)"
    got = function(embedding, centroids, target, temperature)
    assert got is not None, "cluster_contrast_loss returned None: did you forget the return?"
    if isinstance(got, torch.Tensor):
        assert got.numel() == 1, (
            f"cluster_contrast_loss({what}) should return one number (the mean over the batch), "
            f"got a tensor of shape {tuple(got.shape)}"
        )
        return float(got)
    assert isinstance(got, numbers.Real) and not isinstance(got, bool), (
        f"cluster_contrast_loss({what}) should return a torch scalar, got {got!r}"
    )
    return float(got)


def _expect(function, embedding, centroids, target, temperature, what, expected, why):
    got = _loss(function, embedding, centroids, target, temperature, what)
    assert abs(got - expected) < 1e-6, (
        f"cluster_contrast_loss({what}) returned {got:.4f}, expected {expected:.4f} ({why})"
    )


@test_case(name="q2 - one embedding, two centroids", failure_message=HINT)
def worked_example(cluster_contrast_loss):
    x = torch.tensor([3.0, 4.0], dtype=torch.float64)
    for target, expected, why in (
        (0, math.log(1 + math.exp(2)), "normalised x = (0.6, 0.8), logits 6 and 8: log(1 + e^2)"),
        (1, math.log(1 + math.exp(-2)), "logits 6 and 8, target 1: log(1 + e^-2)"),
    ):
        what = f"(3, 4), centroids (1, 0) and (0, 1), target={target}, temperature=0.1"
        _expect(cluster_contrast_loss, x, CENTROIDS, target, 0.1, what, expected, why)


@test_case(name="q2 - the temperature divides", failure_message=HINT)
def temperature(cluster_contrast_loss):
    x = torch.tensor([0.0, 2.0], dtype=torch.float64)  # normalised (0, 1): logits 0 and 1 / tau
    for tau in (1.0, 0.5):
        what = f"(0, 2), centroids (1, 0) and (0, 1), target=1, temperature={tau}"
        why = f"logits 0 and 1 / {tau} = {1 / tau:g}: log(1 + e^-{1 / tau:g})"
        expected = math.log(1 + math.exp(-1 / tau))
        _expect(cluster_contrast_loss, x, CENTROIDS, 1, tau, what, expected, why)


@test_case(name="q2 - a batch: the mean over its embeddings", failure_message=HINT)
def batch(cluster_contrast_loss):
    x = torch.tensor([[3.0, 4.0], [0.0, 2.0]], dtype=torch.float64)
    target = torch.tensor([0, 1])
    expected = (math.log(1 + math.exp(2)) + math.log(1 + math.exp(-10))) / 2
    what = "[(3, 4), (0, 2)], centroids (1, 0) and (0, 1), target=[0, 1], temperature=0.1"
    why = "the mean of log(1 + e^2) for (3, 4) and log(1 + e^-10) for (0, 2)"
    _expect(cluster_contrast_loss, x, CENTROIDS, target, 0.1, what, expected, why)
