"""The video benchmark (chapter 5): MARS-protocol split, MARS export, tracker noise.

References are independent of the code under test: hand-built tiny sets whose answer is
written out, and plain loops over the rows of the synthetic world.
"""

from __future__ import annotations

import dataclasses
from collections import Counter, defaultdict

import numpy as np
import pytest
import scipy.io
from PIL import Image

import reidlib.video.benchmark as vb
from reidlib.data.datasets import load_imageset, read_dataset
from reidlib.data.imageset import ImageSet, ReidSplits
from reidlib.data.synthetic import load_world
from reidlib.video import (
    corrupt_tracklets,
    export_mars,
    mars_name,
    tracklet_purity,
    tracklet_summary,
    video_splits,
)

SIZE = (8, 4)


def tiny_set(rows, first_colour=0):
    """An ImageSet from (pid, camid, tracklet, frame) rows; row i is a solid colour of its own
    (40 + 7 * (i + first_colour) in red), so pixels tell rows apart."""
    rows = np.asarray(rows, np.int64).reshape(-1, 4)
    images = np.zeros((len(rows), *SIZE, 3), np.uint8)
    images[..., 0] = (40 + 7 * (np.arange(len(rows)) + first_colour))[:, None, None] % 256
    images[..., 1] = 128
    return ImageSet(images, rows[:, 0], rows[:, 1], rows[:, 2], rows[:, 3],
                    timestamps=rows[:, 3] // 25)


def tracklet_rows(images):
    """{tracklet id: [row, ...]} in row order, by a plain loop."""
    groups = defaultdict(list)
    for i, t in enumerate(images.tracklets.tolist()):
        groups[t].append(i)
    return dict(groups)


@pytest.fixture(scope="module")
def world_a():
    return load_world("A", "smoke", progress=False)


@pytest.fixture(scope="module")
def video_a(world_a):
    return video_splits(world_a, seed=0)


# --- video_splits ---------------------------------------------------------------------


def test_video_splits_queries_one_tracklet_per_multi_camera_identity(world_a, video_a):
    assert video_a.name == world_a.name + "-video"
    cameras = defaultdict(set)  # test person -> cameras, from the world's image split
    for s in (world_a.query, world_a.gallery):
        for pid, cam in zip(s.pids.tolist(), s.camids.tolist(), strict=True):
            if pid > 0:
                cameras[pid].add(cam)
    eligible = {p for p, c in cameras.items() if len(c) >= 2}
    query_tracklets = defaultdict(set)
    for pid, t in zip(video_a.query.pids.tolist(), video_a.query.tracklets.tolist(),
                      strict=True):
        query_tracklets[pid].add(t)
    assert set(query_tracklets) == eligible and eligible
    assert all(len(ts) == 1 for ts in query_tracklets.values())
    # every query has its person in another camera of the gallery
    gallery = set(zip(video_a.gallery.pids.tolist(), video_a.gallery.camids.tolist(),
                      strict=True))
    for pid, cam in set(zip(video_a.query.pids.tolist(), video_a.query.camids.tolist(),
                            strict=True)):
        assert any(p == pid and c != cam for p, c in gallery)


def test_video_splits_keeps_every_frame_and_separates_tracklets(world_a, video_a):
    def frames(*sets):
        return sorted((int(p), int(c), int(f), int(ts), s.images[i].tobytes())
                      for s in sets for i, (p, c, f, ts) in
                      enumerate(zip(s.pids, s.camids, s.frames, s.timestamps, strict=True)))

    train = world_a.train.subset(world_a.train.pids != -1)
    assert frames(video_a.train) == frames(train)
    assert frames(video_a.query, video_a.gallery) == frames(world_a.query, world_a.gallery)
    ids = [set(s.tracklets.tolist()) for s in (video_a.train, video_a.query, video_a.gallery)]
    assert not ids[0] & ids[1] and not ids[0] & ids[2] and not ids[1] & ids[2]
    for s in (video_a.train, video_a.query, video_a.gallery):
        seen = []
        for t, rows in tracklet_rows(s).items():
            assert rows == list(range(rows[0], rows[0] + len(rows)))  # contiguous
            assert np.all(np.diff(s.frames[rows]) > 0)  # time order
            assert len(set(s.pids[rows].tolist())) == 1 and len(set(s.camids[rows])) == 1
            seen.append(t)
        assert seen == sorted(seen)
    # person tracklets keep the world's id; test tracklets were whole again
    query_ids = set(video_a.query.tracklets.tolist())
    assert query_ids <= set(world_a.query.tracklets.tolist())
    for t in query_ids:
        whole = (np.sum((world_a.query.tracklets == t) & (world_a.query.pids != -1))
                 + np.sum((world_a.gallery.tracklets == t) & (world_a.gallery.pids != -1)))
        assert np.sum(video_a.query.tracklets == t) == whole


def test_video_splits_junk_forms_one_tracklet_per_original_tracklet(world_a, video_a):
    junk_by_original = defaultdict(list)  # original tracklet -> sorted junk frame numbers
    for t, pid, f in zip(world_a.gallery.tracklets.tolist(), world_a.gallery.pids.tolist(),
                         world_a.gallery.frames.tolist(), strict=True):
        if pid == -1:
            junk_by_original[t].append(f)
    assert junk_by_original, "the smoke world should have junk"
    g = video_a.gallery
    junk_tracklets = {t: sorted(g.frames[rows].tolist()) for t, rows in tracklet_rows(g).items()
                      if (g.pids[rows] == -1).any()}
    for rows in tracklet_rows(g).values():  # no tracklet mixes junk and people
        assert len(set(g.pids[rows].tolist())) == 1
    assert sorted(junk_tracklets.values()) == sorted(sorted(v) for v in junk_by_original.values())
    top = max(world_a.train.tracklets.max(), world_a.query.tracklets.max(),
              world_a.gallery.tracklets.max())
    assert min(junk_tracklets) > top
    assert not (video_a.query.pids <= 0).any() and not (video_a.train.pids == -1).any()


def test_video_splits_tiny_case_and_random_camera():
    # person 1 in cameras 0 and 1, person 2 in camera 0 only, a distractor, junk in two tracklets
    train = tiny_set([(5, 0, 1, 10), (5, 0, 1, 11), (5, 1, 2, 30), (5, 1, 2, 31)])
    query = tiny_set([(1, 0, 10, 101), (1, 1, 11, 201), (2, 0, 12, 300)], 4)
    gallery = tiny_set([(1, 0, 10, 100), (-1, 0, 10, 102), (1, 0, 10, 103), (1, 1, 11, 200),
                        (2, 0, 12, 301), (0, 1, 13, 400), (-1, 1, 13, 401), (-1, 1, 13, 402)], 7)
    world = ReidSplits("tiny", train, query, gallery)
    chosen = set()
    for seed in range(12):
        v = video_splits(world, seed=seed)
        assert v.train.tracklets.tolist() == [1, 1, 2, 2]
        q = v.query.tracklets.tolist()
        assert q in ([10, 10, 10], [11, 11]) and set(v.query.pids.tolist()) == {1}
        chosen.add(q[0])
        other = 21 - q[0]
        rows = [(t, p, f) for t, p, f in zip(v.gallery.tracklets.tolist(),
                                              v.gallery.pids.tolist(),
                                              v.gallery.frames.tolist(), strict=True)]
        expected = {10: [(10, 1, 100), (10, 1, 101), (10, 1, 103)],
                    11: [(11, 1, 200), (11, 1, 201)]}[other]
        # junk tracklets get new ids after the largest (13), in order of their original id
        assert rows == expected + [(12, 2, 300), (12, 2, 301), (13, 0, 400),
                                   (14, -1, 102), (15, -1, 401), (15, -1, 402)]
        assert v.query.frames.tolist() == ([100, 101, 103] if q[0] == 10 else [200, 201])
    assert chosen == {10, 11}  # the camera is drawn at random
    v0, v0_again = video_splits(world, seed=0), video_splits(world, seed=0)
    assert v0.query.tracklets.tolist() == v0_again.query.tracklets.tolist()
    assert "gallery" in tracklet_summary(v0) and "tiny-video" in tracklet_summary(v0)


def test_video_splits_errors():
    clean = tiny_set([(1, 0, 0, 0), (1, 0, 0, 1)])
    no_tracks = dataclasses.replace(clean, tracklets=np.array([-1, -1]))
    with pytest.raises(ValueError, match=r"world\.query needs a tracklet id.*2 of 2 rows"):
        video_splits(ReidSplits("w", clean, no_tracks, clean))
    with pytest.raises(ValueError, match="must be a ReidSplits"):
        video_splits(clean)
    with pytest.raises(ValueError, match="appear in both train and test"):
        video_splits(ReidSplits("w", clean, clean.subset([0]), clean.subset([1])))
    mixed = tiny_set([(2, 0, 5, 0), (3, 0, 5, 1)])
    with pytest.raises(ValueError, match="mix people or cameras"):
        video_splits(ReidSplits("w", clean, mixed.subset([0]), mixed.subset([1])))


# --- export_mars ----------------------------------------------------------------------


def hand_split():
    """Two tracklets of person 3 in camera 0 (the later-numbered one starts earlier), a person
    in camera 2; test: a query of person 2, her tracklet in another camera, a distractor and
    a junk tracklet."""
    train = tiny_set([(3, 0, 5, 100), (3, 0, 5, 101), (3, 0, 5, 102), (3, 0, 7, 50),
                      (3, 0, 7, 51), (1, 2, 9, 10), (1, 2, 9, 11)])
    query = tiny_set([(2, 1, 20, 5), (2, 1, 20, 6)], 7)
    gallery = tiny_set([(2, 0, 21, 70), (0, 1, 22, 8), (0, 1, 22, 9), (-1, 0, 23, 3)], 9)
    return ReidSplits("hand", train, query, gallery)


def test_export_mars_exact_names_and_matrices(tmp_path):
    splits = hand_split()
    out = export_mars(splits, tmp_path / "mars", progress=False)
    assert out == tmp_path / "mars"
    train_names = ["0001C3T0001F001.jpg", "0001C3T0001F002.jpg",
                   "0003C1T0001F001.jpg", "0003C1T0001F002.jpg",  # tracklet 7: frames 50, 51
                   "0003C1T0002F001.jpg", "0003C1T0002F002.jpg", "0003C1T0002F003.jpg"]
    test_names = ["00-1C1T0001F001.jpg", "0000C2T0001F001.jpg", "0000C2T0001F002.jpg",
                  "0002C1T0001F001.jpg", "0002C2T0001F001.jpg", "0002C2T0001F002.jpg"]
    assert (out / "info" / "train_name.txt").read_text() == "\n".join(train_names) + "\n"
    assert (out / "info" / "test_name.txt").read_text() == "\n".join(test_names) + "\n"
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*.jpg"))
    assert files == sorted([f"bbox_train/{n[:4]}/{n}" for n in train_names]
                           + [f"bbox_test/{n[:4]}/{n}" for n in test_names])
    mats = {name: scipy.io.loadmat(out / "info" / f"{name}.mat")
            for name in ("tracks_train_info", "tracks_test_info", "query_IDX")}
    train_info = mats["tracks_train_info"]["track_train_info"]
    test_info = mats["tracks_test_info"]["track_test_info"]
    query_idx = mats["query_IDX"]["query_IDX"]
    assert train_info.dtype == test_info.dtype == query_idx.dtype == np.float64
    assert train_info.tolist() == [[1, 2, 1, 3], [3, 4, 3, 1], [5, 7, 3, 1]]
    assert test_info.tolist() == [[1, 1, -1, 1], [2, 3, 0, 2], [4, 4, 2, 1], [5, 6, 2, 2]]
    assert query_idx.tolist() == [[4]]
    with Image.open(out / "bbox_test" / "0002" / "0002C2T0001F002.jpg") as image:
        assert image.format == "JPEG" and image.size == (SIZE[1], SIZE[0])
        # query row 1 (colour 7 + 1) lands at the second frame of its tracklet
        assert abs(int(np.asarray(image)[..., 0].mean()) - (40 + 7 * 8)) <= 3
    assert mars_name(-1, 0, 1, 1) == "00-1C1T0001F001.jpg"
    assert mars_name(12, 7, 23, 456) == "0012C8T0023F456.jpg"


def test_export_mars_read_back_by_read_mars(tmp_path):
    splits = hand_split()
    data = read_dataset("mars", export_mars(splits, tmp_path / "m", progress=False))
    assert [(r.pid, r.camid, r.tracklet, r.frame) for r in data.train] == [
        (1, 2, 0, 0), (1, 2, 0, 1), (3, 0, 1, 0), (3, 0, 1, 1), (3, 0, 2, 0), (3, 0, 2, 1),
        (3, 0, 2, 2)]
    assert [(r.pid, r.camid, r.tracklet) for r in data.query] == [(2, 1, 3), (2, 1, 3)]
    # the junk tracklet is dropped by the reader, as for the release
    assert [(r.pid, r.camid, r.tracklet) for r in data.gallery] == [(0, 1, 1), (0, 1, 1),
                                                                    (2, 0, 2)]
    train = load_imageset(data.train, SIZE)
    expected_rows = [5, 6, 3, 4, 0, 1, 2]  # rows of splits.train in release order
    assert np.abs(train.images.astype(int) - splits.train.images[expected_rows]).max() <= 3


@pytest.mark.parametrize("domain, cameras", [("A", 6), ("B", 8)])
def test_export_mars_round_trip_on_the_world(tmp_path, domain, cameras):
    world = load_world(domain, "smoke", progress=False)
    assert len(np.unique(world.train.camids)) == cameras
    video = video_splits(world, seed=3)
    out = export_mars(video, tmp_path / f"mars-{domain}", progress=False)
    if cameras > 6:
        with pytest.raises(ValueError, match=r"outside 1\.\.6"):
            read_dataset("mars", out)
    data = read_dataset("mars", out, num_cameras=cameras)
    for name in ("train", "query", "gallery"):
        original = getattr(video, name)
        original = original.subset(original.pids != -1)  # junk is dropped when reading MARS
        back = load_imageset(getattr(data, name), world.train.image_size, workers=1)
        expected = tracklet_images(original, by_first_frame=True)
        found = tracklet_images(back)
        assert list(found) == list(expected) and found  # same tracklets, same order
        # pixels within JPEG tolerance, each frame at its place in its tracklet
        for key, frames in found.items():
            assert len(frames) == len(expected[key])
            for f, frame in enumerate(frames.astype(float)):
                err = [np.abs(frame - o).mean() for o in expected[key].astype(float)]
                assert err[f] < 4, (name, key, f, err)  # JPEG q95, 4:4:4
                assert err[f] == min(err), (name, key, f, err)


def tracklet_images(images, by_first_frame=False):
    """{(pid, camera, n): frames} for the n-th tracklet of each (pid, camera), keys sorted;
    tracklets of one (pid, camera) in time order (the original: by first frame) or in release
    order (read back: row order, as the tracklet number T counts them)."""
    groups = defaultdict(list)
    for rows in tracklet_rows(images).values():
        groups[int(images.pids[rows[0]]), int(images.camids[rows[0]])].append(rows)
    table = {}
    for (pid, cam), tracks in sorted(groups.items()):
        if by_first_frame:
            tracks = sorted(tracks, key=lambda r: images.frames[r[0]])
        for n, rows in enumerate(tracks):
            table[pid, cam, n] = images.images[rows]
    return table


def test_export_mars_is_atomic_and_refuses_to_overwrite(tmp_path, monkeypatch):
    splits = hand_split()
    real = vb._write_frames
    calls = []

    def fail_on_test(images, rows, names, folder, progress):
        real(images, rows, names, folder, progress)
        calls.append(folder.name)
        if folder.name == "bbox_test":
            raise OSError("disk full")

    monkeypatch.setattr(vb, "_write_frames", fail_on_test)
    with pytest.raises(OSError, match="disk full"):
        export_mars(splits, tmp_path / "out", progress=False)
    assert calls == ["bbox_train", "bbox_test"]  # files were written before the failure
    assert list(tmp_path.iterdir()) == []  # neither out nor a partial folder is left
    monkeypatch.setattr(vb, "_write_frames", real)

    (tmp_path / "empty").mkdir()  # an empty folder may be filled
    assert (export_mars(splits, tmp_path / "empty", progress=False) / "info").is_dir()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="already exists and is not empty"):
        export_mars(splits, tmp_path / "full", progress=False)
    assert [p.name for p in (tmp_path / "full").iterdir()] == ["keep.txt"]


