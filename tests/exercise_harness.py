"""What every exercise folder (exercises/NN_name) is tested for: its otter checks, its student
notebook and the instructor grader, exercises/grade.py.

An exercise is named by its folder, its question -> function map and the name its notebook
records results under ("ex00"): see ``load_exercise``. Each tests/test_exercises*.py subclasses
``ExerciseChecks`` with its exercise and its plausible wrong answers, and keeps the cases that
only make sense for that chapter (failure messages, hand-made data). The in-process tests run
the checks directly on the reference solutions, on the notebook's own stubs and on the wrong
answers; the slow ones execute the student notebook (as shipped, and with the solutions pasted
in) and grade.py.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import jupytext
import nbformat
import pytest
from otter.test_files.exception_test import ExceptionTestFile

from reidlib import course
from reidlib.notebook import find_repo_root, read_results

ROOT = find_repo_root(Path(__file__).parent)
EXERCISES = ROOT / "exercises"
GRADE_SCRIPT = EXERCISES / "grade.py"


def load_module(path: Path, name: str) -> ModuleType:
    """Import the file at ``path`` as module ``name`` (exercise files are not a package)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


grade = load_module(GRADE_SCRIPT, "exercises_grade")


def check(path: Path, env: dict) -> ExceptionTestFile:
    """Run one otter test file against ``env`` (what a notebook's globals would hold)."""
    test = ExceptionTestFile.from_file(str(path))
    test.run(env)
    return test


def statements(source: str) -> set[str]:
    """Every statement of ``source`` (nested ones too), as normalised AST dumps."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    return {ast.dump(node) for node in ast.walk(tree) if isinstance(node, ast.stmt)}


@dataclass(frozen=True)
class Exercise:
    """One exercise folder: where its files are and what its questions ask for."""

    name: str  # the folder under exercises/, as grade.py takes it: "00_fundamentals"
    questions: dict[str, str]  # check name -> the function the student writes
    results: str  # what the notebook's setup() records under: "ex00"
    solutions: ModuleType  # the loaded solutions.py

    @property
    def folder(self) -> Path:
        return EXERCISES / self.name

    @property
    def notebook(self) -> Path:
        """The jupytext source of the student notebook; its paired .ipynb sits next to it."""
        return self.folder / f"{self.name}.py"

    @property
    def solved(self) -> dict[str, Callable]:
        """The reference solution of every question, by function name."""
        return {function: getattr(self.solutions, function) for function in self.questions.values()}

    def public(self, question: str) -> Path:
        return self.folder / "tests" / f"{question}.py"

    def hidden(self, question: str) -> Path:
        return self.folder / "hidden" / f"{question}_hidden.py"


def load_exercise(name: str, questions: dict[str, str], results: str) -> Exercise:
    """The exercise in folder exercises/``name``, with its solutions.py loaded."""
    solutions = load_module(EXERCISES / name / "solutions.py", f"exercises_{name[:2]}_solutions")
    return Exercise(name, questions, results, solutions)


def stubs(exercise: Exercise) -> dict[str, Callable]:
    """The student notebook's stub functions, by name (each stub cell executed on its own)."""
    wanted = set(exercise.questions.values())
    found = {}
    for cell in jupytext.read(exercise.notebook).cells:
        if cell.cell_type == "code" and set(grade._defined_functions(cell.source)) & wanted:
            namespace: dict = {}
            exec(cell.source, namespace)
            found.update({k: v for k, v in namespace.items() if k in wanted})
    assert set(found) == wanted, f"stub cells found for {sorted(found)}"
    return found


def student_copy(exercise: Exercise, folder: Path) -> Path:
    """What a student gets: the notebook pair and the public checks (no hidden/, no solutions)."""
    folder.mkdir()
    notebook = exercise.notebook
    for name in (notebook.name, notebook.with_suffix(".ipynb").name):
        shutil.copy(exercise.folder / name, folder / name)
    shutil.copytree(exercise.folder / "tests", folder / "tests")
    return folder / notebook.name


def execute(exercise: Exercise, source: Path, build: Path) -> tuple[dict[str, str], dict]:
    """Run the notebook at ``source``; return each check cell's output and what it recorded."""
    env = course.kernel_env("smoke", build, {})
    run = course.execute_notebook(source, env, timeout=240)  # raises if any cell fails
    checks = {}
    for cell in run.nb.cells:
        for question in exercise.questions:
            if cell.cell_type == "code" and cell.source.strip() == f'grader.check("{question}")':
                [result] = [o for o in cell.outputs if o.output_type == "execute_result"]
                checks[question] = result.data["text/plain"]
    assert set(checks) == set(exercise.questions)
    return checks, read_results(build / "results" / f"{exercise.results}.json")


