"""safe_extract: benign archives extract; malicious ones are refused and write nothing."""

from __future__ import annotations

import io
import os
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from reidlib.data.archive import UnsafeArchiveError, safe_extract

GOOD = ("images/0001_c1s1_000001_01.jpg", b"jpeg bytes")


def make_zip(path: Path, entries: list[tuple]) -> Path:
    """entries: (name, bytes) for files, (name, 'symlink', target) for link entries."""
    with zipfile.ZipFile(path, "w") as archive:
        for entry in entries:
            info = zipfile.ZipInfo(entry[0])
            if len(entry) == 3:  # a Unix symlink entry: mode in the external attributes
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
                archive.writestr(info, entry[2])
            else:
                archive.writestr(info, entry[1])
    return path


def make_tar(path: Path, entries: list[tuple], mode: str = "w") -> Path:
    """entries: (name, bytes) files, (name, 'dir'|'fifo'), (name, 'symlink'|'hardlink', target)."""
    with tarfile.open(path, mode) as archive:
        for name, *rest in entries:
            info = tarfile.TarInfo(name)
            if isinstance(rest[0], bytes):
                info.size = len(rest[0])
                archive.addfile(info, io.BytesIO(rest[0]))
                continue
            info.type = {"dir": tarfile.DIRTYPE, "fifo": tarfile.FIFOTYPE,
                         "symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE}[rest[0]]
            if len(rest) == 2:
                info.linkname = rest[1]
            archive.addfile(info)
    return path


@pytest.mark.parametrize("fmt", ["zip", "tar", "tar.gz"])
def test_benign_archive_is_extracted(tmp_path, fmt):
    entries = [GOOD, ("images/sub/b.txt", b"bbb"), ("readme.txt", b"hello")]
    path = tmp_path / f"data.{fmt}"
    make_zip(path, entries) if fmt == "zip" else make_tar(path, entries,
                                                           "w:gz" if fmt == "tar.gz" else "w")
    out = safe_extract(path, tmp_path / "out")
    assert out == tmp_path / "out"
    assert (out / GOOD[0]).read_bytes() == GOOD[1]
    assert (out / "images/sub/b.txt").read_bytes() == b"bbb"
    assert (out / "readme.txt").read_bytes() == b"hello"


def test_tar_links_inside_the_target_are_kept(tmp_path):
    path = make_tar(tmp_path / "links.tar", [
        ("a/file.txt", b"content"),
        ("a/up.txt", "symlink", "../b/other.txt"),  # '..' that stays inside is fine
        ("b/other.txt", b"other"),
        ("latest", "symlink", "a/file.txt"),
        ("hard.txt", "hardlink", "a/file.txt"),
    ])
    out = safe_extract(path, tmp_path / "out")
    assert os.path.islink(out / "latest")
    assert (out / "latest").read_bytes() == b"content"
    assert (out / "a/up.txt").read_bytes() == b"other"
    assert (out / "hard.txt").read_bytes() == b"content"


ZIP_ATTACKS = {
    "dotdot": [GOOD, ("../evil.txt", b"x")],
    "absolute": [GOOD, ("/tmp/reidlib_evil_abs.txt", b"x")],
    "backslash-dotdot": [GOOD, ("..\\evil.txt", b"x")],
    "drive-letter": [GOOD, ("C:/evil.txt", b"x")],
    "symlink-out": [GOOD, ("link", "symlink", "../../etc/passwd")],
}
TAR_ATTACKS = {
    "dotdot": [GOOD, ("../evil.txt", b"x")],
    "nested-dotdot": [GOOD, ("images/../../evil.txt", b"x")],
    "absolute": [GOOD, ("/tmp/reidlib_evil_abs.txt", b"x")],
    "symlink-absolute": [GOOD, ("link", "symlink", "/etc/passwd")],
    "symlink-dotdot": [GOOD, ("images/link", "symlink", "../../outside")],
    "hardlink-out": [GOOD, ("hl", "hardlink", "../outside.txt")],
    "hardlink-absolute": [GOOD, ("hl", "hardlink", "/etc/passwd")],
    # A link to a folder inside, then a file written through it.
    "file-through-link": [GOOD, ("d", "symlink", "images"), ("d/x.txt", b"x")],
    # Each link is lexically inside, but b -> '.' makes a -> 'b/../escape' climb out.
    "link-chain": [GOOD, ("b", "symlink", "."), ("a", "symlink", "b/../escape")],
    "fifo": [GOOD, ("pipe", "fifo")],
}


@pytest.mark.parametrize("case", sorted(ZIP_ATTACKS))
def test_malicious_zip_is_refused_and_nothing_extracted(tmp_path, case):
    path = make_zip(tmp_path / "evil.zip", ZIP_ATTACKS[case])
    bad_name = ZIP_ATTACKS[case][-1][0]
    with pytest.raises(UnsafeArchiveError, match="nothing was extracted") as err:
        safe_extract(path, tmp_path / "deep" / "out")
    assert repr(bad_name) in str(err.value)
    assert repr(GOOD[0]) not in str(err.value)
    assert not (tmp_path / "deep").exists()  # not even the good entry before the bad one
    assert not (tmp_path / "evil.txt").exists()


@pytest.mark.parametrize("mode", ["w", "w:gz"])
@pytest.mark.parametrize("case", sorted(TAR_ATTACKS))
def test_malicious_tar_is_refused_and_nothing_extracted(tmp_path, case, mode):
    path = make_tar(tmp_path / "evil.tar", TAR_ATTACKS[case], mode)
    with tarfile.open(path) as archive:  # the attack really is in the archive
        assert archive.getnames()[-1] == TAR_ATTACKS[case][-1][0]
    with pytest.raises(UnsafeArchiveError, match="nothing was extracted") as err:
        safe_extract(path, tmp_path / "deep" / "out")
    assert repr(TAR_ATTACKS[case][-1][0]) in str(err.value)
    assert not (tmp_path / "deep").exists()
    assert not (tmp_path / "evil.txt").exists()


def test_every_unsafe_entry_is_listed(tmp_path):
    path = make_tar(tmp_path / "two.tar", [("../one", b"1"), GOOD, ("/two", b"2")])
    with pytest.raises(UnsafeArchiveError, match="2 unsafe entries") as err:
        safe_extract(path, tmp_path / "out")
    assert "'../one'" in str(err.value) and "'/two'" in str(err.value)


@pytest.mark.parametrize("fmt", ["zip", "tar"])
def test_link_already_on_disk_cannot_redirect_an_entry(tmp_path, fmt):
    outside = tmp_path / "outside"
    outside.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / "images").symlink_to(outside, target_is_directory=True)
    path = tmp_path / f"a.{fmt}"
    make_zip(path, [GOOD]) if fmt == "zip" else make_tar(path, [GOOD])
    with pytest.raises(UnsafeArchiveError, match="link already on disk"):
        safe_extract(path, out)
    assert list(outside.iterdir()) == []


def test_not_an_archive_and_missing_archive(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not an archive")
    with pytest.raises(ValueError, match=r"neither a zip nor a tar.*\.tar\.gz"):
        safe_extract(text, tmp_path / "out")
    with pytest.raises(FileNotFoundError, match="missing.zip"):
        safe_extract(tmp_path / "missing.zip", tmp_path / "out")
