"""The video benchmark of chapter 5 (survey §3.2, tracklets; §4.1, MARS): a tracklet split of
the synthetic world in the MARS protocol, its export to the exact MARS release layout, and a
tracker's mistakes on purpose.

MARS (Zheng et al., "MARS: A Video Benchmark for Large-Scale Person Re-identification", ECCV
2016) is a set of frames grouped into tracklets by a detector and a tracker (DPM + GMMCP): one
tracklet is one pass of one person past one camera. Its test protocol, kept here:

- query = one tracklet per test identity, from a random camera, for identities seen by at
  least two cameras (so every query has a match in another camera);
- gallery = the other test tracklets, with distractor tracklets (pid 0, people outside the
  test identities) and junk tracklets (pid -1, bad detections), which evaluation ignores;
- a gallery tracklet of the query's person in the query's own camera does not count (the
  Market-1501 rule, ``reidlib.evaluation.metrics.evaluate``).

The official evaluation (``MARS-evaluation/utils/evaluation_mars.m``) keeps the query tracklets
inside the gallery, but each one is the query's person in the query's camera, so the
same-camera rule puts it in its own query's ignore list: leaving the query tracklets out of the
gallery, as ``video_splits`` does (and ``read_mars`` on the real release), gives the same
scores.

TAUDL (Li, Zhu & Gong, ECCV 2018) and UTAL (Li, Zhu & Gong, TPAMI 2020) assume that every
tracklet holds one person. A real tracker's do not always: ``corrupt_tracklets`` cuts, splits
and switches tracklets so that assumption can be tested.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from itertools import count
from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image
from tqdm.auto import tqdm

from reidlib.data.imageset import ImageSet, ReidSplits
from reidlib.utils import progress_enabled

# ---------------------------------------------------------------------------------------
# Helpers on frame-level ImageSets.


def _require_tracklets(images: ImageSet, who: str, name: str = "images") -> None:
    if not isinstance(images, ImageSet):
        raise ValueError(f"{who}: {name} must be an ImageSet, got {type(images).__name__}")
    if len(images) and images.tracklets.min() < 0:
        raise ValueError(
            f"{who}: {name} needs a tracklet id for every frame (tracklets >= 0), but "
            f"{int((images.tracklets < 0).sum())} of {len(images)} rows have -1: an image "
            "dataset without a tracker has no tracklets"
        )


def _concat(sets: list[ImageSet]) -> ImageSet:
    """Rows of ``sets`` one after the other (paths kept only when every set has them)."""
    columns = {
        f.name: np.concatenate([getattr(s, f.name) for s in sets])
        for f in dataclasses.fields(ImageSet) if f.name != "paths"
    }
    paths = None if any(s.paths is None for s in sets) else sum((s.paths for s in sets), [])
    return ImageSet(**columns, paths=paths)


def _in_tracklet_order(images: ImageSet) -> ImageSet:
    """Rows grouped by tracklet id (ascending), frames in time order inside each."""
    return images.subset(np.lexsort((np.arange(len(images)), images.frames, images.tracklets)))


def _tracklet_groups(tracklets: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Distinct tracklet ids and, for each, its rows in the order they appear."""
    ids, inverse, counts = np.unique(tracklets, return_inverse=True, return_counts=True)
    order = np.argsort(inverse, kind="stable")
    return ids, np.split(order, np.cumsum(counts)[:-1])


def _mixed_tracklets(images: ImageSet, columns: tuple[str, ...]) -> np.ndarray:
    """Tracklet ids whose frames disagree on any of ``columns`` (e.g. pid, camera)."""
    rows = np.stack([images.tracklets] + [getattr(images, c) for c in columns], axis=1)
    distinct = np.unique(rows, axis=0)[:, 0]
    ids, n = np.unique(distinct, return_counts=True)
    return ids[n > 1]


