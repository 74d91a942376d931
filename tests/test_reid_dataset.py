"""``REID_DATASET``: any chapter on a real dataset in place of world A (issue #16, §4).

Unit tests of ``Session.world`` / ``setup`` on every fake layout of ``tests/fakes.py``, a bad
spec and missing or malformed trees; end to end (slow), chapters run in the smoke profile
through the course runner on the smoke world A exported in Market-1501's layout.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import fakes
import nbformat
import numpy as np
import pytest
import torch

import reidlib.data.synthetic as synthetic
from reidlib import course
from reidlib.data.datasets import DatasetLayoutError
from reidlib.data.imageset import ReidSplits
from reidlib.data.synthetic.world import cache_paths
from reidlib.notebook import Session, find_repo_root, setup
from reidlib.profiles import get_profile

ROOT = find_repo_root(Path(__file__).parent)


def session(tmp_path, dataset=None):
    return Session(chapter="t", profile=get_profile("smoke"), device=torch.device("cpu"), seed=0,
                   cache_dir=tmp_path / "cache", results_dir=tmp_path / "results",
                   dataset=dataset)


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


@pytest.fixture
def calls(monkeypatch):
    """load_world replaced by a recorder: which world each call asked for (no rendering)."""
    seen = []

    def fake_load_world(domain, profile, **kwargs):
        seen.append((domain, profile, kwargs))
        return f"world {domain}"

    monkeypatch.setattr(synthetic, "load_world", fake_load_world)
    return seen


# --- Session.world: which loader, with which arguments -------------------------------------

def test_without_a_dataset_every_world_is_rendered(tmp_path, calls):
    s = session(tmp_path)
    assert (s.dataset, s.on_real_data) == (None, False)
    assert s.world("A") == "world A" and s.world("B") == "world B"
    s.world("A", camera_style=2.0)
    cache = {"cache_dir": tmp_path / "cache"}
    assert calls == [("A", "smoke", cache), ("B", "smoke", cache),
                     ("A", "smoke", {**cache, "camera_style": 2.0})]
    assert s.replay_dir == tmp_path / "cache" / "replays" / "smoke"


def test_a_dataset_replaces_world_a_only(tmp_path, calls, capsys):
    root = fakes.write_market1501(tmp_path / "market")
    s = session(tmp_path, f"market1501:{root}")
    assert s.on_real_data
    # another world, or a dial of the renderer, is still the synthetic world
    assert s.world("B") == "world B"
    s.world("A", domain_gap=1.0)
    assert [c[0] for c in calls] == ["B", "A"]
    splits = s.world("A")
    assert len(calls) == 2 and isinstance(splits, ReidSplits)
    assert splits.name == "market1501"
    said = capsys.readouterr().out
    assert f"market1501:{root}" in said and "not comparable" in said
    # hand count from the fake's file list: junk (-1) is dropped, distractors (0) kept
    gallery = fakes.MARKET1501["bounding_box_test"]
    assert len(splits.gallery) == sum(not name.startswith("-1") for name in gallery)
    assert len(splits.train) == len(fakes.MARKET1501["bounding_box_train"])
    assert splits.train.image_size == get_profile("smoke").image_size
    assert sorted(np.unique(splits.train.pids)) == [0, 1]  # 0002 and 0007 relabelled


@pytest.mark.parametrize("kind, write, train_rows", [
    ("market1501", fakes.write_market1501, len(fakes.MARKET1501["bounding_box_train"])),
    ("dukemtmc", fakes.write_dukemtmc, len(fakes.DUKEMTMC["bounding_box_train"])),
    ("cuhk03", fakes.write_cuhk03_np,
     len(fakes.CUHK03_NP["labeled"]["bounding_box_train"])),
    ("cuhk03-detected", fakes.write_cuhk03_np,
     len(fakes.CUHK03_NP["detected"]["bounding_box_train"])),
    ("msmt17", fakes.write_msmt17,
     len(fakes.MSMT17_LISTS["list_train.txt"]) + len(fakes.MSMT17_LISTS["list_val.txt"])),
    ("mars", fakes.write_mars, sum(t[3] for t in fakes.MARS_TRAIN)),
])
def test_every_fake_layout_is_read_as_world_a(tmp_path, kind, write, train_rows):
    s = session(tmp_path, f"{kind}:{write(tmp_path / kind)}")
    splits = s.world("A")
    assert len(splits.train) == train_rows
    for part in (splits.train, splits.query, splits.gallery):
        assert len(part) and part.images.shape[1:] == (*get_profile("smoke").image_size, 3)
    # the pixels are cached for the next chapter, under the session's cache
    assert files_under(tmp_path / "cache" / "datasets")


# --- errors: clear, early, and nothing written -------------------------------------------

@pytest.mark.parametrize("spec", ["market1501", "market1501:", "market:/data/m", "synthetic:A",
                                  "synthetic:B", "nonsense"])
def test_a_bad_spec_is_a_clear_error(tmp_path, monkeypatch, spec):
    with pytest.raises(ValueError, match=r"REID_DATASET.*market1501:PATH.*mars:PATH"):
        session(tmp_path, spec).world("A")
    monkeypatch.setenv("REID_DATASET", spec)
    monkeypatch.setenv("REID_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("REID_BUILD", str(tmp_path / "build"))
    with pytest.raises(ValueError, match=r"market1501:PATH"):
        setup("t", profile="smoke")
    assert files_under(tmp_path) == []


@pytest.mark.parametrize("kind, layout_word", [
    ("market1501", "bounding_box_train"), ("dukemtmc", "DukeMTMC-reID"),
    ("cuhk03", "labeled"), ("msmt17", "list_train.txt"), ("mars", "tracks_train_info.mat"),
])
def test_a_missing_tree_names_the_layout_expected(tmp_path, kind, layout_word):
    s = session(tmp_path, f"{kind}:{tmp_path / 'nowhere'}")
    with pytest.raises(DatasetLayoutError, match=layout_word) as err:
        s.world("A")
    assert "data/README.md" in str(err.value)
    assert files_under(tmp_path) == []


def test_an_incomplete_or_malformed_tree_leaves_no_cache(tmp_path):
    root = fakes.write_market1501(tmp_path / "market")
    base = root / "Market-1501-v15.09.15"
    (base / "query" / "not_a_market_name.jpg").write_bytes(b"")
    with pytest.raises(DatasetLayoutError, match="not_a_market_name.jpg"):
        session(tmp_path, f"market1501:{root}").world("A")
    for name in (base / "query").iterdir():
        name.unlink()
    (base / "query").rmdir()
    with pytest.raises(DatasetLayoutError, match="query"):
        session(tmp_path, f"market1501:{root}").world("A")
    assert files_under(tmp_path / "cache") == []


# --- setup, results and recordings ---------------------------------------------------------

def test_setup_reads_the_variable_and_resolves_a_relative_path(tmp_path, monkeypatch):
    monkeypatch.setenv("REID_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("REID_BUILD", str(tmp_path / "build"))
    monkeypatch.delenv("REID_DATASET", raising=False)
    assert setup("t", profile="smoke").dataset is None
    monkeypatch.setenv("REID_DATASET", "  ")
    assert setup("t", profile="smoke").dataset is None
    monkeypatch.setenv("REID_DATASET", "Market1501:data/market1501")
    s = setup("t", profile="smoke")
    assert s.dataset == f"market1501:{(ROOT / 'data' / 'market1501').resolve()}"
    monkeypatch.setenv("REID_DATASET", f"mars:{tmp_path}")
    assert setup("t", profile="smoke").dataset == f"mars:{tmp_path}"


def test_results_and_replays_say_which_dataset(tmp_path):
    synthetic_run = session(tmp_path)
    assert synthetic_run.record(map=0.5) == {"map": 0.5}
    a, b = (session(tmp_path, f"market1501:{tmp_path / name}") for name in ("m1", "m2"))
    assert a.record(map=0.25) == {"map": 0.25, "dataset": a.dataset}
    assert json.loads(a.results_path.read_text())["dataset"] == a.dataset
    # one replay folder per dataset, none of them the synthetic world's
    folders = {synthetic_run.replay_dir, a.replay_dir, b.replay_dir}
    assert len(folders) == 3 and a.replay_dir.name.startswith("smoke-market1501-m1-")
    assert a.dataset_tag == a.replay_dir.name.removeprefix("smoke-")
    assert synthetic_run.dataset_tag is None


# --- end to end: chapters on the exported smoke world A ------------------------------------

# Chapter 5 says the dataset is not used and stays on the synthetic world (it needs
# timestamps and transit times): its numbers are then the course's, without a dataset key.
CHAPTERS = ["00_fundamentals", "01a_pseudo_labels", "01b_pseudo_label_loop",
            "02_feature_learning", "03_camera_invariance", "04_domain_adaptation",
            "05_video_tracklets", "06_benchmark", "90_instructor_demo"]
REAL_DATA_SENTENCES = {
    "00_fundamentals": ["skipped on a real dataset: its people's attributes"],
    "03_camera_invariance": ["skipped on a real dataset: the dial renders the synthetic world"],
    "04_domain_adaptation": ["the recorded runs are the synthetic worlds'"],
    "06_benchmark": ["has no attribute annotations: the text queries are skipped"],
    "90_instructor_demo": ["the replays are the runs chapters 1b-4 recorded on it"],
}


@pytest.fixture(scope="module")
def exported_market():
    """The smoke world A in Market-1501's layout, as a user's release would be.

    Exported once into the shared cache, named after the world's cache file: one fixed
    path, so the decoded pixels, models and recordings the chapters cache for this
    "dataset" are reused by the next run instead of piling up under new names.
    """
    cache = Path(os.environ.get("REID_CACHE") or ROOT / "data" / "cache")
    world = synthetic.load_world("A", "smoke", cache_dir=cache, progress=False)
    stem = cache_paths("A", "smoke", 0, cache)[0].stem
    out = cache / "exports" / f"market1501-{stem}"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        try:
            synthetic.export_market1501(world, out, progress=False)
        except FileExistsError:  # another test run exported it meanwhile (atomically)
            pass
    return out


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("chapter", CHAPTERS)
def test_chapter_runs_on_a_market1501_tree(chapter, exported_market, tmp_path):
    root = exported_market
    cache = os.environ.get("REID_CACHE") or str(ROOT / "data" / "cache")
    env = course.kernel_env("smoke", tmp_path,
                            {"REID_CACHE": cache, "REID_DATASET": f"market1501:{root}"})
    try:
        run = course.execute_notebook(ROOT / "notebooks" / f"{chapter}.py", env, timeout=280)
    except course.NotebookError as err:
        pytest.fail(str(err), pytrace=False)
    text = "\n".join(out.get("text", "") for cell in run.nb.cells if cell.cell_type == "code"
                     for out in cell.get("outputs", []))
    for sentence in REAL_DATA_SENTENCES.get(chapter, []):
        assert sentence in text
    # the page `make course` exports passes its last check (`course lint-build`)
    page = course.static_outputs(nbformat.from_dict(run.nb))
    assert course.lint_notebook(page, chapter) == []
    if chapter == "90_instructor_demo":  # trains nothing, records no numbers
        return
    results = json.loads((tmp_path / "results" / f"{chapter.split('_')[0]}.json").read_text())
    if chapter == "05_video_tracklets":  # the synthetic path, as tests/test_notebooks.py runs it
        assert f"market1501:{root} is not used here" in text and "world A is" not in text
        assert "dataset" not in results
        return
    assert f"world A is market1501 from market1501:{root}" in text
    assert results["dataset"] == f"market1501:{root}"
