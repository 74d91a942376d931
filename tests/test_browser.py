"""End to end in a real browser: the live embedding explorer reacts in JupyterLab.

Headless Chromium (Debian's, installed by ``.ci/install-browser.sh``; never a Playwright
download) opens notebooks in JupyterLab and runs all their cells from the Run menu:

- chapter 0: its explorer (``EmbeddingExplorer.show``, the jupyter-scatter view of
  ``reidlib.viz.scatter``) appears, and moving its slider with the keyboard moves the points;
- a small notebook of two recorded runs (``reidlib.viz.replay``): Play steps through the
  epochs, a click on a point selects its whole cluster, and in ``compare`` one slider
  drives both runs and a click in one view selects the point and its neighbours in both.

These are the tests that cover the path from a kernel's widgets to pixels on a student's
screen: the comm messages, the JupyterLab widget manager, anywidget and WebGL. jupyter-scatter
draws with WebGL; headless Chromium without a GPU gets it from SwiftShader
(``--enable-unsafe-swiftshader``). Screenshots and the server log are kept in
``build/test-artifacts/browser/``.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import time
from pathlib import Path

import pytest
from browser_helpers import CHROMIUM, CHROMIUM_ARGS, start_lab

from reidlib.notebook import find_repo_root

ROOT = find_repo_root(Path(__file__).parent)
NOTEBOOK_SOURCE = ROOT / "notebooks" / "00_fundamentals.py"
ARTIFACTS = ROOT / "build" / "test-artifacts" / "browser"

LAB_START_S = 120  # the server answers in 3-15 s; more on a loaded CI machine
PAGE_OPEN_S = 120  # JupyterLab's page and the notebook's kernel
# The smoke notebook runs in well under 3 min; a first run on a machine may also render
# the smoke world and pretrain the backbone once (about 80 s) before the cache has them.
RUN_ALL_S = 480
# One PCA-layout redraw takes well under a second on a quiet machine; a click's round trip
# to the kernel took over 60 s in CI while the suite's other slow tests shared the 2 cores
# (two fresh-clone runs, 2026-11-28 and -29). A wait, not a speed requirement.
REDRAW_S = 180

LIVE = ".reid-live"
CANVAS = "canvas"
LIVE_SLIDER_HANDLE = ".reid-live-slider .noUi-handle"
# WebGL without a GPU: SwiftShader, which recent Chromium enables only when asked.
WEBGL_ARGS = ("--enable-unsafe-swiftshader", "--use-angle=swiftshader")
# The status bar reads "Python 3 (ipykernel) | Idle" once the kernel has started.
KERNEL_IDLE_JS = (
    "() => /\\| Idle\\b/.test(document.querySelector('#jp-main-statusbar')?.innerText ?? '')"
)


@pytest.fixture
def chromium() -> Path:
    """Debian's Chromium (and Playwright to drive it).

    Missing, the test is skipped on a developer's machine but fails in CI (``CI=true``),
    where ``.ci/run`` installs the browser first: there a skip would hide a broken setup.
    """
    missing = None
    if not CHROMIUM.exists():
        missing = f"{CHROMIUM} not found; install it with `sudo .ci/install-browser.sh`"
    elif importlib.util.find_spec("playwright") is None:
        missing = "the playwright package is not installed (it drives the browser)"
    if missing is None:
        return CHROMIUM
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{missing} (CI installs it before the tests: a CI setup error)")
    pytest.skip(missing)


@pytest.fixture
def artifacts() -> Path:
    """An empty artefact folder, so that no screenshot there is from an earlier run."""
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    return ARTIFACTS


def chapter_zero(folder: Path) -> Path:
    """Chapter 0 as a fresh ``.ipynb`` in ``folder``, built from its ``.py`` source.

    JupyterLab serves this copy, not notebooks/: running the notebook in the browser must
    never write outputs (or, through jupytext's pairing, a new ``.py``) into the repository.
    """
    import jupytext

    if not NOTEBOOK_SOURCE.exists():
        pytest.fail(f"{NOTEBOOK_SOURCE} is missing: this test runs chapter 0's notebook")
    notebook = jupytext.read(NOTEBOOK_SOURCE)
    notebook.metadata.pop("jupytext", None)  # a plain notebook: nothing paired to write
    path = folder / "00_fundamentals.ipynb"
    jupytext.write(notebook, path)
    return path


# Two recorded runs of 41 points in two dimensions, symmetric about the origin, where point
# 0 sits at every epoch: the centre of each plot, a spot a test can click without knowing
# how the front end maps data to pixels. Its cluster, 0, holds 10 images.
REPLAY_CELLS = [
    """import numpy as np
from reidlib.training.loop import EpochRecord, History
from reidlib.viz.explorer import Snapshot
from reidlib.viz.replay import compare, demo, save_replay

rng = np.random.default_rng(0)
half = rng.normal(size=(20, 2)) * 3
pid = np.concatenate([[0], np.arange(20) % 5, np.arange(20) % 5])
crops = rng.integers(0, 255, (41, 16, 8, 3), dtype=np.uint8)


def history(stretch):
    records = []
    for t in range(3):  # a stretch along x: no rotation or scaling undoes it
        xy = half * np.array([1 + stretch * t, 1.0])
        features = np.concatenate([[[0.0, 0.0]], xy, -xy]).astype(np.float32)
        labels = np.concatenate([[0], np.arange(20) % 4, np.arange(20) % 4])
        labels[5] = -1
        quality = {"pairwise_f": 0.5 + t / 10, "outlier_share": 0.1, "n_clusters": 4}
        snap = Snapshot(features, f"epoch {t}", pid=pid, camid=pid % 2, pseudo_label=labels)
        records.append(EpochRecord(t, {}, 0.1, 1.0, 0.1, 41, labels, quality, snap))
    return History(records)


save_replay("replays", "run a", history(0.6), crops, method="pca")
save_replay("replays", "run b", history(-0.4), crops, method="pca")""",
    "live = demo('replays', 'run a', show=False, live=True)\nlive.view",
    "pair = compare('replays', 'run a', 'run b', show=False, live=True, k=3)\npair.view",
]


def replay_notebook(folder: Path) -> Path:
    import nbformat

    notebook = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell(c) for c in REPLAY_CELLS])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                       "language": "python"}
    path = folder / "replays.ipynb"
    nbformat.write(notebook, path)
    return path


@pytest.fixture
def lab(chromium, tmp_path, artifacts):
    """A JupyterLab serving a fresh folder with chapter 0 and the replay notebook; its
    kernels run in the smoke profile."""
    folder = tmp_path / "notebooks"
    folder.mkdir()
    chapter_zero(folder)
    replay_notebook(folder)
    env = dict(os.environ)
    env.pop("REID_STATIC_PLOTS", None)  # the explorer must be the live view
    env.pop("REID_PROGRESS", None)
    env.update(
        REID_PROFILE="smoke",
        REID_BUILD=str(tmp_path / "build"),
        # the shared cache, as in test_notebooks.py: worlds render once per machine
        REID_CACHE=os.environ.get("REID_CACHE") or str(ROOT / "data" / "cache"),
        # the kernel imports this very reidlib, whatever the folder it runs in
        PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p),
        MPLBACKEND="module://matplotlib_inline.backend_inline",
    )
    # Idle OpenMP threads otherwise spin and starve the browser on a 2-core machine.
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    server = start_lab(folder, tmp_path / "lab-home", env)
    try:
        server.wait_ready(LAB_START_S)
        yield server
    finally:
        server.stop()
        shutil.copyfile(server.log_path, artifacts / "jupyter-lab.log")


@pytest.fixture
def page(chromium):
    """A fresh headless Chromium page, closed afterwards."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(chromium), args=[*CHROMIUM_ARGS, *WEBGL_ARGS],
            timeout=60_000
        )
        try:
            yield browser.new_page(viewport={"width": 1400, "height": 1000})
        finally:
            browser.close()