def _require_clean(images: ImageSet, who: str, name: str) -> None:
    """Every tracklet is one person in one camera (MARS names carry both)."""
    mixed = _mixed_tracklets(images, ("pids", "camids"))
    if len(mixed):
        raise ValueError(
            f"{who}: {len(mixed)} tracklet(s) of {name} mix people or cameras (e.g. tracklet "
            f"{int(mixed[0])}); each tracklet must be one person in one camera"
        )


# ---------------------------------------------------------------------------------------
# The split.


def video_splits(world: ReidSplits, seed: int = 0) -> ReidSplits:
    """The world as a video benchmark in the MARS protocol (survey §4.1; Zheng et al., ECCV
    2016): frame-level ImageSets, ``tracklets`` the tracklet id of each frame.

    - train: every training frame but junk (pid -1);
    - test tracklets: the world's image split put one frame of each test tracklet in the query
      set and the rest in the gallery; they are joined again by tracklet id;
    - query: one tracklet per test identity seen by at least two cameras, from a camera drawn
      at random (``seed``); gallery: every other test tracklet, distractors (pid 0) included;
    - junk: the junk frames (pid -1, crops with no person) of one original tracklet leave it
      and form one junk tracklet (pid -1, new id) in the gallery, as MARS's bad detections;
      the evaluation ignores pid -1.

    Tracklet ids are unique across the three sets, rows are grouped by tracklet (ascending id)
    with frames in time order, frame numbers and timestamps are kept. The query tracklets are
    not repeated in the gallery: see the module docstring for why that scores as MARS does.
    """
    if not isinstance(world, ReidSplits):
        raise ValueError(f"video_splits: world must be a ReidSplits, got {type(world).__name__}")
    for name in ("train", "query", "gallery"):
        _require_tracklets(getattr(world, name), "video_splits", f"world.{name}")
    train = world.train.subset(world.train.pids != -1)
    test = _concat([world.query, world.gallery])
    shared = np.intersect1d(train.tracklets, test.tracklets)
    if len(shared):
        raise ValueError(f"video_splits: {len(shared)} tracklet id(s) appear in both train and "
                         f"test (e.g. {int(shared[0])}); a tracklet belongs to one person")
    junk = test.pids == -1
    first_new = max(world.train.tracklets.max(initial=-1), test.tracklets.max(initial=-1)) + 1
    tracklets = test.tracklets.copy()
    tracklets[junk] = first_new + np.unique(tracklets[junk], return_inverse=True)[1]
    test = dataclasses.replace(test, tracklets=tracklets)
    _require_clean(train, "video_splits", "world.train")
    _require_clean(test, "video_splits", "the test set")
    is_query = np.isin(test.tracklets, _query_tracklets(test, seed))
    return ReidSplits(
        name=f"{world.name}-video",
        train=_in_tracklet_order(train),
        query=_in_tracklet_order(test.subset(is_query)),
        gallery=_in_tracklet_order(test.subset(~is_query)),
    )


def _query_tracklets(test: ImageSet, seed: int) -> np.ndarray:
    """One tracklet id per identity (pid > 0) with tracklets in >= 2 cameras, from a random
    camera (then a random tracklet of that camera, where the person passed it again)."""
    rng = np.random.default_rng(seed)
    person = test.pids > 0
    ids, first = np.unique(test.tracklets[person], return_index=True)
    pids, cams = test.pids[person][first], test.camids[person][first]
    chosen = []
    for pid in np.unique(pids):
        mine = pids == pid
        cameras = np.unique(cams[mine])
        if len(cameras) >= 2:
            camera = rng.choice(cameras)
            chosen.append(rng.choice(ids[mine & (cams == camera)]))
    return np.asarray(chosen, np.int64)


