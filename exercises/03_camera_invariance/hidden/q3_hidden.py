"""Hidden checks of q3 (instructors; exercises/grade.py): the inter-camera loss and its gradient
against reidlib.camera.cap.inter_camera_loss and against a loop over the samples."""

import math

import torch
import torch.nn.functional as F
from otter.test_files import test_case

from reidlib.camera.cap import inter_camera_loss as reference

OK_FORMAT = False
name = "q3_hidden"


def _loss(function, *args):
    assert callable(function), "define a function called inter_camera_loss"
    got = function(*args)
    assert isinstance(got, torch.Tensor) and got.numel() == 1, (
        f"expected a torch scalar (the batch's loss), got {got!r}"
    )
    return got.reshape(())


def _case(gen, b, p, d, num_clusters, cameras, dtype=torch.float32):
    proxy_cluster = torch.randint(0, num_clusters, (p,), generator=gen)
    proxy_cluster[:num_clusters] = torch.arange(num_clusters)  # every cluster has a proxy
    proxies = F.normalize(torch.randn(p, d, generator=gen, dtype=dtype), dim=1)
    clusters = torch.randint(0, num_clusters, (b,), generator=gen)
    camids = torch.randint(0, cameras, (b,), generator=gen) * 3
    embeddings = 4 * torch.randn(b, d, generator=gen, dtype=dtype)
    return embeddings, proxies, proxy_cluster, clusters, camids


def _loop(embeddings, proxies, proxy_cluster, clusters, camids, tau, k):
    """CAP's inter-camera loss sample by sample: positives, the k most similar negatives."""
    per_camera = {}
    for x, y, c in zip(embeddings.tolist(), clusters.tolist(), camids.tolist(), strict=True):
        norm = math.sqrt(sum(v * v for v in x))
        logits = [sum(a * v / norm for a, v in zip(row, x, strict=True)) / tau
                  for row in proxies.tolist()]
        positives = [v for v, py in zip(logits, proxy_cluster.tolist(), strict=True) if py == y]
        negatives = sorted((v for v, py in zip(logits, proxy_cluster.tolist(), strict=True)
                            if py != y), reverse=True)[:k]
        chosen = positives + negatives
        top = max(chosen)
        lse = top + math.log(sum(math.exp(v - top) for v in chosen))
        per_camera.setdefault(c, []).append(lse - sum(positives) / len(positives))
    return sum(sum(v) / len(v) for v in per_camera.values())


@test_case(name="q3_hidden - random batches against a loop", hidden=True)
def against_loop(inter_camera_loss):
    gen = torch.Generator().manual_seed(80)
    for tau, k in ((0.07, 50), (0.07, 3), (0.5, 1), (1.0, 6)):
        for b, p, num_clusters, cameras in ((16, 20, 6, 3), (6, 9, 3, 6), (24, 40, 15, 1)):
            args = _case(gen, b, p, 8, num_clusters, cameras, torch.float64)
            expected = _loop(*args, tau, k)
            got = float(_loss(inter_camera_loss, *(a.clone() for a in args), tau, k).detach())
            assert abs(got - expected) < 1e-6 * max(1.0, abs(expected)), (
                f"inter_camera_loss({b} random embeddings, {p} proxies of {num_clusters} "
                f"clusters, {cameras} cameras, temperature={tau}, k={k}) returned {got:.6f}, "
                f"expected {expected:.6f}"
            )


@test_case(name="q3_hidden - k counts for each sample on its own", hidden=True)
def own_k(inter_camera_loss):
    # Cluster 0 has six of the eight proxies (two negatives for its samples), cluster 1 one
    # (seven negatives): with k = 5 a sample of cluster 1 takes five negatives, not two.
    gen = torch.Generator().manual_seed(81)
    proxies = F.normalize(torch.randn(8, 4, generator=gen, dtype=torch.float64), dim=1)
    proxy_cluster = torch.tensor([0, 0, 0, 1, 0, 2, 0, 0])
    embeddings = torch.randn(4, 4, generator=gen, dtype=torch.float64)
    clusters, camids = torch.tensor([0, 1, 1, 0]), torch.tensor([0, 0, 1, 1])
    expected = _loop(embeddings, proxies, proxy_cluster, clusters, camids, 0.1, 5)
    got = float(_loss(inter_camera_loss, embeddings.clone(), proxies.clone(), proxy_cluster,
                      clusters, camids, 0.1, 5).detach())
    assert abs(got - expected) < 1e-6 * max(1.0, abs(expected)), (
        f"inter_camera_loss(samples of a cluster with 6 of the 8 proxies and of one with 1, "
        f"k=5) returned {got:.6f}, expected {expected:.6f}: each sample takes min(k, its own "
        "number of negatives) hard negatives"
    )


@test_case(name="q3_hidden - reidlib's inter-camera loss and its gradient", hidden=True)
def against_reidlib(inter_camera_loss):
    gen = torch.Generator().manual_seed(82)
    for b, p, num_clusters, cameras, k in ((32, 120, 40, 6, 50), (8, 10, 4, 2, 3)):
        embeddings, proxies, proxy_cluster, clusters, camids = _case(
            gen, b, p, 16, num_clusters, cameras)
        x = embeddings.clone().requires_grad_(True)
        got = _loss(inter_camera_loss, x, proxies.clone(), proxy_cluster, clusters, camids,
                    0.07, k)
        assert got.requires_grad, (
            "inter_camera_loss's result has no gradient: build it from torch operations on "
            "the embeddings (no .item(), .numpy() or float() inside)"
        )
        got.backward()
        y = embeddings.clone().requires_grad_(True)
        expected = reference(F.normalize(y, dim=1), proxies, proxy_cluster, clusters, camids,
                             0.07, k)
        expected.backward()
        got, expected = float(got.detach()), float(expected.detach())
        assert abs(got - expected) < 1e-4 * max(1.0, expected), (
            f"inter_camera_loss({b} random embeddings, {p} proxies, k={k}) returned {got:.5f}, "
            f"but reidlib's inter_camera_loss gives {expected:.5f}"
        )
        assert torch.allclose(x.grad, y.grad, atol=1e-5), (
            "the gradient of inter_camera_loss with respect to the embeddings differs from "
            "reidlib's"
        )


@test_case(name="q3_hidden - inputs left unchanged", hidden=True)
def inputs_unchanged(inter_camera_loss):
    x = torch.tensor([[3.0, 4.0], [1.0, 1.0]])
    proxies = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    _loss(inter_camera_loss, x, proxies, torch.tensor([0, 1, 1]), torch.tensor([0, 1]),
          torch.tensor([0, 1]), 0.1, 1)
    assert torch.equal(x, torch.tensor([[3.0, 4.0], [1.0, 1.0]])) and torch.equal(
        proxies, torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])), (
            "inter_camera_loss changed the embeddings or proxies it was given (normalise into "
            "a new tensor, not in place)"
        )
