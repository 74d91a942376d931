"""python -m reidlib.recipes: the registry, the command line's errors, end-to-end runs in the
smoke profile (a synthetic world, the same world exported in Market-1501's layout), every
chapter 1-3 recipe taking a training step, resuming after a kill, and --out merging."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fakes import write_market1501

import reidlib.training.loop as loop_module
from reidlib.data.synthetic import export_market1501, load_world
from reidlib.data.synthetic.world import cache_paths, default_cache_dir
from reidlib.models.pretrained import synthetic_backbone, synthetic_weights_path
from reidlib.notebook import setup
from reidlib.recipes import cli
from reidlib.recipes.core import ROW_KEYS, Recipe, RecipeInputError, RecipeRun
from reidlib.recipes.image import RECIPES
from reidlib.training.checkpoint import read_checkpoint

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A cache folder holding (links to) the smoke world A and the small backbone's synthetic
    weights of the default cache, so the runs' own files (checkpoints, decoded exports) stay
    in a temporary folder."""
    load_world("A", "smoke", progress=False)
    synthetic_backbone("small", progress=False)
    folder = tmp_path_factory.mktemp("cache")
    for path in [*cache_paths("A", "smoke", 0, None), synthetic_weights_path("small")]:
        (folder / path.name).symlink_to(path)
    assert default_cache_dir() != folder
    return folder


@pytest.fixture
def env(cache, monkeypatch):
    monkeypatch.setenv("REID_CACHE", str(cache))
    monkeypatch.setenv("REID_PROGRESS", "0")
    return cache


@pytest.fixture(scope="module")
def world():
    return load_world("A", "smoke", progress=False)


def _main(capsys, *argv) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# ----------------------------------------------------------------------------- registry


def test_image_recipes_cover_chapters_1_to_3_with_the_chapters_names():
    from reidlib.camera.compare import METHODS

    by_chapter = {c: {r.title for r in RECIPES.values() if r.chapter == c} for c in "123"}
    assert {"DBSCAN-Jaccard loop", "PUL loop (K-means)", "BUC loop", "HCT loop"} <= by_chapter["1"]
    assert by_chapter["2"] == {"CE + triplet", "triplet", "ECN (exemplar memory)",
                               "Cluster Contrast", "SpCL (hybrid memory)", "MMT",
                               "parts (global + upper + lower)",
                               "Cluster Contrast + DCML selection"}
    # chapter 3's baseline "Cluster Contrast" is chapter 2's recipe
    assert by_chapter["3"] == set(METHODS) - {"Cluster Contrast"}
    assert all(not r.needs_source and not r.needs_tracklets for r in RECIPES.values())


def test_list_prints_every_recipe_with_its_chapter_and_title(capsys):
    code, out, _ = _main(capsys, "list")
    assert code == 0
    for recipe in cli.all_recipes().values():
        assert re.search(rf"^{re.escape(recipe.name)}\s+{recipe.chapter}\s+"
                         rf"{re.escape(recipe.title)}", out, re.MULTILINE)


def test_registry_refuses_a_name_defined_twice(monkeypatch):
    import reidlib.recipes.image as image

    monkeypatch.setattr(cli, "MODULES", ("reidlib.recipes.image", "reidlib.recipes.image"))
    with pytest.raises(RuntimeError, match="defined twice"):
        cli.all_recipes()
    monkeypatch.setattr(cli, "MODULES", ("reidlib.recipes.image", "reidlib.recipes.absent"))
    assert cli.all_recipes() == image.RECIPES  # a chapter not written yet is skipped


# ------------------------------------------------------------------------------- errors


def _uda_registry():
    def never(run):
        raise AssertionError("must not run")
    return {**RECIPES, "uda-x": Recipe("uda-x", "UDA X", "4", never, needs_source=True)}


