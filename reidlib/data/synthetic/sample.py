"""Draw the random parts of a world: people, cameras, walks through the camera network.

Everything here is numpy with an explicit ``Generator``, so a world is a pure function
of its seed; ``render.py`` then turns these numbers into pixels.
"""

from __future__ import annotations

import colorsys

import numpy as np

from reidlib.data.synthetic.spec import (
    BAG_TYPES,
    HAIR_COLOURS,
    LOWER_TYPES,
    SKIN_TONES,
    UPPER_PATTERNS,
    Domain,
    WorldSize,
)

FPS = 25  # frame numbers in file names count video frames at this rate


def _colours(domain: Domain, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` garment colours (rgb in 0..1) and their palette index (-1 for random colours).

    Each person's shade departs a little from the palette colour, so two people in "the
    same red" are not identical - but a camera's colour cast is far larger than that.
    """
    if domain.palette is None:
        hsv = np.stack([rng.random(n), rng.uniform(0.1, 0.9, n), rng.uniform(0.15, 0.95, n)], 1)
        rgb = np.array([colorsys.hsv_to_rgb(*c) for c in hsv])
        return rgb, np.full(n, -1)
    palette = np.asarray(domain.palette)
    index = rng.integers(0, len(palette), n)
    rgb = palette[index] * np.exp(rng.normal(0, 0.07, (n, 3)))
    return np.clip(rgb, 0.02, 1.0), index


def sample_people(domain: Domain, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Persistent appearance of ``n`` people: the attributes a person keeps in every camera."""
    upper, upper_idx = _colours(domain, n, rng)
    upper2, _ = _colours(domain, n, rng)
    lower, lower_idx = _colours(domain, n, rng)
    bag_colour, _ = _colours(domain, n, rng)
    hat_colour, _ = _colours(domain, n, rng)
    scarf_colour, _ = _colours(domain, n, rng)
    shoes = np.asarray([(0.08, 0.08, 0.08), (0.9, 0.9, 0.9), (0.45, 0.25, 0.1), (0.2, 0.3, 0.6)])
    shoe_idx = rng.integers(0, len(shoes), n)
    return {
        "skin": rng.integers(0, len(SKIN_TONES), n),
        "hair_colour": rng.integers(0, len(HAIR_COLOURS), n),
        "hair_long": (rng.random(n) < 0.35).astype(np.int64),
        "upper_pattern": rng.choice(len(UPPER_PATTERNS), n, p=domain.p_pattern),
        "upper_colour": upper_idx,
        "lower_colour": lower_idx,
        "lower_type": rng.choice(len(LOWER_TYPES), n, p=domain.p_lower),
        "long_sleeve": (rng.random(n) < domain.p_long_sleeve).astype(np.int64),
        "coat": (rng.random(n) < domain.p_coat).astype(np.int64),
        "hat": (rng.random(n) < domain.p_hat).astype(np.int64),
        "scarf": (rng.random(n) < domain.p_scarf).astype(np.int64),
        "bag": rng.choice(len(BAG_TYPES), n, p=(0.45, 0.3, 0.25)),
        "bag_side": rng.choice([-1, 1], n),
        "shoes": shoe_idx,
        "body_width": rng.uniform(0.85, 1.2, n),
        "body_height": rng.uniform(0.92, 1.0, n),
        "stripe_freq": rng.integers(3, 8, n).astype(np.float64),
        "rgb_upper": upper,
        "rgb_upper2": upper2,
        "rgb_lower": lower,
        "rgb_bag": bag_colour,
        "rgb_hat": hat_colour,
        "rgb_scarf": scarf_colour,
        "rgb_shoes": shoes[shoe_idx],
    }


# Domain-wide values a camera's style departs from, where ``Domain`` names none: the means
# of the distributions ``sample_cameras`` draws from.
FLOOR_SHADE = 0.85  # floor relative to the wall
WALL_FREQ = 5.5  # wall stripes per image height
BLUR = 0.45  # blur sigma at 64 pixels high
NOISE = 0.009  # sensor noise std, in 0..1 intensity


def _toward(x: np.ndarray, centre: float, style: float, log: bool = False) -> np.ndarray:
    """``x`` with its departure from ``centre`` times ``style`` (a ratio if ``log``).

    Returns ``x`` itself at style 1, so the default world keeps every bit.
    """
    if style == 1:
        return x
    return centre * (x / centre) ** style if log else centre + style * (x - centre)


def sample_cameras(
    domain: Domain, rng: np.random.Generator, style: float = 1.0
) -> dict[str, np.ndarray]:
    """Each camera's style (light, scene, optics) and its place in the network.

    ``style`` is the camera-bias dial of chapter 3 (survey §3.3, camera-aware invariance):
    every camera's departure from the domain's shared value is multiplied by it, so 0
    leaves cameras that differ only in geometry and 1 is the default world. The random
    numbers are drawn first, the same at every ``style``, so people, walks and poses do not
    change with the dial. Per attribute:

    - style, scaled: light gain and brightness (log, around ``Domain.light`` and
      ``Domain.brightness``), gamma (around 1, kept in 0.5..2), wall and floor colour (log,
      around ``Domain.background`` and ``FLOOR_SHADE`` of it; clipped as at style 1), wall
      stripe frequency (log, around ``WALL_FREQ``: a wall pattern is part of what a camera
      always shows behind people: camera-specific bias, as §3.3 calls it), blur and sensor
      noise (around ``BLUR`` and ``NOISE``, the means, so the dial changes how much cameras
      differ, not how sharp the average image is; kept >= 0) and resolution loss (around
      1.0, a full-resolution camera as half of them are);
    - geometry, kept: the viewpoint mix ``views``, ``position`` on the map, person height
      (camera distance), ``horizon`` and ``occlusion``: how often something stands between
      camera and person is where the camera hangs, not how it renders, and keeping it
      leaves the same tracklets occluded at every ``style``.
    """
    c, s = domain.n_cameras, style
    # the draws, in the order the default world has always drawn them
    light = rng.normal(0, domain.light_spread, (c, 3))
    wall = rng.normal(0, 0.12, (c, 3))
    floor_shade, floor = rng.uniform(0.6, 1.1, (c, 1)), rng.normal(0, 0.1, (c, 3))
    views = rng.dirichlet((1.5, 1.5, 1.0), c)  # front, back, side: each camera sees a mix
    position = rng.uniform(0, 400, (c, 2))  # metres on a campus map
    brightness, gamma = rng.normal(0, 0.12, c), rng.uniform(0.9, 1.1, c)
    horizon, wall_freq = rng.uniform(0.55, 0.8, c), rng.uniform(2, 9, c)
    blur, noise = rng.choice([0.0, 0.3, 0.6, 0.9], c), rng.uniform(0.003, 0.015, c)
    lowres = rng.choice([1.0, 1.0, 1.25, 1.5], c)
    occlusion = rng.uniform(0.05, 0.35, c)
    person_height = rng.uniform(*domain.person_height, c)  # how close the camera is

    scene = np.clip(np.asarray(domain.background) * np.exp(s * wall), 0.05, 1)
    floor_rgb = scene * _toward(floor_shade, FLOOR_SHADE, s, log=True) * np.exp(s * floor)
    return {
        "gain": np.asarray(domain.light) * np.exp(s * light),
        "brightness": domain.brightness * np.exp(s * brightness),
        "gamma": np.clip(_toward(gamma, 1.0, s), 0.5, 2),
        "scene": scene,
        "floor": np.clip(floor_rgb, 0, 1),
        "horizon": horizon,
        "wall_freq": _toward(wall_freq, WALL_FREQ, s, log=True),
        "views": views,
        "blur": np.clip(_toward(blur, BLUR, s), 0, None),
        "noise": np.clip(_toward(noise, NOISE, s), 0, None),
        "lowres": _toward(lowres, 1.0, s),
        "occlusion": occlusion,
        "person_height": person_height,
        "position": position,
    }


def transit_times(position: np.ndarray, speed: float = 1.3) -> np.ndarray:
    """Seconds to walk between cameras (straight-line distance at walking ``speed``)."""
    dist = np.linalg.norm(position[:, None] - position[None], axis=-1)
    return dist / speed


def sample_walks(
    n_people: int, size: WorldSize, cameras: dict[str, np.ndarray], rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Each person walks past a few distinct cameras; each pass is a tracklet of frames.

    Returns per-image arrays: person (row into the people table), camid, tracklet,
    frame (video frame number), timestamp (seconds since the day's start) and
    per-tracklet nuisances (viewpoint, occluder) repeated over its frames.
    """
    n_cams = len(cameras["gain"])
    transit = transit_times(cameras["position"])
    rows: dict[str, list] = {k: [] for k in ("person", "camid", "tracklet", "frame", "timestamp")}
    tracklet = 0
    for person in range(n_people):
        n_visits = rng.integers(size.cams_per_id[0], min(size.cams_per_id[1], n_cams) + 1)
        cams = rng.permutation(n_cams)[:n_visits]
        cams = cams[np.argsort(transit[cams[0], cams])]  # visit nearer cameras first
        t = rng.uniform(0, 8 * 3600)
        pace = np.exp(rng.normal(0, 0.2))
        for i, cam in enumerate(cams):
            if i:
                t += transit[cams[i - 1], cam] * pace + rng.exponential(20)
            n_frames = rng.integers(size.frames_per_visit[0], size.frames_per_visit[1] + 1)
            for f in range(n_frames):
                ts = t + f * 0.4
                rows["person"].append(person)
                rows["camid"].append(cam)
                rows["tracklet"].append(tracklet)
                rows["frame"].append(int(ts * FPS))
                rows["timestamp"].append(int(ts))
            tracklet += 1
    walks = {k: np.asarray(v, dtype=np.int64) for k, v in rows.items()}
    return walks


def sample_nuisances(
    walks: dict[str, np.ndarray], cameras: dict[str, np.ndarray], rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Per-image pose, misalignment, occluders and scene offsets.

    Viewpoint, walking direction, occluder and scene offset are shared by a tracklet
    (one pass in front of one camera); pose and box jitter change frame to frame.
    """
    cam, trk = walks["camid"], walks["tracklet"]
    n, n_trk = len(cam), trk.max() + 1 if len(trk) else 0
    trk_cam = np.zeros(n_trk, np.int64)
    trk_cam[trk] = cam
    views = cameras["views"][trk_cam]
    trk_view = (rng.random((n_trk, 1)) > np.cumsum(views, 1)).sum(1)
    occluded = rng.random(n_trk) < cameras["occlusion"][trk_cam]
    per_trk = {
        "view": trk_view,
        "direction": rng.choice([-1.0, 1.0], n_trk),
        "occluder": np.where(occluded, rng.integers(1, 4, n_trk), 0),
        "occ_pos": rng.uniform(0, 1, n_trk),
        "occ_rgb": np.clip(rng.uniform(0.05, 0.9, (n_trk, 3)), 0, 1),
        "scene_shift": rng.uniform(0, 1, n_trk),
        "clutter_rgb": rng.uniform(0.1, 0.9, (n_trk, 3)),
        "clutter_x": rng.uniform(-0.25, 0.25, n_trk),
        # where in the scene and when in the day: the same camera sees varied backgrounds
        "scene_jitter": np.exp(rng.normal(0, 0.4, (n_trk, 3))),
    }
    per_image = {k: v[trk] for k, v in per_trk.items()}
    per_image.update(
        phase=rng.uniform(0, 2 * np.pi, n),
        dx=rng.normal(0, 0.025, n),  # detector misalignment, in image-height units
        dy=rng.normal(0, 0.02, n),
        scale=cameras["person_height"][cam] * np.exp(rng.normal(0, 0.05, n)),
        light_jitter=np.exp(rng.normal(0, 0.05, (n, 3))),
        no_person=np.zeros(n, np.int64),
    )
    return per_image
