"""The course runner: ``python -m reidlib.course list | run [CHAPTER ...] | check | sync``.

Every notebook is stored twice (notebooks/README.md): a jupytext ``py:percent`` source
``NN_name.py``, which is the source of truth, and its pair ``NN_name.ipynb`` without
outputs. ``run`` executes the sources top to bottom in a fresh kernel of the current
interpreter, writes ``build/NN_name.ipynb`` (with outputs) and ``build/NN_name.html``,
and gathers each chapter's recorded numbers (``reidlib.notebook.Session.record``) with
its run time into ``build/results.json``. ``check`` verifies that every pair is in sync
and that no committed ``.ipynb`` carries outputs; ``sync`` rewrites the ``.ipynb`` files
from their sources.
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
        """The name ``setup()`` records results under: "00" for a chapter, "ex00" for exercises."""
        number = self.name.split("_", 1)[0]
        return number if self.kind == "chapter" else f"ex{number}"


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
    """The notebooks named in ``wanted`` ("00", "00_fundamentals" or "fundamentals"), in order."""
    if not wanted:
        return notebooks
    chosen = set()
    for word in wanted:
        hits = {nb for nb in notebooks if word in (nb.name, nb.chapter, nb.name.split("_", 1)[-1])}
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
    makes the interactive explorers draw static figures (no widget frontend here); the
    repository goes first on ``PYTHONPATH`` so the kernel imports this very reidlib.
    """
    env = dict(os.environ)
    package_parent = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH")) if p)
    env["REID_PROFILE"] = profile
    env["REID_BUILD"] = str(Path(build_dir).resolve())
    env["REID_STATIC_PLOTS"] = "1"
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

    nb = nbformat.from_dict(nb)
    # The build copy must not claim a jupytext pairing, or opening it would create a .py.
    nb.metadata.pop("jupytext", None)
    with atomic_path(ipynb_path) as tmp:
        nbformat.write(nb, tmp)
    body, _ = HTMLExporter().from_notebook_node(nb)
    with atomic_path(html_path) as tmp:
        tmp.write_text(body, encoding="utf-8")


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
        "check", parents=[folders], help="verify pairs are in sync, without outputs"
    )
    commands.add_parser("sync", parents=[folders], help="rewrite each .ipynb from its .py source")
    return parser


def cmd_list(notebooks: list[Notebook]) -> int:
    if not notebooks:
        print("no notebooks found")
    for nb in notebooks:
        print(
            f"{nb.kind:9s} {nb.name:32s} {'paired' if nb.paired else 'NOT PAIRED':10s} {nb.source}"
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
    entries, failure = run_course(chosen, args.build, profile, args.timeout or None)
    print(summary_table(entries))
    print(f"results: {args.build / 'results.json'}")
    if failure is not None:
        print(f"\n{failure}\n  partly executed copy: {failure.saved_to}", file=sys.stderr)
        return 1
    return 0


def cmd_check(notebooks: list[Notebook], folders: list[Path]) -> int:
    problems = check_pairs(notebooks, folders)
    for problem in problems:
        print(problem)
    print(f"{len(notebooks)} notebooks checked, {len(problems)} problems")
    return 1 if problems else 0


def cmd_sync(notebooks: list[Notebook]) -> int:
    for nb in notebooks:
        print(f"{'wrote' if sync_pair(nb) else 'up to date':10s} {nb.ipynb}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser(find_repo_root()).parse_args(argv)
    notebooks = discover(args.notebooks, args.exercises)
    if args.command == "list":
        return cmd_list(notebooks)
    if args.command == "run":
        return cmd_run(notebooks, args)
    if args.command == "check":
        return cmd_check(notebooks, [args.notebooks, args.exercises])
    return cmd_sync(notebooks)


if __name__ == "__main__":
    sys.exit(main())
