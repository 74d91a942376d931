"""exercises/02_feature_learning: the otter checks, the student notebook and the instructor grader.

Same structure as tests/test_exercises.py (chapter 0): in-process tests run the checks on the
reference solutions, on the notebook's own stubs and on plausible wrong answers; the slow tests
execute the student notebook (as shipped, and with the solutions pasted in) and grade.py.
The generic helpers (_check, _load_module, _statements, the loaded grade.py) come from there.
"""

from __future__ import annotations

import ast
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import jupytext
import nbformat
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from otter.test_files.exception_test import ExceptionTestFile
from test_exercises import _check, _load_module, _statements, grade
from torch import nn

from reidlib import course
from reidlib.feature_learning.mean_teacher import ema_update as reference_ema
from reidlib.feature_learning.memory import ClusterMemory
from reidlib.feature_learning.memory import momentum_update as reference_momentum
from reidlib.notebook import find_repo_root, read_results
from reidlib.training.losses import batch_hard_triplet_loss

ROOT = find_repo_root(Path(__file__).parent)
EXERCISE = ROOT / "exercises" / "02_feature_learning"
NOTEBOOK = EXERCISE / "02_feature_learning.py"
GRADE_SCRIPT = ROOT / "exercises" / "grade.py"
QUESTIONS = {
    "q1": "batch_hard_mining",
    "q2": "cluster_contrast_loss",
    "q3": "momentum_update",
    "q4": "ema_update",
}

solutions = _load_module(EXERCISE / "solutions.py", "exercises_02_solutions")
SOLVED = {function: getattr(solutions, function) for function in QUESTIONS.values()}
public_q1 = _load_module(EXERCISE / "tests" / "q1.py", "exercises_02_public_q1")


def _public(question: str) -> Path:
    return EXERCISE / "tests" / f"{question}.py"


def _hidden(question: str) -> Path:
    return EXERCISE / "hidden" / f"{question}_hidden.py"


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
    for sub, suffix in (("tests", ""), ("hidden", "_hidden")):
        assert sorted(p.name for p in (EXERCISE / sub).glob("*.py")) == sorted(
            f"{q}{suffix}.py" for q in QUESTIONS
        )


def test_notebook_starts_with_setup_and_checks_each_question():
    cells = jupytext.read(NOTEBOOK).cells
    code = [c.source.strip() for c in cells if c.cell_type == "code"]
    assert code[0] == 'from reidlib.notebook import setup\n\nsession = setup("ex02")'
    for question in QUESTIONS:
        assert f'grader.check("{question}")' in code, f"no check cell for {question}"
    assert f"questions = {list(QUESTIONS)!r}".replace("'", '"') in code[-1]
    assert course.Notebook(NOTEBOOK, "exercise").chapter == "ex02"


def test_grade_lists_this_exercise(capsys, tmp_path):
    assert grade.main(["99_nothing", "x.ipynb"]) == 2
    assert "02_feature_learning" in capsys.readouterr().err
    names = grade.collect_checks(EXERCISE, tmp_path)
    assert sorted(names) == sorted([f"{q}.py" for q in QUESTIONS] + [
        f"{q}_hidden.py" for q in QUESTIONS
    ])


# --------------------------------------------------------------------------- checks, in-process


@pytest.mark.parametrize("question", QUESTIONS)
def test_solutions_pass_public_and_hidden_checks(question):
    for path in (_public(question), _hidden(question)):
        test = _check(path, SOLVED)
        assert test.passed_all, test.summary()


@pytest.mark.parametrize("question", QUESTIONS)
def test_each_stub_fails_only_its_own_checks(question):
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


@pytest.mark.parametrize("question", QUESTIONS)
def test_missing_function_gets_a_clear_message(question):
    test = _check(_public(question), {})  # the student deleted or never ran the cell
    assert not test.passed_all
    assert f"define a function called {QUESTIONS[question]}" in test.summary()


# Plausible wrong answers. "sneaky" ones pass every public check: only hidden checks catch them.
def _masks(labels):
    labels = np.asarray(labels)
    same = labels[:, None] == labels[None, :]
    return same, ~np.eye(len(labels), dtype=bool)


def _mine_self_as_positive(dist, labels):
    same, _ = _masks(labels)  # the anchor is its own (distance 0) positive, as in the loss
    dist = np.asarray(dist, dtype=float)
    return (np.where(same, dist, -np.inf).argmax(axis=1),
            np.where(~same, dist, np.inf).argmin(axis=1))


