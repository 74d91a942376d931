"""Every course notebook (notebooks/ and exercises/): its pair is in sync without outputs,
and it runs top to bottom in the smoke profile through the course runner's own function."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reidlib import course
from reidlib.notebook import find_repo_root

ROOT = find_repo_root(Path(__file__).parent)
FOLDERS = (ROOT / "notebooks", ROOT / "exercises")
ASSETS = Path(__file__).parent / "assets"
NOTEBOOK_TIMEOUT_S = 280  # below pytest's limit, so the runner's message names the cell
MIN_CELL_SECONDS = 0.5  # a real notebook spends at least this long in its code cells


def _params() -> list:
    found = course.discover(*FOLDERS)
    if not found:
        reason = "no course notebooks yet in notebooks/ or exercises/"
        return [pytest.param(None, marks=pytest.mark.skip(reason=reason), id="none-yet")]
    return [pytest.param(nb, id=str(nb.source.relative_to(ROOT))) for nb in found]


NOTEBOOKS = _params()


def test_discovery_finds_the_demo_pair():
    found = course.discover(ASSETS / "notebooks", ASSETS / "exercises")
    assert [(nb.kind, nb.name, nb.paired) for nb in found] == [("chapter", "00_demo", True)]
    assert found[0].ipynb == ASSETS / "notebooks" / "00_demo.ipynb"


def test_no_ipynb_without_its_source():
    assert course.orphan_ipynbs(FOLDERS) == []


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_pair_in_sync_without_outputs(notebook):
    problems = course.pair_problems(notebook)
    assert not problems, "\n".join(problems)


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_runs_in_smoke_profile(notebook, tmp_path):
    # Results go to tmp_path; the data cache is shared so worlds render once per machine.
    cache = os.environ.get("REID_CACHE") or str(ROOT / "data" / "cache")
    env = course.kernel_env("smoke", tmp_path, {"REID_CACHE": cache})
    try:
        run = course.execute_notebook(notebook.source, env, timeout=NOTEBOOK_TIMEOUT_S)
    except course.NotebookError as err:
        failure = str(err)  # reported outside the handler: one message, no chained traceback
    else:
        failure = run.looks_empty(MIN_CELL_SECONDS)
    if failure:
        pytest.fail(failure, pytrace=False)
