"""Write a world in the exact Market-1501 folder layout, for outside re-id tools."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from PIL import Image
from tqdm.auto import tqdm

from reidlib.data.imageset import ImageSet, ReidSplits
from reidlib.utils import progress_enabled

_FOLDERS = {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"}


def market_name(pid: int, camid: int, frame: int, index: int) -> str:
    """Market-1501 file name: ``0002_c1s1_000451_03.jpg`` (camera 1-based, junk as ``-1``)."""
    person = "-1" if pid < 0 else f"{pid:04d}"
    return f"{person}_c{camid + 1}s1_{frame % 1_000_000:06d}_{index % 100:02d}.jpg"


def _write_split(images: ImageSet, folder: Path, progress: bool) -> None:
    folder.mkdir(parents=True)
    seen: dict[str, int] = {}
    rows = zip(images.images, images.pids, images.camids, images.frames, strict=True)
    for img, pid, cam, frame in tqdm(
        rows, total=len(images), desc=folder.name, leave=False,
        disable=not progress_enabled(progress),
    ):
        key = f"{pid}_{cam}_{frame}"
        seen[key] = seen.get(key, 0) + 1
        name = market_name(int(pid), int(cam), int(frame), seen[key])
        Image.fromarray(img).save(folder / name, quality=95)


def export_market1501(world: ReidSplits, out: str | os.PathLike, progress: bool = True) -> Path:
    """Export to ``out/{bounding_box_train,query,bounding_box_test}``; returns ``out``.

    The folder is assembled beside ``out`` and renamed into place, so an interrupted
    export never leaves a partial dataset that a reader would accept.
    """
    out = Path(out)
    if out.exists():
        raise FileExistsError(f"{out} already exists: choose a new folder for the export")
    tmp = out.with_name(f".{out.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    for split, folder in _FOLDERS.items():
        _write_split(getattr(world, split), tmp / folder, progress)
    os.replace(tmp, out)
    return out
