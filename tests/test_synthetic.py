"""The synthetic world: protocol, determinism, cache safety, export layout."""

import json
import os

import numpy as np
import pytest

from reidlib.data.synthetic import build_world, export_market1501, load_world
from reidlib.data.synthetic.export import market_name
from reidlib.data.synthetic.world import cache_paths


@pytest.fixture(scope="module")
def world():
    return build_world("A", "smoke", seed=0, progress=False)


def test_market1501_protocol(world):
    train_ids = set(world.train.pids.tolist())
    test_ids = set(world.query.pids.tolist())
    assert not train_ids & test_ids, "train and test identities must be disjoint"
    assert 0 not in test_ids and -1 not in test_ids
    # one query per (identity, camera), and each query identity seen by >= 2 cameras
    keys = list(zip(world.query.pids.tolist(), world.query.camids.tolist(), strict=True))
    assert len(keys) == len(set(keys))
    for pid in test_ids:
        assert len(np.unique(world.query.camids[world.query.pids == pid])) >= 2
        # the gallery holds the rest of that identity's images
        assert (world.gallery.pids == pid).sum() >= 1
    # distractors (0) and junk (-1) live in the gallery only
    assert (world.gallery.pids == 0).sum() > 0 and (world.gallery.pids == -1).sum() > 0
    assert set(np.unique(world.gallery.pids[world.gallery.pids > 0])) <= test_ids


def test_people_attributes_and_network(world):
    attrs = world.attributes_of(world.query.pids[:5])
    assert {"upper_pattern", "lower_type", "bag", "hair_long", "hat"} <= set(attrs)
    assert all(len(v) == 5 for v in attrs.values())
    n_cams = len(world.cameras["gain"])
    assert world.transit.shape == (n_cams, n_cams)
    assert np.allclose(world.transit, world.transit.T) and (np.diag(world.transit) == 0).all()
    # within a tracklet: one person, one camera, increasing time
    for split in (world.train, world.gallery):
        for t in np.unique(split.tracklets)[:20]:
            sel = split.tracklets == t
            assert len(np.unique(split.camids[sel])) == 1
    # a person's visits to two cameras are separated by at least part of the walk
    t = world.train
    for pid in np.unique(t.pids)[:10]:
        sel = t.pids == pid
        assert len(np.unique(t.tracklets[sel])) >= 2


def test_same_seed_gives_identical_bytes(world):
    again = build_world("A", "smoke", seed=0, progress=False)
    for split in ("train", "query", "gallery"):
        a, b = getattr(world, split), getattr(again, split)
        assert a.images.tobytes() == b.images.tobytes()
        assert (a.pids == b.pids).all() and (a.camids == b.camids).all()
    other = build_world("A", "smoke", seed=1, progress=False)
    assert other.train.images.tobytes() != world.train.images.tobytes()


def test_domains_differ():
    a = build_world("A", "smoke", progress=False)
    b = build_world("B", "smoke", progress=False)
    assert len(np.unique(b.train.camids)) == 8 and len(np.unique(a.train.camids)) == 6

    # B's winter light is cold, A's summer light warm: blue minus red differs in sign
    def blue_minus_red(w):
        return w.train.images[..., 2].mean() - w.train.images[..., 0].mean()

    assert blue_minus_red(b) > 5 > -5 > blue_minus_red(a)


def test_cache_roundtrip_and_corruption_rebuilds(tmp_path, capsys):
    w1 = load_world("A", "smoke", cache_dir=tmp_path, progress=False)
    data, manifest = cache_paths("A", "smoke", 0, tmp_path)
    assert data.exists() and json.loads(manifest.read_text())["sha256"]
    w2 = load_world("A", "smoke", cache_dir=tmp_path, progress=False)
    assert w2.gallery.images.tobytes() == w1.gallery.images.tobytes()
    assert w2.people["upper_pattern"].tolist() == w1.people["upper_pattern"].tolist()
    # flip bytes in the middle of the cache: detected by the checksum and rebuilt
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    data.write_bytes(bytes(raw))
    w3 = load_world("A", "smoke", cache_dir=tmp_path, progress=False)
    assert "rebuilding" in capsys.readouterr().out
    assert w3.train.images.tobytes() == w1.train.images.tobytes()
    # a partial cache (manifest lost, as after a crash before it was written) is rebuilt too
    manifest.unlink()
    load_world("A", "smoke", cache_dir=tmp_path, progress=False)
    assert manifest.exists()
    assert not list(tmp_path.glob("*.tmp")), "no temporary files left behind"