@pytest.mark.slow
@pytest.mark.timeout(LAB_START_S + PAGE_OPEN_S + RUN_ALL_S + REDRAW_S + 60)
def test_explorer_slider_moves_the_points_in_jupyterlab(lab, page, artifacts):
    try:
        _open_notebook(page, lab.url("lab/tree/00_fundamentals.ipynb"))
        _run_all_cells(page)
        seconds = _wait_for(page, LIVE + " " + CANVAS, RUN_ALL_S, "the embedding explorer")
        print(f"notebook 00 ran to the explorer in {seconds:.0f} s")
        explorer = page.locator(LIVE).first
        explorer.scroll_into_view_if_needed()
        caption = explorer.locator(".reid-live-caption")
        assert "(1 / 3)" in caption.inner_text(), caption.inner_text()
        time.sleep(1)  # let the first frame draw
        before = _canvas_shot(explorer, artifacts / "explorer-before.png")
        # The keyboard path of a real user: focus the slider's handle, press the right arrow.
        explorer.locator(LIVE_SLIDER_HANDLE).press("ArrowRight")
        _wait_text(caption, "(2 / 3)", REDRAW_S)
        time.sleep(2)  # the points' transition takes TRANSITION_MS
        after = _canvas_shot(explorer, artifacts / "explorer-after.png")
    except BaseException:
        _failure_shot(page, artifacts)
        raise
    assert before != after, "the slider moved but the plot's pixels stayed the same"


