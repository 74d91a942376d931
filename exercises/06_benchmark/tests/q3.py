"""Public checks of q3, SimCLR's NT-Xent loss (students run grader.check("q3"))."""

import math
import numbers

import torch
from otter.test_files import test_case

OK_FORMAT = False
name = "q3"

HINT = (
    "Hint: z = F.normalize(torch.cat([z1, z2]), dim=1); logits = z @ z.T / temperature; "
    "mask each view's similarity with itself with logits.masked_fill(torch.eye(2 * N, "
    "dtype=torch.bool), float('-inf')); the positive of row i is i + N for i < N and i - N "
    "after; F.cross_entropy(logits, positive) is the mean over the 2N anchors."
)

# The notebook's example: two images, two views each.
Z1 = torch.tensor([[3.0, 4.0], [1.0, 0.0]], dtype=torch.float64)
Z2 = torch.tensor([[4.0, 3.0], [0.0, 2.0]], dtype=torch.float64)


def _reference(z1, z2, temperature):
    """NT-Xent with plain Python: every view an anchor, its other view the positive."""
    views = [[x / math.sqrt(sum(v * v for v in row)) for x in row]
             for row in z1.tolist() + z2.tolist()]
    n = len(z1)
    total = 0.0
    for a, anchor in enumerate(views):
        s = [sum(x * y for x, y in zip(anchor, other, strict=True)) / temperature
             for other in views]
        positive = (a + n) % (2 * n)
        total += -s[positive] + math.log(sum(math.exp(v) for j, v in enumerate(s) if j != a))
    return total / (2 * n)


def _loss(function, z1, z2, temperature, what):
    assert callable(function), "define a function called nt_xent_loss (run its cell first)"
    got = function(z1, z2, temperature)
    assert got is not None, "nt_xent_loss returned None: did you forget the return?"
    if isinstance(got, torch.Tensor):
        assert got.numel() == 1, (
            f"nt_xent_loss({what}) should return one number (the mean over the anchors), got "
            f"a tensor of shape {tuple(got.shape)}"
        )
        got = got.item()
    assert isinstance(got, numbers.Real) and not isinstance(got, bool), (
        f"nt_xent_loss({what}) should return a scalar tensor, got {got!r}"
    )
    return float(got)


@test_case(name="q3 - the notebook's example", failure_message=HINT)
def worked_example(nt_xent_loss):
    got = _loss(nt_xent_loss, Z1.clone(), Z2.clone(), 0.5, "the notebook's example, t = 0.5")
    expected = _reference(Z1, Z2, 0.5)
    assert abs(got - expected) < 1e-6, (
        f"nt_xent_loss(the notebook's example, temperature 0.5) returned {got:.4f}, expected "
        f"{expected:.4f}: the four views (3, 4), (1, 0), (4, 3), (0, 2) normalised to unit "
        "length, cosine similarities divided by 0.5; each of the 4 views is an anchor whose "
        "positive is the other view of its image and whose negatives are the 2 remaining "
        "views (never itself); the loss is the mean of -log softmax over the anchors"
    )


@test_case(name="q3 - random views: every view is an anchor, the temperature divides",
           failure_message=HINT)
def random_views(nt_xent_loss):
    gen = torch.Generator().manual_seed(60)
    for n, d, temperature in ((4, 3, 0.1), (6, 5, 1.0)):
        z1 = torch.randn(n, d, generator=gen, dtype=torch.float64) * 3
        z2 = torch.randn(n, d, generator=gen, dtype=torch.float64) * 0.5
        got = _loss(nt_xent_loss, z1.clone(), z2.clone(), temperature,
                    f"{n} random images, {d}-D, temperature {temperature}")
        expected = _reference(z1, z2, temperature)
        assert abs(got - expected) < 1e-6, (
            f"nt_xent_loss({n} random pairs of views, {d}-D, temperature {temperature}) "
            f"returned {got:.4f}, expected {expected:.4f}: 2N = {2 * n} anchors (the views of "
            f"z1 and of z2), each with 1 positive and 2N - 2 = {2 * n - 2} negatives from "
            "both views, cosine similarity / temperature (divide, not multiply), the mean "
            "over the anchors (not the sum)"
        )