def _mine_self_as_positive_but_minus_one(dist, labels):
    # Self included in the max, -1 for lone anchors: wrong only when another positive ties
    # with the anchor at distance 0 and has a higher index (a duplicate image).
    same, others = _masks(labels)
    positives, negatives = _mine_self_as_positive(dist, labels)
    positives[~(same & others).any(axis=1)] = -1
    return positives, negatives


def _mine_closest_positive(dist, labels):
    same, others = _masks(labels)
    dist = np.asarray(dist, dtype=float)
    positives = np.where(same & others, dist, np.inf).argmin(axis=1)
    positives[~(same & others).any(axis=1)] = -1
    return positives, np.where(~same, dist, np.inf).argmin(axis=1)


def _mine_negative_among_all(dist, labels):
    same, others = _masks(labels)
    positives, _ = solutions.batch_hard_mining(dist, labels)
    return positives, np.where(others, np.asarray(dist, dtype=float), np.inf).argmin(axis=1)


def _mine_zero_masking(dist, labels):
    same, others = _masks(labels)  # masked entries 0 instead of -inf: a lone anchor gets 0
    dist = np.asarray(dist, dtype=float)
    return (np.where(same & others, dist, 0.0).argmax(axis=1),
            np.where(~same, dist, np.inf).argmin(axis=1))


def _mine_fill_diagonal(dist, labels):
    same, others = _masks(labels)
    np.fill_diagonal(dist, -np.inf)  # changes the caller's array
    positives = np.where(same, dist, -np.inf).argmax(axis=1)
    positives[~(same & others).any(axis=1)] = -1
    return positives, np.where(~same, dist, np.inf).argmin(axis=1)


def _mine_ties_to_last(dist, labels):
    dist, labels = np.asarray(dist)[::-1, ::-1], np.asarray(labels)[::-1]
    positives, negatives = solutions.batch_hard_mining(dist, labels)
    last = len(labels) - 1
    return np.where(positives < 0, -1, last - positives)[::-1], (last - negatives)[::-1]


def _ccl_no_normalise(embedding, centroids, target, temperature):
    x = torch.atleast_2d(embedding)
    return F.cross_entropy(x @ centroids.T / temperature, torch.as_tensor(target).reshape(-1))


def _ccl_times_temperature(embedding, centroids, target, temperature):
    x = F.normalize(torch.atleast_2d(embedding), dim=1)
    return F.cross_entropy(x @ centroids.T * temperature, torch.as_tensor(target).reshape(-1))


def _ccl_sum(embedding, centroids, target, temperature):
    x = F.normalize(torch.atleast_2d(embedding), dim=1)
    return F.cross_entropy(x @ centroids.T / temperature, torch.as_tensor(target).reshape(-1),
                           reduction="sum")


def _ccl_positive_not_in_denominator(embedding, centroids, target, temperature):
    x = F.normalize(torch.atleast_2d(embedding), dim=1)
    logits = x @ centroids.T / temperature
    targets = torch.as_tensor(target).reshape(-1)
    own = F.one_hot(targets, logits.shape[1]).bool()
    others = logits.masked_fill(own, float("-inf")).logsumexp(dim=1)
    return (others - logits[own]).mean()


def _ccl_normalise_dim0(embedding, centroids, target, temperature):
    x = torch.atleast_2d(F.normalize(embedding, dim=0))  # right for one embedding only
    return F.cross_entropy(x @ centroids.T / temperature, torch.as_tensor(target).reshape(-1))


def _ccl_item(embedding, centroids, target, temperature):
    return torch.tensor(solutions.cluster_contrast_loss(embedding, centroids, target,
                                                        temperature).item())


def _ccl_normalise_in_place(embedding, centroids, target, temperature):
    x = torch.atleast_2d(embedding)
    x.div_(x.norm(dim=1, keepdim=True))  # changes the caller's tensor, breaks autograd
    return F.cross_entropy(x @ centroids.T / temperature, torch.as_tensor(target).reshape(-1))


def _rows(index, feature):
    rows = torch.as_tensor(index).reshape(-1).tolist()
    return rows, feature.reshape(len(rows), -1)


def _mu_no_normalise(memory, index, feature, momentum):
    memory = memory.clone()
    for row, f in zip(*_rows(index, feature), strict=True):
        memory[row] = momentum * memory[row] + (1 - momentum) * f
    return memory


def _mu_swapped(memory, index, feature, momentum):
    return solutions.momentum_update(memory, index, feature, 1 - momentum)


def _mu_vectorised(memory, index, feature, momentum):
    memory = memory.clone()
    rows, features = _rows(index, feature)  # a repeated row: the last write wins, from the old
    memory[rows] = F.normalize(momentum * memory[rows] + (1 - momentum) * features, dim=1)
    return memory


