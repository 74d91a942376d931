"""reidlib.recipes.datasets: every --dataset form parsed, every real layout read end to end
(from the tiny fake releases of tests/fakes.py), and the clear errors for the rest."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fakes import (
    CUHK03_NP,
    DUKEMTMC,
    MARKET1501,
    MARS_QUERY_IDX,
    MARS_TEST,
    MARS_TRAIN,
    MSMT17_LISTS,
    fake_color,
    write_cuhk03_np,
    write_dukemtmc,
    write_market1501,
    write_mars,
    write_msmt17,
)

from reidlib.data.datasets import DatasetLayoutError
from reidlib.profiles import get_profile
from reidlib.recipes.datasets import LAYOUTS, dataset_forms, load_dataset, parse_dataset

SMOKE = get_profile("smoke")


def _not_junk(names):
    return [n for n in names if not n.startswith("-1")]


def _ids(names):
    return len({n[:4] for n in names})


# The fake trees' (train, query, gallery) image counts and training identities, by hand
# from the fakes' file lists: junk is dropped, distractors stay in the gallery, MSMT17's
# training set is list_train + list_val, MARS keeps every frame of its tracklets (its
# query tracklets are not in its gallery).
def _mars_frames(tracklets, rows=None):
    rows = range(len(tracklets)) if rows is None else rows
    return sum(tracklets[i][3] for i in rows if tracklets[i][0] != "00-1")


_MARS_QUERY_ROWS = [i - 1 for i in MARS_QUERY_IDX]  # the gallery is the other test rows
EXPECTED = {
    "market1501": (len(MARKET1501["bounding_box_train"]), len(MARKET1501["query"]),
                   len(_not_junk(MARKET1501["bounding_box_test"])),
                   _ids(MARKET1501["bounding_box_train"])),
    "dukemtmc": (len(DUKEMTMC["bounding_box_train"]), len(DUKEMTMC["query"]),
                 len(DUKEMTMC["bounding_box_test"]), _ids(DUKEMTMC["bounding_box_train"])),
    "cuhk03": (*(len(CUHK03_NP["labeled"][f]) for f in
                 ("bounding_box_train", "query", "bounding_box_test")),
               _ids(CUHK03_NP["labeled"]["bounding_box_train"])),
    "cuhk03-detected": (*(len(CUHK03_NP["detected"][f]) for f in
                          ("bounding_box_train", "query", "bounding_box_test")),
                        _ids(CUHK03_NP["detected"]["bounding_box_train"])),
    "msmt17": (len(MSMT17_LISTS["list_train.txt"]) + len(MSMT17_LISTS["list_val.txt"]),
               len(MSMT17_LISTS["list_query.txt"]), len(MSMT17_LISTS["list_gallery.txt"]),
               3),
    "mars": (_mars_frames(MARS_TRAIN), _mars_frames(MARS_TEST, _MARS_QUERY_ROWS),
             _mars_frames(MARS_TEST) - _mars_frames(MARS_TEST, _MARS_QUERY_ROWS), 2),
}

WRITERS = {
    "market1501": write_market1501, "dukemtmc": write_dukemtmc, "cuhk03": write_cuhk03_np,
    "cuhk03-detected": write_cuhk03_np, "msmt17": write_msmt17, "mars": write_mars,
}


def test_parse_dataset_reads_every_valid_form():
    assert parse_dataset("synthetic:A") == ("synthetic", "A")
    assert parse_dataset("synthetic:P") == ("synthetic", "P")
    for kind in LAYOUTS:
        assert parse_dataset(f"{kind}:data/x") == (kind, Path("data/x"))
    assert parse_dataset("Market1501:/a/b") == ("market1501", Path("/a/b"))


@pytest.mark.parametrize("spec", ["market1501", "synthetic:Z", "synthetic:", "imagenet:/x",
                                  "market1501:", "", "A"])
def test_parse_dataset_refuses_other_forms_and_lists_the_valid_ones(spec):
    with pytest.raises(ValueError, match="expected one of synthetic:A") as err:
        parse_dataset(spec)
    for kind in LAYOUTS:
        assert f"{kind}:PATH" in str(err.value)
    assert dataset_forms() in str(err.value)


def test_every_layout_is_a_valid_form_and_every_form_has_a_fake():
    assert set(WRITERS) == set(LAYOUTS) == set(EXPECTED)


@pytest.mark.parametrize("kind", list(LAYOUTS))
def test_load_dataset_reads_every_fake_layout_at_the_profile_size(kind, tmp_path):
    root = WRITERS[kind](tmp_path / kind)
    splits = load_dataset(f"{kind}:{root}", SMOKE, tmp_path / "cache", progress=False)
    n_train, n_query, n_gallery, n_ids = EXPECTED[kind]
    assert (len(splits.train), len(splits.query), len(splits.gallery)) == \
        (n_train, n_query, n_gallery)
    for split in (splits.train, splits.query, splits.gallery):
        assert split.images.shape[1:] == (SMOKE.height, SMOKE.width, 3)
    # training identities are relabelled 0..C-1 for the classifiers
    assert sorted(np.unique(splits.train.pids).tolist()) == list(range(n_ids))
    # the pixels are the fake file's colour (solid images survive the resize)
    path = Path(splits.query.paths[0])
    np.testing.assert_allclose(splits.query.images[0].reshape(-1, 3).mean(0),
                               fake_color(path.name), atol=6)
    assert list((tmp_path / "cache" / "datasets").glob("imageset-*.npz"))  # decoded once


def test_mars_keeps_its_tracklets(tmp_path):
    root = write_mars(tmp_path / "mars")
    splits = load_dataset(f"mars:{root}", SMOKE, tmp_path / "cache", progress=False)
    assert (splits.train.tracklets >= 0).all()
    assert len(np.unique(splits.train.tracklets)) == len(MARS_TRAIN)


def test_a_missing_release_names_the_layout_it_expected(tmp_path):
    with pytest.raises(DatasetLayoutError, match="Expected layout") as err:
        load_dataset(f"market1501:{tmp_path / 'absent'}", SMOKE, tmp_path / "cache")
    assert "bounding_box_train/" in str(err.value)
    assert not (tmp_path / "cache" / "datasets").exists()  # nothing half-written


def test_a_malformed_release_names_the_layout_it_expected(tmp_path):
    root = write_dukemtmc(tmp_path / "duke")
    for image in (root / "DukeMTMC-reID" / "query").iterdir():
        image.unlink()
    (root / "DukeMTMC-reID" / "query").rmdir()
    with pytest.raises(DatasetLayoutError, match="DukeMTMC-reID") as err:
        load_dataset(f"dukemtmc:{root}", SMOKE, tmp_path / "cache")
    assert "query/" in str(err.value)
    root = write_msmt17(tmp_path / "msmt")
    (root / "MSMT17_V1" / "list_gallery.txt").unlink()
    with pytest.raises(DatasetLayoutError, match="list_gallery.txt"):
        load_dataset(f"msmt17:{root}", SMOKE, tmp_path / "cache")


def test_synthetic_worlds_load_at_the_profile_size():
    world = load_dataset("synthetic:A", SMOKE, _default_cache(), progress=False)
    assert world.name.startswith("synthetic-A-smoke")
    assert world.train.images.shape[1:3] == (SMOKE.height, SMOKE.width)


def _default_cache() -> Path:
    from reidlib.data.synthetic.world import default_cache_dir

    return default_cache_dir()


def test_a_file_the_layout_does_not_allow_is_a_layout_error_naming_it(tmp_path):
    root = write_market1501(tmp_path / "m")
    query = root / "Market-1501-v15.09.15" / "query"
    (query / MARKET1501["query"][0]).rename(query / "person.jpg")
    with pytest.raises(DatasetLayoutError, match="person.jpg") as err:
        load_dataset(f"market1501:{root}", SMOKE, tmp_path / "cache")
    assert "expected the official pattern" in str(err.value)
