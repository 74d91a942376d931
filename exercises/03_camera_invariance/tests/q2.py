"""Public checks of q2, CAP's intra-camera loss (students run grader.check("q2"))."""

import math
import numbers

import torch
from otter.test_files import test_case

OK_FORMAT = False
name = "q2"

HINT = (
    "Hint: x = F.normalize(embeddings, dim=1); logits = x @ proxies.T / temperature, set to "
    "-inf (masked_fill) where camids[:, None] != proxy_camera[None, :]; F.cross_entropy(logits, "
    "targets, reduction='none') is each sample's loss; then sum(loss[camids == c].mean() for c "
    "in torch.unique(camids)) reduces the batch camera by camera."
)

# The notebook's example: two proxies in camera 0, two in camera 1.
PROXIES = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8], [0.8, -0.6]], dtype=torch.float64)
PROXY_CAMERA = torch.tensor([0, 0, 1, 1])


def _loss(function, args, what):
    """The student's loss as a float, checked to be a scalar."""
    assert callable(function), "define a function called intra_camera_loss (run its cell first)"
    got = function(*args)
    assert got is not None, "intra_camera_loss returned None: did you forget the return?"
    if isinstance(got, torch.Tensor):
        assert got.numel() == 1, (
            f"intra_camera_loss({what}) should return one number (the batch's loss), got a "
            f"tensor of shape {tuple(got.shape)}"
        )
        return float(got)
    assert isinstance(got, numbers.Real) and not isinstance(got, bool), (
        f"intra_camera_loss({what}) should return a torch scalar, got {got!r}"
    )
    return float(got)


def _expect(function, embeddings, targets, camids, temperature, what, expected, why):
    args = (embeddings, PROXIES.clone(), PROXY_CAMERA.clone(), torch.tensor(targets),
            torch.tensor(camids), temperature)
    got = _loss(function, args, what)
    assert abs(got - expected) < 1e-6, (
        f"intra_camera_loss({what}) returned {got:.4f}, expected {expected:.4f} ({why})"
    )


@test_case(name="q2 - one embedding: its own camera's proxies only", failure_message=HINT)
def worked_example(intra_camera_loss):
    x = torch.tensor([[3.0, 4.0]], dtype=torch.float64)
    _expect(intra_camera_loss, x, [0], [0], 0.1,
            "(3, 4) of camera 0, target 0, the notebook's four proxies, temperature=0.1",
            math.log(1 + math.exp(2)),
            "normalised (0.6, 0.8); camera 0's logits are 6 and 8, so log(1 + e^2); the "
            "proxies of camera 1 stay out of the softmax")
    _expect(intra_camera_loss, x, [0], [0], 1.0,
            "(3, 4) of camera 0, target 0, temperature=1", math.log(1 + math.exp(0.2)),
            "logits 0.6 and 0.8: log(1 + e^0.2); the temperature divides")


@test_case(name="q2 - a batch: the mean per camera, summed over cameras", failure_message=HINT)
def batch(intra_camera_loss):
    x = torch.tensor([[3.0, 4.0], [0.0, 5.0], [4.0, -3.0]], dtype=torch.float64)
    first, second = math.log(1 + math.exp(2)), math.log(1 + math.exp(-10))
    third = math.log(1 + math.exp(10))
    _expect(intra_camera_loss, x, [0, 1, 2], [0, 0, 1], 0.1,
            "(3, 4) and (0, 5) of camera 0 with targets 0 and 1, (4, -3) of camera 1 with "
            "target 2, temperature=0.1", (first + second) / 2 + third,
            f"camera 0's mean ({first:.4f} + {second:.5f}) / 2 plus camera 1's {third:.5f}: "
            "not the mean over the batch")
