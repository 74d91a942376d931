"""Public checks of q3, the momentum update of a memory (students run grader.check("q3"))."""

import math

import torch
from otter.test_files import test_case

OK_FORMAT = False
name = "q3"

HINT = (
    "Hint: start from out = memory.clone(); turn index into a list of ints "
    "(torch.as_tensor(index).reshape(-1).tolist()) and feature into rows "
    "(feature.reshape(len(rows), -1)); then, in a loop over the pairs, "
    "out[r] = F.normalize(momentum * out[r] + (1 - momentum) * f, dim=0). "
    "The momentum is the weight of the OLD vector."
)

R = 1 / math.sqrt(2)


def _memory():
    return torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)


def _update(function, memory, index, feature, momentum, what):
    assert callable(function), "define a function called momentum_update (run its cell first)"
    got = function(memory, index, feature, momentum)
    assert got is not None, "momentum_update returned None: did you forget the return?"
    assert isinstance(got, torch.Tensor) and got.shape == memory.shape, (
        f"momentum_update({what}) should return the whole updated memory, a tensor of shape "
        f"{tuple(memory.shape)}, got {got!r}"
    )
    return got.double()


def _expect(function, memory, index, feature, momentum, what, expected, why):
    got = _update(function, memory, index, feature, momentum, what)
    expected = torch.tensor(expected, dtype=torch.float64)
    assert torch.allclose(got, expected, atol=1e-6), (
        f"momentum_update({what}) returned {[[round(v, 4) for v in r] for r in got.tolist()]}, "
        f"expected {[[round(v, 4) for v in r] for r in expected.tolist()]} ({why})"
    )


@test_case(name="q3 - worked example", failure_message=HINT)
def worked_example(momentum_update):
    _expect(
        momentum_update, _memory(), 0, torch.tensor([0.0, 1.0], dtype=torch.float64), 0.5,
        "rows (1, 0) and (0, 1), index 0, feature (0, 1), momentum 0.5", [[R, R], [0.0, 1.0]],
        "row 0 becomes 0.5 (1, 0) + 0.5 (0, 1) = (0.5, 0.5), then length 1; row 1 is untouched",
    )


@test_case(name="q3 - momentum 0 replaces, momentum 1 keeps", failure_message=HINT)
def extreme_momentum(momentum_update):
    f = torch.tensor([0.6, 0.8], dtype=torch.float64)
    what = "rows (1, 0) and (0, 1), index 1, feature (0.6, 0.8), momentum {}"
    _expect(momentum_update, _memory(), 1, f, 0.0, what.format(0), [[1.0, 0.0], [0.6, 0.8]],
            "momentum 0 keeps none of the old vector: the row becomes the feature")
    _expect(momentum_update, _memory(), 1, f, 1.0, what.format(1), [[1.0, 0.0], [0.0, 1.0]],
            "momentum 1 keeps all of the old vector: nothing changes")


@test_case(name="q3 - a batch, one row twice, in order", failure_message=HINT)
def repeated_row(momentum_update):
    features = torch.tensor([[0.0, 1.0], [0.0, 1.0], [1.0, 0.0]], dtype=torch.float64)
    # Row 0 first moves to 45 degrees, then from there half-way to 90 degrees: 67.5 degrees.
    angle = math.radians(67.5)
    _expect(
        momentum_update, _memory(), [0, 0, 1], features, 0.5,
        "rows (1, 0) and (0, 1), index [0, 0, 1], features [(0, 1), (0, 1), (1, 0)], momentum 0.5",
        [[math.cos(angle), math.sin(angle)], [R, R]],
        "row 0's second update starts from (0.7071, 0.7071), the result of its first, and moves "
        "to 67.5 degrees; updating both from (1, 0) at once would leave it at 45 degrees",
    )


@test_case(name="q3 - the memory given is left unchanged", failure_message=HINT)
def memory_unchanged(momentum_update):
    memory = _memory()
    _update(momentum_update, memory, 0, torch.tensor([0.0, 1.0], dtype=torch.float64), 0.5,
            "rows (1, 0) and (0, 1), index 0, feature (0, 1), momentum 0.5")
    assert torch.equal(memory, _memory()), (
        f"momentum_update changed the memory it was given to {memory.tolist()}: update and "
        "return a copy (memory.clone())"
    )
