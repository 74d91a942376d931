"""Chapter 3's comparison helpers (reidlib.camera.compare) and chapter 2's shared settings
(reidlib.feature_learning.compare.chapter_settings)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fakes import colour_identity_set

from reidlib.camera.association import IICS
from reidlib.camera.camera_bn import CameraBNContrast, camera_bn_layers
from reidlib.camera.cap import CAP
from reidlib.camera.compare import METHODS, build_method, centred_clustering, train_method
from reidlib.data.synthetic import load_world
from reidlib.feature_learning import ClusterContrast
from reidlib.feature_learning.compare import chapter_settings
from reidlib.models import build_model
from reidlib.profiles import PROFILES, get_profile


def test_centred_clustering_clusters_each_camera_centred_features():
    rng = np.random.default_rng(0)
    camids = np.repeat([0, 1, 2], 5)
    features = rng.normal(size=(15, 4)) + 10.0 * camids[:, None]  # a camera shift
    seen = []
    labels = centred_clustering(lambda x: seen.append(x) or np.arange(len(x)), camids)(features)
    assert labels.tolist() == list(range(15))
    x = torch.as_tensor(seen[0], dtype=torch.float64)
    # by hand: each camera's mean removed, each dimension over its std, then unit rows
    expected = torch.empty_like(x)
    f = torch.as_tensor(features)
    for c in range(3):
        rows = torch.as_tensor(camids == c)
        expected[rows] = (f[rows] - f[rows].mean(0)) / (f[rows].std(0, correction=0) + 1e-6)
    expected = expected / expected.norm(dim=1, keepdim=True)
    torch.testing.assert_close(x, expected, rtol=1e-5, atol=1e-6)


def test_build_method_builds_every_named_method_and_rejects_others():
    train = colour_identity_set(4, 4, 2)
    short = {"epochs": 3, "lr": 1e-3}
    cluster = lambda f: np.zeros(len(f), dtype=np.int64)  # noqa: E731
    for name in METHODS:
        method, extra = build_method(name, lambda: build_model("small"), train, short, cluster)
        assert set(extra) <= {"clustering", "iters", "extract"}
        if name == "camera BN":
            assert isinstance(method, CameraBNContrast) and camera_bn_layers(method.model)
        if name == "Cluster Contrast, camera-free sampler":
            assert isinstance(method, ClusterContrast) and not method.other_cameras
        if name == "Cluster Contrast":
            assert method.other_cameras  # the published sampler prefers other cameras
    cap, _ = build_method("CAP", lambda: build_model("small"), train, short, cluster)
    assert isinstance(cap, CAP) and cap.inter_epoch == 0  # a short budget: from epoch 0
    cap, _ = build_method("CAP", lambda: build_model("small"), train,
                          {"epochs": None, "lr": 3.5e-4}, cluster)
    assert cap.inter_epoch == 5  # the full profile: CAP's schedule
    iics, extra = build_method("IICS", lambda: build_model("small"), train, short, cluster)
    assert isinstance(iics, IICS) and iics.rounds == 3 and extra["clustering"] == iics.cluster
    with pytest.raises(ValueError, match="unknown method 'SpCL'"):
        build_method("SpCL", lambda: build_model("small"), train, short, cluster)


def test_chapter_settings_choose_the_clustering_on_the_validation_split():
    world = load_world("A", "smoke")
    settings, train, cluster = chapter_settings(get_profile("smoke"), world)
    assert (train.pids >= 0).all() and len(train) == (world.train.pids >= 0).sum()
    assert settings["epochs"] == 1 and settings["k1"] in (10, 20, 30)
    assert settings["eps"] in (0.45, 0.5, 0.55, 0.6)
    assert settings["iters"] == int(np.ceil(len(train) / (settings["p"] * settings["k"])))
    features = np.random.default_rng(0).normal(size=(len(train), 8)).astype(np.float32)
    labels = cluster(features)
    assert labels.shape == (len(train),)
    # the same call gives the same settings (the notebook's and the benchmark's agree)
    assert chapter_settings(get_profile("smoke"), world)[0] == settings


def test_chapter_settings_full_profile_takes_the_papers_clustering():
    world = load_world("A", "smoke")  # only its training split is read
    settings, _, _ = chapter_settings(PROFILES["full"], world)
    assert (settings["k1"], settings["eps"], settings["epochs"]) == (30, 0.6, None)


def test_chapter_settings_rejects_an_unknown_profile():
    fake = type("Profile", (), {"name": "huge"})()
    with pytest.raises(ValueError, match="unknown profile 'huge'"):
        chapter_settings(fake, load_world("A", "smoke"))


def test_train_method_is_the_notebooks_run():
    """The benchmarks' train_method gives the run the notebook's cells give: same seed,
    same budget, same scorer (smoke world, one epoch)."""
    from reidlib.feature_learning.compare import train_and_score
    from reidlib.notebook import setup
    from reidlib.utils import seed_everything

    session = setup("test-ch3", profile="smoke")
    world = load_world("A", "smoke")
    settings, train, cluster = chapter_settings(session.profile, world)
    ours = train_method("Cluster Contrast", session, world, settings, train, cluster, seed=0)
    seed_everything(0)
    method = ClusterContrast(build_model("small", weights="synthetic"))
    cells = train_and_score(method, train, cluster=cluster, score=lambda m: session.score(
        m, world), seed=0, progress=False, epochs=settings["epochs"], p=settings["p"],
        k=settings["k"], lr=settings["lr"], iters=settings["iters"])
    assert ours.scores == cells.scores