def run_grade(exercise: Exercise, tmp_path: Path, *args: str) -> dict[str, float]:
    """Run grade.py in a fresh process; return otter's score per check file."""
    out = tmp_path / "out"
    env = {**os.environ, "PYDEVD_DISABLE_FILE_VALIDATION": "1"}
    done = subprocess.run(
        [sys.executable, str(GRADE_SCRIPT), exercise.name, *args, "--output", str(out)],
        capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    tests = json.loads((out / "results.json").read_text())["tests"]
    return {t["name"]: t["score"] for t in tests if "score" in t}


def check_files(exercise: Exercise) -> list[str]:
    """The names of every public and hidden check file the exercise should have."""
    return [f"{q}.py" for q in exercise.questions] + [f"{q}_hidden.py" for q in exercise.questions]


class ExerciseChecks:
    """The tests every exercise gets. A subclass named Test... sets the class attributes.

    ``wrong_answers`` lists (question, function, sneaky): plausible wrong answers the hidden
    checks must catch; a "sneaky" one passes every public check, so only hidden checks do.
    """

    exercise: Exercise
    wrong_answers: list[tuple[str, Callable, bool]]
    solution_statements: int  # at least this many statements in the solutions' bodies

    def pytest_generate_tests(self, metafunc):
        # Per-class parametrisation: the questions and wrong answers are the subclass's.
        if "wrong" in metafunc.fixturenames:
            ids = [w.__name__.strip("_") for _, w, _ in self.wrong_answers]
            metafunc.parametrize(("question", "wrong", "sneaky"), self.wrong_answers, ids=ids)
        elif "question" in metafunc.fixturenames:
            metafunc.parametrize("question", list(self.exercise.questions))

    # ----------------------------------------------------------------------- layout

    def test_every_question_has_public_and_hidden_checks(self):
        ex = self.exercise
        for question in ex.questions:
            public = ExceptionTestFile.from_file(str(ex.public(question)))
            hidden = ExceptionTestFile.from_file(str(ex.hidden(question)))
            assert public.name == question and hidden.name == f"{question}_hidden"
            assert len(public.test_cases) >= 2 and len(hidden.test_cases) >= 2
            assert not any(case.hidden for case in public.test_cases)
            assert all(case.hidden for case in hidden.test_cases)
        for sub, suffix in (("tests", ""), ("hidden", "_hidden")):
            assert sorted(p.name for p in (ex.folder / sub).glob("*.py")) == sorted(
                f"{q}{suffix}.py" for q in ex.questions
            )

    def test_notebook_starts_with_setup_and_checks_each_question(self):
        ex = self.exercise
        cells = jupytext.read(ex.notebook).cells
        # An Open-in-Colab install cell (reidlib.course colab), when present, comes first.
        code = [c.source.strip() for c in cells
                if c.cell_type == "code" and 'find_spec("reidlib")' not in c.source]
        markdown = [c.source for c in cells if c.cell_type == "markdown"]
        # The plug-back cell records whether the student's functions reproduce the library;
        # an open question asks for a measurement (docs/instructor/exNN.md has the answer).
        assert sum("session.record(plug_back_agrees=" in c for c in code) == 1
        assert any(m.startswith("## Open question") for m in markdown)
        answers = ROOT / "docs" / "instructor" / f"{ex.results}.md"
        headings = [line for line in answers.read_text().splitlines() if line.startswith("## ")]
        for m in markdown:
            if m.startswith("## Open question"):
                title = m.splitlines()[0][3:]
                assert any(title in h for h in headings), f"no answer to {title!r} in {answers}"
        assert code[0] == f'from reidlib.notebook import setup\n\nsession = setup("{ex.results}")'
        for question in ex.questions:
            assert f'grader.check("{question}")' in code, f"no check cell for {question}"
        assert f"questions = {list(ex.questions)!r}".replace("'", '"') in code[-1]
        assert course.Notebook(ex.notebook, "exercise").chapter == ex.results

    def test_grade_lists_this_exercise(self, capsys, tmp_path):
        assert grade.main(["99_nothing", "x.ipynb"]) == 2
        assert self.exercise.name in capsys.readouterr().err
        names = grade.collect_checks(self.exercise.folder, tmp_path)
        assert sorted(names) == sorted(check_files(self.exercise))

    # ----------------------------------------------------------------------- checks, in-process

    def test_solutions_pass_public_and_hidden_checks(self, question):
        ex = self.exercise
        for path in (ex.public(question), ex.hidden(question)):
            test = check(path, ex.solved)
            assert test.passed_all, test.summary()

    def test_each_stub_fails_only_its_own_checks(self, question):
        # The solutions everywhere except this question's stub, as written in the notebook.
        ex = self.exercise
        function = ex.questions[question]
        env = {**ex.solved, function: stubs(ex)[function]}
        for other in ex.questions:
            public = check(ex.public(other), env)
            hidden = check(ex.hidden(other), env)
            if other == question:
                assert not any(r.passed for r in public.test_case_results), public.summary()
                assert not any(r.passed for r in hidden.test_case_results), hidden.summary()
                assert f"NotImplementedError: {question}: write" in public.summary()
            else:
                assert public.passed_all and hidden.passed_all, public.summary() + hidden.summary()

    def test_missing_function_gets_a_clear_message(self, question):
        test = check(self.exercise.public(question), {})  # the student never ran the cell
        assert not test.passed_all
        assert f"define a function called {self.exercise.questions[question]}" in test.summary()

    def test_hidden_checks_catch_wrong_answers(self, question, wrong, sneaky):
        ex = self.exercise
        env = {**ex.solved, ex.questions[question]: wrong}
        hidden = check(ex.hidden(question), env)
        assert not hidden.passed_all, f"{wrong.__name__} passes every hidden check of {question}"
        public = check(ex.public(question), env)
        assert public.passed_all == sneaky, public.summary()

    # ----------------------------------------------------------------------- no solutions leak

    def test_solutions_are_not_in_the_student_notebook(self):
        ex = self.exercise
        solution_tree = ast.parse((ex.folder / "solutions.py").read_text())
        bodies = [
            stmt
            for node in solution_tree.body
            if isinstance(node, ast.FunctionDef)
            for stmt in node.body[1:]  # after the docstring
        ]
        assert len(bodies) >= self.solution_statements
        paired = nbformat.read(ex.notebook.with_suffix(".ipynb"), as_version=4)
        for nb in (jupytext.read(ex.notebook), paired):
            code = [c.source for c in nb.cells if c.cell_type == "code"]
            in_notebook = set().union(*(statements(source) for source in code))
            leaked = [ast.unparse(s) for s in bodies if ast.dump(s) in in_notebook]
            assert not leaked, f"solution lines in the student notebook: {leaked}"
            text = "\n".join(code)
            assert "solutions" not in text and "hidden" not in text
        stub_defs = [
            node
            for cell in jupytext.read(ex.notebook).cells
            # the Colab install cell holds IPython magics (!git, %pip), not plain Python
            if cell.cell_type == "code" and 'find_spec("reidlib")' not in cell.source
            for node in ast.parse(cell.source).body
            if isinstance(node, ast.FunctionDef) and node.name in ex.solved
        ]
        assert sorted(node.name for node in stub_defs) == sorted(ex.solved)
        for node in stub_defs:  # a docstring, then raise NotImplementedError(...)
            assert len(node.body) == 2 and isinstance(node.body[1], ast.Raise), node.name
        for stub in stubs(ex).values():
            with pytest.raises(NotImplementedError):
                stub(*[None] * stub.__code__.co_argcount)

    def test_inject_solutions_replaces_each_stub_and_needs_them_all(self):
        ex = self.exercise
        nb = jupytext.read(ex.notebook)
        assert sorted(grade.inject_solutions(nb, ex.folder / "solutions.py")) == sorted(ex.solved)
        code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
        assert "NotImplementedError" not in code
        for function in ex.solved:
            nb = jupytext.read(ex.notebook)
            nb.cells = [c for c in nb.cells if f"def {function}" not in c.source]
            with pytest.raises(ValueError, match=function):
                grade.inject_solutions(nb, ex.folder / "solutions.py")

    # ----------------------------------------------------------------------- executed notebooks

    @pytest.mark.slow
    @pytest.mark.timeout(300)
    def test_unmodified_notebook_runs_and_fails_each_check(self, tmp_path):
        ex = self.exercise
        source = student_copy(ex, tmp_path / "student")
        checks, recorded = execute(ex, source, tmp_path / "build")
        for question, text in checks.items():
            assert text.startswith(f"{question} results:\n"), text
            assert "All test cases passed" not in text and "✅" not in text
            assert f"NotImplementedError: {question}: write" in text and "Hint:" in text
        assert recorded == {"checks_passed": 0, "checks_total": len(ex.questions), "passed": [],
                            "plug_back_agrees": False}

    @pytest.mark.slow
    @pytest.mark.timeout(300)
    def test_notebook_with_solutions_passes_every_check(self, tmp_path):
        ex = self.exercise
        source = student_copy(ex, tmp_path / "solved")
        nb = jupytext.read(source)
        grade.inject_solutions(nb, ex.folder / "solutions.py")
        jupytext.write(nb, source, fmt="py:percent")
        checks, recorded = execute(ex, source, tmp_path / "build")
        for question, text in checks.items():
            assert text.startswith(f"{question} results: All test cases passed!"), text
        total = len(ex.questions)
        # The plug-back cell ran the student's functions inside the pipeline and got the
        # library's result.
        assert recorded == {
            "checks_passed": total, "checks_total": total, "passed": list(ex.questions),
            "plug_back_agrees": True,
        }

    @pytest.mark.slow
    @pytest.mark.timeout(300)
    def test_grade_script_gives_solutions_full_marks(self, tmp_path):
        scores = run_grade(self.exercise, tmp_path, "--solutions")
        assert scores == {name[: -len(".py")]: 1 for name in check_files(self.exercise)}
        assert not (tmp_path / ".OTTER_LOG").exists()

    @pytest.mark.slow
    @pytest.mark.timeout(300)
    def test_grade_script_gives_the_unmodified_notebook_nothing(self, tmp_path):
        ex = self.exercise
        scores = run_grade(ex, tmp_path, str(ex.notebook.with_suffix(".ipynb")))
        assert scores == {name[: -len(".py")]: 0 for name in check_files(ex)}
