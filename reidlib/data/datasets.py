"""Readers for the real Re-ID benchmarks of survey §4.1 (Table 2), evaluated as in §4.2.

Every reader returns a ``DatasetRecords`` of ``Record`` lists, whatever the release looks
like on disk, with the same conventions everywhere:

- ``camid`` is 0-based (the file names count cameras from 1).
- ``pid == -1`` (junk) never appears: junk images are dropped from train, query and
  gallery. The official evaluation code of Market-1501 and MARS puts every junk image in
  every query's ignore list, so dropping them gives the same mAP / CMC.
- ``pid == 0`` is a distractor (Market-1501 ``0000``, MARS ``0000``): kept in the gallery.
- Training pids keep the dataset's own numbers; ``relabel`` maps them to 0..C-1.
- MSMT17 numbers people from 0, which would collide with the distractor id, so its pids
  are shifted by +1 (stored pid = listed pid + 1). Train and test pids of MSMT17 (and of
  every dataset here) are disjoint people even where the numbers coincide.
- MARS fills ``tracklet`` (the row of the tracks info matrix, 0-based; query and gallery
  share the test numbering) and ``frame`` (the ``F`` number of the file name, 0-based).

Layouts and where to get each release: ``data/README.md``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image
from tqdm.auto import tqdm

from reidlib.data.imageset import ImageSet, ReidSplits
from reidlib.data.records import Record
from reidlib.utils import atomic_path, progress_enabled


class DatasetLayoutError(FileNotFoundError):
    """A dataset folder is missing or incomplete; the message shows the expected layout."""


@dataclass(frozen=True)
class DatasetRecords:
    """One benchmark as records: a training list and the query / gallery test split."""

    name: str
    train: list[Record]
    query: list[Record]
    gallery: list[Record]

    def summary(self) -> str:
        rows = [f"{self.name}: {'subset':<8} {'ids':>6} {'images':>8} {'cameras':>7}"]
        for split in ("train", "query", "gallery"):
            records = getattr(self, split)
            ids = len({r.pid for r in records if r.pid > 0})
            cams = len({r.camid for r in records})
            rows.append(f"{'':{len(self.name)}}  {split:<8} {ids:>6} {len(records):>8} {cams:>7}")
        return "\n".join(rows)


# ---------------------------------------------------------------------------------------
# Layouts: what each reader needs, shown verbatim in DatasetLayoutError messages.

_LAYOUTS = {
    "market1501": """\
data/market1501/
└── Market-1501-v15.09.15/      (optional level: its folders may sit directly here)
    ├── bounding_box_train/     0002_c1s1_000451_03.jpg ...
    ├── query/                  0001_c1s1_001051_00.jpg ...
    └── bounding_box_test/      0000_c1s1_000151_01.jpg, -1_c1s1_000401_03.jpg ...""",
    "dukemtmc": """\
data/dukemtmc/
└── DukeMTMC-reID/              (optional level)
    ├── bounding_box_train/     0001_c2_f0046182.jpg ...
    ├── query/
    └── bounding_box_test/""",
    "msmt17": """\
data/msmt17/
└── MSMT17_V1/  or  MSMT17_V2/  (optional level)
    ├── train/ + test/          (V1)  or  mask_train_v2/ + mask_test_v2/  (V2)
    │   └── 0000/0000_000_01_0303morning_0015_0.jpg ...
    ├── list_train.txt          lines 'pid_folder/file.jpg pid'
    ├── list_val.txt
    ├── list_query.txt
    └── list_gallery.txt""",
    "cuhk03": """\
data/cuhk03/
└── cuhk03-np/                  (optional level; the new protocol of Zhong et al.)
    ├── labeled/
    │   ├── bounding_box_train/ 0001_c1_1.png ...
    │   ├── query/
    │   └── bounding_box_test/
    └── detected/               (same three folders)""",
    "mars": """\
