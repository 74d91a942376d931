"""Hidden checks of q2 (instructors; exercises/grade.py): the intra-camera loss and its gradient
against reidlib.camera.cap.intra_camera_loss and against a loop over the samples."""

import math

import torch
import torch.nn.functional as F
from otter.test_files import test_case

from reidlib.camera.cap import intra_camera_loss as reference

OK_FORMAT = False
name = "q2_hidden"


def _loss(function, *args):
    assert callable(function), "define a function called intra_camera_loss"
    got = function(*args)
    assert isinstance(got, torch.Tensor) and got.numel() == 1, (
        f"expected a torch scalar (the batch's loss), got {got!r}"
    )
    return got.reshape(())


def _case(gen, b, p, d, cameras, dtype=torch.float32):
    """A random batch whose targets are proxies of the sample's own camera."""
    proxy_camera = torch.randint(0, cameras, (p,), generator=gen)
    proxy_camera[:cameras] = torch.arange(cameras)  # every camera holds a proxy
    proxies = F.normalize(torch.randn(p, d, generator=gen, dtype=dtype), dim=1)
    camids = torch.randint(0, cameras, (b,), generator=gen)
    targets = torch.stack([
        torch.nonzero(proxy_camera == c).flatten()[
            torch.randint(0, int((proxy_camera == c).sum()), (1,), generator=gen)][0]
        for c in camids])
    embeddings = 3 * torch.randn(b, d, generator=gen, dtype=dtype)
    return embeddings, proxies, proxy_camera, targets, camids


def _loop(embeddings, proxies, proxy_camera, targets, camids, tau):
    """Eq. 8 on proxies, sample by sample; per camera the mean, summed over cameras."""
    per_camera = {}
    for x, t, c in zip(embeddings.tolist(), targets.tolist(), camids.tolist(), strict=True):
        norm = math.sqrt(sum(v * v for v in x))
        logits = {j: sum(a * v / norm for a, v in zip(row, x, strict=True)) / tau
                  for j, row in enumerate(proxies.tolist()) if proxy_camera[j] == c}
        top = max(logits.values())
        lse = top + math.log(sum(math.exp(v - top) for v in logits.values()))
        per_camera.setdefault(c, []).append(lse - logits[t])
    return sum(sum(v) / len(v) for v in per_camera.values())


@test_case(name="q2_hidden - random batches against a loop", hidden=True)
def against_loop(intra_camera_loss):
    gen = torch.Generator().manual_seed(70)
    for tau in (0.05, 0.07, 0.5):
        for b, p, cameras in ((16, 12, 3), (5, 6, 6), (32, 40, 2), (7, 3, 1)):
            args = _case(gen, b, p, 8, cameras, torch.float64)
            expected = _loop(*args, tau)
            got = float(_loss(intra_camera_loss, *(a.clone() for a in args), tau))
            assert abs(got - expected) < 1e-6 * max(1.0, abs(expected)), (
                f"intra_camera_loss({b} random embeddings, {p} proxies in {cameras} cameras, "
                f"temperature={tau}) returned {got:.6f}, expected {expected:.6f}"
            )


@test_case(name="q2_hidden - reidlib's intra-camera loss and its gradient", hidden=True)
def against_reidlib(intra_camera_loss):
    gen = torch.Generator().manual_seed(71)
    for b, p, cameras in ((32, 50, 6), (8, 10, 4)):
        embeddings, proxies, proxy_camera, targets, camids = _case(gen, b, p, 16, cameras)
        x = embeddings.clone().requires_grad_(True)
        got = _loss(intra_camera_loss, x, proxies.clone(), proxy_camera, targets, camids, 0.07)
        assert got.requires_grad, (
            "intra_camera_loss's result has no gradient: build it from torch operations on "
            "the embeddings (no .item(), .numpy() or float() inside)"
        )
        got.backward()
        y = embeddings.clone().requires_grad_(True)
        expected = reference(F.normalize(y, dim=1), proxies, proxy_camera, targets, camids, 0.07)
        expected.backward()
        got, expected = float(got.detach()), float(expected.detach())
        assert abs(got - expected) < 1e-4 * max(1.0, expected), (
            f"intra_camera_loss({b} random embeddings, {p} proxies in {cameras} cameras) returned "
            f"{got:.5f}, but reidlib's intra_camera_loss gives {expected:.5f}"
        )
        assert torch.allclose(x.grad, y.grad, atol=1e-5), (
            "the gradient of intra_camera_loss with respect to the embeddings differs from "
            "reidlib's"
        )


@test_case(name="q2_hidden - inputs left unchanged", hidden=True)
def inputs_unchanged(intra_camera_loss):
    x = torch.tensor([[3.0, 4.0], [1.0, 1.0]])
    proxies = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    _loss(intra_camera_loss, x, proxies, torch.tensor([0, 1]), torch.tensor([0, 1]),
          torch.tensor([0, 1]), 0.1)
    assert torch.equal(x, torch.tensor([[3.0, 4.0], [1.0, 1.0]])) and \
        torch.equal(proxies, torch.eye(2)), (
            "intra_camera_loss changed the embeddings or proxies it was given (normalise into "
            "a new tensor, not in place)"
        )
