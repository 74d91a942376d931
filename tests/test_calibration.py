"""The direction of each effect the synthetic world is calibrated for (benchmarks/RESULTS.md
has the sizes, measured by benchmarks/calibrate_world.py). Smoke-sized, so fast but noisy:
each check is a direction with a margin, not a number."""

import numpy as np
import pytest
import torch

from reidlib.data.synthetic import load_world
from reidlib.evaluation import evaluate, pairwise_distance
from reidlib.evaluation.camera_bias import same_camera_nearest_share
from reidlib.handcrafted import colour_texture_features, per_camera_normalise
from reidlib.models import build_model
from reidlib.training.features import extract_features
from reidlib.training.supervised import train_supervised


def _scores(qf, gf, world):
    args = (world.query.pids, world.gallery.pids, world.query.camids, world.gallery.camids)
    dist = pairwise_distance(qf, gf)
    return evaluate(dist, *args)["mAP"], same_camera_nearest_share(dist, *args)


@pytest.fixture(scope="module")
def worlds():
    return {d: load_world(d, "smoke", progress=False) for d in ("A", "B")}


@pytest.mark.parametrize("domain", ["A", "B"])
def test_handcrafted_features_show_camera_bias(worlds, domain):
    w = worlds[domain]
    qf, gf = colour_texture_features(w.query.images), colour_texture_features(w.gallery.images)
    raw_map, (share, chance) = _scores(qf, gf, w)
    assert share > 2 * chance, (
        "nearest matches should come from the query's camera far above chance"
    )
    both = per_camera_normalise(
        torch.cat([qf, gf]), np.concatenate([w.query.camids, w.gallery.camids]), standardise=False
    )
    norm_map, _ = _scores(both[: len(qf)], both[len(qf) :], w)
    assert norm_map > raw_map + 0.02, "per-camera normalisation should raise handcrafted mAP"


@pytest.fixture(scope="module")
def trained(worlds):
    models = {}
    for d, w in worlds.items():
        torch.manual_seed(0)
        model = build_model("small", weights="synthetic")
        train_supervised(
            model, w.train, epochs=6, p=8, k=4, lr=1e-3, val_fraction=0.0, progress=False
        )
        models[d] = model
    return models


def _deep_map(model, world):
    qf = extract_features(model, world.query, progress=False)
    gf = extract_features(model, world.gallery, progress=False)
    return _scores(qf, gf, world)[0]


@pytest.mark.slow
def test_supervised_beats_handcrafted_and_domains_differ(worlds, trained):
    for d, w in worlds.items():
        hand, _ = _scores(
            colour_texture_features(w.query.images), colour_texture_features(w.gallery.images), w
        )
        own = _deep_map(trained[d], w)
        assert own > hand + 0.2, f"world {d}: supervised {own:.3f} vs handcrafted {hand:.3f}"
        other = _deep_map(trained["B" if d == "A" else "A"], w)
        assert other < 0.85 * own, f"world {d}: transferred {other:.3f} vs trained there {own:.3f}"
