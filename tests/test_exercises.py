"""exercises/00_fundamentals: the otter checks, the student notebook and the instructor grader.

The checks are otter-grader test files. In-process tests run them directly on the reference
solutions, on the notebook's own stubs and on plausible wrong answers; the slow tests execute
the student notebook (as shipped, and with the solutions pasted in) and the grading script.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import jupytext
import nbformat
import numpy as np
import pytest
from matplotlib.colors import rgb_to_hsv
from otter.test_files.exception_test import ExceptionTestFile

from reidlib import course
from reidlib.notebook import find_repo_root, read_results

ROOT = find_repo_root(Path(__file__).parent)
EXERCISE = ROOT / "exercises" / "00_fundamentals"
NOTEBOOK = EXERCISE / "00_fundamentals.py"
GRADE_SCRIPT = ROOT / "exercises" / "grade.py"
QUESTIONS = {
    "q1": "average_precision",
    "q2": "cmc_curve",
    "q3": "valid_gallery_mask",
    "q4": "hue_histogram",
}


def _load_module(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


grade = _load_module(GRADE_SCRIPT, "exercises_grade")
solutions = _load_module(EXERCISE / "solutions.py", "exercises_00_solutions")
SOLVED = {function: getattr(solutions, function) for function in QUESTIONS.values()}


def _public(question: str) -> Path:
    return EXERCISE / "tests" / f"{question}.py"


def _hidden(question: str) -> Path:
    return EXERCISE / "hidden" / f"{question}_hidden.py"


def _check(path: Path, env: dict) -> ExceptionTestFile:
    """Run one otter test file against ``env`` (what a notebook's globals would hold)."""
    test = ExceptionTestFile.from_file(str(path))
    test.run(env)
    return test


def _stubs() -> dict[str, object]:
    """The student notebook's stub functions, by name (each stub cell executed on its own)."""
    found = {}
    for cell in jupytext.read(NOTEBOOK).cells:
        if cell.cell_type == "code" and set(grade._defined_functions(cell.source)) & set(SOLVED):
            namespace: dict = {}
            exec(cell.source, namespace)
            found.update({k: v for k, v in namespace.items() if k in SOLVED})
    assert set(found) == set(SOLVED), f"stub cells found for {sorted(found)}"
    return found


# --------------------------------------------------------------------------- layout


def test_every_question_has_public_and_hidden_checks():
    for question in QUESTIONS:
        public = ExceptionTestFile.from_file(str(_public(question)))
        hidden = ExceptionTestFile.from_file(str(_hidden(question)))
        assert public.name == question and hidden.name == f"{question}_hidden"
        assert len(public.test_cases) >= 2 and len(hidden.test_cases) >= 2
        assert not any(case.hidden for case in public.test_cases)
        assert all(case.hidden for case in hidden.test_cases)
    assert sorted(p.name for p in (EXERCISE / "tests").glob("*.py")) == [
        f"{q}.py" for q in QUESTIONS
    ]


def test_notebook_starts_with_setup_and_checks_each_question():
    cells = jupytext.read(NOTEBOOK).cells
    code = [c.source.strip() for c in cells if c.cell_type == "code"]
    assert code[0] == 'from reidlib.notebook import setup\n\nsession = setup("ex00")'
    for question in QUESTIONS:
        assert f'grader.check("{question}")' in code, f"no check cell for {question}"
    assert course.Notebook(NOTEBOOK, "exercise").chapter == "ex00"


# --------------------------------------------------------------------------- checks, in-process


@pytest.mark.parametrize("question", QUESTIONS)
def test_solutions_pass_public_and_hidden_checks(question):
    for path in (_public(question), _hidden(question)):
        test = _check(path, SOLVED)
        assert test.passed_all, test.summary()


@pytest.mark.parametrize("question", QUESTIONS)
def test_each_stub_fails_only_its_own_checks(question):
    # The solutions everywhere except this question's stub, as written in the notebook.
    env = {**SOLVED, QUESTIONS[question]: _stubs()[QUESTIONS[question]]}
    for other in QUESTIONS:
        public = _check(_public(other), env)
        hidden = _check(_hidden(other), env)
        if other == question:
            assert not any(r.passed for r in public.test_case_results), public.summary()
            assert not any(r.passed for r in hidden.test_case_results), hidden.summary()
            assert f"NotImplementedError: {question}: write" in public.summary()
        else:
            assert public.passed_all and hidden.passed_all, public.summary() + hidden.summary()


def test_missing_function_gets_a_clear_message():
    test = _check(_public("q1"), {})  # the student deleted or never ran the cell
    assert not test.passed_all
    assert "define a function called average_precision" in test.summary()


# Plausible wrong answers. "sneaky" ones pass every public check: only hidden checks catch them.
def _ap_precision_at_k(matches):
    return sum(matches) / len(matches)  # the precision at the end of the list, not AP


def _ap_list_only(matches):
    hits, total = 0, 0.0
    for k, match in enumerate(matches, start=1):
        if match == 1:
            hits += 1
            total += hits / k
    return total / matches.count(1)  # numpy arrays have no .count


def _cmc_clipped(ranks, max_rank):
    ranks = np.minimum(np.asarray(ranks), max_rank)  # a late first match becomes a hit at max_rank
    return np.array([(ranks <= k).mean() for k in range(1, max_rank + 1)])


def _cmc_off_by_one(ranks, max_rank):
    ranks = np.asarray(ranks)
    return np.array([(ranks < k).mean() for k in range(1, max_rank + 1)])


def _mask_drop_whole_camera(query_pid, query_camid, gallery_pids, gallery_camids):
    pids, cams = np.asarray(gallery_pids), np.asarray(gallery_camids)
    return ~((pids == -1) | (cams == query_camid))  # also drops other people in that camera


def _mask_distractors_as_junk(query_pid, query_camid, gallery_pids, gallery_camids):
    pids, cams = np.asarray(gallery_pids), np.asarray(gallery_camids)
    return ~((pids <= 0) | ((pids == query_pid) & (cams == query_camid)))


def _hue_by_max(image, bins):
    counts = solutions.hue_histogram(image, bins)
    return counts / counts.max()  # normalised by the largest bin, not the pixel count


def _hue_dominant_channel(image, bins):
    # "The hue is the strongest channel": right for pure colours only.
    hue = np.argmax(np.asarray(image), axis=-1).ravel() / 3
    which = np.minimum((hue * bins).astype(int), bins - 1)
    return np.bincount(which, minlength=bins) / hue.size


WRONG = [
    ("q1", _ap_precision_at_k, False),
    ("q1", _ap_list_only, True),
    ("q2", _cmc_clipped, True),
    ("q2", _cmc_off_by_one, False),
    ("q3", _mask_drop_whole_camera, True),
    ("q3", _mask_distractors_as_junk, True),
    ("q4", _hue_by_max, False),
    ("q4", _hue_dominant_channel, True),
]


@pytest.mark.parametrize(
    ("question", "wrong", "sneaky"), WRONG, ids=[w.__name__.strip("_") for _, w, _ in WRONG]
)
def test_hidden_checks_catch_wrong_answers(question, wrong, sneaky):
    env = {**SOLVED, QUESTIONS[question]: wrong}
    hidden = _check(_hidden(question), env)
    assert not hidden.passed_all, f"{wrong.__name__} passes every hidden check of {question}"
    public = _check(_public(question), env)
    assert public.passed_all == sneaky, public.summary()


def test_failure_message_says_expected_got_and_hint():
    summary = _check(_public("q1"), {"average_precision": _ap_precision_at_k}).summary()
    assert "average_precision([1, 0, 1, 0]) returned 0.5000, expected 0.8333" in summary
    assert "Hint: walk down the list" in summary
    summary = _check(_hidden("q3"), {"valid_gallery_mask": _mask_drop_whole_camera}).summary()
    assert "other people (and distractors, pid 0) stay" in summary
    summary = _check(_public("q3"), {"valid_gallery_mask": _mask_distractors_as_junk}).summary()
    assert "All test cases passed" in summary  # public data has no distractor (see WRONG)
    summary = _check(_public("q2"), {"cmc_curve": lambda ranks, max_rank: None}).summary()
    assert "did you forget the return?" in summary


def test_q4_reference_agrees_with_hand_computed_hues():
    # The hidden check's reference convention: matplotlib's hue, bins equal on [0, 1].
    colours = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [128, 128, 128]]], np.uint8)
    assert np.allclose(rgb_to_hsv(colours / 255.0)[0, :, 0], [0, 1 / 3, 2 / 3, 0])
    assert np.allclose(solutions.hue_histogram(colours, 3), [0.5, 0.25, 0.25])