def test_export_mars_errors(tmp_path):
    splits = hand_split()
    g = splits.gallery
    with pytest.raises(ValueError, match="in both query and gallery"):
        export_mars(dataclasses.replace(splits, gallery=dataclasses.replace(
            g, tracklets=np.array([20, 22, 22, 23]))), tmp_path / "a", progress=False)
    with pytest.raises(ValueError, match="cameras must be 0..8"):
        export_mars(dataclasses.replace(splits, gallery=dataclasses.replace(
            g, camids=np.array([9, 1, 1, 0]))), tmp_path / "b", progress=False)
    with pytest.raises(ValueError, match=r"pids must be in -1\.\.9999"):
        export_mars(dataclasses.replace(splits, gallery=dataclasses.replace(
            g, pids=np.array([10000, 0, 0, -1]))), tmp_path / "c", progress=False)
    with pytest.raises(ValueError, match="gallery.*mix people or cameras"):
        export_mars(dataclasses.replace(splits, gallery=dataclasses.replace(
            g, pids=np.array([2, 0, 5, -1]))), tmp_path / "d", progress=False)
    with pytest.raises(ValueError, match="train needs a tracklet id"):
        export_mars(dataclasses.replace(splits, train=dataclasses.replace(
            splits.train, tracklets=np.full(7, -1))), tmp_path / "e", progress=False)
    with pytest.raises(ValueError, match="num_cameras must be 1..9"):
        read_dataset("mars", tmp_path, num_cameras=10)
    assert list(tmp_path.iterdir()) == []


