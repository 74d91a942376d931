"""Open the course where students are: Colab links and the install cell.

The repository's address is written once (``[project.urls] Repository`` in pyproject.toml);
``python -m reidlib.course colab`` derives every notebook's Open-in-Colab link and install
cell, and README's links, from it, and ``course check`` reports them when missing or stale.
The notebooks here are copies in a temporary folder: the real ones are never written.

The slow tests run the install cell's own commands against this checkout in a fresh
virtual environment (the GitHub URL replaced by the local repository):
- ``pip install --dry-run --report`` of the clone proves the requirements resolve from the
  package index into an empty environment (nothing borrowed from .venv);
- a fresh kernel of a fresh venv runs the install cell for real (clone, ``%pip install``,
  ``chdir``) and then the notebook's setup cell in the smoke profile; only the heavy
  dependencies (torch, ...) come from .venv's site-packages on ``PYTHONPATH``, reidlib
  itself does not: the kernel must import the copy the cell just installed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import jupytext
import nbformat
import pytest
from IPython.core.inputtransformer2 import TransformerManager
from packaging.requirements import Requirement

from reidlib import course

ROOT = Path(__file__).resolve().parents[1]
URL = course.repository_url(ROOT)


def _copy_course(tmp_path: Path, url: str | None = None) -> Path:
    """pyproject.toml, README.md and every notebook pair of this checkout, under tmp_path."""
    root = tmp_path / "course"
    root.mkdir()
    text = (ROOT / "pyproject.toml").read_text()
    if url is not None:
        text = text.replace(f'Repository = "{URL}"', f'Repository = "{url}"')
    (root / "pyproject.toml").write_text(text)
    shutil.copy(ROOT / "README.md", root / "README.md")
    for nb in course.discover(ROOT / "notebooks", ROOT / "exercises"):
        folder = root / nb.source.parent.relative_to(ROOT)
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(nb.source, folder / nb.source.name)
    return root


def _folders(root: Path) -> list[str]:
    return ["--notebooks", str(root / "notebooks"), "--exercises", str(root / "exercises")]


def _notebooks(root: Path) -> list[course.Notebook]:
    return course.discover(root / "notebooks", root / "exercises")


# ----------------------------------------------------------------------------- the one URL


def test_repository_url_is_written_once_in_pyproject():
    text = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'^\[project\.urls\]\nRepository = "https://github\.com/[\w.-]+/[\w.-]+"$',
                     text, re.M)
    assert URL.startswith("https://github.com/")
    # README's Colab links are derived from it (a stale one is a check problem)
    readme = (ROOT / "README.md").read_text()
    links = re.findall(r"https://colab\.research\.google\.com/github/[^)\s]+", readme)
    assert links and all(link.startswith(course.colab_url(URL, "")) for link in links)


def test_repository_url_errors(tmp_path):
    with pytest.raises(ValueError, match="no pyproject.toml"):
        course.repository_url(tmp_path)
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "reidlib"\n')
    with pytest.raises(ValueError, match=r"no \[project.urls\] Repository"):
        course.repository_url(tmp_path)
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "reidlib"\n[project.urls]\nRepository = "https://gitlab.com/a/b"\n'
    )
    with pytest.raises(ValueError, match="Colab opens notebooks from GitHub only"):
        course.repository_url(tmp_path)
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "reidlib"\n[project.urls]\nRepository = "https://github.com/a/b.git"\n'
    )
    assert course.repository_url(tmp_path) == "https://github.com/a/b"
    assert course.colab_url("https://github.com/a/b", "notebooks/00_x.ipynb") == (
        "https://colab.research.google.com/github/a/b/blob/main/notebooks/00_x.ipynb"
    )


# ----------------------------------------------------------------------------- the install cell


def test_install_cell_is_valid_python_in_both_forms():
    cell = course.install_cell(URL, "exercises/01_pseudo_labels")
    # as IPython runs it (magics become calls) and as the .py stores it (magics commented)
    compile(TransformerManager().transform_cell(cell), "cell", "exec")
    text = jupytext.writes(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(cell)]),
                           "py:percent")
    compile(text, "cell.py", "exec")
    assert "    # !git clone --quiet --depth 1 {COURSE} reid-course" in text
    assert "    # %pip install --quiet ./reid-course" in text
    assert f'COURSE = "{URL}"' in cell
    assert 'os.chdir("reid-course/exercises/01_pseudo_labels")' in cell


def test_install_cell_passes_the_project_lint(tmp_path):
    cell = course.install_cell(URL, "notebooks")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(cell)])
    path = tmp_path / "notebooks" / "00_x.py"
    path.parent.mkdir()
    path.write_text(jupytext.writes(nb, "py:percent"))
    done = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "--config",
         str(ROOT / "pyproject.toml"), str(path)],
        capture_output=True, text=True, check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


# ----------------------------------------------------------------------------- colab / check


def _without_colab(nb) -> list:
    """The notebook's cells with the install cell and the badge line (and the blank line
    after it) taken out: what ``colab`` must leave untouched, whether it ran before or not."""
    cells = []
    for cell in nb.cells:
        if cell.source.startswith(course.INSTALL_MARKER):
            continue
        lines = cell.source.splitlines()
        if cell.cell_type == "markdown" and lines and lines[0].startswith("[![Open In Colab]"):
            cell = nbformat.v4.new_markdown_cell("\n".join(lines[2:]))
        cells.append(cell)
    return course._normalised_cells(nbformat.v4.new_notebook(cells=cells))


def _strip_first_cells(root: Path) -> None:
    """Take the install cell and the badge out of every copied source: the notebooks as they
    were before ``colab`` existed, so that it must insert, not replace."""
    for nb in _notebooks(root):
        old = jupytext.read(nb.source)
        cells = [c for c in old.cells if not c.source.startswith(course.INSTALL_MARKER)]
        for cell in cells:
            lines = cell.source.splitlines()
            if cell.cell_type == "markdown" and lines and lines[0].startswith("[![Open In Colab]"):
                cell.source = "\n".join(lines[2:])
        old.cells = cells
        jupytext.write(old, nb.source, fmt="py:percent")
        assert course.first_cell_problems(nb, root, URL), nb.name


@pytest.mark.parametrize("start", ["committed", "without first cells"])
def test_colab_writes_the_first_cells_and_check_reports_them(tmp_path, capsys, start):
    root = _copy_course(tmp_path)
    if start == "without first cells":
        _strip_first_cells(root)
    originals = {nb.source: jupytext.read(nb.source) for nb in _notebooks(root)}
    assert originals, "no notebooks to copy"
    assert course.main(["colab", *_folders(root)]) == 0
    for nb in _notebooks(root):
        assert course.first_cell_problems(nb, root, URL) == [], nb.name
        assert course.pair_problems(nb) == [], nb.name  # the pair was synced
        new = jupytext.read(nb.source)
        old = originals[nb.source]
        first_md = next(c for c in new.cells if c.cell_type == "markdown")
        badge = first_md.source.splitlines()[0]
        assert badge == (f"[![Open In Colab]({course.COLAB_BADGE})]("
                         f"{course.colab_url(URL, nb.ipynb.relative_to(root).as_posix())})")
        code = [c for c in new.cells if c.cell_type == "code"]
        assert code[0].source.startswith(course.INSTALL_MARKER)
        assert re.search(rf"setup\(\"{nb.chapter}\"", code[1].source), nb.name
        # nothing else changed: without install cell and badge, new and original agree
        assert _without_colab(new) == _without_colab(old), nb.name
    written = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    capsys.readouterr()
    assert course.main(["colab", *_folders(root)]) == 0  # a second run changes nothing
    assert "wrote" not in capsys.readouterr().out
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == written


def test_a_new_url_makes_everything_stale_until_colab_runs(tmp_path, capsys):
    root = _copy_course(tmp_path)
    course.main(["colab", *_folders(root)])
    moved = "https://github.com/someone/a-fork"
    pyproject = root / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace(URL, moved))
    capsys.readouterr()
    assert course.main(["check", *_folders(root)]) == 1
    out = capsys.readouterr().out
    for nb in _notebooks(root):
        assert f"{nb.source}: the Open-in-Colab link of the first markdown cell is stale" in out
        assert f"{nb.source}: the install cell is stale" in out
    assert "stale Colab link" in out
    assert course.main(["colab", *_folders(root)]) == 0
    capsys.readouterr()
    course.main(["check", *_folders(root)])
    assert "stale" not in capsys.readouterr().out
    for path in [root / "README.md", *(nb.source for nb in _notebooks(root)),
                 *(nb.ipynb for nb in _notebooks(root))]:
        text = path.read_text()
        assert URL not in text and "someone/a-fork" in text, path


def test_check_reports_missing_first_cells_and_a_wrong_setup_name(tmp_path):
    root = tmp_path / "course"
    shutil.copytree(ROOT / "tests" / "assets" / "notebooks", root / "notebooks")
    (root / "pyproject.toml").write_text(
        f'[project]\nname = "reidlib"\n[project.urls]\nRepository = "{URL}"\n')
    demo = course.Notebook(root / "notebooks" / "00_demo.py", "chapter")
    problems = course.first_cell_problems(demo, root, URL)
    assert [p.split(": ", 1)[1].split(" (run")[0] for p in problems] == [
        "the Open-in-Colab link of the first markdown cell is missing",
        "the first code cell should install the course where it is missing",
    ]
    assert course.write_first_cells(demo, root, URL) is True
    assert course.first_cell_problems(demo, root, URL) == []
    assert course.write_first_cells(demo, root, URL) is False
    # the part of a chapter is its id: 01a must call setup("01a"), not setup("01")
    part = course.Notebook(root / "notebooks" / "01a_part.py", "chapter")
    part.source.write_text(demo.source.read_text().replace('setup("00"', 'setup("01"'))
    course.write_first_cells(part, root, URL)
    assert course.first_cell_problems(part, root, URL) == [
        f"{part.source}: calls setup('01') but the runner reads its results as '01a'"
    ]


def test_a_notebook_that_opens_with_code_gets_a_badge_cell():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell('session = setup("00")')])
    out = course.with_first_cells(nb, "BADGE", "INSTALL")
    assert [(c.cell_type, c.source) for c in out.cells] == [
        ("markdown", "BADGE"), ("code", "INSTALL"), ("code", 'session = setup("00")')
    ]


def test_readme_links_are_rewritten_and_checked(tmp_path):
    readme = tmp_path / "README.md"
    old = course.colab_url("https://github.com/old/place", "notebooks/00_x.ipynb")
    readme.write_text(f"[Colab]({old}) and [Colab]({course.colab_url(URL, 'notebooks/9.ipynb')})")
    (tmp_path / "notebooks").mkdir()
    x = course.Notebook(tmp_path / "notebooks" / "00_x.py", "chapter")
    y = course.Notebook(tmp_path / "notebooks" / "01_y.py", "chapter")
    x.ipynb.write_text("{}")
    problems = course.readme_link_problems(readme, [x, y], tmp_path, URL)
    assert [p.split(": ", 1)[1] for p in problems] == [
        f"stale Colab link {old} (run: python -m reidlib.course colab)",
        "Colab link to notebooks/9.ipynb, which does not exist",
        "no Open-in-Colab link for notebooks/01_y.ipynb",
    ]
    assert course.write_readme_links(readme, URL) is True
    assert course.write_readme_links(readme, URL) is False
    assert course.colab_url(URL, "notebooks/00_x.ipynb") in readme.read_text()


# ----------------------------------------------------------------------------- running them


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_first_two_cells_run_in_the_smoke_profile(tmp_path):
    """Under the course runner reidlib is installed: the install cell is silent, setup runs."""
    root = _copy_course(tmp_path)
    nb = course.Notebook(root / "notebooks" / "00_fundamentals.py", "chapter")
    course.write_first_cells(nb, root, URL)
    cells = jupytext.read(nb.source).cells
    first_code = next(i for i, c in enumerate(cells) if c.cell_type == "code")
    head = nbformat.v4.new_notebook(cells=cells[: first_code + 2],
                                    metadata=jupytext.read(nb.source).metadata)
    short = root / "notebooks" / "00_head.py"
    short.write_text(jupytext.writes(head, "py:percent"))
    run = course.execute_notebook(short, course.kernel_env("smoke", tmp_path / "build"), 120)
    install, setup = (c for c in run.nb.cells if c.cell_type == "code")
    assert install.outputs == []
    assert setup.outputs[0]["text"].startswith("chapter 00 | profile smoke | device ")


def _fresh_venv(path: Path) -> Path:
    """A new virtual environment with pip and nothing else (no system site-packages)."""
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(path)], check=True)
    python = path / "bin" / "python"
    done = subprocess.run([str(python), "-c", "import sys; print(sys.prefix != sys.base_prefix)"],
                          capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "True"
    listing = subprocess.run([str(python), "-m", "pip", "list", "--format=json"],
                             capture_output=True, text=True, check=True)
    assert {p["name"] for p in json.loads(listing.stdout)} <= {"pip", "setuptools"}
    return python


def _local_clone(into: Path) -> Path:
    """What the cell's ``git clone --depth 1`` gets, from this checkout's committed HEAD."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    subprocess.run(["git", "clone", "--quiet", "--depth", "1", f"file://{ROOT}", str(into)],
                   check=True)
    return into


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_install_cell_requirements_resolve_in_a_fresh_venv(tmp_path):
    python = _fresh_venv(tmp_path / "venv")
    clone = _local_clone(tmp_path / "reid-course")
    report = tmp_path / "report.json"
    done = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--dry-run", "--ignore-installed",
         "--report", str(report), f"./{clone.name}"],
        cwd=tmp_path, capture_output=True, text=True, check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    resolved = {
        item["metadata"]["name"].lower().replace("_", "-"): item["metadata"]["version"]
        for item in json.loads(report.read_text())["install"]
    }
    assert "reidlib" in resolved
    import tomllib

    wanted = tomllib.loads((clone / "pyproject.toml").read_text())["project"]["dependencies"]
    for line in wanted:
        req = Requirement(line)
        name = req.name.lower().replace("_", "-")
        assert name in resolved, f"{name} was not resolved"
        assert req.specifier.contains(resolved[name], prereleases=True), (line, resolved[name])


