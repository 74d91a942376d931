"""Build, cache and load a synthetic world under the Market-1501 protocol (survey §4.1).

Protocol: training and test identities are disjoint; every test identity is seen by at
least two cameras; one query per (identity, camera), the rest of that identity's images
in the gallery; gallery-only distractor people are labelled 0 and junk crops (no person)
-1, as in Market-1501.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from reidlib.data.imageset import ImageSet, ReidSplits
from reidlib.data.sampler import one_random_per_group
from reidlib.data.synthetic.render import image_parameters, render_images
from reidlib.data.synthetic.sample import (
    sample_cameras,
    sample_nuisances,
    sample_people,
    sample_walks,
    transit_times,
)
from reidlib.data.synthetic.spec import (
    BAG_TYPES,
    HAIR_LENGTHS,
    LOWER_TYPES,
    UPPER_PATTERNS,
    check_domain_gap,
    colour_name,
    gap_tag,
    get_size,
    shifted_domain,
)
from reidlib.data.synthetic.style import check_camera_style, style_tag
from reidlib.utils import atomic_path, sha256_file

WORLD_VERSION = 3  # bump when rendering changes, so stale caches are rebuilt


@dataclass
class World(ReidSplits):
    """A rendered world: the three splits plus what the renderer knows and a model must not.

    ``people`` holds each person's attributes (row ``i`` describes ``people_pid[i]``),
    ``cameras`` each camera's style, ``transit`` the walking time between cameras (s),
    ``camera_style`` the camera-bias dial it was rendered with and ``domain_gap`` the
    domain-gap dial (1 and 1: the default world).
    """

    domain: str = ""
    profile: str = ""
    people_pid: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    people: dict[str, np.ndarray] = field(default_factory=dict)
    cameras: dict[str, np.ndarray] = field(default_factory=dict)
    transit: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    camera_style: float = 1.0
    domain_gap: float = 1.0

    def attributes_of(self, pids: np.ndarray) -> dict[str, np.ndarray]:
        """Attribute columns for each pid in ``pids`` (pids must be real people, not 0/-1)."""
        row = {int(p): i for i, p in enumerate(self.people_pid)}
        idx = np.asarray([row[int(p)] for p in pids])
        return {k: v[idx] for k, v in self.people.items() if not k.startswith("rgb_")}

    def describe_people(self, pids: np.ndarray) -> list[dict[str, str]]:
        """Each person's attributes in words, e.g. ``{"top": "red hstripes", "bag": ...}``.

        The renderer's integer codes mapped to the vocabulary of ``spec`` (patterns, lower
        garments, bags, palette colour names); flags become garments present or absent.
        In a world shifted by the gap dial a colour is named by the nearest named colour.
        """
        a = self.attributes_of(pids)
        palette = shifted_domain(self.domain, self.domain_gap).palette

        def colour(column: str, i: int) -> str:
            index = int(a[column][i])
            return "random colour" if palette is None or index < 0 else \
                colour_name(palette[index])

        people = []
        for i in range(len(pids)):
            sleeves = "long sleeves" if a["long_sleeve"][i] else "short sleeves"
            extras = [name for name in ("hat", "coat", "scarf") if a[name][i]]
            people.append({
                "top": f"{colour('upper_colour', i)} {UPPER_PATTERNS[a['upper_pattern'][i]]}, "
                       f"{sleeves}",
                "lower": f"{colour('lower_colour', i)} {LOWER_TYPES[a['lower_type'][i]]}",
                "bag": BAG_TYPES[a["bag"][i]],
                "hair": HAIR_LENGTHS[a["hair_long"][i]],
                "also": ", ".join(extras) or "-",
            })
        return people


def _assign_splits(walks, person_pid, role, rng) -> np.ndarray:
    """Per image: 0 train, 1 query, 2 gallery, following the Market-1501 protocol."""
    split = np.full(len(walks["person"]), 2, np.int64)
    split[role[walks["person"]] == 0] = 0
    test = np.flatnonzero(role[walks["person"]] == 1)
    keys = person_pid[walks["person"][test]] * 1000 + walks["camid"][test]
    split[test[one_random_per_group(keys, rng)]] = 1
    return split


def build_world(
    domain: str = "A",
    profile: str = "quick",
    seed: int = 0,
    device: torch.device | str = "cpu",
    progress: bool = True,
    camera_style: float = 1.0,
    domain_gap: float = 1.0,
) -> World:
    """Sample and render a world; deterministic in (domain, profile, seed, device) and dials.

    ``camera_style`` is the camera-bias dial (chapter 3, survey §3.3): each camera's
    departure from the domain's shared light, colour, background and optics is multiplied
    by it (``sample_cameras`` lists what is scaled and what is kept). 0 leaves cameras
    that differ only in viewpoint and placement, 1 is the default world bit for bit, above
    1 camera bias is stronger. The people, walks, splits and poses are the same at every
    setting, as every random number is drawn before the dial is applied.

    ``domain_gap`` is the domain-gap dial (chapter 4, survey §3.4; ``spec.shifted_domain``
    says what moves): world A or B rendered in a style ``domain_gap`` of the way from its
    target's (B's or A's) to its own. 0 is the target's style, 1 the default world bit for
    bit, above 1 a stronger shift than B vs A. It changes style only (palette, season and
    fashion, light, camera distance, background, number of cameras); the people keep the
    world's own seed, so a source world never shares identities with its target. Unlike
    ``camera_style`` it is not a re-styling of fixed draws: probabilities decide which
    garments the same random numbers give, and where the number of cameras changes every
    later draw changes with it (people, walks, splits), as the cameras are drawn first to
    keep the default world's bits. The two dials compose: ``camera_style`` scales the
    shifted world's cameras.
    """
    camera_style = check_camera_style(camera_style)
    domain_gap = check_domain_gap(domain, domain_gap)
    dom, size = shifted_domain(domain, domain_gap), get_size(profile)
    rng = np.random.default_rng([dom.seed, seed])
    cameras = sample_cameras(dom, rng, style=camera_style)
    n = size.n_train + size.n_test + size.n_distractors
    people = sample_people(dom, n, rng)
    role = np.repeat([0, 1, 2], [size.n_train, size.n_test, size.n_distractors])
    person_pid = np.where(role == 2, 0, np.arange(1, n + 1))
    walks = sample_walks(n, size, cameras, rng)
    split = _assign_splits(walks, person_pid, role, rng)
    nuisances = sample_nuisances(walks, cameras, rng)
    pids = person_pid[walks["person"]]

    # junk: gallery crops where the detector fired on background only (pid -1)
    n_junk = int(round(size.junk_fraction * (split == 2).sum()))
    junk = np.sort(rng.choice(np.flatnonzero(split == 2), n_junk, replace=False))
    nuisances["no_person"][junk] = 1
    pids[junk] = -1

    params = image_parameters(people, cameras, walks, nuisances)
    images = render_images(
        params, size.height, size.width, seed=seed, device=device, progress=progress
    )

    def subset(s):
        idx = np.flatnonzero(split == s)
        return ImageSet(
            images[idx],
            pids[idx],
            walks["camid"][idx],
            walks["tracklet"][idx],
            walks["frame"][idx],
            walks["timestamp"][idx],
        )

    real = person_pid > 0
    return World(
        name=_world_name(domain, profile, camera_style, domain_gap),
        train=subset(0),
        query=subset(1),
        gallery=subset(2),
        domain=domain,
        profile=profile,
        people_pid=person_pid[real],
        people={k: v[real] for k, v in people.items()},
        cameras=cameras,
        transit=transit_times(cameras["position"]),
        camera_style=camera_style,
        domain_gap=domain_gap,
    )


def _world_name(domain: str, profile: str, camera_style: float, domain_gap: float) -> str:
    return f"synthetic-{domain}-{profile}{style_tag(camera_style)}{gap_tag(domain_gap)}"


# ---------------------------------------------------------------- cache

_SPLITS = ("train", "query", "gallery")
_COLUMNS = ("images", "pids", "camids", "tracklets", "frames", "timestamps")


def _to_arrays(world: World) -> dict[str, np.ndarray]:
    arrays = {f"{s}_{c}": getattr(getattr(world, s), c) for s in _SPLITS for c in _COLUMNS}
    arrays.update({f"people_{k}": v for k, v in world.people.items()})
    arrays.update({f"cameras_{k}": v for k, v in world.cameras.items()})
    arrays["people_pid"] = world.people_pid
    arrays["transit"] = world.transit
    return arrays


def _from_arrays(
    a, domain: str, profile: str, camera_style: float, domain_gap: float
) -> World:
    def split(s):
        return ImageSet(*(a[f"{s}_{c}"] for c in _COLUMNS))

    return World(
        name=_world_name(domain, profile, camera_style, domain_gap),
        train=split("train"),
        query=split("query"),
        gallery=split("gallery"),
        domain=domain,
        profile=profile,
        people_pid=a["people_pid"],
        people={k[7:]: a[k] for k in a.files if k.startswith("people_") and k != "people_pid"},
        cameras={k[8:]: a[k] for k in a.files if k.startswith("cameras_")},
        transit=a["transit"],
        camera_style=camera_style,
        domain_gap=domain_gap,
    )


def default_cache_dir() -> Path:
    """``$REID_CACHE`` if set, else ``data/cache`` at the repository root."""
    if env := os.environ.get("REID_CACHE"):
        return Path(env)
    return Path(__file__).resolve().parents[3] / "data" / "cache"


def cache_paths(
    domain: str,
    profile: str,
    seed: int,
    cache_dir: str | os.PathLike | None,
    camera_style: float = 1.0,
    domain_gap: float = 1.0,
):
    """(arrays, manifest) paths of a cached world; a ``camera_style`` or ``domain_gap``
    other than 1 adds a suffix (``-style0.5``, ``-gap0.5``, in that order), so the
    default world's file keeps its name."""
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    tag = style_tag(check_camera_style(camera_style)) + gap_tag(
        check_domain_gap(domain, domain_gap)
    )
    stem = f"world-{domain}-{profile}-seed{seed}-v{WORLD_VERSION}{tag}"
    return root / f"{stem}.npz", root / f"{stem}.json"