def _mu_in_place(memory, index, feature, momentum):
    for row, f in zip(*_rows(index, feature), strict=True):
        memory[row] = F.normalize(momentum * memory[row] + (1 - momentum) * f, dim=0)
    return memory


def _mu_normalise_at_end(memory, index, feature, momentum):
    rows, _ = _rows(index, feature)
    memory = _mu_no_normalise(memory, index, feature, momentum)
    memory[rows] = F.normalize(memory[rows], dim=1)
    return memory


def _mu_list_or_int_only(memory, index, feature, momentum):
    rows = index if isinstance(index, list) else [index]  # a tensor becomes one "row"
    memory = memory.clone()
    for row, f in zip(rows, feature.reshape(len(rows), -1), strict=True):
        memory[row] = F.normalize(momentum * memory[row] + (1 - momentum) * f, dim=-1)
    return memory


def _ema_swapped(teacher, student, alpha):
    return solutions.ema_update(teacher, student, 1 - alpha)


def _ema_in_place(teacher, student, alpha):
    for name in teacher:
        teacher[name] *= alpha
        teacher[name] += (1 - alpha) * student[name]
    return teacher


def _ema_teacher_names_only(teacher, student, alpha):
    return {n: alpha * teacher[n] + (1 - alpha) * student[n] for n in teacher}  # KeyError


def _ema_one_sided_check(teacher, student, alpha):
    missing = set(teacher) - set(student)
    if missing:
        raise ValueError(f"the student lacks {sorted(missing)}")
    return {n: alpha * teacher[n] + (1 - alpha) * student[n] for n in teacher}


def _ema_torch_only(teacher, student, alpha):
    if set(teacher) != set(student):
        raise ValueError(f"names differ: {sorted(set(teacher) ^ set(student))}")
    return {n: torch.lerp(teacher[n], student[n], 1 - alpha) for n in teacher}