# --------------------------------------------------------------------------- no solutions leak


def _statements(source: str) -> set[str]:
    """Every statement of ``source`` (nested ones too), as normalised AST dumps."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    return {ast.dump(node) for node in ast.walk(tree) if isinstance(node, ast.stmt)}


def test_solutions_are_not_in_the_student_notebook():
    solution_tree = ast.parse((EXERCISE / "solutions.py").read_text())
    bodies = [
        stmt
        for node in solution_tree.body
        if isinstance(node, ast.FunctionDef)
        for stmt in node.body[1:]  # after the docstring
    ]
    assert len(bodies) >= 8
    paired = nbformat.read(NOTEBOOK.with_suffix(".ipynb"), as_version=4)
    for nb in (jupytext.read(NOTEBOOK), paired):
        code = [c.source for c in nb.cells if c.cell_type == "code"]
        in_notebook = set().union(*(_statements(source) for source in code))
        leaked = [ast.unparse(s) for s in bodies if ast.dump(s) in in_notebook]
        assert not leaked, f"solution lines in the student notebook: {leaked}"
        text = "\n".join(code)
        assert "solutions" not in text and "hidden" not in text
    stub_defs = [
        node
        for cell in jupytext.read(NOTEBOOK).cells
        if cell.cell_type == "code"
        for node in ast.parse(cell.source).body
        if isinstance(node, ast.FunctionDef) and node.name in SOLVED
    ]
    assert sorted(node.name for node in stub_defs) == sorted(SOLVED)
    for node in stub_defs:  # a docstring, then raise NotImplementedError(...)
        assert len(node.body) == 2 and isinstance(node.body[1], ast.Raise), node.name
    for stub in _stubs().values():
        with pytest.raises(NotImplementedError):
            stub(*[None] * stub.__code__.co_argcount)


# --------------------------------------------------------------------------- grade.py, fast


def test_grade_rejects_bad_arguments(capsys, tmp_path):
    assert grade.main(["99_nothing", "x.ipynb"]) == 2
    assert "expected one of: 00_fundamentals" in capsys.readouterr().err
    assert grade.main(["00_fundamentals"]) == 2
    assert "either a submission notebook or --solutions" in capsys.readouterr().err
    assert grade.main(["00_fundamentals", str(tmp_path / "absent.ipynb")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_collect_checks_merges_and_refuses_a_clash(tmp_path):
    names = grade.collect_checks(EXERCISE, tmp_path / "merged")
    expected = [f"{q}.py" for q in QUESTIONS] + [f"{q}_hidden.py" for q in QUESTIONS]
    assert sorted(names) == sorted(expected)
    folder = tmp_path / "clash"
    for sub in ("tests", "hidden"):
        (folder / sub).mkdir(parents=True)
        (folder / sub / "q1.py").write_text('name = "q1"\n')
    with pytest.raises(ValueError, match="both have q1.py"):
        grade.collect_checks(folder, tmp_path / "out")


def test_inject_solutions_replaces_each_stub_and_needs_them_all():
    nb = jupytext.read(NOTEBOOK)
    assert sorted(grade.inject_solutions(nb, EXERCISE / "solutions.py")) == sorted(SOLVED)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert "NotImplementedError" not in code
    nb.cells = [c for c in nb.cells if "def cmc_curve" not in c.source]
    with pytest.raises(ValueError, match="cmc_curve"):
        grade.inject_solutions(nb, EXERCISE / "solutions.py")


# --------------------------------------------------------------------------- executed notebooks


def _student_copy(folder: Path) -> Path:
    """What a student gets: the notebook pair and the public checks (no hidden/, no solutions)."""
    folder.mkdir()
    for name in (NOTEBOOK.name, NOTEBOOK.with_suffix(".ipynb").name):
        shutil.copy(EXERCISE / name, folder / name)
    shutil.copytree(EXERCISE / "tests", folder / "tests")
    return folder / NOTEBOOK.name


def _execute(source: Path, build: Path):
    env = course.kernel_env("smoke", build, {})
    run = course.execute_notebook(source, env, timeout=240)  # raises if any cell fails
    checks = {}
    for cell in run.nb.cells:
        for question in QUESTIONS:
            if cell.cell_type == "code" and cell.source.strip() == f'grader.check("{question}")':
                [result] = [o for o in cell.outputs if o.output_type == "execute_result"]
                checks[question] = result.data["text/plain"]
    assert set(checks) == set(QUESTIONS)
    return checks, read_results(build / "results" / "ex00.json")


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_unmodified_notebook_runs_and_fails_each_check(tmp_path):
    source = _student_copy(tmp_path / "student")
    checks, recorded = _execute(source, tmp_path / "build")
    for question, text in checks.items():
        assert text.startswith(f"{question} results:\n"), text
        assert "All test cases passed" not in text and "✅" not in text
        assert f"NotImplementedError: {question}: write" in text and "Hint:" in text
    assert recorded == {"checks_passed": 0, "checks_total": 4, "passed": []}


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_notebook_with_solutions_passes_every_check(tmp_path):
    source = _student_copy(tmp_path / "solved")
    nb = jupytext.read(source)
    grade.inject_solutions(nb, EXERCISE / "solutions.py")
    jupytext.write(nb, source, fmt="py:percent")
    checks, recorded = _execute(source, tmp_path / "build")
    for question, text in checks.items():
        assert text.startswith(f"{question} results: All test cases passed!"), text
    assert recorded == {"checks_passed": 4, "checks_total": 4, "passed": list(QUESTIONS)}


def _grade(tmp_path: Path, *args: str) -> dict[str, float]:
    """Run grade.py in a fresh process; return otter's score per check file."""
    out = tmp_path / "out"
    env = {**os.environ, "PYDEVD_DISABLE_FILE_VALIDATION": "1"}
    done = subprocess.run(
        [sys.executable, str(GRADE_SCRIPT), "00_fundamentals", *args, "--output", str(out)],
        capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    tests = json.loads((out / "results.json").read_text())["tests"]
    return {t["name"]: t["score"] for t in tests if "score" in t}


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_grade_script_gives_solutions_full_marks(tmp_path):
    scores = _grade(tmp_path, "--solutions")
    assert scores == {name: 1 for q in QUESTIONS for name in (q, f"{q}_hidden")}
    assert not (tmp_path / ".OTTER_LOG").exists()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_grade_script_gives_the_unmodified_notebook_nothing(tmp_path):
    scores = _grade(tmp_path, str(NOTEBOOK.with_suffix(".ipynb")))
    assert scores == {name: 0 for q in QUESTIONS for name in (q, f"{q}_hidden")}
