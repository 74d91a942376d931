"""reidlib.recipes.adaptation: chapter 4's methods as command-line recipes (survey §3.4).

Each recipe runs the smoke budget on the smoke worlds (target A, source B); the
clustering-based one equals the chapter's ``compare.train_method`` run, direct transfer is
the source model scored on the target, a killed run resumes from its checkpoint, and a
source without what a method needs fails with a clear message.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch

import reidlib.training.loop as loop
from reidlib.data.imageset import ReidSplits
from reidlib.data.synthetic import load_world
from reidlib.domain_adaptation.compare import METHODS, source_model, train_method
from reidlib.feature_learning.compare import chapter_settings
from reidlib.notebook import setup
from reidlib.recipes.adaptation import RECIPES
from reidlib.recipes.core import RecipeRun
from reidlib.training.checkpoint import read_checkpoint


@pytest.fixture(scope="module")
def worlds():
    session = setup("test-recipes-ch4", profile="smoke")
    return session, load_world("B", "smoke", progress=False), load_world("A", "smoke",
                                                                          progress=False)


def recipe_run(worlds, workdir, source=True, seed=0):
    session, source_world, target_world = worlds
    return RecipeRun(session=session, target=target_world, seed=seed, workdir=workdir,
                     source=source_world if source is True else source, progress=False,
                     dataset="synthetic:A", source_name="synthetic:B")


def plain(world) -> ReidSplits:
    """The world's splits without anything else of a World (as a real dataset)."""
    return ReidSplits(name="plain", train=world.train, query=world.query,
                      gallery=world.gallery)


def test_every_recipe_is_a_chapter4_method_with_a_source():
    assert all(r.chapter == "4" and r.needs_source and not r.needs_tracklets
               for r in RECIPES.values())
    assert all(name == r.name for name, r in RECIPES.items())
    # every clustering-based method of compare.METHODS has its recipe, by title
    titles = " | ".join(r.title for r in RECIPES.values())
    for method in METHODS:
        assert method.split(",")[0] in titles
    assert len(RECIPES) == 16


def test_clustering_recipe_equals_the_chapters_run(worlds, tmp_path):
    """A real equality: the recipe's scores and pairwise F are train_method's for seed 0
    (the smoke profile's one epoch is also the best validation epoch)."""
    session, source_world, target_world = worlds
    result = RECIPES["uda-cluster-contrast"].run(recipe_run(worlds, tmp_path))
    settings, train, cluster = chapter_settings(session.profile, target_world)
    theirs = train_method("Cluster Contrast", session, source_world, target_world, settings,
                          train, cluster, seed=0)
    assert result.scores == theirs.scores
    assert result.pairwise_f == pytest.approx(theirs.quality["pairwise_f"])
    assert result.settings["epochs"] == settings["epochs"] == 1
    assert result.settings["selection"] == "best validation epoch"
    assert result.settings["best_epoch"] == 0 and 0 <= result.settings["val_mAP"] <= 1
    assert (tmp_path / "fit.pt").exists()


def test_direct_transfer_is_the_source_model_on_the_target(worlds, tmp_path):
    session, source_world, target_world = worlds
    result = RECIPES["direct-transfer"].run(recipe_run(worlds, tmp_path))
    expected = session.score(source_model(session, source_world), target_world)
    assert result.scores == expected
    assert 0 < result.pairwise_f <= 1


def test_a_killed_run_resumes_from_its_checkpoint(worlds, tmp_path, monkeypatch):
    """The second run finds the finished checkpoint and trains nothing: it must give the
    first run's scores even with the training step broken."""
    first = RECIPES["uda-cluster-contrast"].run(recipe_run(worlds, tmp_path))

    def no_training(*args, **kwargs):
        raise AssertionError("a resumed finished run must not train again")

    monkeypatch.setattr(loop, "_fit_epoch", no_training)
    again = RECIPES["uda-cluster-contrast"].run(recipe_run(worlds, tmp_path))
    assert again.scores == first.scores
    # its minutes are the epochs' the checkpoint records, not the moment it took to read it
    [checkpoint] = tmp_path.rglob("fit.pt")
    epochs = sum(r["seconds"] for r in read_checkpoint(checkpoint)["history"]["records"])
    assert epochs > 0 and again.seconds >= epochs
    with pytest.raises(AssertionError, match="must not train"):  # the patch is live
        RECIPES["uda-cluster-contrast"].run(recipe_run(worlds, tmp_path / "fresh"))


def test_untrained_recipes_leave_the_shared_source_model_out_of_their_minutes(
        worlds, tmp_path, monkeypatch):
    """Direct transfer and AdaBN train nothing on the target: the source model every UDA
    recipe starts from (trained once, then cached) is not their time, as it is not the
    trained recipes' (a first run on an empty cache once recorded AdaBN at 3.8 minutes)."""
    import reidlib.recipes.adaptation as adaptation

    real = adaptation.source_model

    def slow_source_model(*args, **kwargs):
        time.sleep(3.0)  # as if the source model were trained now
        return real(*args, **kwargs)

    monkeypatch.setattr(adaptation, "source_model", slow_source_model)
    assert RECIPES["direct-transfer"].run(recipe_run(worlds, tmp_path)).seconds == 0.0
    adapted = RECIPES["adabn"].run(recipe_run(worlds, tmp_path))
    assert 0 < adapted.seconds < 3.0


def test_the_source_model_needs_only_the_splits(worlds):
    """source_model reads any ReidSplits (a real dataset): the same cached model as for
    the World."""
    session, source_world, _ = worlds
    a, b = source_model(session, source_world), source_model(session, plain(source_world))
    for p, q in zip(a.state_dict().values(), b.state_dict().values(), strict=True):
        assert torch.equal(p, q)


def test_clear_errors_for_what_a_source_lacks(worlds, tmp_path):
    _, source_world, _ = worlds
    with pytest.raises(ValueError, match="attribute labels"):
        RECIPES["mmfa"].run(recipe_run(worlds, tmp_path, source=plain(source_world)))
    with pytest.raises(ValueError, match="needs a labelled source"):
        RECIPES["uda-cluster-contrast"].run(recipe_run(worlds, tmp_path, source=None))


OTHERS = sorted(set(RECIPES) - {"uda-cluster-contrast", "direct-transfer"})


@pytest.mark.slow
@pytest.mark.parametrize("name", OTHERS)
def test_every_recipe_runs_the_smoke_budget(worlds, tmp_path, name):
    result = RECIPES[name].run(recipe_run(worlds, tmp_path))
    assert set(result.scores) == {"mAP", "rank1", "mINP"}
    assert all(0 <= v <= 1 and math.isfinite(v) for v in result.scores.values())
    assert 0 < result.pairwise_f <= 1 and result.seconds >= 0
    if name != "adabn":  # trained: a checkpoint per epoch, a selection rule recorded
        assert (tmp_path / "fit.pt").exists()
        assert result.settings["selection"].startswith(
            "last epoch" if name in ("uda-camera-bn", "uda-spcl") else "best validation")


@pytest.mark.slow
def test_adabn_is_direct_transfer_with_the_targets_statistics(worlds, tmp_path):
    """AdaBN re-estimates BN statistics on the target: the source model's weights with
    other statistics, so its scores move away from direct transfer's."""
    direct = RECIPES["direct-transfer"].run(recipe_run(worlds, tmp_path))
    adapted = RECIPES["adabn"].run(recipe_run(worlds, tmp_path))
    assert not np.isclose(adapted.scores["mAP"], direct.scores["mAP"], atol=1e-6)