@pytest.mark.slow
@pytest.mark.timeout(LAB_START_S + PAGE_OPEN_S + RUN_ALL_S + 4 * REDRAW_S + 60)
def test_play_click_and_compare_on_recorded_runs(lab, page, artifacts):
    try:
        _open_notebook(page, lab.url("lab/tree/replays.ipynb"))
        _run_all_cells(page)
        _wait_for(page, ".reid-compare " + CANVAS, RUN_ALL_S, "the comparison")
        demo_view = page.locator(LIVE).first  # the demo; the comparison's two views follow
        demo_view.scroll_into_view_if_needed()
        caption = demo_view.locator(".reid-live-caption")
        assert "(1 / 3)" in caption.inner_text(), caption.inner_text()
        time.sleep(1)
        before = _canvas_shot(demo_view, artifacts / "demo-epoch0.png")

        # Play: the front end steps the slider; the kernel moves the points each step
        demo_view.locator(".reid-live-play button").first.click()
        _wait_text(caption, "(3 / 3)", REDRAW_S)
        time.sleep(2)
        after = _canvas_shot(demo_view, artifacts / "demo-played.png")
        assert before != after, "Play stepped the epochs but the plot's pixels stayed the same"
        metrics = demo_view.locator(".reid-live-metrics").inner_text()
        assert "pairwise F 0.70" in metrics, metrics

        # a click on point 0 (the plot's centre) selects its cluster, 10 images
        _click_centre(demo_view)
        selection = demo_view.locator(".reid-live-selection")
        _wait_text(selection, "point 0: cluster 0", REDRAW_S)
        assert "cluster 0, 10 images" in selection.inner_text(), selection.inner_text()
        _canvas_shot(demo_view, artifacts / "demo-cluster-selected.png")

        # compare: one slider for both runs, a click selects point 0 and 3 neighbours in both
        compare_view = page.locator(".reid-compare")
        compare_view.scroll_into_view_if_needed()
        captions = compare_view.locator(".reid-live-caption")
        compare_view.locator(".reid-compare-slider .noUi-handle").press("ArrowRight")
        for i in range(2):
            _wait_text(captions.nth(i), "(2 / 3)", REDRAW_S)
        time.sleep(2)
        left = compare_view.locator(LIVE).nth(0)
        _click_centre(left)
        info = compare_view.locator(".reid-compare-selection")
        _wait_text(info, "nearest neighbours", REDRAW_S)
        assert "point 0 and its 3 nearest neighbours" in info.inner_text(), info.inner_text()
        for i in range(2):
            text = compare_view.locator(".reid-live-selection").nth(i).inner_text()
            assert "point 0 and its 3 nearest neighbours" in text, text
        compare_view.screenshot(path=artifacts / "compare-selected.png")
    except BaseException:
        _failure_shot(page, artifacts)
        raise


