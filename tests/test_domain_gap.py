"""The domain-gap dial of the synthetic world (chapter 4, survey §3.4, issue #14)."""

import json
import math

import numpy as np
import pytest

from reidlib.data.synthetic import build_world, load_world
from reidlib.data.synthetic import world as world_module
from reidlib.data.synthetic.spec import (
    COLOUR_NAMES,
    DOMAINS,
    PARTNERS,
    SUMMER_PALETTE,
    WINTER_PALETTE,
    shifted_domain,
)
from reidlib.data.synthetic.world import WORLD_VERSION, cache_paths

SPLITS = ("train", "query", "gallery")
COLUMNS = ("images", "pids", "camids", "tracklets", "frames", "timestamps")
STYLE_FIELDS = ("palette", "n_cameras", "p_lower", "p_pattern", "p_long_sleeve", "p_hat",
                "p_coat", "p_scarf", "light", "light_spread", "brightness", "person_height",
                "background")


def _same_arrays(x, y) -> bool:
    return all(
        getattr(getattr(x, s), c).tobytes() == getattr(getattr(y, s), c).tobytes()
        for s in SPLITS for c in COLUMNS
    )


def _mean_colour(world) -> np.ndarray:
    """Mean rgb over every image of a world, in grey levels."""
    images = np.concatenate([getattr(world, s).images.reshape(-1, 3) for s in SPLITS])
    return images.mean(0, dtype=np.float64)


# ---------------------------------------------------------------- shifted_domain


def test_partners_are_each_others_target():
    assert PARTNERS == {"A": "B", "B": "A"}


@pytest.mark.parametrize("name", ["A", "B", "P"])
def test_gap_one_is_the_world_itself(name):
    assert shifted_domain(name, 1) is DOMAINS[name]
    assert shifted_domain(name, 1.0) is DOMAINS[name]


@pytest.mark.parametrize("name", ["A", "B"])
def test_gap_zero_is_the_targets_style_with_own_seed_and_name(name):
    own, target = DOMAINS[name], DOMAINS[PARTNERS[name]]
    zero = shifted_domain(name, 0)
    for key in STYLE_FIELDS:
        assert getattr(zero, key) == getattr(target, key), key
    assert zero.seed == own.seed != target.seed
    assert zero.name == name


def test_gap_half_is_the_midpoint_computed_by_hand():
    half = shifted_domain("B", 0.5)
    # B's colour 0 is navy (0.10, 0.12, 0.30), A's is red (0.90, 0.15, 0.15)
    assert np.allclose(half.palette[0], (0.50, 0.135, 0.225))
    assert math.isclose(half.p_hat, (0.10 + 0.45) / 2)
    assert math.isclose(half.p_scarf, 0.3) and math.isclose(half.p_coat, 0.2)
    assert np.allclose(half.p_lower, (0.70, 0.15, 0.15))  # already sums to 1
    assert np.allclose(half.light, (0.98, 0.985, 1.00))
    assert np.allclose(half.person_height, (0.79, 0.905))
    assert np.allclose(half.background, (0.635, 0.63, 0.615))
    assert math.isclose(half.brightness, 0.975)
    assert half.n_cameras == 7  # (6 + 8) / 2
    assert shifted_domain("A", 0.5).n_cameras == 7
    assert shifted_domain("B", 0.25).n_cameras == 6  # round(6.5) goes to even
    assert shifted_domain("B", 0.9).n_cameras == 8  # round(7.8)


@pytest.mark.parametrize("name", ["A", "B"])
@pytest.mark.parametrize("gap", [0.0, 0.3, 0.5, 1.7, 2.0, 3.0])
def test_every_setting_is_a_valid_domain(name, gap):
    d = shifted_domain(name, gap)
    for probs in (d.p_lower, d.p_pattern):
        assert math.isclose(sum(probs), 1.0) and min(probs) >= 0
    assert all(0 <= getattr(d, k) <= 1 for k in ("p_long_sleeve", "p_hat", "p_coat", "p_scarf"))
    assert len(d.palette) == 12
    assert all(0.02 <= v <= 1 for colour in d.palette for v in colour)
    assert min(d.light) >= 0.05 and d.light_spread >= 0 and d.brightness >= 0.05
    lo, hi = d.person_height
    assert 0.5 <= lo <= hi <= 1.0
    assert all(0 <= v <= 1 for v in d.background)
    assert d.n_cameras >= 2 and isinstance(d.n_cameras, int)


