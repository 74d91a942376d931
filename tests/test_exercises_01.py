"""exercises/01_pseudo_labels: the otter checks, the student notebook and the instructor grader.

Same structure as tests/test_exercises.py (chapter 0): in-process tests run the checks on the
reference solutions, on the notebook's own stubs and on plausible wrong answers; the slow tests
execute the student notebook (as shipped, and with the solutions pasted in) and grade.py.
The generic helpers (_check, _load_module, _statements, the loaded grade.py) come from there.
"""

from __future__ import annotations

import ast
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
from otter.test_files.exception_test import ExceptionTestFile
from test_exercises import _check, _load_module, _statements, grade

from reidlib import course
from reidlib.notebook import find_repo_root, read_results
from reidlib.pseudo_labels import buc_labels, label_quality
from reidlib.pseudo_labels.jaccard import reciprocal_sets

ROOT = find_repo_root(Path(__file__).parent)
EXERCISE = ROOT / "exercises" / "01_pseudo_labels"
NOTEBOOK = EXERCISE / "01_pseudo_labels.py"
GRADE_SCRIPT = ROOT / "exercises" / "grade.py"
QUESTIONS = {
    "q1": "k_reciprocal_set",
    "q2": "buc_merge_cost",
    "q2b": "buc_next_merge",
    "q3": "purity",
    "q4": "pairwise_precision_recall",
}

solutions = _load_module(EXERCISE / "solutions.py", "exercises_01_solutions")
SOLVED = {function: getattr(solutions, function) for function in QUESTIONS.values()}
public_q1 = _load_module(EXERCISE / "tests" / "q1.py", "exercises_01_public_q1")
public_q2b = _load_module(EXERCISE / "tests" / "q2b.py", "exercises_01_public_q2b")


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
    assert code[0] == 'from reidlib.notebook import setup\n\nsession = setup("ex01")'
    for question in QUESTIONS:
        assert f'grader.check("{question}")' in code, f"no check cell for {question}"
    assert f"questions = {list(QUESTIONS)!r}".replace("'", '"') in code[-1]
    assert course.Notebook(NOTEBOOK, "exercise").chapter == "ex01"


def test_grade_lists_this_exercise(capsys, tmp_path):
    assert grade.main(["99_nothing", "x.ipynb"]) == 2
    assert "01_pseudo_labels" in capsys.readouterr().err
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
def _neighbours(dist, p, k):
    others = np.delete(np.arange(len(dist)), p)
    return {p, *others[np.argsort(dist[p, others], kind="stable")][:k].tolist()}


def _recip_k_with_self(dist, i, k):
    # SpCL / Cluster Contrast code's convention: k neighbours self included (one too few).
    near = [set(np.argsort(dist[p], kind="stable")[:k].tolist()) for p in range(len(dist))]
    return np.array(sorted(j for j in near[i] if i in near[j]))


def _recip_forgets_reciprocity(dist, i, k):
    return np.array(sorted(_neighbours(dist, i, k)))


def _recip_without_self(dist, i, k):
    return np.array(sorted(j for j in _neighbours(dist, i, k) if j != i and i in
                           _neighbours(dist, j, k)), dtype=int)


def _recip_ties_to_higher_index(dist, i, k):
    def near(p):
        others = np.delete(np.arange(len(dist)), p)[::-1]
        return {p, *others[np.argsort(dist[p, others], kind="stable")][:k].tolist()}

    return np.array(sorted(j for j in near(i) if i in near(j)))


def _recip_ranks_the_diagonal(dist, i, k):
    # Sorts the whole row and keeps k + 1: right unless another image is at distance 0.
    near = [set(np.argsort(dist[p], kind="stable")[: k + 1].tolist()) for p in range(len(dist))]
    return np.array(sorted(j for j in near[i] if i in near[j]), dtype=int)


def _cost_average_linkage(dist, labels, a, b, lam):
    labels = np.asarray(labels)
    block = np.asarray(dist)[np.ix_(labels == a, labels == b)]
    return float(block.mean() + lam * ((labels == a).sum() + (labels == b).sum()))  # HCT, Eq. 3


