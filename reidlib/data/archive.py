"""Safe extraction of downloaded dataset archives (.zip, .tar, .tar.gz / .tgz, .tar.bz2 / .xz).

A dataset archive comes from outside, so an entry must not write outside the target
folder ("path traversal" / "zip slip"): no absolute names, no ``..``, no link that points
out, no entry placed inside a link, no device or FIFO. Every entry is checked before
anything is written; one bad entry means nothing is extracted. Python's own tar ``data``
filter checks again entry by entry during extraction, as a second line of defence, but it
would stop half-way, which is why the whole archive is checked first.
"""

from __future__ import annotations

import os
import re
import stat
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path


class UnsafeArchiveError(ValueError):
    """An archive holds entries that would land outside the target folder."""


@dataclass(frozen=True)
class _Entry:
    name: str
    kind: str  # "file", "dir", "symlink", "hardlink" or "special"
    link: str = ""


def _clean(name: str) -> str | None:
    """``name`` as a normalised relative path, or None when absolute or holding ``..``.

    Backslashes count as separators: an archive made on Windows may use them, and a
    Windows reader would follow them.
    """
    name = name.replace("\\", "/")
    if name.startswith("/") or re.match(r"[A-Za-z]:", name):
        return None
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        return None
    return "/".join(parts)


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _link_problem(entry: _Entry, clean: str, links: set[str]) -> str | None:
    """Why the symlink ``entry`` is unsafe, or None.

    Its target is walked component by component from the link's folder: it must never
    step above the archive root, and must not pass through another link of the archive
    (a link to a shallower folder followed by ``..`` could otherwise climb out).
    """
    target = entry.link.replace("\\", "/")
    if target.startswith("/") or re.match(r"[A-Za-z]:", target):
        return f"symlink to the absolute path {entry.link!r}"
    current = clean.split("/")[:-1]
    components = [c for c in target.split("/") if c not in ("", ".")]
    for i, component in enumerate(components):
        if component == "..":
            if not current:
                return f"symlink to {entry.link!r} points outside the target"
            current.pop()
            continue
        current.append(component)
        through = "/".join(current)
        if i < len(components) - 1 and through in links:
            return f"symlink to {entry.link!r} passes through the archive's link {through!r}"
    return None


def _entry_problem(entry: _Entry, links: set[str], target: str) -> str | None:
    """Why ``entry`` could write or point outside ``target`` (a real path), or None."""
    if entry.kind == "special":
        return "a device or FIFO (only files, folders and links are allowed)"
    clean = _clean(entry.name)
    if clean is None:
        return "absolute path or '..' in the name"
    parents = clean.split("/")[:-1]
    for depth in range(1, len(parents) + 1):
        prefix = "/".join(parents[:depth])
        if prefix in links:
            return f"lies inside the archive's symlink {prefix!r}, which could redirect it"
    # Links already on disk under the target could redirect the entry as well.
    if not _inside(os.path.realpath(os.path.join(target, clean)), target):
        return "resolves outside the target through a link already on disk"
    if entry.kind == "symlink":
        return _link_problem(entry, clean, links)
    if entry.kind == "hardlink":
        link = _clean(entry.link)
        if link is None or not _inside(os.path.realpath(os.path.join(target, link)), target):
            return f"hard link to {entry.link!r} points outside the target"
        if any(link == s or link.startswith(s + "/") for s in links):
            return f"hard link to {entry.link!r} goes through one of the archive's symlinks"
    return None


def _tar_entries(archive: tarfile.TarFile) -> list[_Entry]:
    entries = []
    for member in archive.getmembers():
        if member.isreg():
            kind = "file"
        elif member.isdir():
            kind = "dir"
        elif member.issym():
            kind = "symlink"
        elif member.islnk():
            kind = "hardlink"
        else:
            kind = "special"
        entries.append(_Entry(member.name, kind, member.linkname))
    return entries


def _zip_entries(archive: zipfile.ZipFile) -> list[_Entry]:
    """Zip entries; a symlink entry (Unix mode in the external attributes) holds its
    target as content. Python writes such entries as plain files, but they are checked
    like tar links so that other unzip tools would be safe on what we accept."""
    entries = []
    for info in archive.infolist():
        if stat.S_ISLNK(info.external_attr >> 16):
            entries.append(_Entry(info.filename, "symlink", archive.read(info).decode()))
        else:
            entries.append(_Entry(info.filename, "dir" if info.is_dir() else "file"))
    return entries


def _check_entries(entries: list[_Entry], target_dir: str | os.PathLike) -> list[str]:
    """One line per unsafe entry (empty when all are safe)."""
    target = os.path.realpath(target_dir)
    links = {c for e in entries if e.kind == "symlink" and (c := _clean(e.name))}
    problems = []
    for entry in entries:
        problem = _entry_problem(entry, links, target)
        if problem:
            problems.append(f"{entry.name!r}: {problem}")
    return problems


def _refuse(archive_path: Path, problems: list[str]) -> UnsafeArchiveError:
    shown = "\n  ".join(problems[:10])
    more = f"\n  ... and {len(problems) - 10} more" if len(problems) > 10 else ""
    return UnsafeArchiveError(
        f"refusing to extract {archive_path}: {len(problems)} unsafe entr"
        f"{'y' if len(problems) == 1 else 'ies'} (nothing was extracted):\n  {shown}{more}"
    )


def safe_extract(archive_path: str | os.PathLike, target_dir: str | os.PathLike) -> Path:
    """Extract a .zip or .tar(.gz/.bz2/.xz) archive into ``target_dir``, or nothing at all.

    Raises ``UnsafeArchiveError`` listing every entry that would escape ``target_dir``
    (absolute paths, ``..``, links pointing outside, entries under links, devices), and
    ``ValueError`` for a file that is neither zip nor tar. Returns ``target_dir``.
    """
    archive_path, target = Path(archive_path), Path(target_dir)
    if not archive_path.is_file():
        raise FileNotFoundError(f"archive {archive_path} not found")
    if zipfile.is_zipfile(archive_path):
        with zipfile.ZipFile(archive_path) as archive:
            problems = _check_entries(_zip_entries(archive), target)
            if problems:
                raise _refuse(archive_path, problems)
            target.mkdir(parents=True, exist_ok=True)
            archive.extractall(target)
        return target
    if tarfile.is_tarfile(archive_path):
        with tarfile.open(archive_path) as archive:
            problems = _check_entries(_tar_entries(archive), target)
            if problems:
                raise _refuse(archive_path, problems)
            target.mkdir(parents=True, exist_ok=True)
            if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4 / 3.12
                archive.extractall(target, filter="data")
            else:
                archive.extractall(target)
        return target
    raise ValueError(f"{archive_path} is neither a zip nor a tar archive "
                     "(expected .zip, .tar, .tar.gz, .tgz, .tar.bz2 or .tar.xz)")
