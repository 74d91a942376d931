"""reidlib.recipes.video: chapter 5's methods as command-line recipes (survey §3.2-3.3).

Each recipe runs the smoke budget on the smoke world A's video split; Cluster Contrast
on frames equals the chapter's ``video.compare.train_method`` run (visual and fused
scores); a MARS-layout export read back by ``read_mars`` (no timestamps) runs with visual
scores only; the tiny fake MARS tree fails with a clear message; a killed run resumes.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from fakes import write_mars

import reidlib.training.loop as loop
from reidlib.data.datasets import load_splits
from reidlib.data.imageset import ReidSplits
from reidlib.data.synthetic import load_world
from reidlib.notebook import setup
from reidlib.recipes.core import RecipeRun
from reidlib.recipes.video import RECIPES, has_clock, mars_splits
from reidlib.video.benchmark import export_mars, video_splits
from reidlib.video.compare import METHODS, train_method, video_settings


@pytest.fixture(scope="module")
def world():
    return setup("test-recipes-ch5", profile="smoke"), load_world("A", "smoke", progress=False)


def recipe_run(session, target, workdir, seed=0):
    return RecipeRun(session=session, target=target, seed=seed, workdir=workdir,
                     progress=False, dataset="synthetic:A")


def test_every_chapter5_method_has_a_tracklet_recipe():
    assert all(r.chapter == "5" and r.needs_tracklets and not r.needs_source
               for r in RECIPES.values())
    assert sorted(r.title for r in RECIPES.values()) == sorted(
        "Cluster Contrast, frames" if m == "Cluster Contrast" else m for m in METHODS)


def test_frames_recipe_equals_the_chapters_run(world, tmp_path):
    session, target = world
    result = RECIPES["video-cluster-contrast"].run(recipe_run(session, target, tmp_path))
    settings, splits, cluster = video_settings(session.profile, target)
    theirs, _ = train_method("Cluster Contrast", session, splits, settings, cluster, seed=0)
    assert result.scores == {k: theirs.scores[k] for k in ("mAP", "rank1", "mINP")}
    assert result.settings["fused"] == {k: theirs.scores[f"st_{k}"]
                                        for k in ("mAP", "rank1", "mINP")}
    assert result.pairwise_f == pytest.approx(theirs.quality["pairwise_f"])
    assert result.settings["buc_ratio"] == settings["buc_ratio"]
    assert (tmp_path / "fit.pt").exists()


def test_a_mars_export_runs_with_visual_scores_only(world, tmp_path):
    """The world's video split written in MARS's layout and read back: the tracklets come
    from the records, the frames have no timestamps, so the fused scores are None."""
    session, target = world
    root = export_mars(video_splits(target), tmp_path / "MARS", progress=False)
    mars = load_splits("mars", root, size=target.train.image_size)
    assert not has_clock(mars_splits(mars)) and has_clock(video_splits(target))
    result = RECIPES["utal"].run(recipe_run(session, mars, tmp_path / "run"))
    assert all(0 <= v <= 1 for v in result.scores.values())
    assert result.settings["fused"] is None and "timestamps" in result.settings["fused_note"]
    assert 0 <= result.settings["association_precision"] <= 1


def test_the_fake_mars_tree_is_too_small_and_says_so(world, tmp_path):
    session, _ = world
    mars = load_splits("mars", write_mars(tmp_path / "data"), size=(32, 16))
    with pytest.raises(ValueError, match="too few training identities"):
        RECIPES["video-cluster-contrast"].run(recipe_run(session, mars, tmp_path / "run"))


def test_a_dataset_without_tracklets_is_refused(world):
    _, target = world
    images = ReidSplits("market-like", *(
        type(s)(s.images, s.pids, s.camids) for s in (target.train, target.query,
                                                      target.gallery)))
    assert (images.train.tracklets == -1).all()
    with pytest.raises(ValueError, match="tracklet id for every frame"):
        mars_splits(images)


def test_mars_splits_orders_frames_by_tracklet(world):
    _, target = world
    splits = video_splits(target)
    shuffled = ReidSplits("shuffled", *(s.subset(np.random.default_rng(0).permutation(len(s)))
                                        for s in (splits.train, splits.query, splits.gallery)))
    back = mars_splits(shuffled)
    for name in ("train", "query", "gallery"):
        ours, theirs = getattr(back, name), getattr(splits, name)
        assert (np.diff(ours.tracklets) >= 0).all()
        assert np.array_equal(ours.tracklets, theirs.tracklets)
        assert np.array_equal(ours.frames, theirs.frames)


def test_a_killed_run_resumes_from_its_checkpoint(world, tmp_path, monkeypatch):
    session, target = world
    first = RECIPES["utal"].run(recipe_run(session, target, tmp_path))

    def no_training(*args, **kwargs):
        raise AssertionError("a resumed finished run must not train again")

    monkeypatch.setattr(loop, "_fit_epoch", no_training)
    again = RECIPES["utal"].run(recipe_run(session, target, tmp_path))
    assert again.scores == first.scores and again.settings["fused"] == first.settings["fused"]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["video-cluster-contrast-tracklets", "video-buc", "taudl"])
def test_every_recipe_runs_the_smoke_budget(world, tmp_path, name):
    session, target = world
    result = RECIPES[name].run(recipe_run(session, target, tmp_path))
    assert all(0 <= v <= 1 and math.isfinite(v) for v in result.scores.values())
    assert set(result.settings["fused"]) == {"mAP", "rank1", "mINP"}
    assert result.settings["selection"].startswith("best validation")
    assert (tmp_path / "fit.pt").exists()