def _cost_no_diversity(dist, labels, a, b, lam):
    labels = np.asarray(labels)
    return float(np.asarray(dist)[np.ix_(labels == a, labels == b)].min())


def _cost_product_of_sizes(dist, labels, a, b, lam):
    labels = np.asarray(labels)
    block = np.asarray(dist)[np.ix_(labels == a, labels == b)]
    return float(block.min() + lam * (labels == a).sum() * (labels == b).sum())


def _cost_ids_as_indices(dist, labels, a, b, lam):
    labels = np.asarray(labels)
    return float(np.asarray(dist)[a, b] + lam * ((labels == a).sum() + (labels == b).sum()))


def _next_ignores_lam(dist, labels, lam):
    return solutions.buc_next_merge(dist, labels, 0.0)


def _next_last_of_ties(dist, labels, lam):
    ids = np.unique(labels).tolist()
    pairs = [(a, b) for n, a in enumerate(ids) for b in ids[n + 1 :]]
    costs = [solutions.buc_merge_cost(dist, labels, a, b, lam) for a, b in pairs]
    return pairs[len(costs) - 1 - int(np.argmin(costs[::-1]))]


def _next_first_seen_order(dist, labels, lam):
    ids = list(dict.fromkeys(np.asarray(labels).tolist()))  # order of appearance, not sorted
    pairs = [(a, b) for n, a in enumerate(ids) for b in ids[n + 1 :]]
    costs = [solutions.buc_merge_cost(dist, labels, a, b, lam) for a, b in pairs]
    return pairs[int(np.argmin(costs))]


def _purity_outliers_as_cluster(pred, true):
    pred, true = np.asarray(pred), np.asarray(true)
    majority = sum(np.unique(true[pred == c], return_counts=True)[1].max() for c in set(pred))
    return float(majority / len(pred))


def _purity_over_all_images(pred, true):
    pred = np.asarray(pred)
    kept = (pred != -1).sum()
    return solutions.purity(pred, true) * kept / len(pred)  # outliers counted as wrong


def _purity_mean_of_clusters(pred, true):
    pred, true = np.asarray(pred), np.asarray(true)
    keep = pred != -1
    pred, true = pred[keep], true[keep]
    if not keep.any():
        return float("nan")
    shares = [np.unique(true[pred == c], return_counts=True)[1].max() / (pred == c).sum()
              for c in np.unique(pred)]
    return float(np.mean(shares))  # every cluster weighs the same, whatever its size


def _purity_swapped(pred, true):
    pred, true = np.asarray(pred), np.asarray(true)
    keep = pred != -1
    return solutions.purity(true[keep], pred[keep])  # majority cluster of each identity


def _purity_first_member(pred, true):
    # "A cluster's identity is the one of its first image": right whenever that one is the
    # majority, as in every public example.
    pred, true = np.asarray(pred), np.asarray(true)
    keep = pred != -1
    if not keep.any():
        return float("nan")
    pred, true = pred[keep], true[keep]
    right = sum((true[pred == c] == true[pred == c][0]).sum() for c in np.unique(pred))
    return float(right / len(pred))


def _pairs_outliers_as_cluster(pred, true):
    pred = np.where(np.asarray(pred) == -1, 10**6, np.asarray(pred))
    return solutions.pairwise_precision_recall(pred, true)


def _pairs_ordered_with_self(pred, true):
    pred, true = np.asarray(pred), np.asarray(true)
    keep = pred != -1
    pred, true = pred[keep], true[keep]
    cluster = pred[:, None] == pred[None, :]
    person = true[:, None] == true[None, :]
    both = (cluster & person).sum()
    with np.errstate(invalid="ignore"):  # 0 / 0 when every image is an outlier
        return float(both / cluster.sum()), float(both / person.sum())


def _pairs_swapped(pred, true):
    precision, recall = solutions.pairwise_precision_recall(pred, true)
    return recall, precision


def _pairs_zero_not_nan(pred, true):
    return tuple(0.0 if np.isnan(x) else x for x in solutions.pairwise_precision_recall(pred, true))


