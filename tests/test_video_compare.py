"""reidlib.video.compare: chapter 5's methods built, trained and scored one way (issue #15).

On the smoke world: the settings and the video split, every method trained through
``train_method`` (the notebook's and the benchmark's path), the fused score against the
joint similarity computed by hand, the transit report against the truth, the noise dial's
input, and the full profile's shapes (ResNet-50 at 256x128, one step of UTAL and TAUDL).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from fakes import colour_identity_set

from reidlib.data.synthetic import load_world
from reidlib.evaluation.metrics import evaluate
from reidlib.models import build_model
from reidlib.notebook import setup
from reidlib.profiles import get_profile
from reidlib.training import fit
from reidlib.video.compare import (
    BUC_RATIOS,
    METHODS,
    ST,
    TrackletView,
    build_method,
    learn_transit,
    noisy_train,
    score,
    train_method,
    video_settings,
)
from reidlib.video.pooling import temporal_average
from reidlib.video.spatiotemporal import st_grid
from reidlib.video.tracklet_learning import tracklet_classes


@pytest.fixture(scope="module")
def smoke():
    session = setup("test-ch5", profile="smoke")
    world = load_world("A", "smoke", progress=False)
    settings, splits, cluster = video_settings(get_profile("smoke"), world)
    return session, world, settings, splits, cluster


def test_settings_are_chapter_two_plus_the_tracklet_choices(smoke):
    _, world, settings, splits, _ = smoke
    assert settings["epochs"] == 1 and settings["tracklet_min_samples"] == 2
    assert settings["buc_ratio"] in BUC_RATIOS
    assert splits.name == world.name + "-video"
    assert (splits.train.tracklets >= 0).all() and (splits.train.pids > 0).all()


@pytest.mark.parametrize("name", METHODS)
def test_every_method_trains_and_is_scored_on_tracklets(smoke, name):
    session, _, settings, splits, cluster = smoke
    result, info = train_method(name, session, splits, settings, cluster, seed=0)
    for key in ("mAP", "rank1", "mINP", "st_mAP", "st_rank1", "st_mINP"):
        assert 0 <= result.scores[key] <= 1, key
    assert set(info["transit"]) >= {"hist", "truth", "matches", "match_precision"}
    assert info["train_features"].shape[0] == len(splits.train)
    if name == "UTAL":
        assert 0 <= info["association_precision"] <= 1
    # the model kept is the one scored: scoring it again gives the same numbers
    again = score(info["model"], splits, info["transit"]["hist"])
    assert again == pytest.approx(result.scores)


def test_fused_score_is_the_joint_similarity_by_hand(smoke):
    session, _, settings, splits, _ = smoke
    model = build_model(get_profile("smoke").arch, weights="synthetic").eval()
    from reidlib.training.features import extract_features

    train_features = extract_features(model, splits.train, flip=False, progress=False)
    hist, report = learn_transit(train_features, splits.train)
    q, g = splits.query, splits.gallery
    qv, gv = TrackletView(q), TrackletView(g)
    qf, gf = (extract_features(model, s, flip=False, progress=False) for s in (q, g))
    visual = (temporal_average(qf, q.tracklets)[0] @ temporal_average(gf, g.tracklets)[0].T
              ).double().numpy()
    p = st_grid(hist, qv.camids, qv.times, gv.camids, gv.times, ST["bin_seconds"])
    joint = np.empty_like(visual)
    for i in range(visual.shape[0]):  # st-ReID's formula, one pair at a time
        for j in range(visual.shape[1]):
            joint[i, j] = (1 / (1 + math.exp(-5 * visual[i, j]))
                           / (1 + 2 * math.exp(-5 * p[i, j])))
    expected = evaluate(1 - joint, qv.pids, gv.pids, qv.camids, gv.camids)
    got = score(model, splits, hist)
    assert got["st_mAP"] == pytest.approx(expected["mAP"], abs=1e-9)
    assert got["st_rank1"] == pytest.approx(expected["cmc"][0], abs=1e-9)
    # the transit report: the matches' precision counted by hand
    view = TrackletView(splits.train)
    assert report["matches"] > 0 and 0 <= report["match_precision"] <= 1
    assert report["truth"].shape == hist.shape == (view.num_cams, view.num_cams,
                                                   int(ST["max_seconds"] / ST["bin_seconds"]))


def test_noisy_train_breaks_a_share_of_tracklets(smoke):
    _, _, _, splits, _ = smoke
    same, report = noisy_train(splits.train, 0.0)
    assert same is splits.train and report["mixed_frame_share"] == 0
    broken, report = noisy_train(splits.train, 0.6, seed=1)
    assert report["cut"] + report["split"] + report["switch"] > 0
    assert len(np.unique(broken.tracklets)) != len(np.unique(splits.train.tracklets))


def test_unknown_method_names_the_choices(smoke):
    _, _, settings, splits, _ = smoke
    with pytest.raises(ValueError, match="UTAL"):
        build_method("UTL", lambda: None, splits.train, settings)


def _tracklet_set(size):
    """2 people x 4 frames over 2 cameras, one tracklet per (person, camera)."""
    images = colour_identity_set(2, 4, 2, size, 0)
    images.tracklets = images.pids * 10 + images.camids
    images.frames = np.arange(len(images)) * 10
    return images


@pytest.mark.slow
@pytest.mark.parametrize("name", ["UTAL", "TAUDL"])
def test_resnet50_at_256x128_trains_the_tracklet_methods(name):
    train = _tracklet_set((256, 128))
    torch.manual_seed(0)
    method, extra = build_method(name, lambda: build_model("resnet50"), train,
                                 {"epochs": None})
    history = fit(method, train, labels=extra["labels"], epochs=1, lr=3.5e-4, p=2, k=2,
                  progress=False)
    assert all(math.isfinite(v) for v in history[0].losses.values())
    assert np.array_equal(extra["labels"], tracklet_classes(train))
    with torch.no_grad():
        out = method.model.eval()(torch.zeros(1, 3, 256, 128))
    assert out.shape[-1] == 2048