data/mars/
└── MARS/                       (optional level)
    ├── bbox_train/             0001/0001C1T0001F001.jpg ...
    ├── bbox_test/              0000/..., 00-1/..., 0002/0002C1T0001F001.jpg ...
    └── info/                   train_name.txt, test_name.txt, tracks_train_info.mat,
                                tracks_test_info.mat, query_IDX.mat""",
}

_TITLES = {
    "market1501": "Market-1501",
    "dukemtmc": "DukeMTMC-reID",
    "msmt17": "MSMT17",
    "cuhk03": "CUHK03 (new protocol, cuhk03-np)",
    "mars": "MARS",
}

_SOURCES = {
    "market1501": "the Market-1501 project page (Zheng et al., ICCV 2015)",
    "dukemtmc": "the DukeMTMC-reID release (Zheng et al., ICCV 2017; DukeMTMC, Ristani et al.)",
    "msmt17": "the MSMT17 page of PKU VMC (Wei et al., CVPR 2018), by signed agreement",
    "cuhk03": "CUHK03 from CUHK (Li et al., CVPR 2014) and the cuhk03-np split from the "
              "person-re-ranking project (Zhong et al., CVPR 2017)",
    "mars": "the MARS project page (Zheng et al., ECCV 2016) and its MARS-evaluation info/",
}


def _layout_error(dataset: str, missing: Path, hint: str = "") -> DatasetLayoutError:
    """A DatasetLayoutError naming the dataset, the path checked and the expected tree."""
    return DatasetLayoutError(
        f"{_TITLES[dataset]}: {missing} not found.\n"
        f"Expected layout under the root you pass (data/<name>/ by convention):\n"
        f"{_LAYOUTS[dataset]}\n"
        f"{hint}"
        f"Get it from {_SOURCES[dataset]}; details in data/README.md."
    )


def _find_release(dataset: str, root: str | os.PathLike, folders: Sequence[str],
                  markers: Sequence[str], hint: str = "") -> Path:
    """The folder (``root`` or ``root/<official folder name>``) that holds all ``markers``.

    On failure, report the first missing marker of the candidate that holds the most of
    them, so a partial download names what is missing rather than just the root.
    """
    root = Path(root).expanduser().absolute()
    candidates = [root] + [root / name for name in folders]
    best, best_count = root, -1
    for candidate in candidates:
        count = sum((candidate / m).exists() for m in markers)
        if count == len(markers):
            return candidate
        if count > best_count:
            best, best_count = candidate, count
    missing = next((best / m for m in markers if not (best / m).exists()), best)
    if not root.exists():
        missing = root
    raise _layout_error(dataset, missing, hint)


def _require_files(dataset: str, records: Sequence[Record]) -> None:
    """Raise when files named by a list (MSMT17 lists, MARS name files) are missing."""
    missing = [r.path for r in records if not os.path.exists(r.path)]
    if missing:
        raise _layout_error(dataset, Path(missing[0]),
                            f"{len(missing)} listed image(s) are missing (a partial download "
                            "or extraction?).\n")


def _match(pattern: re.Pattern, path: Path, dataset: str) -> re.Match:
    match = pattern.fullmatch(path.name)
    if match is None:
        raise ValueError(
            f"{_TITLES[dataset]}: unexpected file name {path} "
            f"(expected the official pattern {pattern.pattern})"
        )
    return match


def _camid(value: str, num_cameras: int, path: Path, dataset: str) -> int:
    """0-based camera id from the 1-based number in a file name, range-checked."""
    cam = int(value)
    if not 1 <= cam <= num_cameras:
        raise ValueError(f"{_TITLES[dataset]}: camera {cam} outside 1..{num_cameras} in {path}")
    return cam - 1


# ---------------------------------------------------------------------------------------
# Image datasets in the Market-1501 folder layout (Market-1501, DukeMTMC-reID, CUHK03-NP).

_MARKET_NAME = re.compile(r"(-1|\d{4})_c(\d)s(\d)_(\d{6})_(\d{2})\.jpg")
_DUKE_NAME = re.compile(r"(\d{4})_c(\d)_f(\d{7})\.jpg")
_CUHK03_NAME = re.compile(r"(\d{4})_c(\d)_(\d+)\.(?:png|jpg)")
_MARKET_SPLITS = ("bounding_box_train", "query", "bounding_box_test")


def _read_folder(folder: Path, pattern: re.Pattern, num_cameras: int, dataset: str,
                 suffixes: Sequence[str] = (".jpg",)) -> list[Record]:
    """Records of one Market-style folder (``pid_c<cam>...``), junk (pid -1) dropped.

    Only image files are read: Market-1501 ships a ``Thumbs.db`` beside its images.
    """
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in suffixes)
    if not paths:
        raise _layout_error(dataset, folder / f"*{suffixes[0]}",
                            f"The folder {folder} exists but holds no {'/'.join(suffixes)} "
                            "images (an interrupted extraction?).\n")
    records = []
    for path in paths:
        match = _match(pattern, path, dataset)
        pid = int(match.group(1))
        camid = _camid(match.group(2), num_cameras, path, dataset)
        if pid != -1:
            records.append(Record(str(path), pid, camid))
    return records


def _read_market_layout(base: Path, name: str, dataset: str, pattern: re.Pattern,
                        num_cameras: int, suffixes: Sequence[str] = (".jpg",)) -> DatasetRecords:
    train, query, gallery = (
        _read_folder(base / split, pattern, num_cameras, dataset, suffixes)
        for split in _MARKET_SPLITS
    )
    return DatasetRecords(name, train, query, gallery)


def read_market1501(root: str | os.PathLike, num_cameras: int = 6) -> DatasetRecords:
    """Market-1501 (survey §4.1): 6 cameras, names ``0002_c1s1_000451_03.jpg``.

    ``bounding_box_test`` holds junk (``-1_...``, dropped) and distractors (``0000_...``,
    kept with pid 0). ``num_cameras`` (at most 9, one digit in the name) reads exports of
    worlds with more cameras in the same layout, e.g. the 8-camera synthetic world B.
    """
    if not 1 <= num_cameras <= 9:
        raise ValueError(f"num_cameras must be 1..9 in the Market-1501 naming, got {num_cameras}")
    base = _find_release("market1501", root, ("Market-1501-v15.09.15", "Market-1501"),
                         _MARKET_SPLITS)
    return _read_market_layout(base, "market1501", "market1501", _MARKET_NAME, num_cameras)


def read_dukemtmc(root: str | os.PathLike) -> DatasetRecords:
    """DukeMTMC-reID (survey §4.1): 8 cameras, names ``0001_c2_f0046182.jpg``, no junk.

    Its 408 gallery-only distractor people carry ordinary pids, as in the release.
    """
    base = _find_release("dukemtmc", root, ("DukeMTMC-reID",), _MARKET_SPLITS)
    return _read_market_layout(base, "dukemtmc", "dukemtmc", _DUKE_NAME, 8)


CUHK03_VARIANTS = ("labeled", "detected")


def read_cuhk03(root: str | os.PathLike, variant: str = "labeled") -> DatasetRecords:
    """CUHK03 under the new protocol (cuhk03-np, 767 train / 700 test people), 2 cameras.

    ``variant``: ``"labeled"`` (hand-drawn boxes) or ``"detected"`` (DPM boxes). The
    original ``cuhk03_release/cuhk03.mat`` is a MATLAB v7.3 (HDF5) file that would need
    h5py, so it is not read here; data/README.md points to the cuhk03-np release instead.
    """
    if variant not in CUHK03_VARIANTS:
        raise ValueError(f"cuhk03_variant must be one of {CUHK03_VARIANTS}, got {variant!r}")
    markers = [f"{variant}/{split}" for split in _MARKET_SPLITS]
    hint = ""
    if (Path(root) / "cuhk03_release").exists():
        hint = ("Found cuhk03_release/: the original .mat release is not read (HDF5, needs "
                "h5py); use the cuhk03-np release of the same images.\n")
    base = _find_release("cuhk03", root, ("cuhk03-np", "cuhk03_np"), markers, hint)
    return _read_market_layout(base / variant, f"cuhk03_{variant}", "cuhk03", _CUHK03_NAME, 2,
                               suffixes=(".png", ".jpg"))


# ---------------------------------------------------------------------------------------
# MSMT17: list files 'folder/file.jpg pid' indexing a train and a test image folder.

_MSMT17_VERSIONS = {"V1": ("train", "test"), "V2": ("mask_train_v2", "mask_test_v2")}
_MSMT17_LISTS = ("list_train.txt", "list_val.txt", "list_query.txt", "list_gallery.txt")
_MSMT17_NAME = re.compile(r"(\d{4})_(\d{3})_(\d{2})_(\w+)\.jpg")


def _msmt17_version(root: str | os.PathLike) -> str:
    """"V1" or "V2", from the image folders found; V1 wins when both are present (the
    papers' numbers, survey Tables 3-4, are mostly on V1)."""
    root = Path(root)
    for version, folders in _MSMT17_VERSIONS.items():
        for base in (root, root / f"MSMT17_{version}", root / "MSMT17"):
            if base.name == f"MSMT17_{version}" and base.is_dir():
                return version
            if any((base / folder).is_dir() for folder in folders):
                return version
    return "V1"  # nothing found: the layout error will show both versions


def _read_msmt17_list(list_path: Path, image_dir: Path) -> list[Record]:
    """Records of one list file; camera from the name's third field (1..15)."""
    records = []
    for line_no, line in enumerate(list_path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rel, pid = line.split()
            pid = int(pid)
        except ValueError as err:
            raise ValueError(
                f"MSMT17: {list_path}:{line_no}: expected 'path pid', got {line!r}"
            ) from err
        path = image_dir / rel
        match = _match(_MSMT17_NAME, path, "msmt17")
        if int(match.group(1)) != pid:
            raise ValueError(f"MSMT17: {list_path}:{line_no}: pid {pid} differs from the file "
                             f"name {path.name}")
        # +1: MSMT17 counts people from 0, the id reserved for distractors here.
        records.append(Record(str(path), pid + 1, _camid(match.group(3), 15, path, "msmt17")))
    return records


def read_msmt17(root: str | os.PathLike, version: str | None = None) -> DatasetRecords:
    """MSMT17 (survey §4.1): 15 cameras; V1 (``train/``, ``test/``) or V2 (faces masked,
    ``mask_train_v2/``, ``mask_test_v2/``), auto-detected when ``version`` is None.

    train = list_train + list_val (the official 32,621-image training set); pids are the
    listed ones + 1 (see the module docstring). The list files sit in the release folder;
    a copy inside the image folder is accepted too.
    """
    version = version or _msmt17_version(root)
    if version not in _MSMT17_VERSIONS:
        raise ValueError(f"msmt17_version must be 'V1', 'V2' or None, got {version!r}")
    base = _find_release("msmt17", root, (f"MSMT17_{version}", "MSMT17"),
                         _MSMT17_VERSIONS[version])
    train_dir, test_dir = (base / d for d in _MSMT17_VERSIONS[version])
    lists = {}
    for name, image_dir in zip(_MSMT17_LISTS, (train_dir, train_dir, test_dir, test_dir),
                               strict=True):
        found = [p for p in (base / name, image_dir / name) if p.exists()]
        if not found:
            raise _layout_error("msmt17", base / name)
        lists[name] = _read_msmt17_list(found[0], image_dir)
    train = lists["list_train.txt"] + lists["list_val.txt"]
    _require_files("msmt17", train + lists["list_query.txt"] + lists["list_gallery.txt"])
    return DatasetRecords(f"msmt17_{version.lower()}", train, lists["list_query.txt"],
                          lists["list_gallery.txt"])


# ---------------------------------------------------------------------------------------
# MARS: frames listed in name files, grouped into tracklets by the info matrices.

_MARS_NAME = re.compile(r"(\d{4}|00-1)C(\d)T(\d{4})F(\d{3})\.jpg")
_MARS_FILES = ("bbox_train", "bbox_test", "info/train_name.txt", "info/test_name.txt",
               "info/tracks_train_info.mat", "info/tracks_test_info.mat", "info/query_IDX.mat")


def _load_mat(path: Path, key: str) -> np.ndarray:
    """One matrix from a .mat file: ``key``, or its only variable when named otherwise."""
    data = {k: v for k, v in scipy.io.loadmat(path).items() if not k.startswith("__")}
    if key not in data and len(data) == 1:
        key = next(iter(data))
    if key not in data:
        raise ValueError(f"MARS: {path} has no matrix {key!r} (found {sorted(data)})")
    return np.asarray(data[key])


def _mars_tracklet(row: int, info: np.ndarray, names: list[str], folder: Path,
                   num_cameras: int = 6) -> list[Record]:
    """The frames of tracklet ``row``: info row = (start, end, pid, camid), 1-based indices
    into ``names``; each name must agree with the row's pid and camera."""
    row = int(row)
    start, end, pid, cam = (int(v) for v in info[row])
    if not 1 <= start <= end <= len(names):
        raise ValueError(f"MARS: tracklet {row} spans names {start}..{end}, "
                         f"but the name list has {len(names)} entries")
    records = []
    for name in names[start - 1:end]:
        path = folder / name[:4] / name
        match = _match(_MARS_NAME, path, "mars")
        name_pid = -1 if match.group(1) == "00-1" else int(match.group(1))
        if name_pid != pid or int(match.group(2)) != cam:
            raise ValueError(f"MARS: {name} does not belong to tracklet {row} "
                             f"(pid {pid}, camera {cam}): the info and name files disagree")
        camid = _camid(match.group(2), num_cameras, path, "mars")
        records.append(Record(str(path), pid, camid, tracklet=row, frame=int(match.group(4)) - 1))
    return records


def _mars_split(rows: Sequence[int], info: np.ndarray, names: list[str],
                folder: Path, num_cameras: int = 6) -> list[Record]:
    """Frames of the tracklets ``rows``, junk tracklets (pid -1) dropped."""
    records = []
    for row in rows:
        if int(info[row, 2]) != -1:
            records.extend(_mars_tracklet(row, info, names, folder, num_cameras))
    return records


def read_mars(root: str | os.PathLike, num_cameras: int = 6) -> DatasetRecords:
    """MARS (survey §4.1), the video benchmark: one Record per frame.

    Query = the test tracklets listed (1-based) in ``query_IDX``; gallery = the other test
    tracklets. As in the official MARS evaluation, junk tracklets (pid -1) are ignored
    (dropped here) and distractors (pid 0) stay in the gallery. The official code keeps
    the query tracklets in the gallery but marks them junk for their own query (same
    person, same camera), so leaving them out gives the same scores. ``num_cameras`` (at
    most 9, one digit in the name) reads MARS-layout exports of worlds with more cameras,
    e.g. the 8-camera synthetic world B (``reidlib.video.benchmark.export_mars``).
    """
    if not 1 <= num_cameras <= 9:
        raise ValueError(f"num_cameras must be 1..9 in the MARS naming, got {num_cameras}")
    base = _find_release("mars", root, ("MARS",), _MARS_FILES)
    info_dir = base / "info"
    train_names = info_dir.joinpath("train_name.txt").read_text().split()
    test_names = info_dir.joinpath("test_name.txt").read_text().split()
    train_info = _tracks_matrix(info_dir / "tracks_train_info.mat", "track_train_info")
    test_info = _tracks_matrix(info_dir / "tracks_test_info.mat", "track_test_info")
    query_rows = _load_mat(info_dir / "query_IDX.mat", "query_IDX").astype(np.int64).ravel() - 1
    if query_rows.size and not (0 <= query_rows.min() and query_rows.max() < len(test_info)):
        raise ValueError(f"MARS: query_IDX must index 1..{len(test_info)} test tracklets")
    gallery_rows = np.setdiff1d(np.arange(len(test_info)), query_rows)
    records = DatasetRecords(
        "mars",
        _mars_split(range(len(train_info)), train_info, train_names, base / "bbox_train",
                    num_cameras),
        _mars_split(query_rows, test_info, test_names, base / "bbox_test", num_cameras),
        _mars_split(gallery_rows, test_info, test_names, base / "bbox_test", num_cameras),
    )
    _require_files("mars", records.train + records.query + records.gallery)
    return records


def _tracks_matrix(path: Path, key: str) -> np.ndarray:
    info = _load_mat(path, key)
    if info.ndim != 2 or info.shape[1] != 4:
        raise ValueError(f"MARS: {path} must hold a (tracklets, 4) matrix of start, end, pid, "
                         f"camid; got shape {info.shape}")
    return info.astype(np.int64)


# ---------------------------------------------------------------------------------------
# Registry and relabelling.

READERS: dict[str, Callable[..., DatasetRecords]] = {
    "market1501": read_market1501,
    "dukemtmc": read_dukemtmc,
    "msmt17": read_msmt17,
    "cuhk03": read_cuhk03,
    "mars": read_mars,
}


def read_dataset(name: str, root: str | os.PathLike, *, cuhk03_variant: str = "labeled",
                 msmt17_version: str | None = None, num_cameras: int = 6) -> DatasetRecords:
    """Read benchmark ``name`` (one of ``READERS``) from ``root``, e.g. ``data/market1501``.

    ``cuhk03_variant`` ("labeled" | "detected") is used by cuhk03 only; ``msmt17_version``
    ("V1" | "V2" | None = auto-detect) by msmt17 only; ``num_cameras`` by market1501 and
    mars only (for exports of worlds with more than six cameras in their layouts).
    """
    key = name.lower()
    if key not in READERS:
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(READERS)}")
    if key == "cuhk03":
        return read_cuhk03(root, variant=cuhk03_variant)
    if key == "msmt17":
        return read_msmt17(root, version=msmt17_version)
    if key in ("market1501", "mars"):
        return READERS[key](root, num_cameras=num_cameras)
    return READERS[key](root)


def relabel(records: Sequence[Record]) -> tuple[list[Record], dict[int, int]]:
    """Map the pids of ``records`` to 0..C-1 (sorted order) for a classifier.

    Returns the new records and the mapping {dataset pid: label}. Junk (-1) cannot be a
    class, so it is refused.
    """
    pids = sorted({r.pid for r in records})
    if pids and pids[0] < 0:
        raise ValueError("relabel: junk records (pid -1) cannot be training classes")
    mapping = {pid: label for label, pid in enumerate(pids)}
    return [dataclasses.replace(r, pid=mapping[r.pid]) for r in records], mapping


# ---------------------------------------------------------------------------------------
# Decoding to an ImageSet, with a verified cache.

_CACHE_FORMAT = "reidlib-imageset-v1"


def _decode_image(path: str, size: tuple[int, int]) -> np.ndarray:
    """One image as (H, W, 3) uint8, resized to ``size`` = (H, W)."""
    with Image.open(path) as image:
        image = image.convert("RGB").resize((size[1], size[0]), Image.BILINEAR)
        return np.asarray(image, dtype=np.uint8)


def _decode_all(records: Sequence[Record], size: tuple[int, int], workers: int) -> np.ndarray:
    """All images into one preallocated array. Threads help: PIL releases the GIL while
    it decodes and resizes."""
    images = np.empty((len(records), size[0], size[1], 3), np.uint8)

    def load(i: int) -> None:
        images[i] = _decode_image(records[i].path, size)

    with ThreadPoolExecutor(max(1, workers)) as pool:
        for _ in tqdm(pool.map(load, range(len(records))), total=len(records),
                      desc="decoding images", unit="img", disable=not progress_enabled()):
            pass
    return images


def _label_arrays(records: Sequence[Record]) -> dict[str, np.ndarray]:
    return {
        name: np.array([getattr(r, field) for r in records], dtype=np.int64)
        for name, field in (("pids", "pid"), ("camids", "camid"),
                            ("tracklets", "tracklet"), ("frames", "frame"))
    }


def cache_key(records: Sequence[Record], size: tuple[int, int]) -> str:
    """A hash of the record list (paths and labels, in order) and the image size."""
    h = hashlib.sha256(f"{_CACHE_FORMAT}\n{size[0]}x{size[1]}\n".encode())
    for r in records:
        h.update(f"{r.path}\t{r.pid}\t{r.camid}\t{r.tracklet}\t{r.frame}\n".encode())
    return h.hexdigest()


def _digest(images: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(images).data).hexdigest()


def _write_cache(path: Path, images: np.ndarray, key: str) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        # A file object, because np.savez would append ".npz" to the temporary name.
        np.savez(f, images=images, key=np.array(key), digest=np.array(_digest(images)))


def _read_cache(path: Path, key: str, shape: tuple[int, ...]) -> np.ndarray:
    """The cached images; raises ValueError when the file does not verify."""
    with np.load(path, allow_pickle=False) as data:
        images, stored_key, digest = data["images"], str(data["key"]), str(data["digest"])
    if stored_key != key:
        raise ValueError("it was written for other records or another size")
    if images.shape != shape or images.dtype != np.uint8:
        raise ValueError(f"images are {images.dtype} {images.shape}, expected uint8 {shape}")
    if _digest(images) != digest:
        raise ValueError("the pixel checksum does not match")
    return images


def load_imageset(records: Sequence[Record], size: tuple[int, int] = (256, 128),
                  cache_dir: str | os.PathLike | None = None,
                  workers: int | None = None) -> ImageSet:
    """Decode ``records`` with PIL, resized to ``size`` = (H, W), into a uint8 ImageSet.

    With ``cache_dir``, the pixels are kept in ``imageset-<key>.npz`` (key: ``cache_key``),
    written atomically and verified on load (key, shape, SHA-256 of the pixels); a cache
    that fails any check is reported with a warning and rebuilt, never used.
    Memory is N * H * W * 3 bytes: about 3.2 GB for Market-1501 at 256x128, far more for
    all MARS frames, so subsample MARS tracklets before decoding at full size.
    """
    records = list(records)
    size = (int(size[0]), int(size[1]))
    shape = (len(records), size[0], size[1], 3)
    workers = workers or min(8, os.cpu_count() or 1)
    images = None
    if cache_dir is not None:
        key = cache_key(records, size)
        path = Path(cache_dir) / f"imageset-{key[:24]}.npz"
        if path.exists():
            try:
                images = _read_cache(path, key, shape)
            except Exception as err:  # any corruption (bad zip, truncation...) means rebuild
                warnings.warn(f"image cache {path} is unusable ({err}); rebuilding it",
                              stacklevel=2)
        if images is None:
            images = _decode_all(records, size, workers)
            _write_cache(path, images, key)
    else:
        images = _decode_all(records, size, workers)
    return ImageSet(images=images, **_label_arrays(records), paths=[r.path for r in records])


def load_splits(name: str, root: str | os.PathLike, size: tuple[int, int] = (256, 128),
                cache_dir: str | os.PathLike | None = None, **reader_options) -> ReidSplits:
    """A real benchmark as ``ReidSplits``: train pids relabelled to 0..C-1 for training,
    query / gallery with the dataset's own pids (0 = distractor). ``reader_options`` go
    to ``read_dataset`` (``cuhk03_variant``, ``msmt17_version``)."""
    records = read_dataset(name, root, **reader_options)
    train, _ = relabel(records.train)
    return ReidSplits(
        name=records.name,
        train=load_imageset(train, size, cache_dir),
        query=load_imageset(records.query, size, cache_dir),
        gallery=load_imageset(records.gallery, size, cache_dir),
    )
