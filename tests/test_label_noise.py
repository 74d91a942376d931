"""Controlled label noise (survey §3.2): the corrupted shares and counts are measured exactly."""

from collections import Counter, defaultdict

import numpy as np
import pytest
import torch

from reidlib.feature_learning.noise import inject_label_noise


def identities(n_ids=20, per_id=(2, 9), n_cams=4, seed=0):
    """pids with uneven image counts (and gaps in the id numbers), and camera ids."""
    rng = np.random.default_rng(seed)
    pids = np.concatenate([np.full(rng.integers(*per_id), 3 * i + 1) for i in range(n_ids)])
    return rng.permutation(pids), rng.integers(0, n_cams, len(pids))


def mapping(old, new):
    """old id -> set of new labels, and new label -> set of old ids."""
    fwd, back = defaultdict(set), defaultdict(set)
    for a, b in zip(old.tolist(), new.tolist(), strict=True):
        fwd[a].add(b)
        back[b].add(a)
    return fwd, back


@pytest.mark.parametrize("rate", [0.0, 0.1, 0.25, 0.5, 1.0])
def test_symmetric_flips_exact_share_to_other_identities(rate):
    pids, _ = identities()
    new = inject_label_noise(pids, rate, "symmetric", seed=1)
    changed = new != pids
    assert changed.sum() == int(np.floor(rate * len(pids) + 0.5))
    assert set(new[changed]) <= set(pids)  # only existing identities, never the own one
    assert new.dtype == np.int64 and new.shape == pids.shape


def test_symmetric_rounds_halves_up_and_skips_negative_labels():
    pids = np.array([-1, -1, 0, 0, 1, 1, 2, 2, 2])  # 7 labelled images
    new = inject_label_noise(pids, 0.5, "symmetric", seed=0)
    assert (new[:2] == -1).all()
    assert (new[2:] != pids[2:]).sum() == 4  # round(3.5) = 4, halves up
    assert (new[2:] >= 0).all()


def test_symmetric_targets_are_uniform_over_other_identities():
    pids = np.repeat(np.arange(5), 4000)
    new = inject_label_noise(pids, 1.0, "symmetric", seed=0)
    for own in range(5):
        counts = Counter(new[pids == own].tolist())
        assert own not in counts and len(counts) == 4
        shares = np.array(list(counts.values())) / 4000
        np.testing.assert_allclose(shares, 0.25, atol=0.03)  # sd of a share: ~0.007


@pytest.mark.parametrize("rate,n_absorbed", [(0.0, 0), (0.1, 2), (0.25, 5), (0.5, 10)])
def test_merge_absorbs_exact_number_of_ids_in_pairs(rate, n_absorbed):
    pids, _ = identities()
    new = inject_label_noise(pids, rate, "merge", seed=2)
    fwd, back = mapping(pids, new)
    assert all(len(v) == 1 for v in fwd.values())  # an identity's images stay together
    assert len(np.unique(new)) == 20 - n_absorbed
    sizes = Counter(len(v) for v in back.values())
    assert sizes[2] == n_absorbed and set(sizes) <= {1, 2}  # pairs, never three people
    for label, olds in back.items():
        assert label in olds  # a merged pair keeps one of its two ids
        if len(olds) == 1:
            assert olds == {label}  # untouched identities keep their id


def test_merge_count_is_capped_at_half_of_odd_number_of_ids():
    pids = np.repeat(np.arange(7), 3)
    new = inject_label_noise(pids, 0.5, "merge", seed=0)
    assert len(np.unique(new)) == 7 - 3  # round(3.5) = 4 pairs impossible with 7 ids


@pytest.mark.parametrize("rate,n_split", [(0.0, 0), (0.15, 3), (0.3, 6), (1.0, 20)])
def test_split_makes_exact_number_of_new_ids(rate, n_split):
    pids, _ = identities()
    new = inject_label_noise(pids, rate, "split", seed=3)
    fwd, back = mapping(pids, new)
    assert all(len(v) == 1 for v in back.values())  # a new label holds one person only
    assert sum(len(v) == 2 for v in fwd.values()) == n_split
    assert len(np.unique(new)) == 20 + n_split
    fresh = sorted(set(new.tolist()) - set(pids.tolist()))
    assert fresh == list(range(pids.max() + 1, pids.max() + 1 + n_split))
    for old, labels in fwd.items():
        if len(labels) == 2:
            moved = ((pids == old) & (new != old)).sum()
            assert moved == (pids == old).sum() // 2  # halved at random


def test_split_by_camera_separates_cameras():
    pids, camids = identities(seed=5)
    new = inject_label_noise(pids, 0.5, "split", seed=4, camids=camids)
    fwd, _ = mapping(pids, new)
    split = [old for old, labels in fwd.items() if len(labels) == 2]
    assert len(split) == 10
    for old in split:
        mine = pids == old
        kept = set(camids[mine & (new == old)].tolist())
        moved = set(camids[mine & (new != old)].tolist())
        assert kept and moved and not kept & moved  # the two halves share no camera
        assert len(moved) == len(kept | moved) // 2


def test_deterministic_by_seed_and_accepts_tensors():
    pids, camids = identities()
    for kind in ("symmetric", "merge", "split"):
        a = inject_label_noise(pids, 0.3, kind, seed=7, camids=camids)
        b = inject_label_noise(torch.from_numpy(pids), 0.3, kind, seed=7,
                               camids=torch.from_numpy(camids))
        c = inject_label_noise(pids, 0.3, kind, seed=8, camids=camids)
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, c)
    np.testing.assert_array_equal(pids, identities()[0])  # the input is not modified


def test_errors():
    pids, camids = identities()
    for bad in (-0.1, 1.5, float("nan"), "0.2", True):
        with pytest.raises(ValueError, match=r"rate must be a number in \[0, 1\]"):
            inject_label_noise(pids, bad)
    with pytest.raises(ValueError, match="kind must be one of"):
        inject_label_noise(pids, 0.1, kind="flip")
    with pytest.raises(ValueError, match=r"rate must be <= 0.5"):
        inject_label_noise(pids, 0.6, kind="merge")
    with pytest.raises(ValueError, match="1-D"):
        inject_label_noise(pids.reshape(-1, 1), 0.1)
    with pytest.raises(TypeError, match="integers"):
        inject_label_noise(pids.astype(float), 0.1)
    with pytest.raises(ValueError, match="camids must have the shape of pids"):
        inject_label_noise(pids, 0.1, kind="split", camids=camids[:-1])
    with pytest.raises(ValueError, match="at least 2 identities"):
        inject_label_noise(np.zeros(5, dtype=int), 0.5)
    one_cam = np.zeros_like(camids)
    one_cam[np.flatnonzero(pids == 1)[0]] = 1  # only identity 1 is seen by two cameras
    with pytest.raises(ValueError, match="only 1 have at least 2 cameras"):
        inject_label_noise(pids, 0.1, kind="split", camids=one_cam)
    singles = np.arange(10)
    with pytest.raises(ValueError, match="only 0 have at least 2 images"):
        inject_label_noise(singles, 0.1, kind="split")