def test_untouched_cache_loads_without_rehashing(tmp_path, monkeypatch, capsys):
    from reidlib.data.synthetic import world as world_module

    w1 = load_world("A", "smoke", cache_dir=tmp_path, progress=False)
    data, manifest = cache_paths("A", "smoke", 0, tmp_path)
    hashed = []
    real_sha = world_module.sha256_file
    monkeypatch.setattr(world_module, "sha256_file", lambda p: hashed.append(p) or real_sha(p))
    load_world("A", "smoke", cache_dir=tmp_path, progress=False)
    assert hashed == [], "the file is as saved: its stamp vouches for it"
    # a new mtime (a copy, a touch) with the same bytes: checked once, then trusted again
    stat = data.stat()
    os.utime(data, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    w2 = load_world("A", "smoke", cache_dir=tmp_path, progress=False)
    assert hashed == [data] and w2.train.images.tobytes() == w1.train.images.tobytes()
    load_world("A", "smoke", cache_dir=tmp_path, progress=False)
    assert hashed == [data]
    # changed bytes under the saved mtime (forged stamp aside) are caught through the size
    raw = data.read_bytes()
    data.write_bytes(raw + b"x")
    os.utime(data, ns=(stat.st_atime_ns, json.loads(manifest.read_text())["stamp"][1]))
    load_world("A", "smoke", cache_dir=tmp_path, progress=False)
    assert "rebuilding" in capsys.readouterr().out and data.stat().st_size == len(raw)


def test_unknown_world_and_profile_are_clear_errors():
    with pytest.raises(ValueError, match="expected one of A, B, P"):
        build_world("Z", "smoke")
    with pytest.raises(ValueError, match="expected one of smoke, quick, full"):
        build_world("A", "huge")


def test_export_market1501_layout(world, tmp_path):
    out = export_market1501(world, tmp_path / "market", progress=False)
    train = sorted(p.name for p in (out / "bounding_box_train").iterdir())
    query = list((out / "query").iterdir())
    gallery = list((out / "bounding_box_test").iterdir())
    assert len(train) == len(world.train)
    assert len(query) == len(world.query) and len(gallery) == len(world.gallery)
    assert any(p.name.startswith("-1_") for p in gallery)
    assert any(p.name.startswith("0000_") for p in gallery)
    assert market_name(2, 0, 451, 3) == "0002_c1s1_000451_03.jpg"
    with pytest.raises(FileExistsError, match="already exists"):
        export_market1501(world, out, progress=False)


def test_export_command_reads_back_with_the_market1501_reader(tmp_path, capsys):
    from reidlib.data.datasets import read_dataset
    from reidlib.data.synthetic.__main__ import main

    out = tmp_path / "exported"
    argv = ["export", "--world", "B", "--profile", "smoke", "--out", str(out),
            "--cache-dir", str(tmp_path / "cache")]
    code = main(argv)
    assert code == 0 and "exported to" in capsys.readouterr().out
    world = load_world("B", "smoke", cache_dir=tmp_path / "cache", progress=False)
    records = read_dataset("market1501", out, num_cameras=8)  # world B has eight cameras
    # junk (-1) is dropped by the reader as the official evaluation ignores it
    assert len(records.query) == len(world.query)
    assert len(records.gallery) == (world.gallery.pids >= 0).sum()
    assert len(records.train) == len(world.train)
    assert sorted({r.pid for r in records.query}) == sorted(set(world.query.pids.tolist()))
    assert sorted({r.camid for r in records.gallery}) == sorted(set(world.gallery.camids.tolist()))
    # exporting over an existing folder is refused with a clear message, exit code 2
    assert main(argv) == 2
    assert "already exists" in capsys.readouterr().err


def test_describe_people_names_the_codes(world):
    """Words for attributes come from spec's vocabularies, code by code (an independent lookup)."""
    from reidlib.data.synthetic.spec import (
        BAG_TYPES,
        COLOUR_NAMES,
        LOWER_TYPES,
        UPPER_PATTERNS,
        get_domain,
    )

    pids = np.unique(world.train.pids[world.train.pids > 0])[:6]
    codes = world.attributes_of(pids)
    palette = get_domain(world.domain).palette
    described = world.describe_people(pids)
    assert len(described) == len(pids)
    for i, person in enumerate(described):
        assert UPPER_PATTERNS[codes["upper_pattern"][i]] in person["top"]
        assert person["lower"].endswith(LOWER_TYPES[codes["lower_type"][i]])
        assert person["bag"] == BAG_TYPES[codes["bag"][i]]
        if palette is not None and codes["upper_colour"][i] >= 0:
            assert person["top"].startswith(COLOUR_NAMES[palette[codes["upper_colour"][i]]])
    # every palette colour of both worlds has a distinct everyday name
    for domain in ("A", "B"):
        colours = get_domain(domain).palette
        names = [COLOUR_NAMES[c] for c in colours]
        assert len(set(names)) == len(names)