def save_world(world: World, data_path: Path, manifest_path: Path, seed: int) -> None:
    """Write the arrays, then a manifest with their checksum and file stamp; both atomically.

    The manifest is written last, so a crash in between leaves no manifest and the
    half-finished world is rebuilt on the next load rather than used.
    """
    with atomic_path(data_path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **_to_arrays(world))
        digest = sha256_file(tmp)
    manifest = {
        "domain": world.domain,
        "profile": world.profile,
        "seed": seed,
        "camera_style": world.camera_style,
        "domain_gap": world.domain_gap,
        "version": WORLD_VERSION,
        "sha256": digest,
        "stamp": _file_stamp(data_path),  # after the rename, which keeps size and mtime
    }
    with atomic_path(manifest_path) as tmp:
        tmp.write_text(json.dumps(manifest, indent=1))


def _file_stamp(path: Path) -> list[int]:
    """(size, mtime in ns): changes whenever the file is rewritten, as make and rsync assume."""
    stat = path.stat()
    return [stat.st_size, stat.st_mtime_ns]


def _valid_cache(
    data_path: Path, manifest_path: Path, camera_style: float, domain_gap: float = 1.0
) -> bool:
    if not (data_path.exists() and manifest_path.exists()):
        return False
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    if manifest.get("version") != WORLD_VERSION:
        return False
    # older manifests name neither dial: they hold the default world
    if manifest.get("camera_style", 1.0) != camera_style:
        return False
    if manifest.get("domain_gap", 1.0) != domain_gap:
        return False
    # The checksum reads the whole file (seconds for a full-size world): only when the
    # file is not the one saved, byte for byte untouched since.
    stamp = _file_stamp(data_path)
    if manifest.get("stamp") == stamp:
        return True
    if manifest.get("sha256") != sha256_file(data_path):
        return False
    # Same bytes, new stamp (a copied or touched cache): remember it for the next load.
    with contextlib.suppress(OSError):  # a read-only cache just keeps checking
        with atomic_path(manifest_path) as tmp:
            tmp.write_text(json.dumps({**manifest, "stamp": stamp}, indent=1))
    return True