# --- corrupt_tracklets and tracklet_purity --------------------------------------------


def test_cut_everything_keeps_a_time_ordered_prefix():
    # tracklet 4: rows out of time order; tracklet 9: one frame (cannot be cut)
    images = tiny_set([(1, 0, 4, 30), (1, 0, 4, 10), (2, 0, 9, 5), (1, 0, 4, 20),
                       (1, 0, 4, 0)])
    kept_lengths = set()
    for seed in range(10):
        out, info = corrupt_tracklets(images, cut=1.0, seed=seed)
        kept = sorted(out.frames[out.tracklets == 4].tolist())
        assert 1 <= len(kept) <= 3 and kept == [0, 10, 20][: len(kept)]
        kept_lengths.add(len(kept))
        assert out.frames[out.tracklets == 9].tolist() == [5]
        assert info["cut"] == 1 and info["skipped_single_frame"] == 1
        assert info["split"] == info["switch"] == info["skipped_no_partner"] == 0
        assert info["frames_dropped"] == 4 - len(kept) and info["mixed_frame_share"] == 0
        assert np.all(np.diff(info["index"]) > 0)
        assert (out.images == images.images[info["index"]]).all()
    assert kept_lengths == {1, 2, 3}


def test_split_everything_gives_the_later_half_a_new_id():
    images = tiny_set([(1, 0, 4, 30), (1, 0, 4, 10), (2, 0, 9, 5), (1, 0, 4, 20),
                       (1, 0, 4, 0), (1, 0, 4, 40), (3, 1, 6, 7), (3, 1, 6, 8)])
    out, info = corrupt_tracklets(images, split=1.0, seed=0)
    by_frame = dict(zip(zip(out.tracklets.tolist(), out.frames.tolist(), strict=True),
                        out.pids.tolist(), strict=True))
    new = sorted(set(out.tracklets.tolist()) - {4, 6, 9})
    assert new == [10, 11]  # numbered from max + 1
    # tracklet 4 (frames 0..40): first 2 frames keep the id, the last 3 get one new id
    assert {f for t, f in by_frame if t == 4} == {0, 10}
    assert sorted({t for t, f in by_frame if f in (20, 30, 40)}) in ([10], [11])
    assert {f for t, f in by_frame if t == 6} == {7}
    assert info["split"] == 2 and info["skipped_single_frame"] == 1
    assert info["frames_dropped"] == 0 and info["index"].tolist() == list(range(8))
    assert out.pids.tolist() == images.pids.tolist()