_DRIVER = textwrap.dedent('''
    """Run a notebook in a kernel of this interpreter (no reidlib import here)."""
    import sys

    import nbformat
    from jupyter_client.kernelspec import KernelSpec
    from jupyter_client.manager import AsyncKernelManager
    from nbclient import NotebookClient


    class ThisPython(AsyncKernelManager):
        @property
        def kernel_spec(self):
            from ipykernel.kernelspec import get_kernel_dict

            return KernelSpec(**get_kernel_dict())


    nb = nbformat.read(sys.argv[1], as_version=4)
    NotebookClient(nb, kernel_manager_class=ThisPython, timeout=600,
                   resources={"metadata": {"path": sys.argv[2]}}).execute()
    nbformat.write(nb, sys.argv[3])
''')


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_install_cell_installs_the_course_in_a_fresh_kernel(tmp_path):
    python = _fresh_venv(tmp_path / "venv")
    # .venv's packages, minus reidlib, stand in for the requirements pip would download
    borrowed = tmp_path / "borrowed"
    borrowed.mkdir()
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if not re.match(r"(__editable__.*reidlib|reidlib)", entry.name):
            (borrowed / entry.name).symlink_to(entry)
    local = f"file://{ROOT}"
    cells = jupytext.read(ROOT / "tests" / "assets" / "notebooks" / "00_demo.py").cells
    install = course.install_cell(URL, "notebooks").replace(URL, local)
    probe = ("import os, reidlib\nprint(reidlib.__file__)\nprint(os.getcwd())\n"
             "print(session.cache_dir)")
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell(install),
        next(c for c in cells if "setup(" in c.source),
        nbformat.v4.new_code_cell(probe),
    ])
    work = tmp_path / "work"
    work.mkdir()
    nbformat.write(nb, tmp_path / "cells.ipynb")
    (tmp_path / "driver.py").write_text(_DRIVER)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REID_", "PYTHON"))}
    env.update(PYTHONPATH=str(borrowed), REID_PROFILE="smoke", PIP_NO_INPUT="1")
    env["PATH"] = f"{python.parent}{os.pathsep}{env.get('PATH', '')}"
    done = subprocess.run(
        [str(python), str(tmp_path / "driver.py"), str(tmp_path / "cells.ipynb"), str(work),
         str(tmp_path / "out.ipynb")],
        cwd=work, env=env, capture_output=True, text=True, check=False, timeout=800,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    text = ["".join(o.get("text", "") for o in c.outputs) for c in out.cells]
    assert text[0].startswith(f"installing the course from {local}"), text[0]
    assert text[1].startswith("chapter 00 | profile smoke | device ")
    reidlib_file, cwd, cache = text[2].split()
    clone = work / "reid-course"
    assert Path(reidlib_file).is_relative_to(tmp_path / "venv"), reidlib_file
    assert Path(cwd) == clone / "notebooks"
    assert Path(cache) == clone / "data" / "cache"
