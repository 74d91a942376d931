"""Chapter 3's comparison: every camera-aware method against Cluster Contrast (survey §3.3).

The notebook ``03_camera_invariance`` and ``benchmarks/chapter3_runs.py`` (seeds and the
camera-bias dial) build the same methods the same way from here, with chapter 2's
settings (:func:`reidlib.feature_learning.compare.chapter_settings`): the same start, the
same clustering, the same budget and the same test scorer, so that the benchmark's seed 0
is the notebook's run.

- :func:`centred_clustering`: the chapter's clustering after per-camera feature centring,
  the trick every camera-aware method has to beat;
- :func:`camera_bn_features` / :func:`camera_bn_score`: what camera-based BN needs in place
  of plain extraction (each camera's statistics first);
- :func:`build_method`: name -> (method, extra ``train_and_score`` arguments);
- :func:`train_method`: one of them built, trained and scored as the chapter does it (the
  benchmarks' runs; the notebook writes the same steps in its cells).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from reidlib.camera.association import IICS
from reidlib.camera.camera_bn import (
    CameraBNContrast,
    evaluate_camera_bn,
    extract_camera_features,
    reestimate_camera_bn,
)
from reidlib.camera.cap import CAP
from reidlib.camera.ice import ICE
from reidlib.camera.metacam import MetaCam
from reidlib.feature_learning import ClusterContrast
from reidlib.feature_learning.compare import MethodResult, chapter_budget, train_and_score
from reidlib.handcrafted import per_camera_normalise
from reidlib.models import build_model
from reidlib.utils import seed_everything

__all__ = ["METHODS", "build_method", "camera_bn_features", "camera_bn_score",
           "centred_clustering", "train_method"]

METHODS = ("Cluster Contrast", "Cluster Contrast, camera-free sampler",
           "Cluster Contrast, cameras centred", "camera BN", "CAP", "ICE", "MetaCam", "IICS")


def centred_clustering(cluster: Callable, camids) -> Callable:
    """``cluster`` run on features with each camera's mean and scale removed (§3.3)."""
    def run(features):
        return cluster(per_camera_normalise(torch.as_tensor(features), camids).numpy())
    return run


def camera_bn_features(model, images) -> torch.Tensor:
    """Training features with camera-based BN: each camera's statistics, then its images."""
    reestimate_camera_bn(model, images)
    return extract_camera_features(model, images, flip=False)


def camera_bn_score(model, world) -> dict:
    """Camera BN's test step (statistics re-estimated per query / gallery camera), then the
    course scorer's options (flip, per-camera normalisation): ``mAP``, ``rank1``, ``mINP``."""
    r = evaluate_camera_bn(model, world.query, world.gallery, camera_norm=True)
    return {"mAP": float(r["mAP"]), "rank1": float(r["cmc"][0]), "mINP": float(r["mINP"])}


def build_method(name: str, backbone: Callable, train, settings: dict, cluster: Callable,
                 seed: int = 0) -> tuple[object, dict]:
    """(method, extra ``train_and_score`` arguments) for one of :data:`METHODS`.

    Schedules that the papers set in epochs of a 40-50 epoch run (CAP's inter-camera loss
    from epoch 5) start at epoch 0 in a short budget (``settings["epochs"]`` not None):
    3 epochs have no room for them. IICS gets ``rounds = epochs`` so its mix weight decays
    over the run it has. CAP, ICE and IICS draw their own batches (one pass per epoch).
    """
    short = settings["epochs"] is not None
    if name == "Cluster Contrast":
        return ClusterContrast(backbone()), {}
    if name == "Cluster Contrast, camera-free sampler":
        method = ClusterContrast(backbone(), other_cameras=False)
        method.name = name
        return method, {}
    if name == "Cluster Contrast, cameras centred":
        method = ClusterContrast(backbone())
        method.name = name
        return method, {"clustering": centred_clustering(cluster, train.camids)}
    if name == "camera BN":
        return CameraBNContrast(backbone(), train), {"extract": camera_bn_features}
    if name == "CAP":
        return CAP(backbone(), **({"inter_epoch": 0} if short else {})), {"iters": None}
    if name == "ICE":
        return ICE(backbone()), {"iters": None}
    if name == "MetaCam":
        return MetaCam(backbone(), inner_lr=settings["lr"]), {}
    if name == "IICS":
        iics = IICS(backbone(), train, rounds=settings["epochs"] or 40, seed=seed)
        return iics, {"clustering": iics.cluster, "iters": None}
    raise ValueError(f"unknown method {name!r}: expected one of {METHODS}")


def train_method(name: str, session, world, settings: dict, train, cluster,
                 seed: int = 0, progress: bool = False, **fit_args) -> MethodResult:
    """Build ``name`` from the shared start (``session``'s profile and device), train it with
    ``settings``' budget (``epochs``, ``p``, ``k``, ``lr``; ``iters`` for the reference
    sampler, one pass for the others; the method's published ``recipe`` when
    ``settings["epochs"]`` is None, the full profile, as the notebook's ``budget``) and score
    it on ``world``: camera BN with its own test-time step, every other method with
    ``session.score``. ``fit_args`` (e.g. ``val``, ``keep_best``, ``checkpoint``: the
    command-line recipes of ``reidlib.recipes``) go to :func:`reidlib.training.fit`."""
    def backbone():
        return build_model(session.profile.arch, weights="synthetic").to(session.device)

    seed_everything(seed)
    method, extra = build_method(name, backbone, train, settings, cluster, seed=seed)
    budget = chapter_budget(method, settings)
    budget.update({key: value for key, value in extra.items() if key == "iters"})
    budget.update(fit_args)
    if isinstance(method, CameraBNContrast):
        def score(model):
            return camera_bn_score(model, world)
    else:
        def score(model):
            return session.score(model, world)
    return train_and_score(method, train, cluster=cluster, clustering=extra.get("clustering"),
                           score=score, seed=seed, progress=progress,
                           extract=extra.get("extract"), **budget)