def brute_partner(images, x, candidates):
    """The switch rule written as a loop: same camera, another person, later half starting
    nearest in time; ties to the smaller id."""
    rows = sorted(tracklet_rows(images)[x], key=lambda r: images.frames[r])
    when = images.frames[rows[len(rows) // 2]]
    best = None
    for y in sorted(candidates):
        other = sorted(tracklet_rows(images)[y], key=lambda r: images.frames[r])
        if (len(other) < 2 or images.camids[other[0]] != images.camids[rows[0]]
                or images.pids[other[0]] == images.pids[rows[0]]):
            continue
        gap = abs(images.frames[other[len(other) // 2]] - when)
        if best is None or gap < best[0]:
            best = (gap, y)
    return None if best is None else best[1]


def test_switch_joins_two_people_with_the_nearest_partner():
    images = tiny_set(
        [(1, 0, 0, f) for f in (100, 101, 102, 103)]  # X
        + [(2, 0, 1, f) for f in (0, 1, 2, 3)]  # another person, far in time
        + [(3, 0, 2, f) for f in (95, 96, 97, 98)]  # another person, near in time
        + [(1, 0, 3, f) for f in (101, 102, 103)]  # X's own person again: no partner
        + [(4, 1, 4, f) for f in (100, 101)]  # other camera
    )
    seen = Counter()
    for seed in range(30):
        out, info = corrupt_tracklets(images, switch=0.2, seed=seed)  # one tracklet drawn
        moved = [t for t in range(5)
                 if set(out.tracklets[images.tracklets[info["index"]] == t].tolist()) != {t}]
        if info["switch"] == 0:
            assert info["skipped_no_partner"] == 1 and not moved
            assert out.tracklets.tolist() == images.tracklets.tolist()
            continue
        # the drawn tracklet x lost its later half to a new id and took its partner's
        (x,) = [t for t in moved if len(set(out.pids[out.tracklets == t].tolist())) == 2]
        y = brute_partner(images, x, set(range(5)) - {x})
        seen[x, y] += 1
        assert sorted(moved) == sorted({x, y})
        x_rows = sorted(tracklet_rows(images)[x], key=lambda r: images.frames[r])
        y_rows = sorted(tracklet_rows(images)[y], key=lambda r: images.frames[r])
        hx, hy = len(x_rows) // 2, len(y_rows) // 2
        assert sorted(np.flatnonzero(out.tracklets == x)) == sorted(x_rows[:hx] + y_rows[hy:])
        assert sorted(np.flatnonzero(out.tracklets == y)) == sorted(y_rows[:hy])
        assert sorted(np.flatnonzero(out.tracklets == 5)) == sorted(x_rows[hx:])
        assert info["mixed_frame_share"] == pytest.approx((hx + len(y_rows) - hy) / 17)
    assert seen[0, 2] and seen[2, 0]  # X picks the near person, not the far one
    assert all(y != 3 for _, y in seen)


def test_corruption_invariants_on_the_world(world_a):
    train = world_a.train
    n_tracklets = len(np.unique(train.tracklets))
    out, info = corrupt_tracklets(train, cut=0.2, split=0.2, switch=0.2, seed=1)
    drawn = info["cut"] + info["split"] + info["switch"] + info["skipped_single_frame"]
    assert drawn + info["skipped_no_partner"] in (int(0.6 * n_tracklets),
                                                  int(0.6 * n_tracklets) + 1)
    lengths = np.unique(train.tracklets, return_counts=True)[1]
    assert info["skipped_single_frame"] == 0 and lengths.min() >= 2
    assert info["switch"] > 0 and info["cut"] > 0 and info["split"] > 0
    assert len(np.unique(out.tracklets)) == n_tracklets + info["split"] + info["switch"]
    index = info["index"]
    assert info["frames_dropped"] == len(train) - len(out) > 0
    assert np.all(np.diff(index) > 0)
    for name in ("pids", "camids", "frames", "timestamps", "images"):
        assert (getattr(out, name) == getattr(train, name)[index]).all()
    # every output tracklet lies in one camera; the mixed ones are exactly the switches
    pids_of, cams_of = defaultdict(set), defaultdict(set)
    for t, p, c in zip(out.tracklets.tolist(), out.pids.tolist(), out.camids.tolist(),
                       strict=True):
        pids_of[t].add(p)
        cams_of[t].add(c)
    assert all(len(c) == 1 for c in cams_of.values())
    mixed = [t for t, ps in pids_of.items() if len(ps) > 1]
    assert len(mixed) == info["switch"]
    mixed_frames = sum(int(np.sum(out.tracklets == t)) for t in mixed)
    assert info["mixed_frame_share"] == pytest.approx(mixed_frames / len(out))
    assert tracklet_purity(out) == pytest.approx(brute_purity(out)) and brute_purity(out) < 1
    assert tracklet_purity(train) == 1.0
    again, _ = corrupt_tracklets(train, cut=0.2, split=0.2, switch=0.2, seed=1)
    other, _ = corrupt_tracklets(train, cut=0.2, split=0.2, switch=0.2, seed=2)
    assert again.tracklets.tolist() == out.tracklets.tolist()
    assert other.tracklets.tolist() != out.tracklets.tolist()
    clean, nothing = corrupt_tracklets(train, seed=3)
    assert clean.tracklets.tolist() == train.tracklets.tolist() and nothing["cut"] == 0


def brute_purity(images):
    groups = defaultdict(list)
    for t, p in zip(images.tracklets.tolist(), images.pids.tolist(), strict=True):
        groups[t].append(p)
    return sum(Counter(ps).most_common(1)[0][1] for ps in groups.values()) / len(images)


def test_tracklet_purity_hand_case():
    images = tiny_set([(1, 0, 0, 0), (1, 0, 0, 1), (2, 0, 0, 2), (3, 1, 5, 0),
                       (4, 2, 7, 0), (5, 2, 7, 1)])
    assert tracklet_purity(images) == pytest.approx(4 / 6)


@pytest.mark.parametrize("kwargs, message", [
    ({"cut": -0.1}, r"cut must be a share in \[0, 1\]"),
    ({"split": 1.5}, r"split must be a share in \[0, 1\]"),
    ({"switch": True}, r"switch must be a share"),
    ({"cut": "0.2"}, r"cut must be a share"),
    ({"cut": 0.5, "split": 0.3, "switch": 0.3}, r"cut \+ split \+ switch must be <= 1"),
])
def test_corrupt_tracklets_bad_shares(kwargs, message):
    with pytest.raises(ValueError, match=message):
        corrupt_tracklets(tiny_set([(1, 0, 0, 0), (1, 0, 0, 1)]), **kwargs)


def test_tracklet_functions_need_tracklets():
    images = dataclasses.replace(tiny_set([(1, 0, 0, 0), (1, 0, 0, 1)]),
                                 tracklets=np.array([0, -1]))
    with pytest.raises(ValueError, match=r"corrupt_tracklets: images needs a tracklet id.*1 of 2"):
        corrupt_tracklets(images, cut=0.5)
    with pytest.raises(ValueError, match="tracklet_purity: images needs a tracklet id"):
        tracklet_purity(images)
    with pytest.raises(ValueError, match="must be an ImageSet"):
        tracklet_purity(np.zeros(3))
    with pytest.raises(ValueError, match="images is empty"):
        tracklet_purity(images.subset(np.zeros(0, np.int64)))


def test_subsample_tracklets_keeps_at_most_n_frames_in_order():
    from reidlib.video.benchmark import subsample_tracklets

    tracklets = np.array([1, 1, 1, 2, 2, 3, 1, 1])
    images = ImageSet(np.zeros((8, 4, 2, 3), np.uint8), np.arange(8) + 10, np.zeros(8, int),
                      tracklets, np.arange(8), np.arange(8))
    out = subsample_tracklets(images, 2, seed=3)
    kept = {t: out.frames[out.tracklets == t].tolist() for t in (1, 2, 3)}
    assert kept[2] == [3, 4] and kept[3] == [5]  # short tracklets keep every frame
    assert len(kept[1]) == 2 and set(kept[1]) <= {0, 1, 2, 6, 7}
    assert out.frames.tolist() == sorted(out.frames.tolist())  # the input's row order
    assert np.array_equal(out.pids, out.frames + 10)  # whole rows, not columns, are kept
    assert subsample_tracklets(images, 2, seed=3).frames.tolist() == out.frames.tolist()
    drawn = {tuple(subsample_tracklets(images, 2, seed=s).frames[:2]) for s in range(20)}
    assert len(drawn) > 1  # the seed decides which frames
    assert len(subsample_tracklets(images, 5)) == 8
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="positive integer"):
            subsample_tracklets(images, bad)