@pytest.mark.parametrize("argv, message", [
    (["no-such-method", "--dataset", "synthetic:A"], "unknown method 'no-such-method'; "
                                                     "valid methods: buc-loop"),
    (["cluster-contrast"], "needs --dataset"),
    (["cluster-contrast", "--dataset", "market1501"], "expected one of synthetic:A"),
    (["cluster-contrast", "--dataset", "synthetic:A", "--source", "synthetic:B"],
     "uses no source dataset"),
    (["uda-x", "--dataset", "synthetic:A"], "domain-adaptation method: it needs --source"),
])
def test_argument_errors_exit_2_with_one_message_and_write_nothing(argv, message, tmp_path,
                                                                   capsys, monkeypatch):
    monkeypatch.setattr(cli, "all_recipes", _uda_registry)
    out = tmp_path / "results.json"
    code, _, err = _main(capsys, *argv, "--out", str(out), "--workdir", str(tmp_path / "w"))
    assert code == 2 and message in err and "Traceback" not in err
    assert not out.exists() and not (tmp_path / "w").exists()


def test_a_missing_or_malformed_dataset_is_one_error_naming_its_layout(env, tmp_path, capsys):
    out = tmp_path / "results.json"
    out.write_text('{"rows": []}\n')
    code, _, err = _main(capsys, "cluster-contrast", "--dataset",
                         f"market1501:{tmp_path / 'absent'}", "--profile", "smoke",
                         "--out", str(out), "--workdir", str(tmp_path / "w"))
    assert code == 2 and err.startswith("error: Market-1501") and "Expected layout" in err
    root = write_market1501(tmp_path / "m")
    (root / "Market-1501-v15.09.15" / "query" / "0001_c1s1_001051_00.jpg").rename(
        root / "Market-1501-v15.09.15" / "query" / "person.jpg")  # not a Market-1501 name
    code, _, err = _main(capsys, "cluster-contrast", "--dataset", f"market1501:{root}",
                         "--profile", "smoke", "--out", str(out), "--workdir",
                         str(tmp_path / "w"))
    assert code == 2 and "Traceback" not in err and "person.jpg" in err
    assert out.read_text() == '{"rows": []}\n'  # untouched


def test_a_fake_release_is_too_small_to_train_and_says_so(env, tmp_path, capsys):
    """The fakes read end to end (test_recipes_datasets.py) but hold two training people:
    no validation split can be held out, which the recipe says before training."""
    root = write_market1501(tmp_path / "m")
    out = tmp_path / "results.json"
    code, _, err = _main(capsys, "cluster-contrast", "--dataset", f"market1501:{root}",
                         "--profile", "smoke", "--out", str(out), "--workdir",
                         str(tmp_path / "w"))
    assert code == 2 and "too small for a validation split" in err and "2 identities" in err
    assert not out.exists() and not list((tmp_path / "w").glob("*.pt"))


def test_an_out_file_of_another_kind_is_refused_before_training(tmp_path, capsys):
    out = tmp_path / "results.json"
    out.write_text('{"mAP": 0.5}')
    code, _, err = _main(capsys, "cluster-contrast", "--dataset", "synthetic:A",
                         "--out", str(out))
    assert code == 2 and "not a recipes results file" in err
    assert out.read_text() == '{"mAP": 0.5}'


def test_python_m_reports_an_unknown_method_without_a_traceback():
    proc = subprocess.run([sys.executable, "-m", "reidlib.recipes", "nope", "--dataset",
                           "synthetic:A"], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}, timeout=120)
    assert proc.returncode == 2 and "unknown method 'nope'" in proc.stderr
    assert "Traceback" not in proc.stderr


# --------------------------------------------------------------------------- merging


def _row(**values):
    row = dict.fromkeys(ROW_KEYS)
    row.update(method="m", chapter="2", dataset="synthetic:A", source="", seed=0,
               profile="smoke", settings={})
    row.update(values)
    return row


def test_merge_rows_replaces_the_same_run_and_appends_others():
    rows = [_row(mAP=0.1), _row(seed=1, mAP=0.2)]
    merged = cli.merge_rows(rows, _row(mAP=0.3))
    assert [(r["seed"], r["mAP"]) for r in merged] == [(1, 0.2), (0, 0.3)]
    merged = cli.merge_rows(merged, _row(dataset="synthetic:B", mAP=0.4))
    assert len(merged) == 3


