"""The course runner: ``python -m reidlib.course list | run | check | sync | colab | lint-build``.

Every notebook is stored twice (notebooks/README.md): a jupytext ``py:percent`` source
``NN_name.py``, which is the source of truth, and its pair ``NN_name.ipynb`` without
outputs. ``run`` executes the sources top to bottom in a fresh kernel of the current
interpreter, writes ``build/NN_name.ipynb`` (with outputs) and ``build/NN_name.html``,
and gathers each chapter's recorded numbers (``reidlib.notebook.Session.record``) with
its run time into ``build/results.json``. ``check`` verifies that every pair is in sync
and that no committed ``.ipynb`` carries outputs; ``sync`` rewrites the ``.ipynb`` files
from their sources. ``colab`` writes every notebook's standard first cells (an "Open in
Colab" link, a cell that installs the course where it is missing) from the one repository
URL in ``pyproject.toml``; ``check`` reports them when missing or stale. ``lint-build``
checks a built folder for what should never reach a reader: frozen progress widgets,
echoed dicts, errors and tracebacks.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import jupytext
import nbformat
import zmq
from jupyter_client.kernelspec import KernelSpec
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, DeadKernelError
from tqdm.auto import tqdm

from reidlib.notebook import find_repo_root, read_results
from reidlib.profiles import get_profile
from reidlib.utils import atomic_path

DEFAULT_TIMEOUT_S = 3600.0  # per notebook; a full-profile chapter on a GPU takes minutes
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_SKIP_DIRS = {".ipynb_checkpoints", "__pycache__"}
INSTRUCTOR_NUMBERS_FROM = 90  # notebooks/90_instructor_demo and later: instructor pages


# --------------------------------------------------------------------------- discovery


@dataclass(frozen=True)
class Notebook:
    """One course notebook: its ``py:percent`` source and the paired ``.ipynb`` beside it."""

    source: Path
    kind: str  # "chapter" or "exercise"

    @property
    def name(self) -> str:
        return self.source.stem

    @property
    def ipynb(self) -> Path:
        return self.source.with_suffix(".ipynb")

    @property
    def paired(self) -> bool:
        return self.ipynb.is_file()

    @property
    def chapter(self) -> str:
        """The name ``setup()`` records results under: "00" or "01a" for a chapter, "ex00" for
        an exercise (one exercise notebook may serve a chapter's parts: ``ex01`` for 1a and 1b)."""
        number = self.name.split("_", 1)[0]
        return number if self.kind == "chapter" else f"ex{number}"

    @property
    def role(self) -> str:
        """"chapter", "exercise", or "demo": notebooks numbered from 90 on are the instructor's
        pages (run last, after the chapters whose recordings they replay), not chapters."""
        if self.kind == "chapter" and _number(self.name) >= INSTRUCTOR_NUMBERS_FROM:
            return "demo"
        return self.kind


def _number(name: str) -> int:
    """The leading number of a notebook name ("01a_pseudo_labels" -> 1); -1 when there is none."""
    digits = re.match(r"\d+", name)
    return int(digits.group()) if digits else -1


def is_jupytext_source(path: Path) -> bool:
    """True for a ``.py`` file that opens with a jupytext YAML header (``# ---`` ... ``# ---``)."""
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = [line.rstrip() for _, line in zip(range(60), f, strict=False)]
    if not lines or lines[0] != "# ---":
        return False
    for line in lines[1:]:
        if line == "# ---":
            return False  # header closed without naming jupytext
        if line.lstrip("# ").startswith("jupytext:"):
            return True
    return False


def find_notebooks(folder: Path, kind: str) -> list[Notebook]:
    """Every jupytext source under ``folder`` (helpers such as ``checks.py`` have no header)."""
    if not folder.is_dir():
        return []
    sources = [p for p in folder.rglob("*.py") if not _SKIP_DIRS & set(p.parts)]
    return [Notebook(p, kind) for p in sorted(sources) if is_jupytext_source(p)]


def discover(notebooks_dir: Path, exercises_dir: Path | None = None) -> list[Notebook]:
    """The chapters of ``notebooks_dir`` in order, then the exercises of ``exercises_dir``."""
    found = find_notebooks(Path(notebooks_dir), "chapter")
    if exercises_dir is not None:
        found += find_notebooks(Path(exercises_dir), "exercise")
    return found


def orphan_ipynbs(folders: Iterable[Path]) -> list[Path]:
    """``.ipynb`` files with no jupytext source beside them (an edit the source never got)."""
    orphans = []
    for folder in folders:
        if not Path(folder).is_dir():
            continue
        for path in sorted(Path(folder).rglob("*.ipynb")):
            source = path.with_suffix(".py")
            if _SKIP_DIRS & set(path.parts):
                continue
            if not (source.is_file() and is_jupytext_source(source)):
                orphans.append(path)
    return orphans


def select(notebooks: list[Notebook], wanted: list[str]) -> list[Notebook]:
    """The notebooks named in ``wanted``, in course order.

    A word matches a notebook's full name ("01a_pseudo_labels"), its id ("01a", "ex01") or
    its name without the number ("pseudo_labels"); a bare number also picks every part of
    that chapter ("01" -> 01a and 01b).
    """
    if not wanted:
        return notebooks
    chosen = set()
    for word in wanted:
        hits = {nb for nb in notebooks if word in (nb.name, nb.chapter, nb.name.split("_", 1)[-1])}
        if not hits and word.isdigit():
            hits = {
                nb
                for nb in notebooks
                if nb.kind == "chapter" and re.fullmatch(rf"{word}[a-z]", nb.chapter)
            }
        if not hits:
            valid = ", ".join(nb.name for nb in notebooks) or "none found"
            raise ValueError(f"no notebook called {word!r}: expected one of {valid}")
        chosen |= hits
    return [nb for nb in notebooks if nb in chosen]


# --------------------------------------------------------------------------- pairs


def read_source(path: Path) -> nbformat.NotebookNode:
    """The notebook a jupytext source describes (what runs is what is committed as .py)."""
    return jupytext.read(path)


def _normalised_cells(nb: nbformat.NotebookNode) -> list[tuple[str, str]]:
    # Sources compared line by line without trailing blanks: editors and Jupyter
    # disagree about those, and they change nothing a reader sees.
    def clean(text: str) -> str:
        return "\n".join(line.rstrip() for line in text.strip("\n").splitlines())

    return [(cell.cell_type, clean(cell.source)) for cell in nb.cells]


def pair_problems(notebook: Notebook) -> list[str]:
    """What is wrong with one pair: missing .ipynb, sources out of sync, outputs committed."""
    if not notebook.paired:
        hint = "(run: python -m reidlib.course sync)"
        return [f"{notebook.source}: no paired {notebook.ipynb.name} {hint}"]
    source_nb = read_source(notebook.source)
    problems = []
    fmt = source_nb.metadata.get("jupytext", {}).get("text_representation", {})
    if fmt.get("format_name") != "percent":
        problems.append(
            f"{notebook.source}: jupytext format is {fmt.get('format_name')!r}, "
            "expected 'percent' (py:percent)"
        )
    try:
        paired_nb = nbformat.read(notebook.ipynb, as_version=4)
    except Exception as err:  # nbformat raises several types for unreadable files
        return problems + [f"{notebook.ipynb}: cannot be read as a notebook ({err})"]
    problems += _sync_problems(notebook, _normalised_cells(source_nb), _normalised_cells(paired_nb))
    problems += _output_problems(notebook.ipynb, paired_nb)
    return problems


def _sync_problems(notebook: Notebook, want: list, have: list) -> list[str]:
    hint = "(edit the .py, then run: python -m reidlib.course sync)"
    if len(want) != len(have):
        return [
            f"{notebook.ipynb}: {len(have)} cells but {notebook.source.name} has {len(want)} {hint}"
        ]
    for index, (wanted, found) in enumerate(zip(want, have, strict=True)):
        if wanted != found:
            return [
                f"{notebook.ipynb}: cell {index + 1} differs from {notebook.source.name} "
                f"({found[0]}: {_head(found[1])!r} vs {wanted[0]}: {_head(wanted[1])!r}) {hint}"
            ]
    return []


def _output_problems(path: Path, nb: nbformat.NotebookNode) -> list[str]:
    problems = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        if cell.get("outputs"):
            problems.append(
                f"{path}: cell {index + 1} carries outputs (commit notebooks without them)"
            )
        if cell.get("execution_count") is not None:
            problems.append(f"{path}: cell {index + 1} carries an execution count")
    return problems


def check_pairs(notebooks: list[Notebook], folders: Iterable[Path]) -> list[str]:
    """Every problem of every pair, plus .ipynb files that lack a source."""
    problems = [p for nb in notebooks for p in pair_problems(nb)]
    problems += [
        f"{path}: no jupytext source {path.with_suffix('.py').name} beside it"
        for path in orphan_ipynbs(folders)
    ]
    return problems


def sync_pair(notebook: Notebook) -> bool:
    """(Re)write the .ipynb from the source, without outputs; True when the file changed.

    Cell ids are kept from the old .ipynb where the cell type matches, so a sync does
    not rewrite every cell id (jupytext draws fresh random ones on each read).
    """
    nb = read_source(notebook.source)
    old = _read_ipynb_or_none(notebook.ipynb)
    for index, cell in enumerate(nb.cells):
        if (
            old is not None
            and index < len(old.cells)
            and old.cells[index].cell_type == cell.cell_type
        ):
            if "id" in old.cells[index]:
                cell["id"] = old.cells[index]["id"]
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    text = jupytext.writes(nb, fmt="ipynb")
    if notebook.paired and notebook.ipynb.read_text(encoding="utf-8") == text:
        return False
    with atomic_path(notebook.ipynb) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return True


def _read_ipynb_or_none(path: Path) -> nbformat.NotebookNode | None:
    """The old .ipynb, if there is a readable one (a broken file is simply replaced)."""
    try:
        return nbformat.read(path, as_version=4)
    except Exception:  # missing, or broken: nbformat raises several types (JSON, validation)
        return None


# --------------------------------------------------------------------------- execution


class CurrentPythonKernelManager(AsyncKernelManager):
    """A kernel manager that always starts ipykernel on the interpreter running us.

    A user-level "python3" kernelspec may point at another Python (a conda base, the
    system one) without torch or reidlib; the course must run where it was installed.
    Where jupyter_client and pyzmq can encrypt the kernel's sockets (CurveZMQ), they do.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        if self.has_trait("transport_encryption") and zmq.has("curve"):
            self.transport_encryption = "auto"

    @property
    def kernel_spec(self) -> KernelSpec:
        from ipykernel.kernelspec import get_kernel_dict  # uses sys.executable

        return KernelSpec(**get_kernel_dict())


class NotebookError(RuntimeError):
    """A notebook stopped: which one, at which cell, with what error."""

    def __init__(
        self,
        notebook: str,
        cell_index: int | None,
        nb: nbformat.NotebookNode,
        ename: str,
        evalue: str,
        traceback: str = "",
    ):
        self.notebook, self.cell_index, self.nb = notebook, cell_index, nb
        self.saved_to: Path | None = None  # where the runner saved the partly executed copy
        self.ename, self.evalue, self.traceback = ename, evalue, traceback
        super().__init__(self._message())

    def _message(self) -> str:
        if self.cell_index is None:
            where = "before its first cell"
        else:
            cell = self.nb.cells[self.cell_index]
            where = f"at cell {self.cell_index + 1} of {len(self.nb.cells)}: {_head(cell.source)!r}"
        text = f"notebook {self.notebook} failed {where}\n  {self.ename}: {self.evalue}"
        tail = _ANSI.sub("", self.traceback).strip().splitlines()[-12:]
        if tail:
            text += "\n  traceback (last lines):\n    " + "\n    ".join(tail)
        return text


@dataclass
class NotebookRun:
    """One executed notebook and how long it took."""

    name: str
    nb: nbformat.NotebookNode
    seconds: float  # wall time, kernel start included
    cell_seconds: float = 0.0  # time spent inside code cells
    code_cells: int = 0  # code cells the kernel executed
    cell_times: list[float] = field(default_factory=list)

    def looks_empty(self, min_seconds: float = 0.5) -> str | None:
        """Why this run cannot have done the notebook's work, or None when it plausibly did."""
        if self.code_cells == 0:
            return f"{self.name}: no code cell was executed"
        if self.cell_seconds < min_seconds:
            return (
                f"{self.name}: its {self.code_cells} code cell(s) ran in {self.cell_seconds:.2f} s "
                f"(< {min_seconds} s), too little for a course notebook"
            )
        return None


class _CellClock:
    """nbclient hooks that time each code cell and remember where execution is."""

    def __init__(self, on_cell: Callable[[int, int], None] | None, total: int):
        self.current: int | None = None
        self.started = 0.0
        self.first_started: float | None = None
        self.times: list[float] = []
        self.on_cell, self.total = on_cell, total

    def start(self, cell, cell_index: int) -> None:
        self.current, self.started = cell_index, time.perf_counter()
        if self.first_started is None:
            self.first_started = self.started

    def time_left(self, limit: float) -> int:
        """Whole seconds left of ``limit`` counted from the first cell (kernel start excluded)."""
        spent = time.perf_counter() - (self.first_started or time.perf_counter())
        return max(1, math.ceil(limit - spent))

    def stop(self, cell, cell_index: int, execute_reply) -> None:
        self.times.append(time.perf_counter() - self.started)
        if self.on_cell is not None:
            self.on_cell(cell_index, self.total)


def kernel_env(
    profile: str, build_dir: Path, extra: dict[str, str] | None = None
) -> dict[str, str]:
    """The environment a notebook kernel runs in: ours plus the course variables.

    ``REID_BUILD`` sends recorded results to ``build_dir/results``; ``REID_STATIC_PLOTS``
    makes the interactive explorers draw static figures (no widget frontend here) and
    ``REID_PROGRESS=0`` turns progress bars off; the repository goes first on
    ``PYTHONPATH`` so the kernel imports this very reidlib.
    """
    env = dict(os.environ)
    package_parent = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH")) if p)
    env["REID_PROFILE"] = profile
    env["REID_BUILD"] = str(Path(build_dir).resolve())
    env["REID_STATIC_PLOTS"] = "1"
    # No progress bars in a static render: a tqdm widget would freeze mid-way in the HTML
    # (reidlib.utils.progress_enabled reads this).
    env["REID_PROGRESS"] = "0"
    # A user's MPLBACKEND=Agg would silently drop every figure from the outputs.
    env["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    env["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"  # silences a debugger warning on Python >= 3.11
    env.update(extra or {})
    return env


def execute_notebook(
    source: Path,
    env: dict[str, str],
    timeout: float | None = DEFAULT_TIMEOUT_S,
    on_cell: Callable[[int, int], None] | None = None,
) -> NotebookRun:
    """Run a jupytext source top to bottom in a fresh kernel, in the source's folder.

    ``timeout`` bounds all cells together (seconds from the first cell; None for no bound;
    starting the kernel has nbclient's own limit). A failing or overrunning cell raises
    NotebookError naming the notebook, the cell and the error.
    """
    source = Path(source)
    nb = read_source(source)
    clock = _CellClock(on_cell, len(nb.cells))
    client = NotebookClient(
        nb,
        kernel_manager_class=CurrentPythonKernelManager,
        resources={"metadata": {"path": str(source.parent.resolve())}},
        on_cell_execute=clock.start,
        on_cell_executed=clock.stop,
    )
    start = time.perf_counter()
    if timeout:
        # nbclient bounds single cells; asking it for the time left bounds the notebook.
        # On expiry the kernel is interrupted (a KeyboardInterrupt in the cell) so that it
        # shuts down cleanly, and the cell fails with this error.
        client.timeout_func = lambda cell: clock.time_left(timeout)
        client.interrupt_on_timeout = True
        client.error_on_timeout = {
            "ename": "Timeout",
            "evalue": f"the notebook ran past its limit of {timeout:g} s",
        }
    try:
        client.execute(env=env)
    except CellExecutionError as err:
        raise NotebookError(
            source.name,
            clock.current,
            nb,
            err.ename,
            err.evalue,
            _error_traceback(nb, clock.current) or err.traceback,
        ) from None
    except DeadKernelError as err:
        raise NotebookError(
            source.name,
            clock.current,
            nb,
            "DeadKernelError",
            f"the kernel died ({err}); out of memory?",
        ) from None
    return NotebookRun(
        source.stem,
        nb,
        time.perf_counter() - start,
        sum(clock.times),
        client.code_cells_executed,
        clock.times,
    )


def _error_traceback(nb: nbformat.NotebookNode, index: int | None) -> str:
    """The traceback the kernel printed under the failing cell (nbclient's adds the source)."""
    outputs = nb.cells[index].get("outputs", []) if index is not None else []
    return "\n".join(
        line
        for out in outputs
        if out.get("output_type") == "error"
        for line in out.get("traceback", [])
    )


def export_notebook(nb: nbformat.NotebookNode, ipynb_path: Path, html_path: Path) -> None:
    """Write an executed notebook and its HTML rendering, each atomically."""
    from nbconvert import HTMLExporter  # slow to import; only the runner needs it

    nb = static_outputs(nbformat.from_dict(nb))
    # The build copy must not claim a jupytext pairing, or opening it would create a .py.
    nb.metadata.pop("jupytext", None)
    with atomic_path(ipynb_path) as tmp:
        nbformat.write(nb, tmp)
    body, _ = HTMLExporter().from_notebook_node(nb)
    with atomic_path(html_path) as tmp:
        tmp.write_text(body, encoding="utf-8")


WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
# What a reader can see without a live kernel; a widget's text/plain is only its repr.
_STATIC_MIMES = ("image/", "text/html", "text/markdown", "text/latex")


def static_outputs(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """``nb`` without widgets, which no static page can run (a progress bar would freeze).

    A widget output keeps its static fallback (an image, HTML) when it has one and is dropped
    when all that is left is its text repr (``HBox(children=...)``, a tqdm line); the saved
    widget state goes too, so the HTML export embeds no widget at all.
    """
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        kept = []
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if WIDGET_VIEW in data:
                data.pop(WIDGET_VIEW)
                if not any(mime.startswith(_STATIC_MIMES) for mime in data):
                    continue
            kept.append(out)
        cell.outputs = kept
    return nb


# --------------------------------------------------------------------------- the course run


def build_paths(notebook: Notebook, build_dir: Path) -> tuple[Path, Path]:
    """Where a notebook's executed copy and HTML go (exercises in their own sub-folder)."""
    folder = build_dir if notebook.kind == "chapter" else build_dir / "exercises"
    return folder / f"{notebook.name}.ipynb", folder / f"{notebook.name}.html"


def update_results(path: Path, entries: dict[str, dict]) -> dict:
    """Merge per-notebook entries into build/results.json, atomically; return the whole file."""
    merged = {**read_results(path), **entries}
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(merged, indent=2, allow_nan=False) + "\n")
    return merged


def prune_build(build_dir: Path, notebooks: list[Notebook]) -> list[str]:
    """Drop what a build holds for notebooks that no longer exist; return what went.

    A renamed or split notebook (chapter 1 became 1a and 1b) leaves its old executed copy,
    HTML page, results file and ``results.json`` entry behind; ``lint-build`` and readers
    of ``results.json`` would take them for current. Only those are removed: the copies
    no notebook would write, the ``results/*.json`` no notebook records under, and the
    ``results.json`` entries whose name and kind are no notebook's.
    """
    build_dir = Path(build_dir)
    chapters = {nb.chapter for nb in notebooks}
    owned = {path for nb in notebooks for path in build_paths(nb, build_dir)}
    gone = []
    for folder in (build_dir, build_dir / "exercises"):
        for path in sorted(folder.glob("*.ipynb")) + sorted(folder.glob("*.html")):
            if path not in owned:
                path.unlink()
                gone.append(str(path))
    for path in sorted((build_dir / "results").glob("*.json")):
        if path.stem not in chapters:
            path.unlink()
            gone.append(str(path))
    results = build_dir / "results.json"
    if results.is_file():
        entries = read_results(results)
        kinds = {(nb.name, nb.kind) for nb in notebooks}
        stale = [name for name, entry in entries.items()
                 if (name, entry.get("kind")) not in kinds]
        if stale:
            with atomic_path(results) as tmp:
                kept = {k: v for k, v in entries.items() if k not in stale}
                tmp.write_text(json.dumps(kept, indent=2, allow_nan=False) + "\n")
            gone += [f"{results}: {name}" for name in stale]
    return gone


def run_one(
    notebook: Notebook,
    build_dir: Path,
    profile: str,
    timeout: float | None,
    on_cell: Callable[[int, int], None] | None = None,
) -> dict:
    """Execute one notebook, export it, and return its results.json entry.

    Raises NotebookError after saving the partly executed notebook for inspection.
    """
    results_file = build_dir / "results" / f"{notebook.chapter}.json"
    results_file.unlink(missing_ok=True)  # numbers must come from this run, not an older one
    ipynb_path, html_path = build_paths(notebook, build_dir)
    try:
        run = execute_notebook(notebook.source, kernel_env(profile, build_dir), timeout, on_cell)
    except NotebookError as err:
        export_notebook(err.nb, ipynb_path, html_path)
        err.saved_to = ipynb_path
        raise
    export_notebook(run.nb, ipynb_path, html_path)
    return {
        "chapter": notebook.chapter,
        "kind": notebook.kind,
        "status": "ok",
        "profile": profile,
        "seconds": round(run.seconds, 2),
        "code_cells": run.code_cells,
        "results": read_results(results_file),
    }


def run_course(
    notebooks: list[Notebook],
    build_dir: Path,
    profile: str,
    timeout: float | None = DEFAULT_TIMEOUT_S,
) -> tuple[dict[str, dict], NotebookError | None]:
    """Run notebooks in order, stopping at the first failure; results.json is kept current.

    Returns this run's results.json entries and the error that stopped it (or None).
    """
    build_dir = Path(build_dir)
    entries: dict[str, dict] = {}
    failure = None
    with tqdm(notebooks, desc="course", unit="notebook") as bar:
        for notebook in bar:
            show = _announce(notebook, bar)
            start = time.perf_counter()
            try:
                entries[notebook.name] = run_one(notebook, build_dir, profile, timeout, show)
            except NotebookError as err:
                failure = err
                entries[notebook.name] = _failed_entry(notebook, profile, start, err)
            update_results(build_dir / "results.json", {notebook.name: entries[notebook.name]})
            if failure is not None:
                break
    return entries, failure


def _announce(notebook: Notebook, bar) -> Callable[[int, int], None]:
    """Print the notebook's cell count; return a callback that shows the cell being run."""
    cells = read_source(notebook.source).cells
    code = sum(c.cell_type == "code" and bool(c.source.strip()) for c in cells)
    tqdm.write(f"{notebook.name}: {len(cells)} cells ({code} code)")

    def show(index: int, total: int) -> None:
        bar.set_postfix_str(f"{notebook.name} cell {index + 1}/{total}")

    return show


def _failed_entry(notebook: Notebook, profile: str, start: float, err: NotebookError) -> dict:
    return {
        "chapter": notebook.chapter,
        "kind": notebook.kind,
        "status": "failed",
        "profile": profile,
        "seconds": round(time.perf_counter() - start, 2),
        "error": f"{err.ename}: {err.evalue}",
    }


def summary_table(entries: dict[str, dict], headline: int = 3) -> str:
    """A plain-text table: notebook, status, seconds, the first few recorded numbers."""
    rows = [("notebook", "status", "seconds", "headline numbers")]
    for name, entry in entries.items():
        numbers = [
            (k, v)
            for k, v in entry.get("results", {}).items()
            if isinstance(v, int | float) and not isinstance(v, bool)
        ][:headline]
        shown = "  ".join(f"{k}={v:.4g}" for k, v in numbers) or entry.get("error", "-")
        rows.append((name, entry["status"], f"{entry['seconds']:.1f}", shown))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True))
        + "  "
        + row[3]
        for row in rows
    ]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


