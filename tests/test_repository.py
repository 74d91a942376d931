"""The repository stands alone: a user's clone has no course-author files beside it.

The course was planned from files that live outside this repository (a plan and the
survey's text). A clone does not have them, so nothing a user reads may point there: the
plan is ``docs/course_plan.md`` and the survey is cited by title, authors and arXiv id.
"""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Mentions that only make sense next to the authors' working files, not in a clone.
FORBIDDEN = [
    re.compile(rb"COURSE_PLAN\.md"),
    re.compile(rb"shared/seed"),
    re.compile(rb"\.\./shared"),
]

# What a user reads or runs; tests/ is left out (it may use such paths as plain test values).
SCANNED_PREFIXES = ("docs/", "reidlib/", "benchmarks/")
SCANNED_PATTERNS = ("notebooks/*.py", "notebooks/*.ipynb", "exercises/**/*.py")

FENCE = re.compile(r"^(`{3,}|~{3,}).*?^\1", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`[^`\n]*`")
# [text](target) and ![alt](target); the target ends at whitespace (an optional title follows)
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+[\"'(][^)]*)?\)")
REFERENCE = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?([^\s>]+)", re.MULTILINE)  # [name]: target
EXTERNAL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")  # http:, https:, mailto:, ...


def repository_files(root: Path) -> list[str]:
    """Tracked files plus untracked ones git does not ignore (new files count before a commit)."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    done = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=root, capture_output=True, text=True, check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"not a git work tree: {done.stderr.strip()}")
    return [line for line in done.stdout.splitlines() if (root / line).is_file()]


def is_scanned(path: str) -> bool:
    if path == "README.md" or path.startswith(SCANNED_PREFIXES):
        return True
    return any(_glob(path, pattern) for pattern in SCANNED_PATTERNS)


def _glob(path: str, pattern: str) -> bool:
    """``notebooks/*.py`` matches one level; ``exercises/**/*.py`` any depth below."""
    head, _, name = pattern.rpartition("/")
    folder, _, base = path.rpartition("/")
    if not Path(base).match(name):
        return False
    if head.endswith("/**"):
        top = head[: -len("/**")]
        return folder == top or folder.startswith(top + "/")
    return folder == head


def forbidden_mentions(path: Path) -> list[str]:
    """``line: text`` for every line of ``path`` that names a file outside the repository."""
    hits = []
    for number, line in enumerate(path.read_bytes().splitlines(), start=1):
        if any(p.search(line) for p in FORBIDDEN):
            hits.append(f"{number}: {line.decode('utf-8', 'replace').strip()}")
    return hits


def relative_links(markdown: str) -> list[str]:
    """Link targets of ``markdown`` that point into the repository (no URLs, no bare anchors)."""
    prose = INLINE_CODE.sub("", FENCE.sub("", markdown))
    targets = []
    for target in LINK.findall(prose) + REFERENCE.findall(prose):
        if target.startswith("#") or EXTERNAL.match(target):
            continue
        targets.append(target)
    return targets


def broken_links(markdown_file: Path, root: Path) -> list[str]:
    """Relative link targets of ``markdown_file`` with no file or folder behind them."""
    broken = []
    for target in relative_links(markdown_file.read_text(encoding="utf-8")):
        path = target.split("#", 1)[0].split("?", 1)[0]
        resolved = (root / path.lstrip("/")) if path.startswith("/") else (
            markdown_file.parent / path)
        if not resolved.exists():
            broken.append(target)
    return broken


# --- the checks on this repository --------------------------------------------------------


def test_nothing_points_outside_the_repository():
    files = [f for f in repository_files(ROOT) if is_scanned(f)]
    assert "README.md" in files and any(f.startswith("reidlib/") for f in files)
    problems = {f: hits for f in files if (hits := forbidden_mentions(ROOT / f))}
    assert not problems, "files a clone does not have are referenced:\n" + "\n".join(
        f"{f}:{hit}" for f, hits in problems.items() for hit in hits
    )


def test_markdown_links_resolve():
    pages = [ROOT / "README.md", ROOT / "notebooks" / "README.md",
             *sorted((ROOT / "docs").rglob("*.md"))]  # docs/instructor/*.md included
    assert ROOT / "docs" / "course_plan.md" in pages
    problems = {p.relative_to(ROOT): bad for p in pages if (bad := broken_links(p, ROOT))}
    assert not problems, f"relative links to missing files: {problems}"


def test_readme_links_the_course_plan():
    assert "docs/course_plan.md" in relative_links((ROOT / "README.md").read_text())


# --- the checks themselves can fail ---------------------------------------------------------


def test_forbidden_mentions_are_found(tmp_path):
    text = tmp_path / "doc.md"
    text.write_text(
        "fine line\n"
        "see COURSE_PLAN.md\n"
        "the text is in shared/seed/survey.txt\n"
        "open ../shared/notes\n"
        "a cache at /shared/cache is fine\n"
    )
    assert [h.split(":")[0] for h in forbidden_mentions(text)] == ["2", "3", "4"]


def test_scanned_paths():
    for path in ["README.md", "docs/course_plan.md", "reidlib/data/synthetic/__init__.py",
                 "notebooks/00_fundamentals.py", "exercises/00_fundamentals/tests/q1.py",
                 "exercises/grade.py", "benchmarks/RESULTS.md"]:
        assert is_scanned(path), path
    for path in ["tests/test_course.py", "notebooks/README.md", "data/README.md",
                 "docs.md", "notebooks/sub/x.py", "Makefile"]:
        assert not is_scanned(path), path


def test_broken_links_are_found(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "exists.md").write_text("x")
    page = tmp_path / "docs" / "page.md"
    page.write_text(
        "[ok](../exists.md) [ok with anchor](../exists.md#part \"title\") [anchor](#here)\n"
        "[web](https://example.org/a.md) ![missing picture](img/none.png)\n"
        "[gone](../missing.md) `[in code](nowhere.md)`\n"
        "```\n[in a fence](nowhere.md)\n```\n"
        "[ref]: ../exists.md\n"
        "[other]: ../also-missing.md\n"
    )
    assert broken_links(page, tmp_path) == ["img/none.png", "../missing.md", "../also-missing.md"]