# ----------------------------------------------------------------------- end to end


def _run_cli(capsys, out, workdir, dataset, seed=0, method="cluster-contrast"):
    code, stdout, err = _main(capsys, method, "--dataset", dataset, "--profile", "smoke",
                              "--seed", str(seed), "--out", str(out), "--workdir",
                              str(workdir), "--no-progress")
    assert code == 0, err
    return stdout


@pytest.mark.slow
def test_end_to_end_on_a_world_resumes_finished_runs_and_merges_rows(env, tmp_path, capsys):
    out = tmp_path / "results.json"
    _run_cli(capsys, out, tmp_path / "w0", "synthetic:A")
    rows = json.loads(out.read_text())["rows"]
    assert len(rows) == 1 and list(rows[0]) == list(ROW_KEYS)
    row = rows[0]
    assert (row["method"], row["chapter"], row["dataset"], row["source"], row["seed"],
            row["profile"]) == ("Cluster Contrast", "2", "synthetic:A", "", 0, "smoke")
    assert 0 < row["mAP"] <= 1 and 0 < row["mINP"] <= row["mAP"] + 1e-9
    assert 0 <= row["pairwise_f"] <= 1 and row["minutes"] > 0
    assert row["upper_mAP"] is None and row["of_upper"] is None
    assert row["settings"]["epochs"] == 1 and row["settings"]["val_identities"] == 6
    assert row["command"] == ("python -m reidlib.recipes cluster-contrast --dataset "
                              f"synthetic:A --profile smoke --seed 0 --out {out} --workdir "
                              f"{tmp_path / 'w0'} --no-progress")
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", row["date"])
    checkpoint = read_checkpoint(tmp_path / "w0" / "fit.pt")
    assert checkpoint["history"]["finished"]
    # the same command again: the finished checkpoint is read, not retrained; the row is
    # replaced by an identical one
    steps = []
    real_step = loop_module.train_step
    loop_module.train_step = lambda *a: steps.append(1) or real_step(*a)
    try:
        _run_cli(capsys, out, tmp_path / "w0", "synthetic:A")
    finally:
        loop_module.train_step = real_step
    again = json.loads(out.read_text())["rows"]
    assert not steps and len(again) == 1 and again[0]["mAP"] == row["mAP"]
    assert [p.name for p in out.parent.iterdir() if p.name.startswith(".")] == []


@pytest.mark.slow
def test_upper_scores_chapter_0s_supervised_model_and_fills_the_share(env, tmp_path, capsys):
    out = tmp_path / "results.json"
    code, _, err = _main(capsys, "cluster-contrast", "--dataset", "synthetic:A", "--profile",
                         "smoke", "--out", str(out), "--workdir", str(tmp_path / "w"),
                         "--no-progress", "--upper")
    assert code == 0, err
    row = json.loads(out.read_text())["rows"][0]
    # the same supervised model of the same world, scored in this process (read from the
    # cache the command filled)
    session = setup("recipes", seed=0, profile="smoke")
    world = load_world("A", "smoke", progress=False)
    expected = session.score(session.upper_bound(world, progress=False), world)["mAP"]
    assert row["upper_mAP"] == pytest.approx(expected, abs=1e-6)
    assert row["of_upper"] == pytest.approx(row["mAP"] / expected, abs=1e-6)
    assert 0 < row["of_upper"] < 2 and row["command"].endswith("--upper")


