"""Tiny fake Re-ID releases in the exact official layouts, for tests.

Each ``write_*`` function writes a few 8x4 images (PIL) with the official file names,
list files and .mat files (scipy.io.savemat), and returns the folder to pass to
``reidlib.data.datasets.read_dataset``. The file lists are module constants, so a test
can state its expected counts by hand from them. Every image is one solid colour,
``fake_color(file name)``, so decoded pixels can be checked too.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image

IMAGE_SIZE = (8, 4)  # (H, W): person crops are taller than wide

MARKET1501 = {
    "bounding_box_train": [
        "0002_c1s1_000451_03.jpg", "0002_c2s1_000301_01.jpg",
        "0007_c1s1_000551_01.jpg", "0007_c3s2_020001_02.jpg", "0007_c6s4_002202_01.jpg",
    ],
    "query": ["0001_c1s1_001051_00.jpg", "0003_c2s1_000301_00.jpg"],
    "bounding_box_test": [
        "0001_c1s1_001051_03.jpg", "0001_c2s1_000301_01.jpg", "0003_c4s2_000101_02.jpg",
        "0000_c1s1_000151_01.jpg", "0000_c5s3_000151_01.jpg",  # distractors
        "-1_c1s1_000401_03.jpg", "-1_c3s1_000401_03.jpg",  # junk
    ],
}

DUKEMTMC = {
    "bounding_box_train": [
        "0005_c1_f0040001.jpg", "0005_c2_f0041234.jpg", "0008_c7_f0100001.jpg",
        "0008_c8_f0100421.jpg",
    ],
    "query": ["0001_c2_f0046182.jpg", "0010_c5_f0080001.jpg"],
    "bounding_box_test": [
        "0001_c1_f0046001.jpg", "0001_c6_f0050002.jpg", "0010_c8_f0090001.jpg",
        "0011_c3_f0001234.jpg",  # a gallery-only person, with an ordinary pid
    ],
}

CUHK03_NP = {
    "labeled": {
        "bounding_box_train": ["0001_c1_1.png", "0001_c2_6.png", "0004_c1_2.png",
                               "0004_c2_7.png", "0004_c2_8.png"],
        "query": ["0002_c1_1.png", "0003_c2_6.png"],
        "bounding_box_test": ["0002_c2_7.png", "0003_c1_2.png", "0003_c1_3.png"],
    },
    "detected": {  # a box fewer in train, as in the real release (7,365 vs 7,368)
        "bounding_box_train": ["0001_c1_1.png", "0001_c2_6.png", "0004_c1_2.png",
                               "0004_c2_7.png"],
        "query": ["0002_c1_1.png", "0003_c2_6.png"],
        "bounding_box_test": ["0002_c2_7.png", "0003_c1_2.png"],
    },
}

MSMT17_LISTS = {  # listed pids count from 0, as in the release
    "list_train.txt": [
        "0000/0000_000_01_0303morning_0015_0.jpg 0",
        "0000/0000_001_05_0303noon_0030_1.jpg 0",
        "0001/0001_000_15_0304afternoon_0101_0.jpg 1",
    ],
    "list_val.txt": ["0002/0002_000_03_0303morning_0420_0.jpg 2"],
    "list_query.txt": [
        "0000/0000_000_02_0113morning_0005_0.jpg 0",
        "0001/0001_000_07_0113noon_0012_0.jpg 1",
    ],
    "list_gallery.txt": [
        "0000/0000_001_04_0113morning_0100_0.jpg 0",
        "0001/0001_001_09_0113noon_0150_1.jpg 1",
        "0002/0002_000_11_0113afternoon_0200_0.jpg 2",
    ],
}
MSMT17_DIRS = {"V1": ("train", "test"), "V2": ("mask_train_v2", "mask_test_v2")}

# MARS tracklets as (pid folder, camera, tracklet number, frames); the info rows are
# built from them in order, 1-based into the name list.
MARS_TRAIN = [("0001", 1, 1, 3), ("0001", 2, 1, 2), ("0003", 4, 2, 4)]
MARS_TEST = [
    ("0002", 1, 1, 3),  # row 0: query
    ("0002", 2, 1, 2),
    ("0000", 2, 1, 2),  # distractor
    ("0005", 3, 1, 2),  # row 3: query
    ("00-1", 5, 1, 3),  # junk
    ("0005", 6, 1, 2),
    ("0002", 1, 2, 2),  # same person and camera as query row 0
]
MARS_QUERY_IDX = [1, 4]  # 1-based rows of the test info, as in query_IDX.mat


def fake_color(name: str) -> tuple[int, int, int]:
    """The solid colour of the fake image called ``name`` (mid-range: no clipping)."""
    digest = hashlib.sha256(name.encode()).digest()
    return tuple(32 + b % 192 for b in digest[:3])


def write_image(path: Path, size: tuple[int, int] = IMAGE_SIZE) -> None:
    """A solid ``fake_color`` image of ``size`` = (H, W); JPEG or PNG from the suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size[1], size[0]), fake_color(path.name)).save(path, quality=95)