# --------------------------------------------------------------------------- Colab: first cells

COLAB = "https://colab.research.google.com/github"
COLAB_BADGE = "https://colab.research.google.com/assets/colab-badge.svg"
DEFAULT_BRANCH = "main"
CLONE_DIR = "reid-course"  # where the install cell clones the course (Colab: /content/...)
INSTALL_MARKER = "# Colab, or a Jupyter without the course: fetch and install it (once)."
_BADGE_LINE = re.compile(r"^\[!\[Open In Colab\]\([^)]*\)\]\([^)]*\)\s*$")
_COLAB_LINK = re.compile(re.escape(COLAB) + r"/[\w.-]+/[\w.-]+/blob/[\w.-]+/([\w./-]+\.ipynb)")
_GITHUB = re.compile(r"https://github\.com/([\w.-]+)/([\w.-]+?)(?:\.git)?/?")


def repository_url(root: Path | None = None) -> str:
    """The course's public repository, ``https://github.com/OWNER/NAME``.

    Written once, as ``[project.urls] Repository`` in ``pyproject.toml``; every "Open in
    Colab" link and every install cell is derived from it (``python -m reidlib.course
    colab`` rewrites them after the line changes).
    """
    root = find_repo_root() if root is None else Path(root)
    pyproject = root / "pyproject.toml"
    if not pyproject.is_file():
        raise ValueError(f"no pyproject.toml in {root}: the repository URL is written there")
    url = _project_urls(pyproject.read_text(encoding="utf-8")).get("Repository")
    if not url:
        raise ValueError(f"{pyproject} has no [project.urls] Repository = \"https://github.com/...\"")
    match = _GITHUB.fullmatch(url.strip())
    if match is None:
        raise ValueError(
            f"{pyproject}: Repository = {url!r}; Colab opens notebooks from GitHub only, "
            "expected https://github.com/OWNER/NAME"
        )
    return f"https://github.com/{match.group(1)}/{match.group(2)}"


