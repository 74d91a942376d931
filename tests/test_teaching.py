"""What a reader gets: clean built pages, an answer to every question, one numbering.

- The runner renders notebooks without progress bars or live widgets, and
  ``course lint-build`` finds what should never reach a page (a progress bar, a frozen
  widget, an echoed dict, an error or a traceback).
- Every question a chapter asks has an answer heading in ``docs/instructor/<id>.md`` that
  quotes its number and first words; ``docs/instructor.md`` indexes those files.
- README, the runner's listing and the exercises agree on the notebooks and their ids.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import jupytext
import nbformat
import pytest

from reidlib import course

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = course.discover(ROOT / "notebooks", ROOT / "exercises")
CHAPTERS = [nb for nb in NOTEBOOKS if nb.role == "chapter"]
FIRST_WORDS = 4  # an answer heading quotes at least this many of the question's first words


# ----------------------------------------------------------------------------- questions


def _words(text: str) -> list[str]:
    """Lower-case words without markdown emphasis, code ticks or surrounding punctuation."""
    words = (w.strip(".,;:!?()[]\"'") for w in re.sub(r"[*_`]", " ", text).lower().split())
    return [w for w in words if w]


_SINGLE = re.compile(
    r"^\*\*Question\s*(?P<number>\d+[a-z]?(?:\.\d+)*)?\s*[.:]?\s*\*\*\s*[.:]?\s*(?P<text>.*)$"
)
_LIST_HEAD = re.compile(r"^(?:#{1,6}\s*Questions\b.*|\*\*Questions\s*[.:]?\*\*\s*[.:]?\s*)$")
_ITEM = re.compile(r"^(?P<number>\d+[a-z]?)[.)]\s+(?P<text>\S.*)$")


def questions(markdown: str) -> list[tuple[str | None, str]]:
    """``(number or None, text)`` of every question in one markdown cell.

    A question is ``**Question.** text`` / ``**Question 3.** text`` (its text runs to the
    next blank line) or an item ``N. text`` of a list that follows a ``Questions`` heading
    (``## Questions`` or ``**Questions.**``); the list ends at a heading or a line that is
    neither an item nor its indented continuation.
    """
    found: list[list] = []
    lines = markdown.splitlines()
    in_list = False
    current: list | None = None
    for line in lines:
        stripped = line.strip()
        single = _SINGLE.match(stripped)
        if single:
            current = [single.group("number"), single.group("text")]
            found.append(current)
            in_list = False
            continue
        if _LIST_HEAD.match(stripped):
            in_list, current = True, None
            continue
        item = _ITEM.match(stripped) if in_list and line[:1].isdigit() else None
        if item:
            current = [item.group("number"), item.group("text")]
            found.append(current)
        elif not stripped:
            current = None if not in_list else current
        elif stripped.startswith("#"):
            in_list, current = False, None
        elif current is not None and (line.startswith(" ") or not in_list):
            current[1] += " " + stripped
        elif in_list:
            in_list, current = False, None
    return [(number, text) for number, text in found]


def notebook_questions(source: Path) -> list[tuple[str | None, str]]:
    nb = jupytext.read(source)
    return [q for cell in nb.cells if cell.cell_type == "markdown" for q in questions(cell.source)]


def answer_headings(markdown: str) -> list[str]:
    return [m.group(1) for m in re.finditer(r"^##\s+(.+?)\s*$", markdown, re.M)]


def has_answer(question: tuple[str | None, str], headings: list[str]) -> bool:
    """A ``##`` heading that holds the question's number (when it has one) and its first
    words, in order (markdown and punctuation aside)."""
    number, text = question
    wanted = _words(text)[:FIRST_WORDS]
    for heading in headings:
        words = _words(heading)
        if number is not None and number.lower() not in words and not any(
            w.endswith(number.lower()) and w[: -len(number)] in ("q", "question") for w in words
        ):
            continue
        n = len(wanted)
        if any(words[i : i + n] == wanted for i in range(len(words) - n + 1)):
            return True
    return False


def missing_answers(source: Path, answers: Path) -> list[str]:
    headings = answer_headings(answers.read_text(encoding="utf-8")) if answers.is_file() else []
    return [
        f"{number + '. ' if number else ''}{' '.join(text.split()[:8])}..."
        for number, text in notebook_questions(source)
        if not has_answer((number, text), headings)
    ]


def answers_file(notebook: course.Notebook) -> Path:
    name = "demo" if notebook.role == "demo" else notebook.chapter
    return ROOT / "docs" / "instructor" / f"{name}.md"


def test_questions_are_found():
    text = (
        "Intro. No question here.\n\n"
        "**Question.** The reciprocal check throws away neighbours. Which kind\n"
        "of true match is it?\n\n"
        "**Question 3.** At a small `eps` most crops are grey.\n\n"
        "## Questions\n"
        "1. In section 4, why does subtracting each camera's mean help? What would it do\n"
        "   if every camera saw different people?\n"
        "2. The validation mAP is higher than the test mAP.\n"
        "\n"
        "## Summary\n"
        "1. Not a question: a summary list.\n"
    )
    found = questions(text)
    assert found == [
        (None, "The reciprocal check throws away neighbours. Which kind of true match is it?"),
        ("3", "At a small `eps` most crops are grey."),
        ("1", "In section 4, why does subtracting each camera's mean help? What would it do "
              "if every camera saw different people?"),
        ("2", "The validation mAP is higher than the test mAP."),
    ]


def test_answers_are_matched_by_number_and_first_words():
    headings = [
        "Question 1. In section 4, why does subtracting ...",
        "Q2 — The validation mAP is higher",
        "Question. The reciprocal check throws away neighbours",
    ]
    assert has_answer(("1", "In section 4, why does it help?"), headings)
    assert has_answer(("2", "The validation mAP is higher than the test mAP."), headings)
    assert has_answer((None, "The reciprocal check throws away neighbours."), headings)
    assert not has_answer(("3", "In section 4, why does it help?"), headings)  # wrong number
    assert not has_answer(("1", "In chapter 4, why does it help?"), headings)  # other words
    assert not has_answer((None, "BUC and HCT were given the true number"), headings)


def test_missing_answers_are_reported(tmp_path):
    source = tmp_path / "03_demo.py"
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("## Questions\n1. Why is the sky blue?\n2. Why not red?"),
        nbformat.v4.new_code_cell("x = 1"),
    ])
    source.write_text(jupytext.writes(nb, "py:percent"))
    answers = tmp_path / "03.md"
    assert missing_answers(source, answers) == ["1. Why is the sky blue?...", "2. Why not red?..."]
    answers.write_text("# Answers\n\n## 1. Why is the sky blue?\nRayleigh.\n")
    assert missing_answers(source, answers) == ["2. Why not red?..."]


@pytest.mark.parametrize("notebook", CHAPTERS, ids=[nb.name for nb in CHAPTERS])
def test_every_question_has_an_answer(notebook):
    answers = answers_file(notebook)
    assert notebook_questions(notebook.source), f"{notebook.source.name} asks no question"
    assert answers.is_file(), f"{notebook.source.name}: no answers file {answers}"
    missing = missing_answers(notebook.source, answers)
    assert not missing, (
        f"{answers.relative_to(ROOT)} has no '## <number>. <first words>' heading for:\n  "
        + "\n  ".join(missing)
    )


def test_instructor_index_lists_every_answers_file():
    index = (ROOT / "docs" / "instructor.md").read_text(encoding="utf-8")
    links = set(re.findall(r"\]\((instructor/[\w.-]+\.md)\)", index))
    for notebook in NOTEBOOKS:
        wanted = f"instructor/{answers_file(notebook).name}"
        assert wanted in links, f"docs/instructor.md does not link {wanted} ({notebook.name})"
        assert f"`{notebook.source.parent.relative_to(ROOT).as_posix()}" in index
    for link in links:
        assert (ROOT / "docs" / link).is_file(), f"docs/instructor.md links missing {link}"


# ----------------------------------------------------------------------------- numbering


def test_readme_names_every_notebook_the_runner_discovers():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for notebook in NOTEBOOKS:
        folder = notebook.source.parent.relative_to(ROOT).as_posix()
        path = f"`{folder}/{notebook.name}`" if notebook.kind == "chapter" else f"`{folder}`"
        assert path in readme, f"README does not name {path}"
    problems = course.readme_link_problems(ROOT / "README.md", NOTEBOOKS, ROOT,
                                           course.repository_url(ROOT))
    assert not problems, "\n".join(problems)


def test_readme_chapter_table_follows_the_runner():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = re.findall(r"^\| (\w+) \| `notebooks/(\w+)` \|", readme, re.M)
    in_order = [(nb.chapter.lstrip("0") or "0", nb.name) for nb in CHAPTERS]
    assert table == in_order, f"README's chapter rows {table} vs the runner's {in_order}"
    demos = [nb for nb in NOTEBOOKS if nb.role == "demo"]
    assert all(nb.name not in dict(table).values() for nb in demos)
    # every chapter part has its exercise notebook: 01a and 01b share exercises/01_...
    exercises = {nb.chapter for nb in NOTEBOOKS if nb.kind == "exercise"}
    for nb in CHAPTERS:
        assert "ex" + re.match(r"\d+", nb.chapter).group() in exercises, nb.name


def test_select_and_list_use_the_same_ids(capsys):
    chapters = [nb for nb in NOTEBOOKS if nb.kind == "chapter"]
    for nb in chapters:
        assert course.select(chapters, [nb.chapter]) == [nb]
        assert course.select(chapters, [nb.name]) == [nb]
    assert course.main(["list"]) == 0
    listed = [line.split()[:3] for line in capsys.readouterr().out.splitlines()]
    assert listed == [[nb.role, nb.chapter, nb.name] for nb in NOTEBOOKS]


# ----------------------------------------------------------------------------- clean builds

TINY = (
    "import os\nprint('progress', os.environ.get('REID_PROGRESS'))",
    # a library-style bar: shown only when progress_enabled() allows it
    "from tqdm.auto import tqdm\nfrom reidlib.utils import progress_enabled\n"
    "total = sum(i for i in tqdm(range(200), disable=not progress_enabled(True)))",
    # a bar that ignores the switch, and a bare widget: the exporter must drop both
    "import ipywidgets\nfor _ in tqdm(range(3)):\n    pass\nipywidgets.IntSlider(value=3)",
    "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\nplt.show()\nprint(total)",
)


def _tiny_notebook(path: Path, *cells: str) -> course.Notebook:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nb.metadata["jupytext"] = {"formats": "ipynb,py:percent"}
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python",
                                 "name": "python3"}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(jupytext.writes(nb, "py:percent"))
    return course.Notebook(path, "chapter")


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_runner_builds_pages_without_progress_bars_or_widgets(tmp_path):
    notebook = _tiny_notebook(tmp_path / "notebooks" / "00_tiny.py", *TINY)
    env = course.kernel_env("smoke", tmp_path / "build")
    raw = course.execute_notebook(notebook.source, env, timeout=120).nb
    # What the kernel produced: the switch reached it; the ungated bar and the slider are
    # widget outputs, which the lint finds in the raw notebook.
    assert raw.cells[0].outputs[0]["text"] == "progress 0\n"
    assert raw.cells[1].outputs == []  # the gated bar drew nothing
    raw_problems = course.lint_notebook(raw, "raw")
    assert any("a progress-bar widget" in p for p in raw_problems), raw_problems
    assert any("a widget output" in p for p in raw_problems), raw_problems

    build = tmp_path / "build"
    course.export_notebook(raw, build / "00_tiny.ipynb", build / "00_tiny.html")
    built = nbformat.read(build / "00_tiny.ipynb", as_version=4)
    html = (build / "00_tiny.html").read_text()
    outputs = json.dumps([cell.get("outputs", []) for cell in built.cells])
    for text in (outputs, html):
        assert course.WIDGET_VIEW not in text and course.WIDGET_STATE not in text
        assert "it/s]" not in text and "%|" not in text
    assert "IntSlider" not in outputs and "HBox" not in outputs
    assert "widgets" not in built.metadata
    assert any("image/png" in o.get("data", {}) for o in built.cells[3].outputs)  # kept
    assert course.lint_build(build) == []
    assert course.main(["lint-build", str(build)]) == 0


def _executed(*outputs_per_cell) -> nbformat.NotebookNode:
    cells = []
    for index, outputs in enumerate(outputs_per_cell):
        cell = nbformat.v4.new_code_cell(f"cell_{index}()")
        cell.outputs = [nbformat.from_dict(o) for o in outputs]
        cells.append(cell)
    return nbformat.v4.new_notebook(cells=cells)


def test_lint_build_finds_each_problem(tmp_path, capsys):
    stream = {"output_type": "stream", "name": "stderr"}
    nb = _executed(
        [{**stream, "text": "train: 40%|████      | 4/10 [00:02<00:03,  1.9it/s]"}],
        [{"output_type": "execute_result", "execution_count": 1, "metadata": {},
          "data": {"text/plain": "{'mAP': 0.41, 'rank1': 0.62}"}}],
        [{**stream, "name": "stdout", "text": "result:\n{'mAP': 0.41}\n"}],
        [{"output_type": "error", "ename": "ValueError", "evalue": "bad eps", "traceback": []}],
        [{**stream, "text": "Traceback (most recent call last):\n  File ...\n"}],
        [{"output_type": "display_data", "metadata": {},
          "data": {course.WIDGET_VIEW: {"model_id": "x"}, "text/plain": "HBox()"}}] * 3,
        [{**stream, "name": "stdout", "text": "Error bars show the spread over 3 seeds\n"}],
        [{**stream, "name": "stdout", "text": "mAP 41.0 %  rank-1 62.0 %\n"}],
    )
    nb.metadata["widgets"] = {course.WIDGET_STATE: {"state": {}}}
    problems = course.lint_notebook(nb, "nb")
    assert len(problems) == 7, problems
    assert "saved widget state" in problems[0]
    expected = ["a progress bar", "an echoed dict", "an echoed dict", "error ValueError: bad eps",
                "Traceback (most recent call last)", "a widget output (x3)"]
    for problem, fragment in zip(problems[1:], expected, strict=True):
        assert fragment in problem, (problem, fragment)
    assert [p.split(":")[1].strip() for p in problems[1:]] == [
        "cell 1 ('cell_0()')", "cell 2 ('cell_1()')", "cell 3 ('cell_2()')",
        "cell 4 ('cell_3()')", "cell 5 ('cell_4()')", "cell 6 ('cell_5()')",
    ]
    build = tmp_path / "build"
    (build / "exercises").mkdir(parents=True)
    nbformat.write(nb, build / "exercises" / "00_x.ipynb")
    (build / "00_x.html").write_text(f'<script type="{course.WIDGET_STATE}">{{}}</script>')
    assert len(course.lint_build(build)) == 8
    assert course.main(["lint-build", str(build)]) == 1
    assert f"{build}: 8 problems" in capsys.readouterr().out
    assert course.lint_build(tmp_path / "nothing") == [
        f"{tmp_path / 'nothing'}: no such build folder (run: python -m reidlib.course run)"
    ]


def test_static_outputs_keeps_fallbacks_and_drops_bare_widgets():
    png = {"image/png": "iVBORw0KGgo="}
    nb = _executed([
        {"output_type": "display_data", "metadata": {},
         "data": {course.WIDGET_VIEW: {"model_id": "a"}, "text/plain": "HBox(children=(...))"}},
        {"output_type": "display_data", "metadata": {},
         "data": {course.WIDGET_VIEW: {"model_id": "b"}, "text/plain": "Explorer", **png}},
        {"output_type": "stream", "name": "stdout", "text": "kept\n"},
    ])
    nb.metadata["widgets"] = {course.WIDGET_STATE: {}}
    clean = course.static_outputs(nb)
    assert "widgets" not in clean.metadata
    assert [sorted(o.get("data", {})) for o in clean.cells[0].outputs] == [
        ["image/png", "text/plain"], []
    ]
