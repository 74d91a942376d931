"""In-memory image sets: uint8 pixels plus the labels the protocols need.

Every source (the synthetic world, a real dataset decoded once) ends up as an
``ImageSet``. Keeping pixels as one uint8 array lets training move the whole set to the
model's device once and augment whole batches there, so the data path does not starve a
GPU and stays light on a laptop CPU.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields

import numpy as np
import torch


@dataclass
class ImageSet:
    """``images``: (N, H, W, 3) uint8; the rest are (N,) int64 arrays.

    ``tracklets``/``frames``/``timestamps`` are -1 where a source has none.
    """

    images: np.ndarray
    pids: np.ndarray
    camids: np.ndarray
    tracklets: np.ndarray | None = None
    frames: np.ndarray | None = None
    timestamps: np.ndarray | None = None
    paths: list[str] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        n = len(self.pids)
        if self.images.ndim != 4 or self.images.shape[-1] != 3 or self.images.dtype != np.uint8:
            raise ValueError(
                "ImageSet.images must be a uint8 array of shape (N, H, W, 3), got "
                f"{self.images.dtype} {tuple(self.images.shape)}"
            )
        self.pids = np.asarray(self.pids, dtype=np.int64)
        self.camids = np.asarray(self.camids, dtype=np.int64)
        for name in ("tracklets", "frames", "timestamps"):
            value = getattr(self, name)
            value = np.full(n, -1, np.int64) if value is None else np.asarray(value, np.int64)
            setattr(self, name, value)
        for name in ("images", "camids", "tracklets", "frames", "timestamps"):
            if len(getattr(self, name)) != n:
                raise ValueError(
                    f"ImageSet.{name} has {len(getattr(self, name))} rows, pids has {n}"
                )

    def __len__(self) -> int:
        return len(self.pids)

    @property
    def image_size(self) -> tuple[int, int]:
        return tuple(self.images.shape[1:3])

    @property
    def num_ids(self) -> int:
        return len(np.unique(self.pids[self.pids >= 0]))

    def subset(self, index: Sequence[int] | np.ndarray) -> ImageSet:
        """Rows ``index`` (an index array or a boolean mask) as a new set."""
        index = np.asarray(index)
        if index.dtype == bool:
            index = np.flatnonzero(index)
        kwargs = {f.name: getattr(self, f.name)[index] for f in fields(self) if f.name != "paths"}
        paths = None if self.paths is None else [self.paths[i] for i in index]
        return ImageSet(**kwargs, paths=paths)

    def tensor(self, device: torch.device | str = "cpu") -> torch.Tensor:
        """Pixels as a (N, 3, H, W) uint8 tensor on ``device``."""
        return torch.from_numpy(self.images).to(device).permute(0, 3, 1, 2)


@dataclass
class ReidSplits:
    """A Re-ID benchmark: a training set and a query / gallery test split."""

    name: str
    train: ImageSet
    query: ImageSet
    gallery: ImageSet

    def summary(self) -> str:
        rows = [f"{self.name}: {'subset':<8} {'ids':>6} {'images':>7} {'cameras':>7}"]
        for split in ("train", "query", "gallery"):
            s = getattr(self, split)
            rows.append(
                f"{'':{len(self.name)}}  {split:<8} {s.num_ids:>6} {len(s):>7} "
                f"{len(np.unique(s.camids)):>7}"
            )
        return "\n".join(rows)
