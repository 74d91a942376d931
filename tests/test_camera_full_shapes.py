"""Chapter 3's methods at the full profile's shapes, on the CPU (issue #13, "Full profile").

ResNet-50 (random weights, no download) at 256x128 through one step of every camera-aware
method of ``reidlib.camera.compare``, built exactly as the chapter builds them for the full
profile (``settings["epochs"] = None``: the papers' schedules): 2048-d embeddings from a
16x8 map, finite losses, float32 memories of 2048-d rows. A GPU run of the published
recipes is what ``benchmarks/gpu_check.sh`` owes; on 2 CPU cores a ResNet-50 step costs
about a second per image, so these steps hold a few images only.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fakes import colour_identity_set

from reidlib.camera.compare import build_method
from reidlib.models import build_model
from reidlib.training import fit

CAMERA_METHODS = ["camera BN", "CAP", "ICE", "MetaCam", "IICS"]


def oracle_cluster(train):
    labels = np.unique(train.pids, return_inverse=True)[1].astype(np.int64)
    return lambda features: labels


@pytest.mark.slow
@pytest.mark.parametrize("name", CAMERA_METHODS)
def test_resnet50_at_256x128_trains_every_camera_method(name):
    # 2 people x 4 images over 2 cameras: every batch holds 2 images of each camera
    train = colour_identity_set(2, 4, 2, (256, 128), 0)
    cluster = oracle_cluster(train)
    settings = {"epochs": None, "lr": 3.5e-4}
    torch.manual_seed(0)
    method, extra = build_method(name, lambda: build_model("resnet50"), train, settings,
                                 cluster)
    maps = []
    layer4 = method.models()[0]
    layer4 = getattr(layer4, "base", layer4).backbone.layer4
    handle = layer4.register_forward_hook(lambda m, i, out: maps.append(tuple(out.shape[1:])))
    steps = {"iters": 1} if method.sampler == "multi_gallery" else {}
    if name == "IICS":  # its first stage trains on intra-camera labels: (person, camera)
        intra = (np.unique(train.pids, return_inverse=True)[1] * 2 + train.camids).astype(int)
        extra = {**extra, "clustering": lambda f: intra}
    history = fit(method, train, cluster=extra.get("clustering", cluster), epochs=1, p=2,
                  k=2, lr=settings["lr"], progress=False, **steps)
    handle.remove()
    assert history[0].images >= 4
    assert set(maps) == {(2048, 16, 8)}
    assert all(np.isfinite(v) for v in history[0].losses.values())
    memory = getattr(method, "memory", None)
    if memory is not None:
        assert memory.dim == 2048 and memory.features.dtype == torch.float32