def tracklet_summary(splits: ReidSplits) -> str:
    """A table of a video split: people (pid > 0), tracklets, distractor (pid 0) and junk
    (pid -1) tracklets, frames, and frames per tracklet (min / mean / max)."""
    rows = [splits.name, f"{'subset':<8} {'ids':>5} {'tracklets':>9} {'distr.':>6} "
                         f"{'junk':>5} {'frames':>7} {'frames/tracklet':>16}"]
    for name in ("train", "query", "gallery"):
        s = getattr(splits, name)
        ids, first, lengths = np.unique(s.tracklets, return_index=True, return_counts=True)
        kind = s.pids[first]
        spread = (f"{lengths.min()} / {lengths.mean():.1f} / {lengths.max()}"
                  if len(s) else "-")
        rows.append(f"{name:<8} {len(np.unique(s.pids[s.pids > 0])):>5} {len(ids):>9} "
                    f"{(kind == 0).sum():>6} {(kind == -1).sum():>5} {len(s):>7} {spread:>16}")
    return "\n".join(rows)


# ---------------------------------------------------------------------------------------
# The MARS release layout.


def mars_name(pid: int, camid: int, number: int, frame: int) -> str:
    """MARS file name ``0002C1T0001F001.jpg``: person (``00-1`` for junk), 1-based camera,
    tracklet number within its (person, camera) folder and frame number within the tracklet
    (both 1-based)."""
    person = "00-1" if pid == -1 else f"{pid:04d}"
    return f"{person}C{camid + 1}T{number:04d}F{frame:03d}.jpg"


def _mars_tracks(images: ImageSet, name: str) -> list[tuple[int, int, int, np.ndarray]]:
    """The tracklets of one set as (pid, camid, first frame number, rows in set order),
    checked against what MARS names can hold."""
    _require_tracklets(images, "export_mars", name)
    _require_clean(images, "export_mars", name)
    if len(images) and not (images.pids.min() >= -1 and images.pids.max() <= 9999):
        raise ValueError(f"export_mars: {name} pids must be in -1..9999 (four digits), got "
                         f"{images.pids.min()}..{images.pids.max()}")
    if len(images) and not (images.camids.min() >= 0 and images.camids.max() <= 8):
        raise ValueError(f"export_mars: {name} cameras must be 0..8 (one digit, 1-based in "
                         f"the names), got {images.camids.min()}..{images.camids.max()}")
    _, groups = _tracklet_groups(images.tracklets)
    longest = max((len(g) for g in groups), default=0)
    if longest > 999:
        raise ValueError(f"export_mars: a tracklet of {name} has {longest} frames; MARS names "
                         "number frames with three digits (at most 999)")
    return [(int(images.pids[g[0]]), int(images.camids[g[0]]), int(images.frames[g[0]]), g)
            for g in groups]


def _mars_list(tracks: list) -> tuple[list[str], np.ndarray, list[np.ndarray]]:
    """Names, info rows (start, end, pid, camera; 1-based) and the tracks in release order.

    The order is the one of the release's name files: by person folder name (``00-1``, then
    ``0000``, ``0001``...), camera, then tracklet number; a tracklet's number within its
    (person, camera) folder follows its first frame number.
    """
    def folder(pid: int) -> str:
        return "00-1" if pid == -1 else f"{pid:04d}"

    order = sorted(range(len(tracks)),
                   key=lambda i: (folder(tracks[i][0]), tracks[i][1], tracks[i][2], i))
    names, info, numbers = [], [], {}
    for i in order:
        pid, cam, _, rows = tracks[i]
        number = numbers[pid, cam] = numbers.get((pid, cam), 0) + 1
        if number > 9999:
            raise ValueError(f"export_mars: person {pid} has over 9999 tracklets in camera "
                             f"{cam + 1}; MARS numbers them with four digits")
        start = len(names) + 1
        names += [mars_name(pid, cam, number, f) for f in range(1, len(rows) + 1)]
        info.append((start, len(names), pid, cam + 1))
    # MATLAB doubles, as in the release
    return names, np.asarray(info, np.float64).reshape(-1, 4), order


def _write_frames(images: ImageSet, rows: np.ndarray, names: list[str], folder: Path,
                  progress: bool) -> None:
    for row, name in tqdm(zip(rows, names, strict=True), total=len(names), desc=folder.name,
                          leave=False, disable=not progress_enabled(progress)):
        path = folder / name[:4] / name
        path.parent.mkdir(parents=True, exist_ok=True)
        # 4:4:4 (no chroma subsampling): see export_mars
        Image.fromarray(images.images[row]).save(path, format="JPEG", quality=95, subsampling=0)