def _project_urls(text: str) -> dict[str, str]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: read the one table by hand
        table = re.search(r"^\[project\.urls\]\s*$(.*?)(?=^\[|\Z)", text, re.M | re.S)
        pairs = re.findall(r'^\s*"?([\w -]+?)"?\s*=\s*"([^"]*)"', table.group(1) if table else "",
                           re.M)
        return dict(pairs)
    return tomllib.loads(text).get("project", {}).get("urls", {})


def colab_url(repo: str, path: str, branch: str = DEFAULT_BRANCH) -> str:
    """The Colab address that opens ``path`` (an ``.ipynb``, relative to the repository root)."""
    match = _GITHUB.fullmatch(repo)
    if match is None:
        raise ValueError(f"expected https://github.com/OWNER/NAME, got {repo!r}")
    return f"{COLAB}/{match.group(1)}/{match.group(2)}/blob/{branch}/{path}"


def install_cell(repo: str, folder: str) -> str:
    """The first code cell: clone and install the course where ``reidlib`` is missing.

    Where the course is installed (``make lab``, ``make course``, the tests) it changes
    nothing. On Colab it clones the repository into ``reid-course/``, installs it with its
    requirements (the floors of ``pyproject.toml``; Colab's own torch is kept when new
    enough) and moves into the notebook's folder in the clone, so that ``setup()`` finds the
    repository (its data cache, an exercise's checks). ``folder`` is the notebook's folder
    relative to the repository root.
    """
    inside = f"{CLONE_DIR}/{folder}"
    return "\n".join([
        INSTALL_MARKER,
        "# Where the course is installed (make lab, make course) this cell does nothing.",
        "import importlib.util",
        "import os",
        "import sys",
        "",
        f'COURSE = "{repo}"',
        'if importlib.util.find_spec("reidlib") is None:',
        '    print(f"installing the course from {COURSE} (a few minutes)")',
        f"    !git clone --quiet --depth 1 {{COURSE}} {CLONE_DIR}",
        f"    %pip install --quiet ./{CLONE_DIR}",
        "    importlib.invalidate_caches()",
        "# work inside the clone, also after a kernel restart",
        f'if os.path.isdir("{inside}"):',
        f'    os.chdir("{inside}")',
        'if "google.colab" in sys.modules:  # Colab shows third-party widgets only when asked',
        "    from google.colab import output",
        "",
        "    output.enable_custom_widget_manager()",
    ])