def _plot_canvas(view):
    """The view's WebGL plot: its largest canvas (jupyter-scatter draws small ones too)."""
    canvases = view.locator(CANVAS)
    sizes = [(box["width"] * box["height"] if box else 0, i)
             for i, box in enumerate(canvases.nth(i).bounding_box()
                                     for i in range(canvases.count()))]
    return canvases.nth(max(sizes)[1])


def _canvas_shot(view, path: Path) -> bytes:
    """A screenshot of the view's plot."""
    return _plot_canvas(view).screenshot(path=path)


def _click_centre(view) -> None:
    """A mouse click at the plot's centre, on whatever layer the page has on top there."""
    canvas = _plot_canvas(view)
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    view.page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)


def _wait_text(locator, text: str, timeout: float) -> None:
    start = time.monotonic()
    while text not in locator.inner_text():
        if time.monotonic() - start > timeout:
            pytest.fail(f"waited {timeout:.0f} s for {text!r}; shown: {locator.inner_text()!r}",
                        pytrace=False)
        time.sleep(0.5)


def _failure_shot(page, artifacts: Path) -> None:
    # BaseException: pytest-timeout's failure is one too, and we want the picture then.
    try:
        page.screenshot(path=artifacts / "page-at-failure.png", full_page=True, timeout=15_000)
    except Exception as err:  # the original failure matters more than its picture
        print(f"no failure screenshot: {err}")


def _open_notebook(page, url: str) -> None:
    """Load JupyterLab on the notebook and wait until its kernel is idle."""
    page.goto(url, timeout=PAGE_OPEN_S * 1000)
    page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=PAGE_OPEN_S * 1000)
    # The execution indicator says "idle" before any kernel exists; the status bar names
    # the kernel and its state only once it has started.
    page.wait_for_function(KERNEL_IDLE_JS, timeout=PAGE_OPEN_S * 1000)


def _run_all_cells(page) -> None:
    """Run > Run All Cells, through the menu bar as a student would."""
    page.locator("#jp-MainMenu .lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator('.lm-Menu-item[data-command="runmenu:run-all"]').click()


def _wait_for(page, selector: str, timeout: float, what: str) -> float:
    """Seconds until ``selector`` is in the page; fails early when the run stops short.

    Run All stops at the first failing cell: the kernel then goes idle with no cell left
    busy ("[*]") and nothing shown, and we fail with the tracebacks shown in the notebook
    instead of waiting out the timeout.
    """
    start = time.monotonic()
    idle_polls = 0
    while time.monotonic() - start < timeout:
        if page.locator(selector).count():
            return time.monotonic() - start
        busy = page.evaluate(
            "() => Array.from(document.querySelectorAll('.jp-InputPrompt'))"
            ".some(p => p.textContent.includes('[*]'))"
        )
        idle_polls = idle_polls + 1 if not busy and page.evaluate(KERNEL_IDLE_JS) else 0
        if idle_polls >= 3:  # idle for three polls in a row: the run is over
            pytest.fail(f"the notebook finished without showing {what}; errors shown:\n"
                        + _tracebacks(page), pytrace=False)
        time.sleep(2)
    pytest.fail(f"{what} did not appear within {timeout:.0f} s; errors shown:\n"
                + _tracebacks(page), pytrace=False)


def _tracebacks(page) -> str:
    texts = page.evaluate(
        "() => Array.from(document.querySelectorAll("
        "'.jp-OutputArea-output[data-mime-type=\"application/vnd.jupyter.stderr\"]'))"
        ".map(e => e.innerText)"
    )
    errors = [t for t in texts if "Error" in t or "Traceback" in t]
    return "\n---\n".join(t[-3000:] for t in errors) or "(none)"
