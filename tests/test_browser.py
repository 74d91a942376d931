"""End to end in a real browser: JupyterLab runs chapter 0 and its embedding explorer reacts.

Headless Chromium (Debian's, installed by ``.ci/install-browser.sh``; never a Playwright
download) opens notebook 00 in JupyterLab, runs all cells from the Run menu, finds the
embedding explorer (``reidlib.viz.EmbeddingExplorer.widget``), moves its "snapshot" slider
with the keyboard and checks that the plot was redrawn. This is the one test that covers
the path from a kernel's ipywidgets to pixels on a student's screen: the widget's comm
messages, the JupyterLab widget manager, and the ``Output`` redraw on a slider change.

Screenshots and the server log are kept in ``build/test-artifacts/browser/``.
"""

from __future__ import annotations

import base64
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
REDRAW_S = 60  # one PCA-layout redraw takes well under a second

PLOT_IMG = ".reid-explorer-plot img"
SLIDER_HANDLE = ".reid-explorer-slider .noUi-handle"
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


@pytest.fixture
def notebook_dir(tmp_path) -> Path:
    """A folder holding chapter 0 as a fresh ``.ipynb``, built from its ``.py`` source.

    JupyterLab serves this copy, not notebooks/: running the notebook in the browser must
    never write outputs (or, through jupytext's pairing, a new ``.py``) into the repository.
    """
    import jupytext

    if not NOTEBOOK_SOURCE.exists():
        pytest.fail(f"{NOTEBOOK_SOURCE} is missing: this test runs chapter 0's notebook")
    notebook = jupytext.read(NOTEBOOK_SOURCE)
    notebook.metadata.pop("jupytext", None)  # a plain notebook: nothing paired to write
    folder = tmp_path / "notebooks"
    folder.mkdir()
    jupytext.write(notebook, folder / "00_fundamentals.ipynb")
    return folder


@pytest.fixture
def lab(chromium, notebook_dir, tmp_path, artifacts):
    """A JupyterLab serving ``notebook_dir``; its kernels run chapter 0 in the smoke profile."""
    env = dict(os.environ)
    env.pop("REID_STATIC_PLOTS", None)  # the explorer must be the live widget
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
    server = start_lab(notebook_dir, tmp_path / "lab-home", env)
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
            executable_path=str(chromium), args=list(CHROMIUM_ARGS), timeout=60_000
        )
        try:
            yield browser.new_page(viewport={"width": 1400, "height": 1000})
        finally:
            browser.close()


@pytest.mark.slow
@pytest.mark.timeout(LAB_START_S + PAGE_OPEN_S + RUN_ALL_S + REDRAW_S + 60)
def test_explorer_slider_redraws_in_jupyterlab(lab, page, artifacts):
    try:
        _open_notebook(page, lab.url("lab/tree/00_fundamentals.ipynb"))
        _run_all_cells(page)
        seconds = _wait_for_explorer(page, RUN_ALL_S)
        print(f"notebook 00 ran to the explorer in {seconds:.0f} s")

        explorer = page.locator(".reid-explorer")
        explorer.scroll_into_view_if_needed()
        before_src = _plot_src(page)
        before_shot = explorer.screenshot(path=artifacts / "explorer-before.png")
        assert "(1 / 3)" in explorer.inner_text(), explorer.inner_text()

        # The keyboard path of a real user: focus the slider's handle, press the right arrow.
        page.locator(SLIDER_HANDLE).press("ArrowRight")
        page.wait_for_function(
            "([sel, old]) => { const img = document.querySelector(sel);"
            " return img && img.src !== old && img.complete && img.naturalWidth > 0; }",
            arg=[PLOT_IMG, before_src], timeout=REDRAW_S * 1000,
        )
        after_src = _plot_src(page)
        after_shot = explorer.screenshot(path=artifacts / "explorer-after.png")
    except BaseException:
        # BaseException: pytest-timeout's failure is one too, and we want the picture then.
        try:
            page.screenshot(path=artifacts / "page-at-failure.png", full_page=True,
                            timeout=15_000)
        except Exception as err:  # the original failure matters more than its picture
            print(f"no failure screenshot: {err}")
        raise

    assert "(2 / 3)" in explorer.inner_text(), explorer.inner_text()
    before_png, after_png = _png_bytes(before_src), _png_bytes(after_src)
    (artifacts / "plot-before.png").write_bytes(before_png)
    (artifacts / "plot-after.png").write_bytes(after_png)
    assert before_png != after_png, "the slider moved but the plot's picture stayed the same"
    assert before_shot != after_shot, "the explorer's screenshots before and after are equal"


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


def _wait_for_explorer(page, timeout: float) -> float:
    """Seconds until the explorer's plot is drawn; fails early when the run stops short.

    Run All stops at the first failing cell: the kernel then goes idle with no cell left
    busy ("[*]") and no explorer, and we fail with the tracebacks shown in the notebook
    instead of waiting out the timeout.
    """
    start = time.monotonic()
    idle_polls = 0
    while time.monotonic() - start < timeout:
        if page.evaluate(
            "(sel) => { const img = document.querySelector(sel);"
            " return !!img && img.complete && img.naturalWidth > 0; }",
            PLOT_IMG,
        ):
            return time.monotonic() - start
        busy = page.evaluate(
            "() => Array.from(document.querySelectorAll('.jp-InputPrompt'))"
            ".some(p => p.textContent.includes('[*]'))"
        )
        idle_polls = idle_polls + 1 if not busy and page.evaluate(KERNEL_IDLE_JS) else 0
        if idle_polls >= 3:  # idle for three polls in a row: the run is over
            pytest.fail(
                "notebook 00 finished without showing the embedding explorer; errors shown:\n"
                + _tracebacks(page),
                pytrace=False,
            )
        time.sleep(2)
    pytest.fail(
        f"the embedding explorer did not appear within {timeout:.0f} s; errors shown:\n"
        + _tracebacks(page),
        pytrace=False,
    )


def _tracebacks(page) -> str:
    texts = page.evaluate(
        "() => Array.from(document.querySelectorAll("
        "'.jp-OutputArea-output[data-mime-type=\"application/vnd.jupyter.stderr\"]'))"
        ".map(e => e.innerText)"
    )
    errors = [t for t in texts if "Error" in t or "Traceback" in t]
    return "\n---\n".join(t[-3000:] for t in errors) or "(none)"


def _plot_src(page) -> str:
    return page.locator(PLOT_IMG).get_attribute("src")


def _png_bytes(src: str) -> bytes:
    """The PNG inside the plot's ``data:image/png;base64,...`` source."""
    prefix = "data:image/png;base64,"
    assert src.startswith(prefix), f"the plot is not an inline PNG: {src[:80]!r}"
    png = base64.b64decode(src[len(prefix):])
    assert png.startswith(b"\x89PNG\r\n\x1a\n"), "the plot's source does not decode to a PNG"
    return png