WRONG = [
    ("q1", _recip_k_with_self, False),
    ("q1", _recip_forgets_reciprocity, False),
    ("q1", _recip_without_self, False),
    ("q1", _recip_ties_to_higher_index, False),
    ("q1", _recip_ranks_the_diagonal, True),
    ("q2", _cost_average_linkage, False),
    ("q2", _cost_no_diversity, False),
    ("q2", _cost_product_of_sizes, False),
    ("q2", _cost_ids_as_indices, False),
    ("q2b", _next_ignores_lam, False),
    ("q2b", _next_last_of_ties, False),
    ("q2b", _next_first_seen_order, False),
    ("q3", _purity_outliers_as_cluster, False),
    ("q3", _purity_over_all_images, False),
    ("q3", _purity_mean_of_clusters, False),
    ("q3", _purity_swapped, False),
    ("q3", _purity_first_member, True),
    ("q4", _pairs_outliers_as_cluster, False),
    ("q4", _pairs_ordered_with_self, False),
    ("q4", _pairs_swapped, False),
    ("q4", _pairs_zero_not_nan, False),
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
    summary = _check(_public("q1"), {"k_reciprocal_set": _recip_forgets_reciprocity}).summary()
    assert "k_reciprocal_set(line, i=3, k=2) returned [2, 3, 4], expected [3, 4]" in summary
    assert "N(2, 2) = {2, 1, 0} does not hold 3" in summary and "Hint: write a helper" in summary
    summary = _check(_public("q1"), {"k_reciprocal_set": lambda d, i, k: [3, 1]}).summary()
    assert "return the indices sorted" in summary
    summary = _check(_hidden("q1"), {"k_reciprocal_set": _recip_ranks_the_diagonal}).summary()
    assert "three identical images" in summary and "dist[p, p] left out" in summary
    summary = _check(_public("q2b"), {"buc_next_merge": _next_ignores_lam}).summary()
    assert "returned (0, 1), expected (1, 2)" in summary and "D(1, 2) = 1.5" in summary
    summary = _check(_public("q3"), {"purity": _purity_outliers_as_cluster}).summary()
    assert "returned 0.8571, expected 0.8333" in summary and "outlier is left out" in summary
    summary = _check(_public("q4"), {"pairwise_precision_recall": _pairs_zero_not_nan}).summary()
    assert "expected (nan, 0.0000)" in summary and "precision is undefined" in summary
    summary = _check(_public("q2"), {"buc_merge_cost": lambda *args: None}).summary()
    assert "did you forget the return?" in summary


# --------------------------------------------------------------------------- hand-made data


def test_q1_hand_made_answers_agree_with_reidlib():
    # The line example's expected sets, from reidlib's reciprocal_sets on a stable argsort.
    order = np.argsort(public_q1.LINE, axis=1, kind="stable")
    assert (order[:, 0] == np.arange(6)).all()  # every image is its own nearest
    for k, expected in ((2, [[0, 1, 2]] * 3 + [[3, 4]] * 2 + [[5]]),
                        (1, [[0, 1], [0, 1], [2], [3, 4], [3, 4], [5]])):
        sets = reciprocal_sets(order[:, : k + 1])
        assert [sets[i].indices.tolist() for i in range(6)] == expected


def test_q2b_hand_made_answer_agrees_with_buc_labels():
    # The notebook's example: BUC from five singletons merges the first three images, then
    # decides between (cluster, 1.5) and (1.5, 3) as the public check expects.
    positions = public_q2b.POSITIONS[:, None]
    for lam, expected in ((0.0, [0, 0, 0, 0, 1]), (0.5, [0, 0, 0, 1, 1])):
        assert buc_labels(positions, 3, lam).tolist() == [0, 0, 0, 1, 2]
        assert buc_labels(positions, 2, lam).tolist() == expected


def test_q3_q4_worked_example_agrees_with_label_quality():
    quality = label_quality([0, 0, 0, 1, 1, 2, -1], [5, 5, 7, 7, 7, 7, 5])
    assert quality["purity"] == pytest.approx(5 / 6)
    assert quality["pairwise_precision"] == pytest.approx(2 / 4)
    assert quality["pairwise_recall"] == pytest.approx(2 / 7)


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
    return checks, read_results(build / "results" / "ex01.json")


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
        [sys.executable, str(GRADE_SCRIPT), "01_pseudo_labels", *args, "--output", str(out)],
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
