"""Hidden checks of q5 (instructors; exercises/grade.py): IICS's distance against
reidlib.camera.association.inter_camera_distance (with camera_scores of real per-camera
classifiers) and against a loop over the pairs."""

import math

import numpy as np
import torch
from otter.test_files import test_case

from reidlib.camera.association import camera_classifier, camera_scores, inter_camera_distance

OK_FORMAT = False
name = "q5_hidden"


def _distance(function, features, scores, camids, mix):
    assert callable(function), "define a function called iics_distance"
    got = function(features, scores, camids, mix)
    n = len(features)
    assert isinstance(got, torch.Tensor) and got.shape == (n, n), (
        f"expected an ({n}, {n}) tensor, got {got!r}"
    )
    return got.detach().double()


def _loop(features, scores, camids, mix):
    f, s, c = features.tolist(), scores.tolist(), list(camids)
    out = []
    for i in range(len(f)):
        row = []
        for j in range(len(f)):
            cos = sum(a * b for a, b in zip(f[i], f[j], strict=True)) / math.sqrt(
                sum(a * a for a in f[i]) * sum(b * b for b in f[j]))
            low = sum(min(a, b) for a, b in zip(s[i], s[j], strict=True))
            high = sum(max(a, b) for a, b in zip(s[i], s[j], strict=True))
            row.append(1 - cos - (mix * low / high if c[i] != c[j] else 0.0))
        out.append(row)
    return torch.tensor(out, dtype=torch.float64)


@test_case(name="q5_hidden - random scores against a loop", hidden=True)
def against_loop(iics_distance):
    rng = np.random.default_rng(100)
    for _ in range(15):
        n, d, c = int(rng.integers(1, 12)), int(rng.integers(1, 6)), int(rng.integers(1, 8))
        features = torch.as_tensor(rng.normal(size=(n, d)) * rng.uniform(0.1, 10, size=(n, 1)))
        scores = torch.as_tensor(rng.uniform(0.01, 3, size=(n, c)))  # not normalised
        camids = rng.choice([2, 5, 11], size=n)
        mix = float(rng.choice([0.0, 0.02, 0.5, 2.0]))
        got = _distance(iics_distance, features.clone(), scores.clone(), camids.copy(), mix)
        expected = _loop(features, scores, camids, mix)
        assert torch.allclose(got, expected, atol=1e-6), (
            f"iics_distance({n} random images, {c} scores each, cameras {camids.tolist()}, "
            f"mix={mix}) differs from 1 - cos - mix [c_i != c_j] J by up to "
            f"{(got - expected).abs().max():.2g}"
        )


@test_case(name="q5_hidden - reidlib's distance on per-camera classifier scores", hidden=True)
def against_reidlib(iics_distance):
    gen = torch.Generator().manual_seed(101)
    for n, cameras, mix in ((60, 3, 0.02), (25, 6, 0.5)):
        pooled = torch.randn(n, 8, generator=gen)
        heads = torch.nn.ModuleList(camera_classifier(8, int(k), gen)
                                    for k in torch.randint(2, 9, (cameras,), generator=gen))
        for head in heads:
            torch.nn.init.normal_(head[1].weight, std=0.5, generator=gen)  # spread the softmax
        scores = camera_scores(heads, pooled)
        camids = torch.randint(0, cameras, (n,), generator=gen)
        features = torch.randn(n, 16, generator=gen)
        expected = inter_camera_distance(features, scores, camids.numpy(), mix).double()
        got = _distance(iics_distance, features.clone(), scores.clone(), camids.clone(), mix)
        assert torch.allclose(got, expected, atol=1e-5), (
            f"iics_distance({n} images, scores of {cameras} per-camera classifiers, mix={mix}) "
            f"differs from reidlib's inter_camera_distance by up to "
            f"{(got - expected).abs().max():.2g}"
        )


@test_case(name="q5_hidden - inputs left unchanged", hidden=True)
def inputs_unchanged(iics_distance):
    features = torch.tensor([[3.0, 4.0], [1.0, 0.0]])
    scores = torch.tensor([[0.2, 0.8], [0.6, 0.4]])
    _distance(iics_distance, features, scores, [0, 1], 0.3)
    assert torch.equal(features, torch.tensor([[3.0, 4.0], [1.0, 0.0]])) and \
        torch.equal(scores, torch.tensor([[0.2, 0.8], [0.6, 0.4]])), (
            "iics_distance changed the features or scores it was given (normalise into a new "
            "tensor, not in place)"
        )