def test_gap_two_extrapolates_beyond_the_world():
    two = shifted_domain("B", 2.0)
    a, b = DOMAINS["A"], DOMAINS["B"]
    # more winter than B: darker light, more coats; where no clipping is needed, 2b - a
    assert math.isclose(two.brightness, 2 * b.brightness - a.brightness)
    assert math.isclose(two.p_coat, 2 * b.p_coat - a.p_coat)
    assert two.n_cameras == 10
    # B has no logos, A 0.25: 2 * 0 - 0.25 clips to 0 and the rest is renormalised
    raw = np.clip(2 * np.asarray(b.p_pattern) - np.asarray(a.p_pattern), 0, None)
    assert np.allclose(two.p_pattern, raw / raw.sum()) and two.p_pattern[5] == 0
    assert two.p_long_sleeve == 1.0  # 2 * 0.95 - 0.25 clipped


@pytest.mark.parametrize("gap", [-0.1, float("nan"), float("inf"), 3.5, True, "1"])
def test_bad_gaps_are_clear_errors(gap):
    with pytest.raises(ValueError, match=r"domain_gap must be a finite number in \[0, 3\]"):
        shifted_domain("B", gap)


def test_world_p_has_no_dial():
    with pytest.raises(ValueError, match="only worlds A and B have a domain-gap dial"):
        shifted_domain("P", 0.5)
    with pytest.raises(ValueError, match="unknown world"):
        shifted_domain("C", 0.5)


# ---------------------------------------------------------------- worlds


@pytest.fixture(scope="module")
def worlds():
    """Smoke worlds: A, and B at gaps 0, 0.5 and 1 and by default."""
    out = {g: build_world("B", "smoke", progress=False, domain_gap=g) for g in (0.0, 0.5, 1.0)}
    out["default"] = build_world("B", "smoke", progress=False)
    out["A"] = build_world("A", "smoke", progress=False)
    return out


def test_gap_one_is_the_default_world_bit_for_bit(worlds, tmp_path):
    one, default = worlds[1.0], worlds["default"]
    assert _same_arrays(one, default)
    assert all(one.people[k].tobytes() == default.people[k].tobytes() for k in default.people)
    assert one.name == default.name == "synthetic-B-smoke" and one.domain_gap == 1.0
    loaded = load_world("B", "smoke", cache_dir=tmp_path, progress=False, domain_gap=1.0)
    assert _same_arrays(loaded, default) and loaded.domain_gap == 1.0
    stem = f"world-B-smoke-seed0-v{WORLD_VERSION}"
    assert [p.name for p in cache_paths("B", "smoke", 0, "c", domain_gap=1)] == \
        [f"{stem}.npz", f"{stem}.json"]


def test_gap_zero_has_the_targets_cameras_but_its_own_people(worlds):
    zero, one, a = worlds[0.0], worlds[1.0], worlds["A"]
    assert zero.train.images.tobytes() != one.train.images.tobytes()
    assert len(zero.cameras["gain"]) == DOMAINS["A"].n_cameras == 6
    assert len(one.cameras["gain"]) == 8
    assert set(np.unique(zero.train.camids)) <= set(range(6))
    assert zero.name == "synthetic-B-smoke-gap0.0" and zero.domain_gap == 0.0
    # B's seed, not A's: the shifted world's people are not world A's people
    assert not np.array_equal(zero.people["rgb_upper"], a.people["rgb_upper"])
    # A's summer: no one wears a coat or a scarf
    assert zero.people["coat"].sum() == 0 and zero.people["scarf"].sum() == 0
    assert one.people["scarf"].sum() > 0


def test_gap_zero_looks_like_the_target_in_mean_colour(worlds):
    """A measurable shift in pixels: B at gap 0 is nearer world A's mean colour than B is."""
    a = _mean_colour(worlds["A"])
    d0 = np.linalg.norm(_mean_colour(worlds[0.0]) - a)
    d_half = np.linalg.norm(_mean_colour(worlds[0.5]) - a)
    d1 = np.linalg.norm(_mean_colour(worlds[1.0]) - a)
    assert d0 < d_half < d1, (d0, d_half, d1)
    assert d0 < 0.5 * d1


