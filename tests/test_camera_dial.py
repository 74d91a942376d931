"""The camera-bias dial of the synthetic world (chapter 3, survey §3.3) and its pixel gauge."""

import json
import math

import numpy as np
import pytest

from reidlib.data.imageset import ImageSet, ReidSplits
from reidlib.data.synthetic import build_world, camera_colour_gap, load_world
from reidlib.data.synthetic import world as world_module
from reidlib.data.synthetic.render import image_parameters, render_images
from reidlib.data.synthetic.sample import (
    BLUR,
    FLOOR_SHADE,
    NOISE,
    WALL_FREQ,
    sample_cameras,
    sample_nuisances,
    sample_people,
    sample_walks,
)
from reidlib.data.synthetic.spec import get_domain, get_size
from reidlib.data.synthetic.world import WORLD_VERSION, cache_paths, save_world

STYLES = (0.0, 0.5, 1.0, 2.0)
SPLITS = ("train", "query", "gallery")


@pytest.fixture(scope="module")
def worlds():
    """World A, smoke profile, at each dial setting (the default world under 1.0)."""
    out = {s: build_world("A", "smoke", progress=False, camera_style=s) for s in STYLES[:3]}
    out[2.0] = build_world("A", "smoke", progress=False, camera_style=2)  # an int is fine
    out["default"] = build_world("A", "smoke", progress=False)
    return out


def test_style_one_is_the_default_world_bit_for_bit(worlds):
    one, default = worlds[1.0], worlds["default"]
    for split in SPLITS:
        a, b = getattr(one, split), getattr(default, split)
        for column in ("images", "pids", "camids", "tracklets", "frames", "timestamps"):
            assert getattr(a, column).tobytes() == getattr(b, column).tobytes(), (split, column)
    for table in ("people", "cameras"):
        x, y = getattr(one, table), getattr(default, table)
        assert list(x) == list(y) and all(x[k].tobytes() == y[k].tobytes() for k in x)
    assert one.transit.tobytes() == default.transit.tobytes()
    assert one.name == default.name == "synthetic-A-smoke" and one.camera_style == 1.0
    # the default world's cache file keeps the name every recorded number was made with
    stem = f"world-A-smoke-seed0-v{WORLD_VERSION}"
    assert cache_paths("A", "smoke", 0, "c", camera_style=1) == cache_paths("A", "smoke", 0, "c")
    assert [p.name for p in cache_paths("A", "smoke", 0, "c")] == [f"{stem}.npz", f"{stem}.json"]


def test_people_walks_and_splits_do_not_move_with_the_dial(worlds):
    base = worlds[1.0]
    for s in STYLES:
        w = worlds[s]
        for split in SPLITS:
            a, b = getattr(w, split), getattr(base, split)
            for column in ("pids", "camids", "tracklets", "frames", "timestamps"):
                assert np.array_equal(getattr(a, column), getattr(b, column)), (s, split)
        assert np.array_equal(w.people_pid, base.people_pid)
        assert all(np.array_equal(w.people[k], base.people[k]) for k in base.people)
        assert np.array_equal(w.transit, base.transit)
        if s != 1.0:
            assert w.train.images.tobytes() != base.train.images.tobytes()
            assert w.name == f"synthetic-A-smoke-style{s!r}" and w.camera_style == s


