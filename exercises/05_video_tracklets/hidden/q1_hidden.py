"""Hidden checks of q1 (instructors; exercises/grade.py): temporal average pooling against
reidlib.video.pooling.temporal_average (value, float64 precision and gradient), against a
loop over the tracklets, and inputs left unchanged."""

import numpy as np
import torch
from otter.test_files import test_case

from reidlib.video.pooling import temporal_average as reference

OK_FORMAT = False
name = "q1_hidden"


def _pool(function, features, tracklets):
    assert callable(function), "define a function called temporal_average_pool"
    got = function(features, tracklets)
    expected = (len(np.unique(tracklets)), features.shape[1])
    assert isinstance(got, torch.Tensor) and tuple(got.shape) == expected, (
        f"expected a torch tensor of shape {expected}, got {getattr(got, 'shape', got)!r}"
    )
    return got


def _loop(features, tracklets):
    rows = []
    for t in sorted(set(tracklets.tolist())):
        frames = [f / np.linalg.norm(f) for f, owner in zip(features.tolist(), tracklets,
                                                            strict=True) if owner == t]
        mean = np.mean(frames, axis=0)
        rows.append(mean / np.linalg.norm(mean))
    return torch.tensor(np.array(rows), dtype=torch.float64)


def _case(gen, n, d, num_tracklets):
    """n frames of num_tracklets tracklets with large, scattered ids, rows interleaved."""
    ids = torch.randperm(10_000, generator=gen)[:num_tracklets].numpy()
    owner = np.concatenate([np.arange(num_tracklets),
                            torch.randint(0, num_tracklets, (n - num_tracklets,),
                                          generator=gen).numpy()])
    owner = owner[torch.randperm(n, generator=gen).numpy()]
    scale = torch.rand(n, 1, generator=gen, dtype=torch.float64) * 9 + 0.1
    features = torch.randn(n, d, generator=gen, dtype=torch.float64) * scale
    return features, ids[owner]


@test_case(name="q1_hidden - random tracklets against reidlib and a loop", hidden=True)
def against_reidlib(temporal_average_pool):
    gen = torch.Generator().manual_seed(150)
    for n, d, num_tracklets in ((30, 8, 7), (9, 3, 9), (50, 16, 4), (6, 2, 1)):
        features, tracklets = _case(gen, n, d, num_tracklets)
        got = _pool(temporal_average_pool, features.clone(), tracklets.copy())
        assert got.dtype == torch.float64, (
            f"temporal_average_pool(float64 features) returned {got.dtype}: keep the "
            "features' dtype (no .float())"
        )
        expected, _ = reference(features, tracklets)
        assert torch.allclose(got.detach(), expected, rtol=0, atol=1e-12), (
            f"temporal_average_pool({n} frames of {num_tracklets} tracklets, {d}-D) differs "
            f"from reidlib's temporal_average by up to "
            f"{float((got.detach() - expected).abs().max()):.2e}"
        )
        assert torch.allclose(got.detach(), _loop(features, tracklets), atol=1e-10), (
            f"temporal_average_pool({n} frames of {num_tracklets} tracklets) differs from the "
            "normalised mean of each tracklet's unit frames (a loop over the sorted ids)"
        )


@test_case(name="q1_hidden - gradient to the frame features", hidden=True)
def gradient(temporal_average_pool):
    gen = torch.Generator().manual_seed(151)
    features, tracklets = _case(gen, 20, 6, 5)
    weights = torch.randn(5, 6, generator=gen, dtype=torch.float64)
    x = features.clone().requires_grad_(True)
    got = _pool(temporal_average_pool, x, tracklets.copy())
    assert got.requires_grad, (
        "temporal_average_pool's result has no gradient: build it from torch operations on "
        "the features (no .numpy(), no torch.tensor(...) of a numpy result), so that a "
        "network can train through the pooling"
    )
    (got * weights).sum().backward()
    y = features.clone().requires_grad_(True)
    (reference(y, tracklets)[0] * weights).sum().backward()
    assert torch.allclose(x.grad, y.grad, atol=1e-10), (
        "the gradient of temporal_average_pool with respect to the features differs from "
        "reidlib's temporal_average"
    )


@test_case(name="q1_hidden - inputs left unchanged", hidden=True)
def inputs_unchanged(temporal_average_pool):
    gen = torch.Generator().manual_seed(152)
    features, tracklets = _case(gen, 10, 4, 3)
    x, t = features.clone(), tracklets.copy()
    _pool(temporal_average_pool, x, t)
    assert torch.equal(x, features) and np.array_equal(t, tracklets), (
        "temporal_average_pool changed the features or tracklets it was given (normalise "
        "into a new tensor, not in place)"
    )
