"""The camera-bias dial of the synthetic world, and a pixel-space gauge that it turns.

Chapter 3 (survey §3.3, camera-aware invariance learning) needs worlds whose cameras
differ more or less in style: ``load_world(..., camera_style=s)`` multiplies every
camera's departure from the domain's shared style by ``s`` (``sample.sample_cameras``
says attribute by attribute what that means). ``camera_colour_gap`` measures the result
on raw pixels, before any model, so a reader can see the dial work.
"""

from __future__ import annotations

import math
from numbers import Real

import numpy as np

from reidlib.data.imageset import ImageSet, ReidSplits


def check_camera_style(camera_style: float) -> float:
    """``camera_style`` as a float, or a ValueError unless it is a finite number >= 0."""
    ok = isinstance(camera_style, Real) and not isinstance(camera_style, bool)
    if not ok or not math.isfinite(camera_style) or camera_style < 0:
        raise ValueError(
            "camera_style must be a finite number >= 0 (0: cameras differ only in "
            f"viewpoint and placement, 1: the default world, 2: twice its camera bias), "
            f"got {camera_style!r}"
        )
    return float(camera_style)


def style_tag(camera_style: float) -> str:
    """Suffix naming a world's dial setting: empty at 1, so default names never change."""
    return "" if camera_style == 1 else f"-style{float(camera_style)!r}"


def _image_means(data: ImageSet | ReidSplits) -> tuple[np.ndarray, np.ndarray]:
    """Mean colour of each image (N, 3) in grey levels, and its camera (N,)."""
    if isinstance(data, ReidSplits):
        sets = [data.train, data.query, data.gallery]
    elif isinstance(data, ImageSet):
        sets = [data]
    else:
        raise ValueError(
            f"expected an ImageSet or a world (ReidSplits), got {type(data).__name__}"
        )
    means = [s.images.reshape(len(s), -1, 3).mean(1, dtype=np.float64) for s in sets]
    return np.concatenate(means), np.concatenate([s.camids for s in sets])


def per_camera_colour(data: ImageSet | ReidSplits) -> tuple[np.ndarray, np.ndarray]:
    """(cameras, their mean colour (C, 3) in grey levels 0..255) over every image."""
    means, camids = _image_means(data)
    cams, inverse = np.unique(camids, return_inverse=True)
    sums = np.zeros((len(cams), 3))
    np.add.at(sums, inverse, means)
    return cams, sums / np.bincount(inverse)[:, None]


def camera_colour_gap(data: ImageSet | ReidSplits) -> float:
    """How far cameras differ in mean colour: the camera bias of a set in pixel space.

    The root-mean-square distance (in grey levels, 0..255) of each camera's mean colour
    from the average of those means, every camera weighted alike. A world (all three
    splits) or one ``ImageSet``; it needs at least two cameras. What is left at
    ``camera_style=0`` is sampling: different people and scenes pass each camera.
    """
    cams, colours = per_camera_colour(data)
    if len(cams) < 2:
        raise ValueError(f"camera_colour_gap needs images from >= 2 cameras, got {len(cams)}")
    spread = colours - colours.mean(0)
    return float(np.sqrt((spread**2).sum(1).mean()))