def _write_mars_set(images: ImageSet, tracks: list, base: Path, split: str,
                    progress: bool) -> list[int]:
    """bbox_<split>/ and its name file and info matrix; returns the release order."""
    names, info, order = _mars_list(tracks)
    rows = np.concatenate([tracks[i][3] for i in order]) if order else np.zeros(0, np.int64)
    (base / f"bbox_{split}").mkdir()
    _write_frames(images, rows, names, base / f"bbox_{split}", progress)
    (base / "info" / f"{split}_name.txt").write_text("".join(f"{n}\n" for n in names))
    scipy.io.savemat(base / "info" / f"tracks_{split}_info.mat", {f"track_{split}_info": info})
    return order


def export_mars(splits: ReidSplits, out: str | os.PathLike, progress: bool = True) -> Path:
    """Write a frame-level video split (``video_splits``) in the exact MARS release layout
    (survey §4.1; Zheng et al., ECCV 2016, with the ``info/`` of MARS-evaluation); returns
    ``out``::

        out/bbox_train/0001/0001C1T0001F001.jpg ...
        out/bbox_test/00-1/00-1C2T0001F001.jpg, 0000/..., 0002/0002C1T0001F001.jpg ...
        out/info/train_name.txt, test_name.txt            one file name a line
        out/info/tracks_train_info.mat  (track_train_info) rows (start, end, pid, camera)
        out/info/tracks_test_info.mat   (track_test_info)  1-based, MATLAB doubles
        out/info/query_IDX.mat          (query_IDX)        1-based rows of the test matrix

    Query and gallery tracklets together form the test set; ``query_IDX`` marks the query
    ones. ``read_dataset("mars", out, num_cameras=...)`` reads it back (junk tracklets
    dropped, as for the release). The folder is assembled beside ``out`` and renamed into
    place at the end, so a failure never leaves a partial export; an existing non-empty
    ``out`` is refused.

    Images are JPEG at quality 95 without chroma subsampling (4:4:4), unlike the release and
    PIL's default 4:2:0: on the world's small crops (64 x 32) 4:2:0 averages colours over
    2 x 2 pixels, a mean error of about 5 / 255 and up to 15 on colourful clothes, and colour
    is what tells the world's people apart; 4:4:4 keeps it under 3.
    """
    if not isinstance(splits, ReidSplits):
        raise ValueError(f"export_mars: splits must be a ReidSplits, got {type(splits).__name__}")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"export_mars: {out} already exists and is not empty; choose a "
                              "new folder for the export")
    train = _mars_tracks(splits.train, "train")
    query, gallery = _mars_tracks(splits.query, "query"), _mars_tracks(splits.gallery, "gallery")
    shared = np.intersect1d(splits.query.tracklets, splits.gallery.tracklets)
    if len(shared):
        raise ValueError(f"export_mars: {len(shared)} tracklet id(s) are in both query and "
                         f"gallery (e.g. {int(shared[0])}); build the split with video_splits")
    test_set = _concat([splits.query, splits.gallery])
    offset = len(splits.query)
    test = query + [(p, c, f, rows + offset) for p, c, f, rows in gallery]

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        (tmp / "info").mkdir()
        _write_mars_set(splits.train, train, tmp, "train", progress)
        order = _write_mars_set(test_set, test, tmp, "test", progress)
        position = np.argsort(order)  # release row of each test tracklet
        query_idx = np.sort(position[: len(query)]) + 1.0
        scipy.io.savemat(tmp / "info" / "query_IDX.mat", {"query_IDX": query_idx[None, :]})
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes a private folder; give the usual mode
        os.replace(tmp, out)  # onto a missing or empty folder: atomic
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


# ---------------------------------------------------------------------------------------
# Tracker noise.


