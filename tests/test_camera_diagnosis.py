"""Camera-bias diagnosis (survey §3.3): every number against a brute-force loop."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from reidlib.camera.diagnosis import (
    camera_bias_report,
    camera_feature_stats,
    describe_camera_bias,
    same_camera_neighbour_share,
    single_camera_cluster_share,
)
from reidlib.handcrafted import per_camera_normalise


def _biased(n_ids=6, per_id=4, cams=3, offset=3.0, seed=0):
    """Features = identity + a camera offset + noise; camera c takes image j % cams."""
    rng = np.random.default_rng(seed)
    pids = np.repeat(np.arange(n_ids), per_id)
    camids = np.tile(np.arange(per_id) % cams, n_ids)
    people, shifts = rng.normal(0, 1, (n_ids, 8)), rng.normal(0, offset, (cams, 8))
    x = people[pids] + shifts[camids] + rng.normal(0, 0.3, (len(pids), 8))
    return torch.from_numpy(x).float(), camids, pids


def _dist(a, b):
    return math.sqrt(sum((float(u) - float(v)) ** 2 for u, v in zip(a, b, strict=True)))


@pytest.mark.parametrize("k", [1, 3])
def test_neighbour_share_against_a_loop(k):
    x, camids, _ = _biased(offset=0.5)
    n, same, chance = len(x), 0, 0.0
    for i in range(n):
        others = sorted((_dist(x[i], x[j]), j) for j in range(n) if j != i)
        same += sum(camids[j] == camids[i] for _, j in others[:k])
        chance += (sum(camids == camids[i]) - 1) / (n - 1)
    share, got_chance = same_camera_neighbour_share(x, camids, k=k, chunk_size=5)
    assert share == pytest.approx(same / (n * k))
    assert got_chance == pytest.approx(chance / n)


def test_single_camera_cluster_share_against_a_loop():
    labels = np.array([0, 0, 1, 1, 1, 2, -1, -1, 3, 4, 4])
    camids = np.array([0, 0, 1, 2, 1, 0, 1, 1, 2, 2, 2])
    sizes = {c: (labels == c).sum() for c in set(labels.tolist()) - {-1}}
    big = [c for c, s in sizes.items() if s >= 2]
    expected = sum(len(set(camids[labels == c].tolist())) == 1 for c in big) / len(big)
    assert single_camera_cluster_share(labels, camids) == pytest.approx(expected)  # 2 / 3
    assert math.isnan(single_camera_cluster_share(np.array([0, 1, -1]), np.array([0, 0, 1])))


def test_camera_feature_stats_against_a_loop():
    x, camids, _ = _biased()
    stats = camera_feature_stats(x, camids)
    assert stats["cameras"].tolist() == [0, 1, 2]
    means, spreads = [], []
    for i, c in enumerate([0, 1, 2]):
        rows = [r for r in x[torch.from_numpy(camids == c)].double()]
        mean = sum(rows) / len(rows)
        means.append(mean)
        spreads.append(math.sqrt(sum(_dist(r, mean) ** 2 for r in rows) / len(rows)))
        assert stats["counts"][i] == len(rows)
        assert stats["mean_norm"][i] == pytest.approx(sum(float(r.norm()) for r in rows)
                                                      / len(rows))
        assert stats["spread"][i] == pytest.approx(spreads[-1])
    pairs = []
    for a in range(3):
        for b in range(3):
            d = _dist(means[a], means[b])
            assert stats["centre_distance"][a, b] == pytest.approx(d, abs=1e-9)
            sep = d / math.sqrt((spreads[a] ** 2 + spreads[b] ** 2) / 2)
            assert stats["separation"][a, b] == pytest.approx(sep, abs=1e-9)
            if a < b:
                pairs.append(sep)
    assert stats["mean_separation"] == pytest.approx(sum(pairs) / len(pairs))
    assert stats["mean_separation"] > 1  # the offset dominates this toy feature


def test_degenerate_statistics():
    stats = camera_feature_stats(torch.ones(4, 2), np.array([0, 0, 1, 1]))
    assert stats["separation"].tolist() == [[0, 0], [0, 0]]  # equal means, no spread
    stats = camera_feature_stats(torch.tensor([[0.0], [0.0], [1.0], [1.0]]), [0, 0, 1, 1])
    assert math.isinf(stats["separation"][0, 1])  # apart with no spread at all
    assert math.isnan(camera_feature_stats(torch.randn(3, 2), [2, 2, 2])["mean_separation"])


def test_report_with_labels_and_pids_against_loops():
    x, camids, pids = _biased(offset=1.0)
    labels = np.where(np.arange(len(pids)) % 5 == 0, -1, pids)
    report = camera_bias_report(x, camids, labels=labels, pids=pids, k=2)
    assert report["single_camera_clusters"] == single_camera_cluster_share(labels, camids)
    assert report["same_camera_share"] == same_camera_neighbour_share(x, camids, 2)[0]
    n, same, chance = len(x), 0, 0.0
    for i in range(n):  # the nearest valid match: not the same person in the same camera
        valid = [j for j in range(n) if not (camids[j] == camids[i] and pids[j] == pids[i])]
        nearest = min(valid, key=lambda j: _dist(x[i], x[j]))
        same += camids[nearest] == camids[i]
        chance += sum(camids[j] == camids[i] for j in valid) / len(valid)
    assert report["nearest_valid_same_camera"] == pytest.approx(same / n)
    assert report["nearest_valid_chance"] == pytest.approx(chance / n)
    text = describe_camera_bias(report)
    assert "2 nearest" in text and "camera 2:" in text and "one camera only" in text


def test_camera_normalisation_lowers_the_bias():
    x, camids, _ = _biased(offset=3.0)
    share, chance = same_camera_neighbour_share(x, camids)
    assert share == 1.0 and chance < 0.4
    after = per_camera_normalise(x, camids)
    assert same_camera_neighbour_share(after, camids)[0] < 0.5
    assert camera_feature_stats(after, camids)["mean_separation"] < 0.2


def test_argument_checks():
    x, camids, pids = _biased()
    with pytest.raises(ValueError, match=r"k must be an integer with 1 <= k <= N - 1 = 23"):
        same_camera_neighbour_share(x, camids, k=24)
    with pytest.raises(ValueError, match="camids"):
        camera_bias_report(x, camids[:5])
    with pytest.raises(ValueError, match="2-D"):
        camera_feature_stats(x[0], camids[:1])
    with pytest.raises(ValueError, match="at least 2 rows"):
        camera_bias_report(x[:1], camids[:1])
    with pytest.raises(ValueError, match="labels"):
        camera_bias_report(x, camids, labels=pids[:3])
    with pytest.raises(ValueError, match="pids must be"):
        camera_bias_report(x, camids, pids=pids.astype(float))
    with pytest.raises(ValueError, match=">= 0"):
        same_camera_neighbour_share(x, -camids - 1)
