"""Real-dataset readers on fake trees in the official layouts (tests/fakes.py).

Expected counts are written by hand from the file lists in fakes.py.
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from fakes import (
    IMAGE_SIZE,
    fake_color,
    write_cuhk03_np,
    write_dukemtmc,
    write_market1501,
    write_mars,
    write_msmt17,
)

import reidlib.data.datasets as ds
from reidlib.data.datasets import (
    DatasetLayoutError,
    DatasetRecords,
    load_imageset,
    load_splits,
    read_dataset,
    relabel,
)
from reidlib.data.imageset import ReidSplits
from reidlib.data.records import Record


def pids(records):
    return sorted(r.pid for r in records)


def camids(records):
    return sorted({r.camid for r in records})


# --- Market-1501 ----------------------------------------------------------------------


@pytest.mark.parametrize("nested", [True, False])
def test_market1501_counts_junk_and_distractors(tmp_path, nested):
    data = read_dataset("market1501", write_market1501(tmp_path, nested=nested))
    base = tmp_path / "Market-1501-v15.09.15" if nested else tmp_path
    assert isinstance(data, DatasetRecords) and data.name == "market1501"
    assert pids(data.train) == [2, 2, 7, 7, 7]  # Thumbs.db ignored
    assert camids(data.train) == [0, 1, 2, 5]  # c1, c2, c3, c6 -> 0-based
    assert pids(data.query) == [1, 3]
    # 7 gallery files: 2 junk (-1) dropped, 2 distractors kept with pid 0.
    assert pids(data.gallery) == [0, 0, 1, 1, 3]
    assert camids(data.gallery) == [0, 1, 3, 4]
    assert data.query[0] == Record(str(base / "query" / "0001_c1s1_001051_00.jpg"), 1, 0)
    assert all(r.tracklet == -1 and r.frame == -1 for r in data.train + data.gallery)
    assert all(Path(r.path).is_file() for r in data.train + data.query + data.gallery)


def test_market1501_bad_file_name_and_camera(tmp_path):
    write_market1501(tmp_path)
    train = tmp_path / "Market-1501-v15.09.15" / "bounding_box_train"
    (train / "0002_c7s1_000451_03.jpg").write_bytes(b"")
    with pytest.raises(ValueError, match=r"camera 7 outside 1\.\.6"):
        read_dataset("market1501", tmp_path)
    (train / "0002_c7s1_000451_03.jpg").unlink()
    (train / "person_2.jpg").write_bytes(b"")
    with pytest.raises(ValueError, match=r"unexpected file name .*person_2\.jpg.*pattern"):
        read_dataset("market1501", tmp_path)


# --- DukeMTMC-reID --------------------------------------------------------------------


def test_dukemtmc(tmp_path):
    data = read_dataset("dukemtmc", write_dukemtmc(tmp_path))
    assert data.name == "dukemtmc"
    assert pids(data.train) == [5, 5, 8, 8]
    assert camids(data.train) == [0, 1, 6, 7]
    assert pids(data.query) == [1, 10]
    assert pids(data.gallery) == [1, 1, 10, 11]
    q = {Path(r.path).name: r for r in data.query}
    assert q["0001_c2_f0046182.jpg"].camid == 1 and q["0010_c5_f0080001.jpg"].camid == 4


# --- CUHK03 (new protocol) ------------------------------------------------------------


def test_cuhk03_both_variants(tmp_path):
    write_cuhk03_np(tmp_path)
    labeled = read_dataset("cuhk03", tmp_path)  # labeled by default
    detected = read_dataset("cuhk03", tmp_path, cuhk03_variant="detected")
    assert (labeled.name, detected.name) == ("cuhk03_labeled", "cuhk03_detected")
    assert pids(labeled.train) == [1, 1, 4, 4, 4] and pids(detected.train) == [1, 1, 4, 4]
    assert pids(labeled.gallery) == [2, 3, 3] and pids(detected.gallery) == [2, 3]
    assert pids(labeled.query) == pids(detected.query) == [2, 3]
    assert camids(labeled.train) == camids(detected.gallery) == [0, 1]
    assert all("/cuhk03-np/labeled/" in r.path for r in labeled.train + labeled.gallery)
    assert all("/cuhk03-np/detected/" in r.path for r in detected.train + detected.query)


def test_cuhk03_bad_variant_and_original_release(tmp_path):
    write_cuhk03_np(tmp_path / "np")
    with pytest.raises(ValueError, match=r"must be one of \('labeled', 'detected'\)"):
        read_dataset("cuhk03", tmp_path / "np", cuhk03_variant="manual")
    (tmp_path / "old" / "cuhk03_release").mkdir(parents=True)
    (tmp_path / "old" / "cuhk03_release" / "cuhk03.mat").write_bytes(b"")
    with pytest.raises(DatasetLayoutError, match=r"(?s)cuhk03_release.*h5py.*cuhk03-np"):
        read_dataset("cuhk03", tmp_path / "old")


# --- MSMT17 ---------------------------------------------------------------------------


@pytest.mark.parametrize("version, train_dir", [("V1", "train"), ("V2", "mask_train_v2")])
@pytest.mark.parametrize("lists_in_image_dirs", [False, True])
def test_msmt17_v1_v2(tmp_path, version, train_dir, lists_in_image_dirs):
    write_msmt17(tmp_path, version, lists_in_image_dirs=lists_in_image_dirs)
    data = read_dataset("msmt17", tmp_path)  # version auto-detected
    assert data.name == f"msmt17_{version.lower()}"
    # train = list_train (3) + list_val (1); listed pids 0, 0, 1, 2 shifted by +1.
    assert [r.pid for r in data.train] == [1, 1, 2, 3]
    assert [r.camid for r in data.train] == [0, 4, 14, 2]  # name fields 01, 05, 15, 03
    assert [(r.pid, r.camid) for r in data.query] == [(1, 1), (2, 6)]
    assert [(r.pid, r.camid) for r in data.gallery] == [(1, 3), (2, 8), (3, 10)]
    assert data.train[0].path == str(
        tmp_path / f"MSMT17_{version}" / train_dir / "0000/0000_000_01_0303morning_0015_0.jpg")


def test_msmt17_both_versions_present(tmp_path):
    write_msmt17(tmp_path, "V1")
    write_msmt17(tmp_path, "V2")
    assert read_dataset("msmt17", tmp_path).name == "msmt17_v1"
    v2 = read_dataset("msmt17", tmp_path, msmt17_version="V2")
    assert v2.name == "msmt17_v2" and "/mask_test_v2/" in v2.gallery[0].path
    with pytest.raises(ValueError, match="msmt17_version must be"):
        read_dataset("msmt17", tmp_path, msmt17_version="V3")


def test_msmt17_inconsistent_list_and_missing_image(tmp_path):
    write_msmt17(tmp_path, "V1")
    base = tmp_path / "MSMT17_V1"
    (base / "test" / "0002/0002_000_11_0113afternoon_0200_0.jpg").unlink()
    with pytest.raises(DatasetLayoutError, match=r"(?s)0002_000_11.*1 listed image"):
        read_dataset("msmt17", tmp_path)
    (base / "list_val.txt").write_text("0002/0002_000_03_0303morning_0420_0.jpg 7\n")
    with pytest.raises(ValueError, match="pid 7 differs from the file name"):
        read_dataset("msmt17", tmp_path)
    (base / "list_val.txt").write_text("0002/0002_000_03_0303morning_0420_0.jpg\n")
    with pytest.raises(ValueError, match="expected 'path pid'"):
        read_dataset("msmt17", tmp_path)
    (base / "list_val.txt").unlink()
    with pytest.raises(DatasetLayoutError, match="list_val.txt not found"):
        read_dataset("msmt17", tmp_path)


# --- MARS -----------------------------------------------------------------------------


@pytest.mark.parametrize("nested", [False, True])
def test_mars_tracklets_query_gallery(tmp_path, nested):
    data = read_dataset("mars", write_mars(tmp_path, nested=nested))
    base = tmp_path / "MARS" if nested else tmp_path
    assert data.name == "mars"
    # Train: 3 tracklets of 3, 2, 4 frames.
    assert [r.tracklet for r in data.train] == [0, 0, 0, 1, 1, 2, 2, 2, 2]
    assert [r.pid for r in data.train] == [1] * 5 + [3] * 4
    assert [r.camid for r in data.train] == [0, 0, 0, 1, 1, 3, 3, 3, 3]
    assert [r.frame for r in data.train] == [0, 1, 2, 0, 1, 0, 1, 2, 3]
    # Query = test rows 0 and 3 (query_IDX 1 and 4).
    assert [(r.tracklet, r.pid, r.camid, r.frame) for r in data.query] == [
        (0, 2, 0, 0), (0, 2, 0, 1), (0, 2, 0, 2), (3, 5, 2, 0), (3, 5, 2, 1)]
    # Gallery = rows 1, 2, 5, 6; row 4 (junk, 3 frames) dropped; row 2 is a distractor.
    assert [r.tracklet for r in data.gallery] == [1, 1, 2, 2, 5, 5, 6, 6]
    assert [r.pid for r in data.gallery] == [2, 2, 0, 0, 5, 5, 2, 2]
    assert [r.camid for r in data.gallery] == [1, 1, 1, 1, 5, 5, 0, 0]
    assert data.query[0].path == str(base / "bbox_test" / "0002" / "0002C1T0001F001.jpg")
    assert data.gallery[2].path == str(base / "bbox_test" / "0000" / "0000C2T0001F001.jpg")
    assert all(type(r.tracklet) is int for r in data.query + data.gallery)


def test_mars_inconsistent_info_files(tmp_path):
    write_mars(tmp_path)
    info = tmp_path / "info"
    rows = scipy.io.loadmat(info / "tracks_test_info.mat")["track_test_info"]
    rows[1, 2] = 9  # row 1 lists frames of person 0002 as person 0009
    scipy.io.savemat(info / "tracks_test_info.mat", {"track_test_info": rows})
    with pytest.raises(ValueError, match="info and name files disagree"):
        read_dataset("mars", tmp_path)
    rows[1, 2], rows[1, 1] = 2, 99  # end index beyond the name list
    scipy.io.savemat(info / "tracks_test_info.mat", {"track_test_info": rows})
    with pytest.raises(ValueError, match="name list has 16 entries"):
        read_dataset("mars", tmp_path)
    rows[1, 1] = 5
    scipy.io.savemat(info / "tracks_test_info.mat", {"track_test_info": rows})
    scipy.io.savemat(info / "query_IDX.mat", {"query_IDX": np.array([[1, 8]])})
    with pytest.raises(ValueError, match=r"query_IDX must index 1\.\.7"):
        read_dataset("mars", tmp_path)
    scipy.io.savemat(info / "query_IDX.mat", {"query_IDX": np.array([[1, 4]])})
    scipy.io.savemat(info / "tracks_test_info.mat", {"track_test_info": rows[:, :3]})
    with pytest.raises(ValueError, match=r"\(tracklets, 4\) matrix"):
        read_dataset("mars", tmp_path)


def test_mars_missing_frame_and_info_file(tmp_path):
    write_mars(tmp_path)
    (tmp_path / "bbox_train" / "0003" / "0003C4T0002F003.jpg").unlink()
    with pytest.raises(DatasetLayoutError, match="0003C4T0002F003.jpg not found"):
        read_dataset("mars", tmp_path)
    (tmp_path / "info" / "query_IDX.mat").unlink()
    with pytest.raises(DatasetLayoutError, match=r"info/query_IDX\.mat not found"):
        read_dataset("mars", tmp_path)


# --- Clear errors ---------------------------------------------------------------------


def test_missing_root_names_dataset_path_layout_and_source(tmp_path):
    missing = tmp_path / "market1501"
    with pytest.raises(DatasetLayoutError) as err:
        read_dataset("market1501", missing)
    message = str(err.value)
    assert isinstance(err.value, FileNotFoundError)
    for needed in ("Market-1501", str(missing), "bounding_box_train", "query",
                   "bounding_box_test", "data/README.md", "project page"):
        assert needed in message


@pytest.mark.parametrize("name, writer, remove", [
    ("market1501", write_market1501, "Market-1501-v15.09.15/query"),
    ("dukemtmc", write_dukemtmc, "DukeMTMC-reID/bounding_box_test"),
    ("cuhk03", write_cuhk03_np, "cuhk03-np/labeled/bounding_box_train"),
    ("msmt17", write_msmt17, "MSMT17_V1/test"),
    ("mars", write_mars, "bbox_test"),
])
def test_partial_layout_names_the_missing_folder(tmp_path, name, writer, remove):
    writer(tmp_path)
    shutil.rmtree(tmp_path / remove)
    with pytest.raises(DatasetLayoutError, match="Expected layout") as err:
        read_dataset(name, tmp_path)
    assert f"{tmp_path / remove} not found" in str(err.value)


def test_empty_image_folder(tmp_path):
    write_dukemtmc(tmp_path)
    for path in (tmp_path / "DukeMTMC-reID" / "query").iterdir():
        path.unlink()
    with pytest.raises(DatasetLayoutError, match="holds no .jpg images"):
        read_dataset("dukemtmc", tmp_path)


def test_unknown_dataset_lists_valid_names(tmp_path):
    with pytest.raises(ValueError) as err:
        read_dataset("viper", tmp_path)
    for name in ("market1501", "dukemtmc", "msmt17", "cuhk03", "mars"):
        assert name in str(err.value)
    assert read_dataset("Market1501", write_market1501(tmp_path)).name == "market1501"


# --- relabel --------------------------------------------------------------------------


def test_relabel(tmp_path):
    train = read_dataset("market1501", write_market1501(tmp_path)).train
    relabelled, mapping = relabel(train)
    assert mapping == {2: 0, 7: 1}
    assert [r.pid for r in relabelled] == [mapping[r.pid] for r in train]
    assert [(r.path, r.camid) for r in relabelled] == [(r.path, r.camid) for r in train]
    assert pids(train) == [2, 2, 7, 7, 7]  # the input is untouched
    with pytest.raises(ValueError, match="junk"):
        relabel([Record("a.jpg", -1, 0)])


# --- load_imageset and its cache ------------------------------------------------------


def test_load_imageset_pixels_and_labels(tmp_path):
    records = read_dataset("mars", write_mars(tmp_path)).query
    images = load_imageset(records, size=(16, 8), workers=2)
    assert images.images.shape == (5, 16, 8, 3) and images.images.dtype == np.uint8
    for row, record in zip(images.images, records, strict=True):
        expected = np.array(fake_color(Path(record.path).name))
        assert np.abs(row.reshape(-1, 3).mean(0) - expected).max() < 3  # JPEG is lossy
    assert images.pids.tolist() == [2, 2, 2, 5, 5]
    assert images.camids.tolist() == [0, 0, 0, 2, 2]
    assert images.tracklets.tolist() == [0, 0, 0, 3, 3]
    assert images.frames.tolist() == [0, 1, 2, 0, 1]
    assert images.paths == [r.path for r in records]
    assert load_imageset([], size=(16, 8)).images.shape == (0, 16, 8, 3)


def _forbid_decoding(monkeypatch):
    def fail(path, size):
        raise AssertionError(f"decoded {path}: the cache was not used")
    monkeypatch.setattr(ds, "_decode_image", fail)


def test_cache_round_trip(tmp_path, monkeypatch):
    records = read_dataset("market1501", write_market1501(tmp_path / "m")).gallery
    cache = tmp_path / "cache"
    first = load_imageset(records, (16, 8), cache_dir=cache)
    files = list(cache.iterdir())
    assert len(files) == 1 and files[0].suffix == ".npz"  # no temporary file left behind
    with monkeypatch.context() as m:
        _forbid_decoding(m)
        second = load_imageset(records, (16, 8), cache_dir=cache)
    np.testing.assert_array_equal(first.images, second.images)
    assert second.pids.tolist() == [r.pid for r in records]
    load_imageset(records, (8, 4), cache_dir=cache)  # another size: another file
    load_imageset(records[:3], (16, 8), cache_dir=cache)  # other records: another file
    assert len(list(cache.iterdir())) == 3


def _truncate(path, other):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _garbage(path, other):
    path.write_bytes(b"not a zip file at all")


def _flip_pixel_bytes(path, other):
    """Flip one raw pixel byte inside the file (zip CRC or the pixel checksum catches it)."""
    data = bytearray(path.read_bytes())
    with np.load(path) as npz:
        pixels = npz["images"].tobytes()
    start = bytes(data).find(pixels)
    assert start > 0
    data[start + len(pixels) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _valid_zip_wrong_pixels(path, other):
    """A well-formed npz whose pixels changed but whose checksum did not."""
    with np.load(path) as npz:
        arrays = dict(npz)
    arrays["images"] = arrays["images"].copy()
    arrays["images"][0, 0, 0, 0] ^= 0xFF
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def _cache_of_other_records(path, other):
    shutil.copy(other, path)


@pytest.mark.parametrize("corrupt", [_truncate, _garbage, _flip_pixel_bytes,
                                     _valid_zip_wrong_pixels, _cache_of_other_records])
def test_corrupted_cache_is_detected_and_rebuilt(tmp_path, monkeypatch, corrupt):
    records = read_dataset("market1501", write_market1501(tmp_path / "m")).gallery
    cache = tmp_path / "cache"
    fresh = load_imageset(records, (16, 8), cache_dir=cache).images
    path = next(cache.iterdir())
    other_cache = tmp_path / "other"
    load_imageset(records[:4], (16, 8), cache_dir=other_cache)
    corrupt(path, next(other_cache.iterdir()))
    with pytest.warns(UserWarning, match="unusable.*rebuilding"):
        rebuilt = load_imageset(records, (16, 8), cache_dir=cache).images
    np.testing.assert_array_equal(rebuilt, fresh)
    with monkeypatch.context() as m, warnings.catch_warnings():
        warnings.simplefilter("error")  # the rewritten cache verifies cleanly
        _forbid_decoding(m)
        np.testing.assert_array_equal(load_imageset(records, (16, 8), cache_dir=cache).images,
                                      fresh)


# --- load_splits ----------------------------------------------------------------------


def test_load_splits_relabels_train_only(tmp_path):
    splits = load_splits("market1501", write_market1501(tmp_path), size=IMAGE_SIZE)
    assert isinstance(splits, ReidSplits) and splits.name == "market1501"
    assert splits.train.pids.tolist() == [0, 0, 1, 1, 1]
    assert sorted(splits.query.pids.tolist()) == [1, 3]
    assert sorted(splits.gallery.pids.tolist()) == [0, 0, 1, 1, 3]
    assert splits.train.image_size == IMAGE_SIZE
    assert "gallery" in splits.summary()


def test_load_splits_reader_options_and_video(tmp_path):
    write_cuhk03_np(tmp_path / "c")
    splits = load_splits("cuhk03", tmp_path / "c", size=(8, 4), cuhk03_variant="detected")
    assert splits.name == "cuhk03_detected" and len(splits.train) == 4
    mars = load_splits("mars", write_mars(tmp_path / "mars"), size=(8, 4),
                       cache_dir=tmp_path / "cache")
    assert mars.train.pids.tolist() == [0] * 5 + [1] * 4
    assert mars.gallery.tracklets.tolist() == [1, 1, 2, 2, 5, 5, 6, 6]
    assert len(list((tmp_path / "cache").iterdir())) == 3