def test_each_camera_attribute_departs_by_the_dial_times_the_default():
    """The camera table against the rule written out per attribute (sample_cameras)."""
    dom = get_domain("B")

    def cams(s):
        return sample_cameras(dom, np.random.default_rng([dom.seed, 5]), style=s)

    one = cams(1.0)
    for s in (0.0, 0.5, 2.0):
        c = cams(s)
        for key in ("views", "position", "horizon", "person_height", "occlusion"):
            assert np.array_equal(c[key], one[key]), f"{key} is geometry: kept at style {s}"
        light = np.asarray(dom.light)
        assert np.allclose(np.log(c["gain"] / light), s * np.log(one["gain"] / light))
        assert np.allclose(np.log(c["brightness"] / dom.brightness),
                           s * np.log(one["brightness"] / dom.brightness))
        assert np.allclose(c["gamma"], np.clip(1 + s * (one["gamma"] - 1), 0.5, 2))
        assert np.allclose(np.log(c["wall_freq"] / WALL_FREQ),
                           s * np.log(one["wall_freq"] / WALL_FREQ))
        assert np.allclose(c["blur"], np.maximum(BLUR + s * (one["blur"] - BLUR), 0))
        assert np.allclose(c["noise"], np.maximum(NOISE + s * (one["noise"] - NOISE), 0))
        assert np.allclose(c["lowres"], 1 + s * (one["lowres"] - 1))
        # wall and floor colour, in log space, wherever neither style needed clipping
        bg = np.asarray(dom.background)
        free = (one["scene"] > 0.05) & (one["scene"] < 1) & (c["scene"] > 0.05) & (c["scene"] < 1)
        assert free.mean() > 0.8
        assert np.allclose(np.log(c["scene"] / bg)[free], s * np.log(one["scene"] / bg)[free])
        shade, shade1 = c["floor"] / c["scene"], one["floor"] / one["scene"]
        free &= (c["floor"] < 1) & (one["floor"] < 1)
        assert np.allclose(np.log(shade / FLOOR_SHADE)[free],
                           s * np.log(shade1 / FLOOR_SHADE)[free])
    zero = cams(0.0)
    for key in ("gain", "brightness", "gamma", "scene", "floor", "wall_freq", "blur", "noise"):
        assert np.allclose(zero[key], zero[key][:1]), f"{key} differs between cameras at 0"
    assert (cams(3.0)["gamma"] >= 0.5).all() and (cams(9.0)["blur"] >= 0).all()


def _same_scene_in_every_camera(style: float) -> np.ndarray:
    """One background-only crop per camera of world A, everything but the camera shared."""
    dom, size = get_domain("A"), get_size("smoke")
    rng = np.random.default_rng([dom.seed, 0])
    cameras = sample_cameras(dom, rng, style=style)
    people = sample_people(dom, 1, rng)
    walks = sample_walks(1, size, cameras, rng)
    row = {k: v[:1] for k, v in sample_nuisances(walks, cameras, rng).items()}
    n = dom.n_cameras
    nuisances = {k: np.repeat(v, n, axis=0) for k, v in row.items()}
    nuisances.update(no_person=np.ones(n, np.int64), occluder=np.zeros(n, np.int64))
    walks = {"person": np.zeros(n, np.int64), "camid": np.arange(n)}
    params = image_parameters(people, cameras, walks, nuisances)
    return render_images(params, size.height, size.width, seed=0, progress=False)


def test_background_colour_is_shared_by_every_camera_at_style_zero():
    """Above the clutter and the horizon (geometry) only the wall shows: at style 0 its mean
    colour is the same in every camera up to sensor noise; at style 1 it is not."""
    def wall_colour(style):
        return _same_scene_in_every_camera(style)[:, :16].reshape(6, -1, 3).mean(1)

    zero, one = wall_colour(0.0), wall_colour(1.0)
    assert np.abs(zero - zero.mean(0)).max() < 1.0  # grey levels
    assert np.abs(one - one.mean(0)).max() > 10


def test_colour_gap_grows_with_the_dial(worlds):
    gaps = [camera_colour_gap(worlds[s]) for s in STYLES]
    assert all(a < b for a, b in zip(gaps, gaps[1:], strict=False)), gaps
    # at 0 only sampling is left (different people and scenes pass each camera)
    assert gaps[0] < 0.4 * gaps[2]
    assert camera_colour_gap(worlds[1.0]) == camera_colour_gap(worlds["default"])


