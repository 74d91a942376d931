"""Hidden checks of q3 (instructors; exercises/grade.py): the update against
reidlib.feature_learning.memory (momentum_update and ClusterMemory.update)."""

import numpy as np
import torch
import torch.nn.functional as F
from otter.test_files import test_case

from reidlib.feature_learning.memory import ClusterMemory
from reidlib.feature_learning.memory import momentum_update as reference_update

OK_FORMAT = False
name = "q3_hidden"


def _update(function, memory, index, feature, momentum):
    assert callable(function), "define a function called momentum_update"
    got = function(memory, index, feature, momentum)
    assert isinstance(got, torch.Tensor) and got.shape == memory.shape, (
        f"expected the updated memory, a tensor of shape {tuple(memory.shape)}, got {got!r}"
    )
    return got


def _unit(gen, *shape):
    return F.normalize(torch.randn(*shape, generator=gen, dtype=torch.float64), dim=-1)


@test_case(name="q3_hidden - random batches with repeated rows against reidlib", hidden=True)
def against_reidlib(momentum_update):
    gen = torch.Generator().manual_seed(60)
    for momentum in (0.0, 0.1, 0.2, 0.5, 0.9, 1.0):
        memory = _unit(gen, 10, 5)
        index = torch.randint(0, 10, (16,), generator=gen)  # rows repeat
        features = _unit(gen, 16, 5)
        expected = memory.clone()
        reference_update(expected, index, features, momentum)
        got = _update(momentum_update, memory.clone(), index.clone(), features.clone(), momentum)
        err = (got.double() - expected).abs().max().item()
        assert err < 1e-6, (
            f"momentum_update(10 x 5 memory, 16 features, index={index.tolist()}, "
            f"momentum={momentum}) is off by {err:.2g} from reidlib's momentum_update"
        )
        assert torch.allclose(got.double().norm(dim=1), torch.ones(10, dtype=torch.float64)), (
            "every row of the returned memory must have length 1"
        )


@test_case(name="q3_hidden - ClusterMemory.update moves its centroids the same way", hidden=True)
def against_cluster_memory(momentum_update):
    gen = torch.Generator().manual_seed(61)
    features = torch.randn(30, 6, generator=gen)
    labels = torch.randint(0, 4, (30,), generator=gen)
    memory = ClusterMemory(features, labels, momentum=0.2)
    before = memory.centroids.clone()
    indices = torch.randint(0, 30, (8,), generator=gen)
    embeddings = torch.randn(8, 6, generator=gen)
    memory.update(embeddings, indices)
    rows = memory.labels[indices]
    got = _update(momentum_update, before, rows, F.normalize(embeddings, dim=1), 0.2)
    assert torch.allclose(got.float(), memory.centroids, atol=1e-5), (
        f"momentum_update(the centroids, rows {rows.tolist()}, the batch's normalised "
        "embeddings, momentum=0.2) differs from what ClusterMemory.update did"
    )


@test_case(name="q3_hidden - index as a list, a numpy array or a tensor", hidden=True)
def index_types(momentum_update):
    gen = torch.Generator().manual_seed(62)
    memory, features = _unit(gen, 4, 3), _unit(gen, 3, 3)
    expected = memory.clone()
    reference_update(expected, torch.tensor([2, 0, 2]), features, 0.3)
    for index in ([2, 0, 2], np.array([2, 0, 2]), torch.tensor([2, 0, 2])):
        got = _update(momentum_update, memory.clone(), index, features.clone(), 0.3)
        assert torch.allclose(got.double(), expected, atol=1e-9), (
            f"momentum_update(memory, index={index!r}, 3 features, 0.3) gave another result "
            "than with the same rows as a list"
        )
    single = memory.clone()
    reference_update(single, torch.tensor([3]), features[:1], 0.3)
    got = _update(momentum_update, memory.clone(), 3, features[0].clone(), 0.3)
    assert torch.allclose(got.double(), single, atol=1e-9), (
        "momentum_update(memory, index=3 (an int), feature of shape (D,), 0.3) is wrong"
    )


@test_case(name="q3_hidden - inputs left unchanged", hidden=True)
def inputs_unchanged(momentum_update):
    gen = torch.Generator().manual_seed(63)
    memory, features = _unit(gen, 5, 3), _unit(gen, 4, 3)
    index = torch.tensor([1, 1, 4, 0])
    copies = memory.clone(), features.clone(), index.clone()
    _update(momentum_update, memory, index, features, 0.4)
    for given, copy in zip((memory, features, index), copies, strict=True):
        assert torch.equal(given, copy), "momentum_update changed a tensor it was given"
