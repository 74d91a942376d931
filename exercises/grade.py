"""Grade an exercise notebook with its public and hidden checks (instructors).

    .venv/bin/python exercises/grade.py 00_fundamentals path/to/submission.ipynb
    .venv/bin/python exercises/grade.py 00_fundamentals --solutions   # the reference solutions

An exercise folder holds the student notebook, the public checks students run from it
(``tests/qN.py``), the hidden ones (``hidden/qN_hidden.py``) and the reference solutions
(``solutions.py``). All checks are otter-grader test files. This script copies both kinds of
check into one folder, builds an otter autograder from it (``otter generate``) and grades the
submission (``otter run``: the notebook runs top to bottom in a fresh kernel, without a
container, then every check runs on what it defined). It prints the score per check file and
writes otter's ``results.json`` to ``--output`` (default: the current folder). The notebook
runs in the ``smoke`` profile unless ``REID_PROFILE`` says otherwise: the checks do not
depend on it, only the plug-back cells' run time does.

``--solutions`` grades the student notebook with each stub replaced by its reference solution:
a quick way to confirm that a new hidden check accepts a correct answer.
"""

from __future__ import annotations

import argparse
import ast
import os
import shutil
import sys
import tempfile
from pathlib import Path

import jupytext
import nbformat

EXERCISES = Path(__file__).resolve().parent


def exercise_dir(name: str, root: Path = EXERCISES) -> Path:
    """The folder of exercise ``name`` ("00_fundamentals"); a ValueError lists the valid ones."""
    folder = root / name
    if not (folder / "tests").is_dir():
        valid = sorted(p.name for p in root.iterdir() if (p / "tests").is_dir())
        raise ValueError(
            f"no exercise called {name!r} in {root} (a folder with a tests/ sub-folder); "
            f"expected one of: {', '.join(valid) or 'none found'}"
        )
    return folder


def student_notebook(folder: Path) -> Path:
    """The jupytext source of the exercise's student notebook (``NN_name.py`` in the folder)."""
    source = folder / f"{folder.name}.py"
    if not source.is_file():
        raise ValueError(f"{folder} has no student notebook {source.name}")
    return source


def collect_checks(folder: Path, dest: Path) -> list[str]:
    """Copy public (tests/) and hidden (hidden/) check files into ``dest``; return their names.

    otter grades one folder of test files; a name used by both folders would silently drop one
    of them, so that is an error.
    """
    dest.mkdir(parents=True, exist_ok=True)
    names: list[str] = []
    for sub in ("tests", "hidden"):
        for path in sorted((folder / sub).glob("*.py")):
            if path.name in names:
                raise ValueError(f"{folder}: tests/ and hidden/ both have {path.name}")
            shutil.copy(path, dest / path.name)
            names.append(path.name)
    if not names:
        raise ValueError(f"{folder}: no check files in tests/ or hidden/")
    return names


def inject_solutions(nb: nbformat.NotebookNode, solutions: Path) -> list[str]:
    """Replace each stub cell of ``nb`` (in place) by the solution of the same name.

    A stub cell is a code cell that defines a top-level function named like a function of
    ``solutions``; it becomes the solutions' imports followed by that function's source.
    Returns the names replaced; a solution without a stub cell is an error.
    """
    source = solutions.read_text(encoding="utf-8")
    tree = ast.parse(source)
    imports = "\n".join(
        ast.get_source_segment(source, node)
        for node in tree.body
        if isinstance(node, ast.Import | ast.ImportFrom)
    )
    functions = {
        node.name: ast.get_source_segment(source, node)
        for node in tree.body
        if isinstance(node, ast.FunctionDef)
    }
    replaced = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        defined = [name for name in _defined_functions(cell.source) if name in functions]
        if defined:
            cell.source = imports + "\n\n\n" + "\n\n\n".join(functions[n] for n in defined)
            replaced += defined
    missing = sorted(set(functions) - set(replaced))
    if missing:
        raise ValueError(f"no stub cell in the notebook for the solutions {missing}")
    return replaced


def _defined_functions(code: str) -> list[str]:
    try:
        tree = ast.parse(code)
    except SyntaxError:  # IPython magics; a stub cell is plain Python
        return []
    return [node.name for node in tree.body if isinstance(node, ast.FunctionDef)]


def grade(submission: Path, folder: Path, output: Path, work: Path):
    """Build the autograder for ``folder`` in ``work`` and grade ``submission`` with otter.

    Returns otter's GradingResults; otter's results.json is copied to ``output``.
    """
    import otter.generate  # imported here: otter is slow to import and --help should be quick
    import otter.run

    collect_checks(folder, work / "tests")
    autograder = work / "autograder.zip"
    otter.generate.main(
        tests_dir=str(work / "tests"),
        output_path=str(autograder),
        no_config=True,
        no_requirements=True,
        no_environment=True,
    )
    output.mkdir(parents=True, exist_ok=True)
    return otter.run.main(
        str(submission), autograder=str(autograder), output_dir=str(output), no_logo=True
    )


def score_table(results) -> str:
    """One line per check file (score / possible) and the total."""
    lines = []
    for name in sorted(results.test_files):
        test = results.get_result(name)
        failed = [r.test_case.name for r in test.test_case_results if not r.passed]
        note = f"  failed: {', '.join(failed)}" if failed else ""
        lines.append(f"{name:12s} {test.score:g} / {test.possible:g}{note}")
    lines.append(f"{'total':12s} {results.total:g} / {results.possible:g}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="exercises/grade.py", description=__doc__.split("\n")[0])
    parser.add_argument("exercise", help="a folder under exercises/, e.g. 00_fundamentals")
    parser.add_argument("submission", nargs="?", type=Path, help="the student's .ipynb")
    parser.add_argument(
        "--solutions", action="store_true", help="grade the notebook with the reference solutions"
    )
    parser.add_argument(
        "--output", type=Path, default=Path.cwd(), help="where results.json goes (default: .)"
    )
    args = parser.parse_args(argv)
    try:
        folder = exercise_dir(args.exercise)
        if args.solutions == (args.submission is not None):
            raise ValueError("give either a submission notebook or --solutions (not both)")
        if args.submission is not None and not args.submission.is_file():
            raise ValueError(f"submission {args.submission} does not exist")
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="grade-") as tmp:
        work = Path(tmp)
        # The notebook's setup() records numbers under $REID_BUILD: keep grading out of build/.
        os.environ["REID_BUILD"] = str(work / "build")
        # The checks do not depend on the profile, the plug-back cells' run time does: grade
        # in the smoke profile unless the instructor chose another one.
        os.environ.setdefault("REID_PROFILE", "smoke")
        submission = args.submission
        if args.solutions:
            nb = jupytext.read(student_notebook(folder))
            inject_solutions(nb, folder / "solutions.py")
            submission = work / f"{folder.name}_solutions.ipynb"
            nbformat.write(nb, submission)
        results = grade(submission.resolve(), folder, args.output, work)
    print(score_table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
