"""Chapter 4's methods at the full profile's shapes, on the CPU (issue #14, "Full profile").

ResNet-50 (random weights, no download) at 256x128 through one step of each domain
adaptation method the chapter trains: the clustering-based ones built exactly as
``reidlib.domain_adaptation.compare`` builds them for the full profile (``epochs`` None:
MMT / SpCL's UDA recipes), the source + target methods of ``align``, CamStyle, and one step
of the translator with CycleGAN's own generator (width 64, 9 residual blocks). 2048-d
embeddings from a 16x8 map, finite losses. The GPU run of the recipes is owed
(``benchmarks/RESULTS.md``, "Still to measure"); on 2 CPU cores a ResNet-50 step costs about
a second per image, so these steps hold a few images only.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fakes import colour_identity_set

from reidlib.domain_adaptation.align import CrossDomainMixup, MMDAlignment
from reidlib.domain_adaptation.camstyle import CamStyle, camera_styles
from reidlib.domain_adaptation.compare import build_method
from reidlib.domain_adaptation.spcl_uda import SOURCE, source_target_set
from reidlib.domain_adaptation.translator import train_translator
from reidlib.feature_learning import ClusterContrast
from reidlib.models import build_model
from reidlib.training import fit

CLUSTERING = ["SpCL", "MMT", "SSG"]


def _sets():
    # 2 people x 4 images over 2 cameras per domain: every batch holds 2 images per camera
    source = colour_identity_set(2, 4, 2, (256, 128), 0)
    target = colour_identity_set(2, 4, 2, (256, 128), 1)
    return source, target


def _oracle(train):
    labels = np.unique(train.pids, return_inverse=True)[1].astype(np.int64)
    return lambda features: labels


def _layer4_shapes(model, maps):
    base = getattr(model, "base", model)
    return base.backbone.layer4.register_forward_hook(
        lambda m, i, out: maps.append(tuple(out.shape[1:])))


@pytest.mark.slow
@pytest.mark.parametrize("name", CLUSTERING)
def test_resnet50_at_256x128_trains_each_clustering_uda_method(name):
    source, target = _sets()
    settings = {"epochs": None, "lr": 3.5e-4, "eps": 0.6, "k1": 3}
    torch.manual_seed(0)
    method, extra = build_method(name, lambda s: build_model("resnet50"), target, source,
                                 settings, _oracle(target))
    train = extra.get("train", target)
    clustering = extra.get("clustering", _oracle(target))
    if name == "SpCL":  # the oracle on the target rows, true classes on the source rows
        inner = _oracle(target)

        def clustering(features):
            labels = method.source_class.copy()
            labels[method.target_rows] = inner(None) + method.num_source_classes
            return labels
    maps = []
    handle = _layer4_shapes(method.models()[0], maps)
    history = fit(method, train, cluster=clustering, epochs=1, p=2, k=2,
                  lr=settings["lr"], domains=extra.get("domains"), progress=False, iters=1)
    handle.remove()
    assert history[0].images >= 4
    assert set(maps) == {(2048, 16, 8)}
    assert all(np.isfinite(v) for v in history[0].losses.values())


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["MMD", "mixup", "CamStyle"])
def test_resnet50_at_256x128_trains_source_target_methods(kind):
    source, target = _sets()
    torch.manual_seed(0)
    model = build_model("resnet50")
    maps = []
    handle = _layer4_shapes(model, maps)
    if kind == "CamStyle":
        method = CamStyle(ClusterContrast(model), camera_styles(target), p=1.0,
                          exclude_own_camera=True)
        history = fit(method, target, cluster=_oracle(target), epochs=1, p=2, k=2, lr=3.5e-4,
                      iters=1, progress=False)
    else:
        joined, domain_ids = source_target_set(source, target)
        labels = np.where(domain_ids == SOURCE, joined.pids, -1)
        method = (MMDAlignment(model, domain_ids) if kind == "MMD"
                  else CrossDomainMixup(model, domain_ids, start_epoch=0))
        history = fit(method, joined, labels=labels, domains=domain_ids, epochs=1, p=2, k=2,
                      lr=3.5e-4, progress=False)
    handle.remove()
    assert set(maps) == {(2048, 16, 8)}
    assert all(np.isfinite(v) for v in history[0].losses.values())


@pytest.mark.slow
def test_cyclegan_sized_translator_takes_a_step_at_256x128():
    source, target = _sets()
    translator = train_translator(source, target, steps=1, batch=1, width=64, blocks=9,
                                  device="cpu", progress=False)
    out = translator.translate(torch.as_tensor(source.images[:1]).permute(0, 3, 1, 2))
    assert out.shape == (1, 3, 256, 128) and out.dtype == torch.uint8
    assert all(np.isfinite(v) for v in translator.history[0].values())