def _write_folders(base: Path, folders: dict[str, list[str]]) -> None:
    for folder, names in folders.items():
        (base / folder).mkdir(parents=True, exist_ok=True)
        for name in names:
            write_image(base / folder / name)


def write_market1501(root: Path, nested: bool = True) -> Path:
    """Market-1501 under ``root`` (inside ``Market-1501-v15.09.15/`` when ``nested``),
    with the ``Thumbs.db`` the real release ships beside its images."""
    base = root / "Market-1501-v15.09.15" if nested else root
    _write_folders(base, MARKET1501)
    (base / "bounding_box_train" / "Thumbs.db").write_bytes(b"\x00not an image")
    return root


def write_dukemtmc(root: Path, nested: bool = True) -> Path:
    """DukeMTMC-reID under ``root`` (inside ``DukeMTMC-reID/`` when ``nested``)."""
    _write_folders(root / "DukeMTMC-reID" if nested else root, DUKEMTMC)
    return root


def write_cuhk03_np(root: Path, nested: bool = True) -> Path:
    """cuhk03-np (labeled/ and detected/, PNG images) under ``root``."""
    base = root / "cuhk03-np" if nested else root
    for variant, folders in CUHK03_NP.items():
        _write_folders(base / variant, folders)
    return root


def write_msmt17(root: Path, version: str = "V1", nested: bool = True,
                 lists_in_image_dirs: bool = False) -> Path:
    """MSMT17 V1 (train/, test/) or V2 (mask_train_v2/, mask_test_v2/) with its four lists.

    The lists sit in the release folder, as released; ``lists_in_image_dirs`` puts them
    inside the image folders instead (a layout some copies have).
    """
    base = root / f"MSMT17_{version}" if nested else root
    train_dir, test_dir = (base / d for d in MSMT17_DIRS[version])
    for list_name, lines in MSMT17_LISTS.items():
        image_dir = train_dir if list_name in ("list_train.txt", "list_val.txt") else test_dir
        for line in lines:
            write_image(image_dir / line.split()[0])
        list_dir = image_dir if lists_in_image_dirs else base
        (list_dir / list_name).write_text("\n".join(lines) + "\n")
    return root


def _mars_names(tracklets: list[tuple[str, int, int, int]]) -> tuple[list[str], np.ndarray]:
    names, rows = [], []
    for folder, cam, number, frames in tracklets:
        start = len(names) + 1
        names += [f"{folder}C{cam}T{number:04d}F{f:03d}.jpg" for f in range(1, frames + 1)]
        pid = -1 if folder == "00-1" else int(folder)
        rows.append([start, len(names), pid, cam])
    return names, np.array(rows, dtype=np.float64)  # MATLAB doubles, as in the release


def write_mars(root: Path, nested: bool = False) -> Path:
    """MARS: bbox_train/, bbox_test/ (one folder per pid) and the info/ files."""
    base = root / "MARS" if nested else root
    info = base / "info"
    info.mkdir(parents=True, exist_ok=True)
    for split, tracklets in (("train", MARS_TRAIN), ("test", MARS_TEST)):
        names, rows = _mars_names(tracklets)
        for name in names:
            write_image(base / f"bbox_{split}" / name[:4] / name)
        (info / f"{split}_name.txt").write_text("\n".join(names) + "\n")
        scipy.io.savemat(info / f"tracks_{split}_info.mat", {f"track_{split}_info": rows})
    scipy.io.savemat(info / "query_IDX.mat",
                     {"query_IDX": np.array([MARS_QUERY_IDX], dtype=np.float64)})
    return root


def colour_identity_set(n_ids=12, per_id=6, cams=3, size=(32, 16), seed=0):
    """A tiny learnable ImageSet: identity = a colour + noise; true pids 100.. so they can
    never equal cluster ids 0..C-1 by accident (the training-loop tests of chapters 1-2)."""
    from reidlib.data.imageset import ImageSet

    rng = np.random.default_rng(seed)
    ids = np.repeat(np.arange(n_ids), per_id)
    colour = rng.integers(0, 256, (n_ids, 1, 1, 3))
    noise = rng.normal(0, 30, (len(ids), *size, 3))
    images = np.clip(colour[ids] + noise, 0, 255).astype(np.uint8)
    return ImageSet(images, ids + 100, np.tile(np.arange(per_id) % cams, n_ids))


def randomised_bn(bn, batches_tracked: int | None = None):
    """``bn`` (a BatchNorm) with non-trivial affine weights and running statistics (seeded),
    and ``num_batches_tracked`` set when given: the camera-BN and DSBN tests' starting layer."""
    import torch

    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        bn.weight.copy_(1 + 0.3 * torch.randn(bn.num_features, generator=g))
        bn.bias.copy_(0.2 * torch.randn(bn.num_features, generator=g))
        bn.running_mean.copy_(torch.randn(bn.num_features, generator=g))
        bn.running_var.copy_(0.5 + torch.rand(bn.num_features, generator=g))
        if batches_tracked is not None:
            bn.num_batches_tracked.fill_(batches_tracked)
    return bn
