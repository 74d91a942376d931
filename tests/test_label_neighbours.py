"""Neighbour lists of a sparse distance and their precision (reidlib.pseudo_labels.neighbours),
against brute-force loops; chapter 1's settings per profile."""

import numpy as np
import pytest
import scipy.sparse as sp

from reidlib.pseudo_labels import jaccard_distance
from reidlib.pseudo_labels.neighbours import identities_upto, precision_at_k, ranked_by_sparse
from reidlib.pseudo_labels.settings import cluster_settings, loop_settings


def brute_ranked(dense: np.ndarray, depth: int) -> np.ndarray:
    """Nearest other rows by a dense distance (1 = absent, never listed), ties to lower index."""
    out = np.full((len(dense), depth), -1)
    for i, row in enumerate(dense):
        order = [j for j in np.lexsort((np.arange(len(row)), row)) if j != i and row[j] < 1]
        out[i, :len(order[:depth])] = order[:depth]
    return out


def test_ranked_by_sparse_matches_a_dense_sort():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 8))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    dist = jaccard_distance(x, k1=6, k2=3, progress=False)
    dense = np.ones(dist.shape)
    coo = dist.tocoo()
    dense[coo.row, coo.col] = coo.data
    for depth in (1, 5, 40):
        np.testing.assert_array_equal(ranked_by_sparse(dist, depth), brute_ranked(dense, depth))


def test_ranked_by_sparse_breaks_ties_by_index_and_pads_with_minus_one():
    dist = sp.csr_matrix(np.array([[0, 0.5, 0.5, 0], [0.5, 0, 0, 0], [0.5, 0, 0, 0.2],
                                   [0, 0, 0.2, 0]], dtype=np.float32))
    np.testing.assert_array_equal(ranked_by_sparse(dist, 3),
                                  [[1, 2, -1], [0, -1, -1], [3, 0, -1], [2, -1, -1]])


def brute_precision(ranked, pids, camids, other):
    depth = ranked.shape[1]
    out = []
    for k in range(1, depth + 1):
        right = total = 0
        for i, row in enumerate(ranked):
            row = [j for j in row if j >= 0 and (not other or camids[j] != camids[i])][:k]
            right += sum(pids[j] == pids[i] for j in row)
            total += len(row)
        out.append(right / max(total, 1))
    return np.array(out)


@pytest.mark.parametrize("other", [False, True])
def test_precision_at_k_matches_a_loop(other):
    rng = np.random.default_rng(1)
    pids, camids = rng.integers(0, 5, 40), rng.integers(0, 3, 40)
    ranked = np.stack([rng.permutation(np.delete(np.arange(40), i))[:12] for i in range(40)])
    ranked[::7, 9:] = -1
    np.testing.assert_allclose(precision_at_k(ranked, pids, camids, other_camera=other),
                               brute_precision(ranked, pids, camids, other))


def test_precision_at_k_other_camera_needs_camids():
    with pytest.raises(ValueError, match="camids"):
        precision_at_k(np.zeros((2, 1), int), np.zeros(2, int), other_camera=True)


def test_identities_upto_keeps_whole_identities_within_the_budget():
    pids = np.repeat(np.arange(10), np.arange(1, 11))  # identity i has i + 1 crops
    ids = identities_upto(pids, 20, seed=0)
    assert np.isin(pids, ids).sum() <= 20 and len(ids) >= 1
    np.testing.assert_array_equal(ids, np.sort(ids))
    np.testing.assert_array_equal(ids, identities_upto(pids, 20, seed=0))
    assert len(identities_upto(pids, 1000, seed=3)) == 10


def test_settings_per_profile():
    assert cluster_settings("quick").k1 < cluster_settings("full").k1
    assert loop_settings("smoke", 1).rounds >= 1
    assert loop_settings("full", 60).epochs_per_round == 5
    with pytest.raises(ValueError, match="unknown profile"):
        cluster_settings("huge")
    with pytest.raises(ValueError, match="unknown profile"):
        loop_settings("huge", 10)