def load_world(
    domain: str = "A",
    profile: str = "quick",
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
    device: torch.device | str | None = None,
    progress: bool = True,
    camera_style: float = 1.0,
    domain_gap: float = 1.0,
) -> World:
    """Load a world from the cache, rendering (and caching) it when absent or damaged.

    ``device`` only matters when rendering: the default renders ``full`` worlds on a GPU
    where present and smaller ones on the CPU. ``camera_style`` and ``domain_gap`` are the
    camera-bias and domain-gap dials of ``build_world``; each setting has its own cache
    file, its manifest records both.
    """
    camera_style = check_camera_style(camera_style)
    domain_gap = check_domain_gap(domain, domain_gap)
    data_path, manifest_path = cache_paths(
        domain, profile, seed, cache_dir, camera_style, domain_gap
    )
    if _valid_cache(data_path, manifest_path, camera_style, domain_gap):
        with np.load(data_path) as a:
            return _from_arrays(a, domain, profile, camera_style, domain_gap)
    if data_path.exists() or manifest_path.exists():
        print(f"world cache {data_path.name} is incomplete or corrupted: rebuilding it")
    if device is None:
        device = "cuda" if profile == "full" and torch.cuda.is_available() else "cpu"
    world = build_world(
        domain, profile, seed=seed, device=device, progress=progress,
        camera_style=camera_style, domain_gap=domain_gap,
    )
    save_world(world, data_path, manifest_path, seed)
    return world