def test_gap_cache_has_a_suffix_and_round_trips(tmp_path, monkeypatch):
    data, manifest = cache_paths("B", "smoke", 0, tmp_path, domain_gap=0.5)
    stem = f"world-B-smoke-seed0-v{WORLD_VERSION}-gap0.5"
    assert (data.name, manifest.name) == (f"{stem}.npz", f"{stem}.json")
    both = cache_paths("B", "smoke", 0, tmp_path, camera_style=0, domain_gap=0.5)
    assert both[0].name == f"world-B-smoke-seed0-v{WORLD_VERSION}-style0.0-gap0.5.npz"
    built = load_world("B", "smoke", cache_dir=tmp_path, progress=False, domain_gap=0.5)
    assert data.exists() and json.loads(manifest.read_text())["domain_gap"] == 0.5

    def no_build(*args, **kwargs):
        raise AssertionError("the cache should have been read")

    monkeypatch.setattr(world_module, "build_world", no_build)
    again = load_world("B", "smoke", cache_dir=tmp_path, progress=False, domain_gap=0.5)
    assert _same_arrays(again, built)
    assert again.domain_gap == 0.5 and again.name == built.name == "synthetic-B-smoke-gap0.5"


def test_manifest_with_another_gap_is_not_valid(tmp_path):
    world_module.save_world(build_world("B", "smoke", progress=False, domain_gap=0.5),
                            *cache_paths("B", "smoke", 0, tmp_path, domain_gap=0.5), seed=0)
    data, manifest = cache_paths("B", "smoke", 0, tmp_path, domain_gap=0.5)
    valid = world_module._valid_cache
    assert valid(data, manifest, 1.0, 0.5)
    assert not valid(data, manifest, 1.0, 1.0)
    assert not valid(data, manifest, 1.0, 0.0)
    # an old manifest names no gap: it holds the default world
    old = json.loads(manifest.read_text())
    del old["domain_gap"]
    manifest.write_text(json.dumps(old))
    assert valid(data, manifest, 1.0, 1.0) and not valid(data, manifest, 1.0, 0.5)


def test_load_world_checks_the_gap_before_touching_the_cache(tmp_path):
    with pytest.raises(ValueError, match="only worlds A and B"):
        load_world("P", "smoke", cache_dir=tmp_path, progress=False, domain_gap=0.0)
    with pytest.raises(ValueError, match="domain_gap must be"):
        load_world("A", "smoke", cache_dir=tmp_path, progress=False, domain_gap=-1)
    assert not list(tmp_path.iterdir())


def test_describe_people_names_mixed_colours(worlds):
    """At gap 0.5 colours are mixtures: each is named by the nearest named colour (brute force
    over both palettes); at gap 0 a B person wears A's colours and A's names."""
    half = worlds[0.5]
    pids = half.people_pid[:20]
    codes = half.attributes_of(pids)
    palette = shifted_domain("B", 0.5).palette
    named = SUMMER_PALETTE + WINTER_PALETTE
    for i, person in enumerate(half.describe_people(pids)):
        rgb = palette[codes["upper_colour"][i]]
        best = min(named, key=lambda c: sum((x - y) ** 2 for x, y in zip(c, rgb, strict=True)))
        assert person["top"].startswith(COLOUR_NAMES[best] + " ")
    zero = worlds[0.0]
    codes = zero.attributes_of(zero.people_pid[:20])
    for i, person in enumerate(zero.describe_people(zero.people_pid[:20])):
        assert person["lower"].startswith(COLOUR_NAMES[SUMMER_PALETTE[codes["lower_colour"][i]]])


def test_command_line_takes_the_gap(tmp_path, capsys):
    from reidlib.data.synthetic.__main__ import main

    argv = ["summary", "--world", "B", "--profile", "smoke", "--cache-dir", str(tmp_path),
            "--domain-gap", "0.5"]
    assert main(argv) == 0
    assert cache_paths("B", "smoke", 0, tmp_path, domain_gap=0.5)[0].exists()