def test_colour_gap_against_a_loop():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (9, 4, 3, 3), dtype=np.uint8)
    camids = np.array([0, 0, 1, 1, 1, 5, 5, 5, 5])
    means = []
    for cam in (0, 1, 5):
        pixels = [images[i, y, x] for i in range(9) if camids[i] == cam
                  for y in range(4) for x in range(3)]
        means.append(np.sum(pixels, axis=0) / len(pixels))
    centre = sum(means) / 3
    expected = math.sqrt(sum(float(((m - centre) ** 2).sum()) for m in means) / 3)
    one_set = ImageSet(images, np.arange(9), camids)
    assert camera_colour_gap(one_set) == pytest.approx(expected)
    # a world counts the images of all three splits
    splits = ReidSplits("w", one_set.subset([0, 2, 5]), one_set.subset([1, 6]),
                        one_set.subset([3, 4, 7, 8]))
    assert camera_colour_gap(splits) == pytest.approx(expected)
    with pytest.raises(ValueError, match=">= 2 cameras, got 1"):
        camera_colour_gap(one_set.subset(camids == 5))
    with pytest.raises(ValueError, match="expected an ImageSet or a world"):
        camera_colour_gap(images)


@pytest.mark.parametrize("bad", [-0.5, float("nan"), float("inf"), "1", None, True])
def test_a_bad_dial_is_a_clear_error(bad, tmp_path):
    for call in (
        lambda: build_world("A", "smoke", progress=False, camera_style=bad),
        lambda: load_world("A", "smoke", cache_dir=tmp_path, progress=False, camera_style=bad),
        lambda: cache_paths("A", "smoke", 0, tmp_path, camera_style=bad),
    ):
        with pytest.raises(ValueError, match="camera_style must be a finite number >= 0"):
            call()
    assert not list(tmp_path.iterdir()), "nothing written for a bad dial"


def test_each_dial_setting_has_its_own_cache(worlds, tmp_path, monkeypatch):
    built = []

    def fake_build(domain, profile, seed, device, progress, camera_style, domain_gap=1.0):
        built.append(camera_style)
        return worlds[camera_style]

    monkeypatch.setattr(world_module, "build_world", fake_build)
    half = load_world("A", "smoke", cache_dir=tmp_path, progress=False, camera_style=0.5)
    data, manifest = cache_paths("A", "smoke", 0, tmp_path, camera_style=0.5)
    assert data.name == f"world-A-smoke-seed0-v{WORLD_VERSION}-style0.5.npz"
    assert data != cache_paths("A", "smoke", 0, tmp_path)[0]
    assert json.loads(manifest.read_text())["camera_style"] == 0.5
    again = load_world("A", "smoke", cache_dir=tmp_path, progress=False, camera_style=0.5)
    assert built == [0.5], "the second load reads the cache"
    assert again.train.images.tobytes() == half.train.images.tobytes()
    assert again.name == half.name and again.camera_style == 0.5
    # a style-0.5 cache under the default world's name is not taken for the default world
    default_data, default_manifest = cache_paths("A", "smoke", 0, tmp_path)
    default_data.write_bytes(data.read_bytes())
    default_manifest.write_text(manifest.read_text())
    load_world("A", "smoke", cache_dir=tmp_path, progress=False)
    assert built == [0.5, 1.0]
    assert json.loads(default_manifest.read_text())["camera_style"] == 1.0
    assert not list(tmp_path.glob(".*.tmp")), "no temporary files left behind"


def test_a_failed_write_leaves_no_cache(worlds, tmp_path, monkeypatch):
    def disk_full(world):
        raise OSError("disk full")

    monkeypatch.setattr(world_module, "_to_arrays", disk_full)
    data, manifest = cache_paths("A", "smoke", 0, tmp_path, camera_style=2.0)
    with pytest.raises(OSError, match="disk full"):
        save_world(worlds[2.0], data, manifest, seed=0)
    assert not list(tmp_path.iterdir()), "neither a half-written file nor a manifest"
