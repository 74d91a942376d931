"""P x K identity sampler: batch composition, coverage, determinism."""

from collections import Counter

import numpy as np
import pytest

from reidlib.data.sampler import RandomIdentitySampler, one_random_per_group


def unbalanced_pids(seed=0):
    """30 identities with 1 to 12 images each, plus a few junk (-1) labels, shuffled."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, 13, 30)
    pids = np.concatenate([np.full(c, 100 + i) for i, c in enumerate(counts)] + [[-1] * 5])
    return rng.permutation(pids)


def test_every_batch_has_p_ids_times_k_images():
    pids = unbalanced_pids()
    sampler = RandomIdentitySampler(pids, p=6, k=4, seed=0)
    batches = list(sampler)
    assert len(batches) == len(sampler) > 0
    for batch in batches:
        assert batch.dtype == np.int64 and len(batch) == 24
        counts = Counter(pids[batch].tolist())
        assert len(counts) == 6 and set(counts.values()) == {4}
        assert -1 not in counts
        # K images of an identity come in one run (the chunk), as batch-hard mining expects
        assert all(len(set(pids[batch[i : i + 4]])) == 1 for i in range(0, 24, 4))


def test_epoch_covers_every_labelled_image_and_has_about_n_over_pk_batches():
    pids = unbalanced_pids(1)
    sampler = RandomIdentitySampler(pids, p=5, k=4, seed=3)
    seen = np.concatenate(sampler.batches())
    labelled = np.flatnonzero(pids >= 0)
    assert set(seen.tolist()) == set(labelled.tolist())
    per_id_chunks = sum(-(-c // 4) for c in Counter(pids[labelled].tolist()).values())
    assert per_id_chunks / 5 <= len(sampler) <= per_id_chunks / 5 + 4


def test_short_identities_are_resampled_from_their_own_images():
    pids = np.array([0] * 2 + [1] * 5 + [2] * 4 + [3] * 9)
    sampler = RandomIdentitySampler(pids, p=2, k=4, seed=0)
    for batch in sampler.batches():
        for pid in np.unique(pids[batch]):
            own = batch[pids[batch] == pid]
            assert len(own) == 4 and set(own) <= set(np.flatnonzero(pids == pid))
            if pid == 0:  # 2 images -> drawn with replacement, both used
                assert set(own) == {0, 1}


def test_batches_depend_only_on_seed_and_epoch():
    pids = unbalanced_pids()
    a = RandomIdentitySampler(pids, 4, 4, seed=7)
    b = RandomIdentitySampler(pids, 4, 4, seed=7)
    b.set_epoch(2)
    same = [np.array_equal(x, y) for x, y in zip(a.batches(2), list(b), strict=True)]
    assert all(same)
    assert not np.array_equal(np.concatenate(a.batches(0)), np.concatenate(a.batches(1)))
    c = RandomIdentitySampler(pids, 4, 4, seed=8)
    assert not np.array_equal(np.concatenate(a.batches(0)), np.concatenate(c.batches(0)))


def test_bad_arguments():
    with pytest.raises(ValueError, match="at least p=5 identities"):
        RandomIdentitySampler([0, 0, 1, 1, 2, 3, -1, -1], p=5, k=2)
    with pytest.raises(ValueError, match="p and k must be >= 1"):
        RandomIdentitySampler([0, 1], p=2, k=0)
    with pytest.raises(ValueError, match="1-D"):
        RandomIdentitySampler(np.zeros((2, 3)), p=1, k=1)


def test_one_random_per_group_picks_each_key_once_and_any_member():
    keys = np.array([5, 3, 5, 7, 3, 5, 9])
    picked = set()
    for seed in range(40):
        pos = one_random_per_group(keys, np.random.default_rng(seed))
        assert sorted(keys[pos].tolist()) == [3, 5, 7, 9]  # every key exactly once
        picked |= set(pos.tolist())
    assert picked == set(range(len(keys))), "every member of a group can be drawn"
