"""The course machinery: the setup call (reidlib.notebook) and the runner (reidlib.course)."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import jupytext
import nbformat
import numpy as np
import pytest
import torch

from reidlib import course
from reidlib.notebook import Session, find_repo_root, read_results, set_torch_threads, setup
from reidlib.profiles import get_profile

ASSETS = Path(__file__).parent / "assets"
DEMO = ASSETS / "notebooks" / "00_demo.py"
KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}


def write_notebook(path: Path, *cells: str, paired: bool = True) -> course.Notebook:
    """Write a py:percent source (cells starting with '#md ' are markdown) and its pair."""
    made = [
        nbformat.v4.new_markdown_cell(c[4:])
        if c.startswith("#md ")
        else nbformat.v4.new_code_cell(c)
        for c in cells
    ]
    meta = {"jupytext": {"formats": "ipynb,py:percent"}, "kernelspec": KERNELSPEC}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        jupytext.writes(nbformat.v4.new_notebook(cells=made, metadata=meta), "py:percent")
    )
    notebook = course.Notebook(path, "chapter")
    if paired:
        course.sync_pair(notebook)
    return notebook


@pytest.fixture
def course_env(monkeypatch, tmp_path):
    monkeypatch.setenv("REID_BUILD", str(tmp_path / "build"))
    monkeypatch.setenv("REID_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("REID_PROFILE", raising=False)
    return tmp_path


# ----------------------------------------------------------------------------- setup()


def test_setup_takes_profile_from_env_and_seeds(course_env, monkeypatch, capsys):
    monkeypatch.setenv("REID_PROFILE", "smoke")
    session = setup("00", seed=3)
    assert session.profile == get_profile("smoke")
    assert (session.chapter, session.seed) == ("00", 3)
    assert session.results_dir == (course_env / "build" / "results").resolve()
    assert session.cache_dir == (course_env / "cache").resolve()
    assert session.device == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    line = capsys.readouterr().out.strip()
    assert (
        line == f"chapter 00 | profile smoke | device {session.device} | torch {torch.__version__}"
    )
    drawn = (torch.rand(3), np.random.rand(3))
    torch.manual_seed(3)
    np.random.seed(3)
    assert torch.equal(drawn[0], torch.rand(3)) and np.array_equal(drawn[1], np.random.rand(3))


def test_setup_argument_beats_env_and_default_paths(monkeypatch, capsys):
    monkeypatch.setenv("REID_PROFILE", "smoke")
    monkeypatch.delenv("REID_BUILD", raising=False)
    monkeypatch.delenv("REID_CACHE", raising=False)
    session = setup("01", profile="quick")
    assert session.profile.name == "quick"
    root = Path(__file__).resolve().parent.parent
    assert session.cache_dir == root / "data" / "cache"
    assert session.results_dir == root / "build" / "results"


@pytest.mark.parametrize("how", ["argument", "env"])
def test_setup_unknown_profile_lists_valid_ones(course_env, monkeypatch, how):
    if how == "env":
        monkeypatch.setenv("REID_PROFILE", "fast")
    with pytest.raises(ValueError, match=r"'fast'.*full, quick, smoke"):
        setup("00", profile="fast" if how == "argument" else None)


@pytest.mark.parametrize("chapter", ["", "../00", "00/x", "a b", 7])
def test_setup_rejects_bad_chapter_names(course_env, chapter):
    with pytest.raises(ValueError, match="chapter must be a short name"):
        setup(chapter)


def test_set_torch_threads_uses_granted_cores(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    before = torch.get_num_threads()
    try:
        assert set_torch_threads() == len(os.sched_getaffinity(0)) == torch.get_num_threads()
        torch.set_num_threads(1)
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        assert set_torch_threads() == 1  # the user's choice is left alone
    finally:
        torch.set_num_threads(before)


def test_find_repo_root(tmp_path):
    project = tmp_path / "course"
    (project / "notebooks" / "deep").mkdir(parents=True)
    (project / "pyproject.toml").write_text('[project]\nname = "reidlib"\n')
    assert find_repo_root(project / "notebooks" / "deep") == project.resolve()
    other = tmp_path / "other"
    other.mkdir()
    (other / "pyproject.toml").write_text('[project]\nname = "something-else"\n')
    # Not a reidlib project: falls back to the checkout this package lives in.
    assert find_repo_root(other) == Path(__file__).resolve().parent.parent


# ----------------------------------------------------------------------------- record()


def _session(tmp_path) -> Session:
    return Session(
        "00", get_profile("smoke"), torch.device("cpu"), 0, tmp_path / "c", tmp_path / "r"
    )


def test_record_merges_and_writes_json(tmp_path):
    session = _session(tmp_path)
    session.record(map=0.25, rank=[1, 2, 3], method="kmeans")
    merged = session.record(map=np.float32(0.5), epochs=np.int64(4), ok=True)
    on_disk = json.loads((tmp_path / "r" / "00.json").read_text())
    assert (
        on_disk
        == merged
        == {
            "map": 0.5,
            "rank": [1, 2, 3],
            "method": "kmeans",
            "epochs": 4,
            "ok": True,
        }
    )
    assert type(on_disk["epochs"]) is int
    assert read_results(session.results_path) == on_disk
    assert list((tmp_path / "r").iterdir()) == [session.results_path]  # no temp file left


def test_record_is_atomic(tmp_path, monkeypatch):
    session = _session(tmp_path)
    session.record(map=0.25)
    real_write = Path.write_text

    def crash_midway(self, text, *args, **kwargs):
        real_write(self, text[: len(text) // 2], *args, **kwargs)
        raise OSError("disk full")

    monkeypatch.setattr(Path, "write_text", crash_midway)
    with pytest.raises(OSError, match="disk full"):
        session.record(rank1=0.5)
    monkeypatch.undo()
    assert json.loads(session.results_path.read_text()) == {"map": 0.25}
    assert list((tmp_path / "r").iterdir()) == [session.results_path]


@pytest.mark.parametrize(
    "value, error, message",
    [
        (torch.tensor(0.5), TypeError, r"Tensor \(call \.item\(\)"),
        (np.zeros(3), TypeError, r"ndarray \(call \.item\(\) or \.tolist\(\)"),
        ({"a": 1}, TypeError, "expected a number, a string"),
        (float("nan"), ValueError, "finite numbers only"),
        ([1.0, float("inf")], ValueError, "finite numbers only"),
        (list(range(1001)), ValueError, "more than 1000 values"),
    ],
)
def test_record_rejects_what_json_results_cannot_hold(tmp_path, value, error, message):
    session = _session(tmp_path)
    with pytest.raises(error, match=message):
        session.record(bad=value)
    assert not session.results_path.exists()


def test_record_needs_a_number_and_a_valid_file(tmp_path):
    session = _session(tmp_path)
    with pytest.raises(ValueError, match="at least one keyword"):
        session.record()
    session.results_path.parent.mkdir(parents=True)
    session.results_path.write_text("[1, 2]")
    with pytest.raises(ValueError, match="JSON object"):
        session.record(map=0.1)
    session.results_path.write_text("{broken")
    with pytest.raises(ValueError, match="not valid JSON"):
        session.record(map=0.1)


# ----------------------------------------------------------------------------- discovery


def test_discovery_pairs_and_list(tmp_path, capsys):
    notebooks, exercises = tmp_path / "notebooks", tmp_path / "exercises"
    write_notebook(notebooks / "01_second.py", "x = 1")
    write_notebook(notebooks / "00_first.py", "#md # First", "x = 1")
    write_notebook(notebooks / "02_draft.py", "x = 1", paired=False)
    write_notebook(exercises / "00_first" / "00_first.py", "x = 2")
    (exercises / "00_first" / "checks.py").write_text("# ---\ndef check(x):\n    return x == 2\n")
    (exercises / "00_first" / ".ipynb_checkpoints").mkdir()
    shutil.copy(DEMO, exercises / "00_first" / ".ipynb_checkpoints" / "00_first-checkpoint.py")

    found = course.discover(notebooks, exercises)
    assert [nb.chapter for nb in found] == ["00", "01", "02", "ex00"]
    assert [(nb.kind, nb.name, nb.paired) for nb in found] == [
        ("chapter", "00_first", True),
        ("chapter", "01_second", True),
        ("chapter", "02_draft", False),
        ("exercise", "00_first", True),
    ]
    assert course.main(["list", "--notebooks", str(notebooks), "--exercises", str(exercises)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert re.match(r"chapter\s+00\s+00_first\s+paired\s", lines[0])
    assert re.match(r"chapter\s+02\s+02_draft\s+NOT PAIRED\s", lines[2])
    assert re.match(r"exercise\s+ex00\s+00_first\s+paired\s", lines[3])


def test_is_jupytext_source(tmp_path):
    plain = tmp_path / "plain.py"
    plain.write_text("# ---\n# a ruler, not a header\n# ---\nx = 1\n")
    assert not course.is_jupytext_source(plain)
    assert course.is_jupytext_source(DEMO)


def test_select_by_number_or_name():
    notebooks = [course.Notebook(Path(f"{n}.py"), "chapter") for n in ("00_intro", "01_labels")]
    assert course.select(notebooks, []) == notebooks
    assert course.select(notebooks, ["labels", "00"]) == notebooks
    assert course.select(notebooks, ["01_labels"]) == notebooks[1:]
    with pytest.raises(ValueError, match="no notebook called '07': expected one of 00_intro, 01_l"):
        course.select(notebooks, ["07"])


def test_chapter_parts_and_the_instructor_demo():
    names = ("00_intro", "01a_labels", "01b_loop", "02_learning", "90_instructor_demo")
    notebooks = [course.Notebook(Path(f"notebooks/{n}.py"), "chapter") for n in names]
    exercise = course.Notebook(Path("exercises/01_labels/01_labels.py"), "exercise")
    assert [nb.chapter for nb in notebooks] == ["00", "01a", "01b", "02", "90"]
    assert [nb.role for nb in notebooks] == ["chapter"] * 4 + ["demo"]
    assert (exercise.chapter, exercise.role) == ("ex01", "exercise")
    # a bare number picks every part of its chapter; a part's id picks that part only
    assert course.select(notebooks, ["01"]) == notebooks[1:3]
    assert course.select(notebooks, ["01b"]) == notebooks[2:3]
    assert course.select([*notebooks, exercise], ["ex01", "90"]) == [notebooks[4], exercise]
    with pytest.raises(ValueError, match="no notebook called '03'"):
        course.select(notebooks, ["03"])


# ----------------------------------------------------------------------------- check / sync


@pytest.fixture
def demo_copy(tmp_path) -> course.Notebook:
    folder = tmp_path / "notebooks"
    folder.mkdir()
    for suffix in (".py", ".ipynb"):
        shutil.copy(DEMO.with_suffix(suffix), folder / f"00_demo{suffix}")
    return course.Notebook(folder / "00_demo.py", "chapter")


def test_demo_pair_is_in_sync(demo_copy):
    assert course.pair_problems(demo_copy) == []
    assert course.sync_pair(demo_copy) is False  # nothing to rewrite


def test_check_detects_an_edited_source(demo_copy, capsys):
    text = demo_copy.source.read_text()
    demo_copy.source.write_text(text.replace("bins=30", "bins=40"))
    problems = course.pair_problems(demo_copy)
    assert len(problems) == 1 and "cell 3 differs from 00_demo.py" in problems[0]
    demo_copy.source.write_text(text + "\n# %%\nprint('one more')\n")
    assert "4 cells but 00_demo.py has 5" in course.pair_problems(demo_copy)[0]
    folder = str(demo_copy.source.parent)
    assert course.main(["check", "--notebooks", folder, "--exercises", folder + "/none"]) == 1
    out = capsys.readouterr().out  # a folder outside any project: no repository URL either
    assert "no pyproject.toml" in out and "1 notebooks checked, 2 problems" in out


def test_check_ignores_trailing_whitespace_and_metadata(demo_copy):
    nb = nbformat.read(demo_copy.ipynb, as_version=4)
    nb.cells[1].source += "   \n\n"
    nb.cells[1].metadata["collapsed"] = True
    nb.metadata["widgets"] = {"state": {}}
    nbformat.write(nb, demo_copy.ipynb)
    assert course.pair_problems(demo_copy) == []


def test_check_detects_outputs_and_counts(demo_copy):
    nb = nbformat.read(demo_copy.ipynb, as_version=4)
    nb.cells[2].outputs = [nbformat.v4.new_output("stream", name="stdout", text="hi\n")]
    nb.cells[2].execution_count = 2
    nbformat.write(nb, demo_copy.ipynb)
    problems = course.pair_problems(demo_copy)
    assert len(problems) == 2
    assert (
        "cell 3 carries outputs" in problems[0]
        and "cell 3 carries an execution count" in problems[1]
    )
    assert course.sync_pair(demo_copy) is True
    assert course.pair_problems(demo_copy) == []


def test_check_detects_missing_pairs_and_orphans(demo_copy, tmp_path):
    folder = demo_copy.source.parent
    demo_copy.ipynb.unlink()
    assert "no paired 00_demo.ipynb" in course.pair_problems(demo_copy)[0]
    shutil.copy(DEMO.with_suffix(".ipynb"), folder / "99_lost.ipynb")
    problems = course.check_pairs([demo_copy], [folder, tmp_path / "missing"])
    assert len(problems) == 2 and "99_lost.ipynb: no jupytext source 99_lost.py" in problems[1]


def test_check_wants_percent_format(tmp_path):
    light = tmp_path / "00_light.py"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    nb.metadata["jupytext"] = {"formats": "ipynb,py:light"}
    light.write_text(jupytext.writes(nb, "py:light"))
    notebook = course.Notebook(light, "chapter")
    course.sync_pair(notebook)
    assert course.pair_problems(notebook) == [
        f"{light}: jupytext format is 'light', expected 'percent' (py:percent)"
    ]


def test_sync_keeps_ids_of_unchanged_cells(demo_copy):
    before = [c.id for c in nbformat.read(demo_copy.ipynb, as_version=4).cells]
    demo_copy.source.write_text(demo_copy.source.read_text() + "\n# %%\nprint('one more')\n")
    assert course.sync_pair(demo_copy) is True
    after = nbformat.read(demo_copy.ipynb, as_version=4)
    assert [c.id for c in after.cells[:4]] == before and len(after.cells) == 5
    assert course.pair_problems(demo_copy) == []
    demo_copy.ipynb.write_text("{ not json")  # e.g. a bad merge
    assert "cannot be read as a notebook" in course.pair_problems(demo_copy)[0]
    assert course.sync_pair(demo_copy) is True
    assert course.pair_problems(demo_copy) == []


# ----------------------------------------------------------------------------- running


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    build = tmp_path_factory.mktemp("build")
    demo = course.Notebook(DEMO, "chapter")
    (build / "results").mkdir()
    (build / "results" / "00.json").write_text('{"stale": 1}')  # must not survive the run
    entries, failure = course.run_course([demo], build, "smoke", timeout=120)
    return build, entries, failure


def test_run_writes_notebook_html_and_results(demo_run):
    build, entries, failure = demo_run
    assert failure is None
    expected_mean = np.random.default_rng(7).normal(size=1000).mean()  # the demo's seed
    results = json.loads((build / "results.json").read_text())
    assert results == entries
    entry = results["00_demo"]
    assert (entry["status"], entry["profile"], entry["chapter"], entry["code_cells"]) == (
        "ok",
        "smoke",
        "00",
        3,
    )
    assert entry["seconds"] > 0.5
    assert entry["results"] == {"mean": pytest.approx(expected_mean), "n": 1000, "profile": "smoke"}

    executed = nbformat.read(build / "00_demo.ipynb", as_version=4)
    assert "jupytext" not in executed.metadata
    code = [c for c in executed.cells if c.cell_type == "code"]
    assert [c.execution_count for c in code] == [1, 2, 3]
    assert "chapter 00 | profile smoke | device" in code[0].outputs[0]["text"]
    assert any("image/png" in out.get("data", {}) for out in code[1].outputs)
    html = (build / "00_demo.html").read_text()
    assert "chapter 00 | profile smoke" in html and "data:image/png;base64" in html
    # The runner writes nothing beside the sources.
    assert sorted(p.name for p in DEMO.parent.iterdir()) == ["00_demo.ipynb", "00_demo.py"]


def test_run_merges_into_existing_results(demo_run):
    build, _, _ = demo_run
    merged = course.update_results(build / "results.json", {"01_other": {"status": "ok"}})
    assert set(merged) == {"00_demo", "01_other"}
    assert json.loads((build / "results.json").read_text()) == merged


def test_summary_table(demo_run):
    _, entries, _ = demo_run
    table = course.summary_table(entries).splitlines()
    assert table[0].split() == ["notebook", "status", "seconds", "headline", "numbers"]
    assert re.fullmatch(r"00_demo\s+ok\s+\d+\.\d\s+mean=-?[\d.]+\s+n=1000", table[2])


def test_failing_cell_stops_the_run_with_a_clear_message(tmp_path, capsys):
    notebooks = tmp_path / "notebooks"
    write_notebook(notebooks / "01_broken.py", "#md # Broken", "x = 1", "y = x / 0\nprint(y)")
    write_notebook(notebooks / "02_after.py", "z = 2")
    build = tmp_path / "build"
    argv = ["run", "--notebooks", str(notebooks), "--exercises", str(tmp_path / "none")]
    assert course.main([*argv, "--build", str(build), "--profile", "smoke"]) == 1
    err = capsys.readouterr().err
    assert "notebook 01_broken.py failed at cell 3 of 3: 'y = x / 0'" in err
    assert "ZeroDivisionError: division by zero" in err
    assert f"partly executed copy: {build / '01_broken.ipynb'}" in err
    results = json.loads((build / "results.json").read_text())
    assert results["01_broken"]["status"] == "failed"
    assert results["01_broken"]["error"] == "ZeroDivisionError: division by zero"
    assert "02_after" not in results and not (build / "02_after.ipynb").exists()
    saved = nbformat.read(build / "01_broken.ipynb", as_version=4)
    assert saved.cells[2].outputs[0]["ename"] == "ZeroDivisionError"


def test_run_command_line_errors(tmp_path, capsys):
    write_notebook(tmp_path / "00_only.py", "x = 1")
    base = ["run", "--notebooks", str(tmp_path), "--build", str(tmp_path / "build")]
    assert course.main([*base, "07"]) == 2
    assert "no notebook called '07': expected one of 00_only" in capsys.readouterr().err
    assert course.main([*base, "--profile", "turbo"]) == 2
    assert "unknown profile 'turbo'" in capsys.readouterr().err
    empty = ["run", "--notebooks", str(tmp_path / "nothing"), "--build", str(tmp_path / "b")]
    assert course.main(empty) == 2
    assert "no chapter notebooks" in capsys.readouterr().err


def test_timeout_bounds_the_whole_notebook(tmp_path):
    # Each sleep fits in the limit; together they do not.
    sleeps = ("import time", "time.sleep(2)", "time.sleep(2.5)")
    notebook = write_notebook(tmp_path / "00_slow.py", *sleeps)
    env = course.kernel_env("smoke", tmp_path / "build")
    with pytest.raises(course.NotebookError) as caught:
        course.execute_notebook(notebook.source, env, timeout=3)
    assert caught.value.cell_index == 2 and caught.value.ename == "Timeout"
    assert "failed at cell 3 of 3: 'time.sleep(2.5)'" in str(caught.value)
    assert "ran past its limit of 3 s" in str(caught.value)


def test_dead_kernel_is_reported(tmp_path):
    notebook = write_notebook(tmp_path / "00_dies.py", "import os", "os._exit(1)")
    env = course.kernel_env("smoke", tmp_path / "build")
    with pytest.raises(
        course.NotebookError, match=r"cell 2 of 2: 'os._exit\(1\)'\n  DeadKernelError"
    ):
        course.execute_notebook(notebook.source, env, timeout=60)


def test_near_empty_runs_are_flagged(tmp_path):
    notebook = write_notebook(tmp_path / "00_tiny.py", "#md # Nothing here", "x = 1")
    run = course.execute_notebook(notebook.source, course.kernel_env("smoke", tmp_path))
    assert run.code_cells == 1 and len(run.cell_times) == 1
    assert "ran in" in run.looks_empty()
    nothing = course.NotebookRun("00_empty", nbformat.v4.new_notebook(), 1.0)
    assert nothing.looks_empty() == "00_empty: no code cell was executed"
    busy = course.NotebookRun("00_busy", nbformat.v4.new_notebook(), 3.0, 2.0, code_cells=4)
    assert busy.looks_empty() is None


def test_kernel_env(tmp_path, monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    env = course.kernel_env("quick", tmp_path / "b", {"REID_CACHE": "/shared/cache"})
    assert env["REID_PROFILE"] == "quick" and env["REID_STATIC_PLOTS"] == "1"
    assert env["REID_PROGRESS"] == "0"  # no progress bar freezes in a built page
    assert env["REID_BUILD"] == str((tmp_path / "b").resolve())
    assert env["REID_CACHE"] == "/shared/cache"
    assert env["MPLBACKEND"] == "module://matplotlib_inline.backend_inline"
    root = str(Path(__file__).resolve().parent.parent)
    assert env["PYTHONPATH"].split(os.pathsep) == [root, "/elsewhere"]


def test_prune_build_drops_only_what_no_notebook_owns(tmp_path):
    """A split chapter (01 -> 01a, 01b) leaves no old page, results file or entry behind."""
    now = [course.Notebook(tmp_path / "nb" / "01a_pseudo_labels.py", "chapter"),
           course.Notebook(tmp_path / "ex" / "01_pseudo_labels.py", "exercise")]
    build = tmp_path / "build"
    (build / "results").mkdir(parents=True)
    (build / "exercises").mkdir()
    (build / "cache-like").mkdir()
    for name in ("01a_pseudo_labels", "01_pseudo_labels"):  # the old chapter's name too
        for suffix in (".ipynb", ".html"):
            (build / f"{name}{suffix}").write_text("x")
    (build / "exercises" / "01_pseudo_labels.html").write_text("x")
    (build / "exercises" / "02_gone.html").write_text("x")
    (build / "cache-like" / "01_pseudo_labels.html").write_text("not a page of the build")
    for chapter in ("01", "01a", "ex01"):
        (build / "results" / f"{chapter}.json").write_text("{}")
    course.update_results(build / "results.json", {  # the old chapter 1, the exercise's name
        "01_pseudo_labels": {"kind": "chapter"}, "01a_pseudo_labels": {"kind": "chapter"}})

    gone = course.prune_build(build, now)

    assert sorted(Path(p).name for p in gone if ":" not in p) == [
        "01.json", "01_pseudo_labels.html", "01_pseudo_labels.ipynb", "02_gone.html"]
    assert (build / "01a_pseudo_labels.html").exists()
    assert (build / "exercises" / "01_pseudo_labels.html").exists()  # the exercise's name
    assert (build / "cache-like" / "01_pseudo_labels.html").exists()
    assert sorted(p.name for p in (build / "results").iterdir()) == ["01a.json", "ex01.json"]
    assert set(read_results(build / "results.json")) == {"01a_pseudo_labels"}
    assert course.prune_build(build, now) == []
