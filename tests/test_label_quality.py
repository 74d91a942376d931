"""Pseudo-label quality (survey §3.1) against hand-computed cases and brute-force pair counts."""

import math

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from reidlib.pseudo_labels import label_quality

# A hand-made case: two clusters and one outlier over three identities.
PRED = [0, 0, 0, 1, 1, -1]
TRUE = [5, 5, 6, 6, 6, 7]
CAMS = [1, 2, 1, 3, 3, 1]


def test_hand_made_case_counts_and_pairs():
    q = label_quality(PRED, TRUE, CAMS)
    assert q["n_clusters"] == 2
    assert q["n_identities"] == 3
    assert q["outlier_share"] == pytest.approx(1 / 6)
    # Non-outliers: clusters {5,5,6} and {6,6}. Same-cluster pairs: 3 + 1 = 4, of which
    # same-person: (5,5) and (6,6) = 2. Same-person pairs: id 5 -> 1, id 6 -> 3, total 4.
    assert q["pairwise_precision"] == pytest.approx(2 / 4)
    assert q["pairwise_recall"] == pytest.approx(2 / 4)
    assert q["pairwise_f"] == pytest.approx(0.5)
    # Majorities: 2 of cluster 0, 2 of cluster 1, over 5 non-outliers.
    assert q["purity"] == pytest.approx(4 / 5)
    # Cluster 0 spans cameras 1 and 2, cluster 1 only camera 3.
    assert q["single_camera_share"] == pytest.approx(0.5)


def test_hand_made_case_ari_nmi_with_outlier_as_singleton():
    q = label_quality(PRED, TRUE, CAMS)
    # Contingency (true x pred with the outlier as cluster 2): cells 2,1,2,1.
    # sum C(n_ij,2) = 2; rows 2,3,1 -> 4; columns 3,2,1 -> 4; C(6,2) = 15.
    expected = 4 * 4 / 15
    assert q["ari"] == pytest.approx((2 - expected) / (4 - expected))  # = 7/22
    log = math.log
    mi = 1 / 3 * log(2) + 1 / 6 * log(2 / 3) + 1 / 3 * log(2) + 1 / 6 * log(6)
    h = -(1 / 3 * log(1 / 3) + 1 / 2 * log(1 / 2) + 1 / 6 * log(1 / 6))  # both marginals
    assert q["nmi"] == pytest.approx(mi / h)


def test_perfect_labels_up_to_renaming():
    true = np.array([3, 3, 9, 9, 9, 4])
    q = label_quality(np.array([1, 1, 0, 0, 0, 2]), true, camids=np.array([0, 1, 0, 1, 2, 0]))
    for key in ("nmi", "ari", "pairwise_precision", "pairwise_recall", "pairwise_f", "purity"):
        assert q[key] == pytest.approx(1.0), key
    assert q["outlier_share"] == 0.0
    assert q["single_camera_share"] == 0.0


def test_one_big_cluster_has_full_recall_low_precision():
    true = [0, 0, 1, 1]
    q = label_quality([0, 0, 0, 0], true)
    assert q["pairwise_recall"] == 1.0
    assert q["pairwise_precision"] == pytest.approx(2 / 6)
    assert q["purity"] == pytest.approx(0.5)
    assert q["ari"] == pytest.approx(0.0)


def test_undefined_ratios_are_nan():
    all_out = label_quality([-1, -1, -1], [0, 0, 1], camids=[0, 1, 2])
    assert all_out["n_clusters"] == 0 and all_out["outlier_share"] == 1.0
    for key in ("pairwise_precision", "pairwise_recall", "pairwise_f", "purity",
                "single_camera_share"):
        assert math.isnan(all_out[key]), key
    singletons = label_quality([0, 1, 2], [0, 0, 1])
    assert math.isnan(singletons["pairwise_precision"])
    assert singletons["pairwise_recall"] == 0.0
    assert math.isnan(singletons["pairwise_f"])
    assert math.isnan(singletons["single_camera_share"])  # no camids given


def brute_force(pred, true, camids):
    """O(N^2) pair loop and per-cluster dictionaries, written for clarity only."""
    n = len(pred)
    same_pred = same_true = both = 0
    for i in range(n):
        for j in range(i + 1, n):
            if pred[i] == -1 or pred[j] == -1:
                continue
            sp, st = pred[i] == pred[j], true[i] == true[j]
            same_pred += sp
            same_true += st
            both += sp and st
    members = {}
    for i in range(n):
        if pred[i] != -1:
            members.setdefault(pred[i], []).append(i)
    majority = sum(max(list(true[m]).count(t) for t in set(true[m])) for m in members.values())
    big = [m for m in members.values() if len(m) >= 2]
    single_cam = sum(len(set(camids[m])) == 1 for m in big)
    # Outliers get distinct negative ids, which cannot collide with clusters >= 0.
    singled = np.where(pred == -1, -2 - np.arange(n), pred)
    return {
        "pairwise_precision": both / same_pred,
        "pairwise_recall": both / same_true,
        "purity": majority / (pred != -1).sum(),
        "single_camera_share": single_cam / len(big),
        "nmi": normalized_mutual_info_score(true, singled),
        "ari": adjusted_rand_score(true, singled),
        "n_clusters": len(members),
        "outlier_share": (pred == -1).mean(),
    }


@pytest.mark.parametrize("seed", range(5))
def test_against_brute_force_on_random_labels(seed):
    rng = np.random.default_rng(seed)
    n = 150
    true = rng.integers(0, 12, n)
    # Noisy copy of the truth with some merges and outliers, so all scores are non-trivial.
    pred = np.where(rng.random(n) < 0.6, true // 2, rng.integers(0, 8, n))
    pred[rng.random(n) < 0.15] = -1
    camids = rng.integers(0, 3, n)
    camids[pred == 1] = 2  # force at least one single-camera cluster
    got = label_quality(pred, true, camids)
    want = brute_force(pred, true, camids)
    for key, value in want.items():
        assert got[key] == pytest.approx(value, abs=1e-12), key
    p, r = want["pairwise_precision"], want["pairwise_recall"]
    assert got["pairwise_f"] == pytest.approx(2 * p * r / (p + r))


def test_accepts_torch_tensors():
    torch = pytest.importorskip("torch")
    q = label_quality(torch.tensor(PRED), torch.tensor(TRUE), torch.tensor(CAMS))
    assert q["purity"] == pytest.approx(0.8)


@pytest.mark.parametrize(
    "pred, true, camids, match",
    [
        ([0, 1], [0, 1, 2], None, "same length"),
        ([0, 1], [0, 1], [0], "same length"),
        ([[0, 1]], [[0, 1]], None, "1-D"),
        ([0.0, 1.0], [0, 1], None, "integers"),
        ([0, -2], [0, 1], None, "-1 for outliers"),
        ([], [], None, "empty"),
    ],
)
def test_bad_input_is_rejected(pred, true, camids, match):
    with pytest.raises((ValueError, TypeError), match=match):
        label_quality(np.asarray(pred, dtype=None if pred else np.int64),
                      np.asarray(true, dtype=None if true else np.int64), camids)
