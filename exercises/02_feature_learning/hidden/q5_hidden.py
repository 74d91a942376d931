"""Hidden checks of q5 (instructors; exercises/grade.py): against
reidlib.feature_learning.memory.HybridMemory (its targets, its classes and its loss)."""

import numpy as np
import torch
import torch.nn.functional as F
from otter.test_files import test_case

from reidlib.feature_learning.memory import HybridMemory

OK_FORMAT = False
name = "q5_hidden"


def _targets(function, features, labels):
    assert callable(function), "define a function called hybrid_targets"
    got = function(features, labels)
    assert isinstance(got, tuple) and len(got) == 2, "expected a tuple (targets, classes)"
    return got


def _case(rng, gen):
    n = int(rng.integers(1, 40))
    labels = rng.integers(-1, int(rng.integers(1, 8)), size=n) * 3  # -3 ... as outliers below
    labels = np.where(labels < 0, -1, labels + 4)
    features = F.normalize(torch.randn(n, 6, generator=gen), dim=1)
    return features, labels


@test_case(name="q5_hidden - random clusterings against HybridMemory", hidden=True)
def against_hybrid_memory(hybrid_targets):
    rng, gen = np.random.default_rng(55), torch.Generator().manual_seed(55)
    for kind in range(30):
        features, labels = _case(rng, gen)
        memory = HybridMemory(features, labels)
        given = [labels, labels.tolist(), torch.as_tensor(labels)][kind % 3]
        targets, classes = _targets(hybrid_targets, features.clone(), given)
        expected = memory.targets()
        assert tuple(targets.shape) == tuple(expected.shape) and \
            torch.allclose(targets.float(), expected, atol=1e-6), (
                f"hybrid_targets({len(labels)} images, labels {labels.tolist()}) returned targets "
                f"of shape {tuple(targets.shape)} that differ from HybridMemory's "
                f"{tuple(expected.shape)}"
            )
        assert torch.equal(torch.as_tensor(classes).long(), memory.labels), (
            f"hybrid_targets(labels {labels.tolist()}) returned classes "
            f"{torch.as_tensor(classes).tolist()}, expected {memory.labels.tolist()}"
        )


@test_case(name="q5_hidden - SpCL's loss from your targets", hidden=True)
def spcl_loss(hybrid_targets):
    rng, gen = np.random.default_rng(56), torch.Generator().manual_seed(56)
    for _ in range(10):
        features, labels = _case(rng, gen)
        memory = HybridMemory(features, labels, temperature=0.05)
        indices = torch.randint(0, len(labels), (8,), generator=gen)
        embeddings = torch.randn(8, 6, generator=gen)
        targets, classes = _targets(hybrid_targets, features.clone(), labels)
        x = F.normalize(embeddings, dim=1)
        got = F.cross_entropy(x @ targets.float().T / 0.05,
                              torch.as_tensor(classes).long()[indices])
        expected = memory(embeddings, indices)
        assert abs(float(got) - float(expected)) < 1e-4, (
            f"InfoNCE over your targets gives {float(got):.5f}, SpCL's hybrid memory "
            f"{float(expected):.5f}"
        )


@test_case(name="q5_hidden - all outliers, or none", hidden=True)
def extremes(hybrid_targets):
    features = F.normalize(torch.randn(5, 3, generator=torch.Generator().manual_seed(57)), dim=1)
    for labels in ([-1] * 5, [0, 0, 1, 1, 1]):
        memory = HybridMemory(features, labels)
        targets, classes = _targets(hybrid_targets, features.clone(), labels)
        assert tuple(targets.shape) == tuple(memory.targets().shape) and torch.allclose(
            targets.float(), memory.targets(), atol=1e-6) and \
            torch.as_tensor(classes).tolist() == memory.labels.tolist(), (
                f"hybrid_targets(labels {labels}) differs from HybridMemory's targets / classes"
            )


@test_case(name="q5_hidden - inputs left unchanged", hidden=True)
def inputs_unchanged(hybrid_targets):
    features = F.normalize(torch.randn(6, 3, generator=torch.Generator().manual_seed(58)), dim=1)
    labels = torch.tensor([1, -1, 1, 0, -1, 0])
    before = features.clone(), labels.clone()
    _targets(hybrid_targets, features, labels)
    assert torch.equal(features, before[0]) and torch.equal(labels, before[1]), (
        "hybrid_targets changed the features or labels it was given"
    )