WRONG = [
    ("q1", _mine_self_as_positive, False),
    ("q1", _mine_self_as_positive_but_minus_one, True),
    ("q1", _mine_closest_positive, False),
    ("q1", _mine_negative_among_all, False),
    ("q1", _mine_zero_masking, False),
    ("q1", _mine_fill_diagonal, False),
    ("q1", _mine_ties_to_last, False),
    ("q2", _ccl_no_normalise, False),
    ("q2", _ccl_times_temperature, False),
    ("q2", _ccl_sum, False),
    ("q2", _ccl_positive_not_in_denominator, False),
    ("q2", _ccl_normalise_dim0, False),
    ("q2", _ccl_item, True),
    ("q2", _ccl_normalise_in_place, True),
    ("q3", _mu_no_normalise, False),
    ("q3", _mu_swapped, False),
    ("q3", _mu_vectorised, False),
    ("q3", _mu_in_place, False),
    ("q3", _mu_normalise_at_end, False),
    ("q3", _mu_list_or_int_only, True),
    ("q4", _ema_swapped, False),
    ("q4", _ema_in_place, False),
    ("q4", _ema_teacher_names_only, False),
    ("q4", _ema_one_sided_check, True),
    ("q4", _ema_torch_only, True),
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
    summary = _check(_public("q1"), {"batch_hard_mining": _mine_self_as_positive}).summary()
    assert "returned positives [3, 3, 2, 0, 4], expected [3, 3, -1, 0, -1]" in summary
    assert "an anchor is never its own positive" in summary and "Hint: same = labels" in summary
    summary = _check(_public("q1"), {"batch_hard_mining": _mine_fill_diagonal}).summary()
    assert "changed the dist or labels it was given" in summary
    summary = _check(_public("q2"), {"cluster_contrast_loss": _ccl_no_normalise}).summary()
    assert "returned 10.0000, expected 2.1269" in summary and "(0.6, 0.8)" in summary
    summary = _check(_hidden("q2"), {"cluster_contrast_loss": _ccl_item}).summary()
    assert "has no gradient" in summary
    summary = _check(_public("q3"), {"momentum_update": _mu_vectorised}).summary()
    assert "expected [[0.3827, 0.9239], [0.7071, 0.7071]]" in summary
    assert "67.5 degrees" in summary and "weight of the OLD vector" in summary
    summary = _check(_public("q4"), {"ema_update": _ema_teacher_names_only}).summary()
    assert "raised KeyError" in summary and "expected a ValueError naming 'classifier'" in summary
    summary = _check(_public("q4"), {"ema_update": lambda *args: None}).summary()
    assert "did you forget the return?" in summary


# --------------------------------------------------------------------------- hand-made data


def test_q1_hand_made_answers_agree_with_a_loop_and_reidlib():
    dist = public_q1._line(public_q1.POSITIONS)
    expected = ([3, 3, -1, 0, -1], [2, 2, 1, 4, 3])
    assert public_q1._brute_force(dist, public_q1.LABELS) == expected
    # Where every identity has two images, reidlib's loss (anchor counted as its own
    # positive, at distance 0) is the loss of the mined triplets.
    positions = np.array([0.0, 2.0, 3.0, 5.0, 6.5, 9.0])
    labels = np.array([1, 1, 2, 1, 2, 2])
    dist = public_q1._line(positions)
    positives, negatives = solutions.batch_hard_mining(dist, labels)
    gap = dist[np.arange(6), positives] - dist[np.arange(6), negatives]
    loss = batch_hard_triplet_loss(torch.tensor(positions)[:, None], torch.as_tensor(labels))
    assert float(loss) == pytest.approx(np.maximum(0.3 + gap, 0).mean(), abs=1e-5)


def test_q2_hand_made_value_agrees_with_cluster_memory():
    # Features (1, 0) and (0, 1), one per cluster, make the centroids of the public example.
    memory = ClusterMemory(torch.eye(2), torch.tensor([0, 1]), temperature=0.1)
    loss = memory(torch.tensor([[3.0, 4.0], [3.0, 4.0]]), torch.tensor([0, 1]))
    assert float(loss) == pytest.approx((math.log(1 + math.e**2) + math.log(1 + math.e**-2)) / 2)


def test_q3_hand_made_value_agrees_with_reidlib():
    bank = torch.eye(2, dtype=torch.float64)
    features = torch.tensor([[0.0, 1.0], [0.0, 1.0], [1.0, 0.0]], dtype=torch.float64)
    reference_momentum(bank, torch.tensor([0, 0, 1]), features, 0.5)
    angle = math.radians(67.5)
    r = 1 / math.sqrt(2)
    expected = torch.tensor([[math.cos(angle), math.sin(angle)], [r, r]], dtype=torch.float64)
    assert torch.allclose(bank, expected)


def test_q4_hand_made_value_agrees_with_reidlib():
    teacher, student = nn.Linear(2, 1), nn.Linear(2, 1)
    with torch.no_grad():
        teacher.weight.copy_(torch.tensor([[1.0, 2.0]]))
        teacher.bias.fill_(0.0)
        student.weight.copy_(torch.tensor([[3.0, 6.0]]))
        student.bias.fill_(1.0)
    reference_ema(teacher, student, 0.75)
    assert teacher.weight.tolist() == [[1.5, 3.0]] and teacher.bias.tolist() == [0.25]


# --------------------------------------------------------------------------- no solutions leak


def test_solutions_are_not_in_the_student_notebook():
    solution_tree = ast.parse((EXERCISE / "solutions.py").read_text())
    bodies = [
        stmt
        for node in solution_tree.body
        if isinstance(node, ast.FunctionDef)
        for stmt in node.body[1:]  # after the docstring
    ]
    assert len(bodies) >= 10
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


def test_inject_solutions_replaces_each_stub():
    nb = jupytext.read(NOTEBOOK)
    assert sorted(grade.inject_solutions(nb, EXERCISE / "solutions.py")) == sorted(SOLVED)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert "NotImplementedError" not in code


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
    return checks, read_results(build / "results" / "ex02.json")


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_unmodified_notebook_runs_and_fails_each_check(tmp_path):
    source = _student_copy(tmp_path / "student")
    checks, recorded = _execute(source, tmp_path / "build")
    for question, text in checks.items():
        assert text.startswith(f"{question} results:\n"), text
        assert "All test cases passed" not in text and "✅" not in text
        assert f"NotImplementedError: {question}: write" in text and "Hint:" in text
    assert recorded == {"checks_passed": 0, "checks_total": len(QUESTIONS), "passed": []}


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
    assert recorded == {
        "checks_passed": len(QUESTIONS), "checks_total": len(QUESTIONS), "passed": list(QUESTIONS)
    }


def _grade(tmp_path: Path, *args: str) -> dict[str, float]:
    """Run grade.py in a fresh process; return otter's score per check file."""
    out = tmp_path / "out"
    env = {**os.environ, "PYDEVD_DISABLE_FILE_VALIDATION": "1"}
    done = subprocess.run(
        [sys.executable, str(GRADE_SCRIPT), "02_feature_learning", *args, "--output", str(out)],
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