@pytest.mark.slow
def test_end_to_end_on_a_world_exported_in_market1501_layout(env, world, tmp_path, capsys):
    root = export_market1501(world, tmp_path / "market", progress=False)
    out = tmp_path / "results.json"
    out.write_text(json.dumps({"rows": [_row(method="other", mAP=0.5, rank1=0.5, mINP=0.5)]}))
    _run_cli(capsys, out, tmp_path / "w", f"market1501:{root}", method="dcml")
    rows = json.loads(out.read_text())["rows"]
    assert [r["method"] for r in rows] == ["other", "Cluster Contrast + DCML selection"]
    row = rows[1]
    assert row["dataset"] == f"market1501:{root}"
    # the same people in JPEG: a working recipe retrieves them far above chance (a shuffled
    # query / gallery pid mapping would score a few percent)
    assert row["mAP"] > 0.2
    assert list((env / "datasets").glob("imageset-*.npz"))


# ------------------------------------------------------------------ every recipe runs


class _OneStep(Exception):
    """Raised after a recipe's first training step (its method, clustering and batches)."""


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(RECIPES))
def test_every_recipe_builds_and_takes_a_finite_training_step(name, env, world, tmp_path,
                                                            monkeypatch):
    real_step = loop_module.train_step

    def one_step(*args):
        loss, parts = real_step(*args)
        assert np.isfinite(loss.item())
        raise _OneStep

    monkeypatch.setattr(loop_module, "train_step", one_step)
    session = setup("test-recipes", profile="smoke")
    run = RecipeRun(session, world, 0, tmp_path, progress=False, dataset="synthetic:A")
    with pytest.raises(_OneStep):
        RECIPES[name].run(run)


def test_a_dataset_too_small_for_bucs_matrix_is_refused(monkeypatch, world, tmp_path):
    import reidlib.recipes.image as image

    monkeypatch.setattr(image, "BUC_MAX_N", 10)
    session = setup("test-recipes", profile="smoke")
    run = RecipeRun(session, world, 0, tmp_path, progress=False, dataset="synthetic:A")
    with pytest.raises(RecipeInputError, match="at most 10 training images"):
        RECIPES["buc-loop"].run(run)


# ------------------------------------------------------------------------- resuming


@pytest.mark.slow
def test_a_killed_run_resumes_from_its_last_epoch_and_ends_as_an_unbroken_one(
        env, world, tmp_path, monkeypatch):
    """PUL's loop (2 epochs in the smoke profile) killed in its second epoch: the rerun
    trains that epoch only and ends with the uninterrupted run's scores."""
    session = setup("test-recipes", profile="smoke")
    recipe = RECIPES["pul-loop"]

    def run_in(folder):
        return recipe.run(RecipeRun(session, world, 0, folder, progress=False,
                                    dataset="synthetic:A"))

    real_step, real_save = loop_module.train_step, loop_module._save
    steps = []
    monkeypatch.setattr(loop_module, "train_step",
                        lambda *a: steps.append(1) or real_step(*a))
    whole = run_in(tmp_path / "whole")
    all_steps = len(steps)

    saved = []

    def kill_after_first_save(*args):
        if saved:
            raise KeyboardInterrupt
        return real_step(*args)

    monkeypatch.setattr(loop_module, "train_step", kill_after_first_save)
    monkeypatch.setattr(loop_module, "_save", lambda *a: saved.append(1) or real_save(*a))
    with pytest.raises(KeyboardInterrupt):
        run_in(tmp_path / "killed")
    payload = read_checkpoint(tmp_path / "killed" / "fit.pt")
    assert len(payload["history"]["records"]) == 1 and not payload["history"]["finished"]
    assert [p.name for p in (tmp_path / "killed").iterdir()] == ["fit.pt"]  # no partial file

    steps.clear()
    monkeypatch.setattr(loop_module, "train_step",
                        lambda *a: steps.append(1) or real_step(*a))
    monkeypatch.setattr(loop_module, "_save", real_save)
    resumed = run_in(tmp_path / "killed")
    assert 0 < len(steps) < all_steps  # the second epoch only
    for key in ("mAP", "rank1", "mINP"):
        assert resumed.scores[key] == pytest.approx(whole.scores[key], abs=1e-6)
    assert resumed.pairwise_f == pytest.approx(whole.pairwise_f, abs=1e-6)
    assert resumed.settings["best_epoch"] == whole.settings["best_epoch"]