def _relative(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        raise ValueError(f"{path} is not inside the repository {root}") from None


def standard_first_cells(notebook: Notebook, root: Path, repo: str) -> tuple[str, str]:
    """The Colab badge line of the first markdown cell and the install cell of ``notebook``."""
    link = colab_url(repo, _relative(notebook.ipynb, root))
    badge = f"[![Open In Colab]({COLAB_BADGE})]({link})"
    return badge, install_cell(repo, _relative(notebook.source.parent, root))


def _is_install_cell(cell) -> bool:
    return cell.cell_type == "code" and (
        cell.source.startswith(INSTALL_MARKER) or 'find_spec("reidlib")' in cell.source
    )


def with_first_cells(nb: nbformat.NotebookNode, badge: str, install: str) -> nbformat.NotebookNode:
    """A copy of ``nb`` whose first markdown cell opens with ``badge`` and whose first code
    cell is ``install`` (old badges and install cells are replaced, nothing else changes)."""
    nb = nbformat.from_dict(nb)
    cells = [c for c in nb.cells if not _is_install_cell(c)]
    first_code = next((i for i, c in enumerate(cells) if c.cell_type == "code"), len(cells))
    first_md = next((i for i, c in enumerate(cells[:first_code]) if c.cell_type == "markdown"),
                    None)
    if first_md is None:
        cells.insert(0, nbformat.v4.new_markdown_cell(badge))
        first_code += 1
    else:
        lines = cells[first_md].source.splitlines()
        while lines and (_BADGE_LINE.match(lines[0]) or not lines[0].strip()):
            lines.pop(0)
        cells[first_md].source = "\n".join([badge, "", *lines]) if lines else badge
    cells.insert(first_code, nbformat.v4.new_code_cell(install))
    nb.cells = cells
    return nb


def first_cell_problems(notebook: Notebook, root: Path, repo: str) -> list[str]:
    """What is missing or stale in the standard first cells of ``notebook``'s source: the
    Colab link, the install cell, and the setup call under the name the runner reads."""
    nb = read_source(notebook.source)
    badge, install = standard_first_cells(notebook, root, repo)
    hint = "(run: python -m reidlib.course colab)"
    problems = []
    first_md = next((c for c in nb.cells if c.cell_type == "markdown"), None)
    first_line = first_md.source.splitlines()[0] if first_md and first_md.source else ""
    if first_line != badge:
        state = "is stale" if _BADGE_LINE.match(first_line) else "is missing"
        problems.append(f"{notebook.source}: the Open-in-Colab link of the first markdown cell "
                        f"{state} {hint}")
    code = [c for c in nb.cells if c.cell_type == "code"]
    if not code or not _is_install_cell(code[0]):
        problems.append(f"{notebook.source}: the first code cell should install the course "
                        f"where it is missing {hint}")
    elif _normalised_cells(nbformat.v4.new_notebook(cells=[code[0]])) != [
        ("code", install.strip())
    ]:
        problems.append(f"{notebook.source}: the install cell is stale {hint}")
    after = code[1] if len(code) > 1 and _is_install_cell(code[0]) else (code[0] if code else None)
    called = re.search(r"\bsetup\(\s*[\"']([^\"']*)[\"']", after.source) if after else None
    if called is None:
        problems.append(f"{notebook.source}: the code cell after the install cell should be "
                        f'session = setup("{notebook.chapter}")')
    elif called.group(1) != notebook.chapter:
        problems.append(f"{notebook.source}: calls setup({called.group(1)!r}) but the runner "
                        f"reads its results as {notebook.chapter!r}")
    return problems


def write_first_cells(notebook: Notebook, root: Path, repo: str) -> bool:
    """Insert or refresh the standard first cells in the ``.py`` source, then sync the pair.

    Only those cells change: the rest of the file, its jupytext header included, is kept
    byte for byte. True when the source changed.
    """
    text = notebook.source.read_text(encoding="utf-8")
    nb = jupytext.reads(text, fmt="py:percent")
    wanted = with_first_cells(nb, *standard_first_cells(notebook, root, repo))
    written = jupytext.writes(wanted, fmt="py:percent")
    new_text = _header(text) + written[len(_header(written)):]
    if _normalised_cells(jupytext.reads(new_text, fmt="py:percent")) != _normalised_cells(wanted):
        raise RuntimeError(f"{notebook.source}: rewriting the first cells would change others")
    changed = new_text != text
    if changed:
        with atomic_path(notebook.source) as tmp:
            tmp.write_text(new_text, encoding="utf-8")
    sync_pair(notebook)
    return changed


def _header(text: str) -> str:
    """The jupytext header and blank lines before the first ``# %%`` cell marker."""
    match = re.search(r"^# %%", text, re.M)
    return text[: match.start()] if match else text


def readme_link_problems(readme: Path, notebooks: list[Notebook], root: Path,
                         repo: str) -> list[str]:
    """README's Colab links: one per notebook, each to the current repository, none dangling."""
    text = readme.read_text(encoding="utf-8")
    problems = []
    linked = set()
    for match in _COLAB_LINK.finditer(text):
        linked.add(match.group(1))
        if match.group(0) != colab_url(repo, match.group(1)):
            problems.append(f"{readme}: stale Colab link {match.group(0)} "
                            "(run: python -m reidlib.course colab)")
        if not (root / match.group(1)).is_file():
            problems.append(f"{readme}: Colab link to {match.group(1)}, which does not exist")
    for nb in notebooks:
        if _relative(nb.ipynb, root) not in linked:
            problems.append(f"{readme}: no Open-in-Colab link for {_relative(nb.ipynb, root)}")
    return problems


def write_readme_links(readme: Path, repo: str) -> bool:
    """Point every Colab link of ``readme`` at ``repo``; True when the file changed."""
    text = readme.read_text(encoding="utf-8")
    new = _COLAB_LINK.sub(lambda m: colab_url(repo, m.group(1)), text)
    if new == text:
        return False
    with atomic_path(readme) as tmp:
        tmp.write_text(new, encoding="utf-8")
    return True


# --------------------------------------------------------------------------- built pages

_TQDM = re.compile(r"\d+%\|[^|\n]*\||\d+/\d+ \[\d+:\d+<|\[[\d:]+<[\d:?]+, +[\d.?]+ ?[a-z]*/s\]")
_ERROR = re.compile(r"Traceback \(most recent call last\)|\b(?:[A-Z]\w*)?Error:")
_DICT_REPR = re.compile(r"^\s*(?:\{['\"]|OrderedDict\(|defaultdict\()", re.M)


def lint_notebook(nb: nbformat.NotebookNode, name: str) -> list[str]:
    """What a reader of an executed notebook should never see: progress bars (widget or
    text), widgets frozen into the page, echoed dicts, errors and tracebacks."""
    problems = []
    if WIDGET_STATE in nb.metadata.get("widgets", {}):
        problems.append(f"{name}: saved widget state (widgets would freeze in the page)")
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        where = f"{name}: cell {index + 1} ({_head(cell.source, 40)!r})"
        found: dict[str, int] = {}  # problem -> how often this cell shows it, in order
        for out in cell.get("outputs", []):
            for problem in _output_problems_for_reader(out):
                found[problem] = found.get(problem, 0) + 1
        problems += [f"{where}: {p}" + (f" (x{n})" if n > 1 else "") for p, n in found.items()]
    return problems


def _output_problems_for_reader(out: dict) -> list[str]:
    kind, data = out.get("output_type"), out.get("data", {})
    if kind == "error":
        return [f"error {out.get('ename')}: {out.get('evalue')}"]
    text = out.get("text", "") if kind == "stream" else data.get("text/plain", "")
    text = "".join(text) if isinstance(text, list) else text
    problems = []
    bar = _TQDM.search(text)
    if WIDGET_VIEW in data:
        problems.append("a progress-bar widget" if bar else "a widget output")
    elif bar:
        problems.append(f"a progress bar: {_head(bar.group())!r}")
    error = _ERROR.search(text)
    if error:
        problems.append(_head(text[error.start():]))
    if (kind == "execute_result" and text.lstrip().startswith("{")) or (
        kind == "stream" and _DICT_REPR.search(text)
    ):
        problems.append(f"an echoed dict: {_head(text)!r}")
    return problems


def lint_build(build_dir: Path) -> list[str]:
    """Every problem of every executed notebook and HTML page under ``build_dir``."""
    build_dir = Path(build_dir)
    if not build_dir.is_dir():
        return [f"{build_dir}: no such build folder (run: python -m reidlib.course run)"]
    problems = []
    for path in sorted(build_dir.rglob("*.ipynb")):
        if _SKIP_DIRS & set(path.parts):
            continue
        try:
            nb = nbformat.read(path, as_version=4)
        except Exception as err:  # nbformat raises several types for unreadable files
            problems.append(f"{path}: cannot be read as a notebook ({err})")
            continue
        problems += lint_notebook(nb, str(path))
    for path in sorted(build_dir.rglob("*.html")):
        html = path.read_text(encoding="utf-8", errors="replace")
        for mime in (WIDGET_VIEW, WIDGET_STATE):
            if mime in html:
                problems.append(f"{path}: embeds {mime} (a widget frozen in the page)")
    return problems


# --------------------------------------------------------------------------- command line


def _head(text: str, width: int = 60) -> str:
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return first if len(first) <= width else first[: width - 3] + "..."


def _parser(root: Path) -> argparse.ArgumentParser:
    folders = argparse.ArgumentParser(add_help=False)
    folders.add_argument(
        "--notebooks",
        type=Path,
        default=root / "notebooks",
        help="chapter notebooks folder (default: notebooks/)",
    )
    folders.add_argument(
        "--exercises",
        type=Path,
        default=root / "exercises",
        help="exercise notebooks folder (default: exercises/)",
    )
    parser = argparse.ArgumentParser(
        prog="python -m reidlib.course", description=__doc__.split("\n")[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", parents=[folders], help="list chapters and exercises")
    run = commands.add_parser("run", parents=[folders], help="execute chapters into build/")
    run.add_argument("chapters", nargs="*", help="e.g. 00 or 00_fundamentals (default: all)")
    run.add_argument(
        "--profile",
        default=None,
        help="smoke | quick | full (default: $REID_PROFILE or the machine default)",
    )
    run.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        help=f"seconds per notebook, 0 for none (default {DEFAULT_TIMEOUT_S:g})",
    )
    run.add_argument(
        "--build", type=Path, default=root / "build", help="output folder (default build/)"
    )
    run.add_argument("--include-exercises", action="store_true", help="run the exercises too")
    commands.add_parser(
        "check",
        parents=[folders],
        help="verify pairs are in sync, without outputs, with current first cells",
    )
    commands.add_parser("sync", parents=[folders], help="rewrite each .ipynb from its .py source")
    commands.add_parser(
        "colab",
        parents=[folders],
        help="insert or refresh every notebook's Open-in-Colab link and install cell "
        "(and README's Colab links) from pyproject.toml's Repository URL",
    )
    lint = commands.add_parser(
        "lint-build", help="check built notebooks for progress bars, widgets, dicts, errors"
    )
    lint.add_argument("build", type=Path, nargs="?", default=root / "build",
                      help="build folder (default build/)")
    return parser


def cmd_list(notebooks: list[Notebook]) -> int:
    if not notebooks:
        print("no notebooks found")
    for nb in notebooks:
        print(
            f"{nb.role:9s} {nb.chapter:5s} {nb.name:32s} "
            f"{'paired' if nb.paired else 'NOT PAIRED':10s} {nb.source}"
        )
    return 0


def cmd_run(notebooks: list[Notebook], args: argparse.Namespace) -> int:
    try:
        profile = get_profile(args.profile).name
        chosen = select(
            notebooks
            if args.include_exercises
            else [nb for nb in notebooks if nb.kind == "chapter"],
            args.chapters,
        )
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if not chosen:
        print(f"error: no chapter notebooks in {args.notebooks}", file=sys.stderr)
        return 2
    for path in prune_build(args.build, notebooks):
        print(f"removed (no such notebook now): {path}")
    entries, failure = run_course(chosen, args.build, profile, args.timeout or None)
    print(summary_table(entries))
    print(f"results: {args.build / 'results.json'}")
    if failure is not None:
        print(f"\n{failure}\n  partly executed copy: {failure.saved_to}", file=sys.stderr)
        return 1
    return 0


def cmd_check(notebooks: list[Notebook], folders: list[Path], root: Path) -> int:
    problems = check_pairs(notebooks, folders)
    try:
        repo = repository_url(root)
        for nb in notebooks:
            problems += first_cell_problems(nb, root, repo)
        if (root / "README.md").is_file():
            problems += readme_link_problems(root / "README.md", notebooks, root, repo)
    except ValueError as err:
        problems.append(str(err))
    for problem in problems:
        print(problem)
    print(f"{len(notebooks)} notebooks checked, {len(problems)} problems")
    return 1 if problems else 0


def cmd_sync(notebooks: list[Notebook]) -> int:
    for nb in notebooks:
        print(f"{'wrote' if sync_pair(nb) else 'up to date':10s} {nb.ipynb}")
    return 0


def cmd_colab(notebooks: list[Notebook], root: Path) -> int:
    try:
        repo = repository_url(root)
        for nb in notebooks:
            print(f"{'wrote' if write_first_cells(nb, root, repo) else 'up to date':10s} "
                  f"{nb.source}")
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    readme = root / "README.md"
    if readme.is_file():
        print(f"{'wrote' if write_readme_links(readme, repo) else 'up to date':10s} {readme}")
    return 0


def cmd_lint_build(build: Path) -> int:
    problems = lint_build(build)
    for problem in problems:
        print(problem)
    print(f"{build}: {len(problems)} problems")
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    args = _parser(find_repo_root()).parse_args(argv)
    if args.command == "lint-build":
        return cmd_lint_build(args.build)
    notebooks = discover(args.notebooks, args.exercises)
    # The repository the notebooks live in (Colab links are relative to it).
    root = find_repo_root(args.notebooks)
    if not Path(args.notebooks).resolve().is_relative_to(root):
        root = Path(args.notebooks).resolve().parent
    if args.command == "list":
        return cmd_list(notebooks)
    if args.command == "run":
        return cmd_run(notebooks, args)
    if args.command == "check":
        return cmd_check(notebooks, [args.notebooks, args.exercises], root)
    if args.command == "colab":
        return cmd_colab(notebooks, root)
    return cmd_sync(notebooks)


if __name__ == "__main__":
    sys.exit(main())