def _check_share(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ValueError(f"corrupt_tracklets: {name} must be a share in [0, 1], got {value!r}")
    return float(value)


def corrupt_tracklets(images: ImageSet, *, cut: float = 0.0, split: float = 0.0,
                      switch: float = 0.0, seed: int = 0) -> tuple[ImageSet, dict]:
    """A tracker's mistakes on a frame-level set: tracklets cut short, split in two, or that
    switch to another person midway (survey §3.2: TAUDL and UTAL assume clean intra-camera
    tracklets; this measures what happens when they are not).

    ``cut``, ``split`` and ``switch`` are shares of the tracklets, drawn at random without
    overlap (``round(share * T)`` each, T tracklets, rounded on the running sum):

    - cut: the tracklet keeps its first m frames (m random in 1..len-1); the rest are lost
      (the rows leave the set, as detections a tracker never linked);
    - split: its later half (from frame ``len // 2`` on, in time order) gets a new id;
    - switch: at its half the tracker jumps to another person: the later half of tracklet X
      is replaced by the later half of tracklet Y, the tracklet of another person (majority
      pid) in the same camera whose later half starts nearest in time; X's own later half gets
      a new id and Y keeps its first half. Partners are drawn from tracklets not drawn for any
      corruption, each used once.

    Tracklets of one frame, and switches that find no partner, are skipped and counted. pids
    stay each frame's truth; only tracklet ids change and cut frames leave. Rows keep the
    input order. Returns the new set and a dict: ``cut``, ``split``, ``switch`` (corruptions
    applied), ``skipped_single_frame``, ``skipped_no_partner``, ``frames_dropped``,
    ``mixed_frame_share`` (share of frames whose tracklet now mixes identities) and ``index``
    (the input row of each output row). New ids count up from ``max(tracklets) + 1``.
    """
    shares = [_check_share(v, n) for v, n in ((cut, "cut"), (split, "split"),
                                              (switch, "switch"))]
    if sum(shares) > 1 + 1e-9:
        raise ValueError(f"corrupt_tracklets: cut + split + switch must be <= 1 (each tracklet "
                         f"gets at most one corruption), got {sum(shares):g}")
    _require_tracklets(images, "corrupt_tracklets")
    rng = np.random.default_rng(seed)
    ids, groups = _tracklet_groups(images.tracklets)
    # each tracklet's rows in time order (a stable sort: row order breaks ties)
    tracks = {int(t): g[np.argsort(images.frames[g], kind="stable")]
              for t, g in zip(ids, groups, strict=True)}
    drawn = [int(t) for t in rng.permutation(ids)]
    bounds = np.round(np.cumsum([0.0] + shares) * len(ids)).astype(int)
    cut_ids, split_ids, switch_ids = (
        [t for t in drawn[a:b] if len(tracks[t]) >= 2]
        for a, b in zip(bounds[:-1], bounds[1:], strict=True)
    )
    new_id = count(int(ids.max(initial=-1)) + 1)
    for t in cut_ids:
        tracks[t] = tracks[t][: rng.integers(1, len(tracks[t]))]
    for t in split_ids:
        tracks[next(new_id)], tracks[t] = _halves(tracks[t])[::-1]
    pool = _SwitchPool(images, tracks, drawn[bounds[-1]:])
    switched = 0
    for t in switch_ids:
        y = pool.take(images, tracks[t])
        if y is not None:
            (x_first, x_later), (y_first, y_later) = _halves(tracks[t]), _halves(tracks[y])
            tracks[next(new_id)], tracks[t], tracks[y] = x_later, np.r_[x_first, y_later], y_first
            switched += 1
    result, index = _relabel_rows(images, tracks)
    mixed = np.isin(result.tracklets, _mixed_tracklets(result, ("pids",)))
    return result, {
        "cut": len(cut_ids), "split": len(split_ids), "switch": switched,
        "skipped_single_frame": int(bounds[-1]) - len(cut_ids) - len(split_ids) - len(switch_ids),
        "skipped_no_partner": len(switch_ids) - switched,
        "frames_dropped": len(images) - len(index),
        "mixed_frame_share": float(mixed.mean()) if len(result) else 0.0,
        "index": index,
    }


def _halves(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A tracklet's first ``len // 2`` frames and the rest."""
    return rows[: len(rows) // 2], rows[len(rows) // 2:]


def _relabel_rows(images: ImageSet, tracks: dict) -> tuple[ImageSet, np.ndarray]:
    """The rows still in a tracklet, in input order, with their new tracklet ids."""
    tracklets = np.full(len(images), -1, np.int64)
    for t, rows in tracks.items():
        tracklets[rows] = t
    index = np.flatnonzero(tracklets >= 0)
    return dataclasses.replace(images.subset(index), tracklets=tracklets[index]), index


def _majority_pid(pids: np.ndarray) -> int:
    values, n = np.unique(pids, return_counts=True)
    return int(values[np.argmax(n)])


class _SwitchPool:
    """The tracklets a switch may jump to: untouched ones of two frames or more, each used
    once. A partner of X: same camera, another majority pid, later half starting nearest in
    time (frame number) to X's; ties go to the smaller id."""

    def __init__(self, images: ImageSet, tracks: dict, candidates: list[int]):
        self.ids = np.array(sorted(t for t in candidates if len(tracks[t]) >= 2), np.int64)
        rows = [tracks[int(t)] for t in self.ids]
        self.cams = np.array([images.camids[r[0]] for r in rows], np.int64)
        self.pids = np.array([_majority_pid(images.pids[r]) for r in rows], np.int64)
        self.times = np.array([images.frames[r[len(r) // 2]] for r in rows], np.int64)
        self.free = np.ones(len(self.ids), bool)

    def take(self, images: ImageSet, rows: np.ndarray) -> int | None:
        """The partner of the tracklet with ``rows`` (now used up), or None."""
        ok = (self.free & (self.cams == images.camids[rows[0]])
              & (self.pids != _majority_pid(images.pids[rows])))
        if not ok.any():
            return None
        gap = np.abs(self.times - images.frames[rows[len(rows) // 2]]).astype(float)
        best = int(np.argmin(np.where(ok, gap, np.inf)))
        self.free[best] = False
        return int(self.ids[best])


def tracklet_purity(images: ImageSet) -> float:
    """Share of frames whose pid is their tracklet's majority pid (clean tracklets: 1.0).

    The tracklet counterpart of cluster purity (survey §3.2): how far a "one tracklet = one
    person" label, as TAUDL / UTAL use it, is from the truth.
    """
    _require_tracklets(images, "tracklet_purity")
    if not len(images):
        raise ValueError("tracklet_purity: images is empty")
    pairs, n = np.unique(np.stack([images.tracklets, images.pids], 1), axis=0,
                         return_counts=True)
    starts = np.flatnonzero(np.r_[True, pairs[1:, 0] != pairs[:-1, 0]])
    return float(np.maximum.reduceat(n, starts).sum() / len(images))


def subsample_tracklets(images: ImageSet, frames: int, seed: int = 0) -> ImageSet:
    """At most ``frames`` frames of each tracklet, drawn at random (seeded) and kept in
    their order: the fixed sequence length of video Re-ID code (Gao & Nevatia, 2018, sample
    a few frames per tracklet; real MARS tracklets hold tens to hundreds of frames). A
    tracklet with fewer frames keeps them all. Rows keep the input's order."""
    _require_tracklets(images, "subsample_tracklets")
    if isinstance(frames, bool) or not isinstance(frames, int | np.integer) or frames < 1:
        raise ValueError(f"frames must be a positive integer (frames kept per tracklet), got "
                         f"{frames!r}")
    rng = np.random.default_rng(seed)
    keep = np.zeros(len(images), bool)
    _, groups = _tracklet_groups(images.tracklets)
    for rows in groups:
        keep[rows if len(rows) <= frames else rng.choice(rows, frames, replace=False)] = True
    return images.subset(np.flatnonzero(keep))
