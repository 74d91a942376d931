"""exercises/05_video_tracklets: the otter checks, the student notebook and the instructor
grader.

Shared tests: ExerciseChecks in tests/exercise_harness.py, given the wrong answers below.
Chapter 5's own: the failure messages, and the notebook's hand-made examples checked against
reidlib.video (temporal average pooling, the MARS evaluation, transit-time histograms, TFusion's
Bayesian fusion).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from exercise_harness import ExerciseChecks, check, load_exercise

from reidlib.evaluation.metrics import evaluate
from reidlib.video.pooling import temporal_average
from reidlib.video.spatiotemporal import bayesian_fusion, transit_histograms

QUESTIONS = {
    "q1": "temporal_average_pool",
    "q2": "tracklet_average_precision",
    "q3": "transit_histogram",
    "q4": "bayesian_fusion",
}
EX = load_exercise("05_video_tracklets", QUESTIONS, "ex05")
solutions = EX.solutions


# Plausible wrong answers. "sneaky" ones pass every public check: only hidden checks do.
def _pool_with(features, tracklets, unit_first=True, unit_after=True, order="sorted"):
    tracklets = np.asarray(tracklets)
    if order == "sorted":
        ids = np.unique(tracklets)
    else:  # the order of first appearance
        ids = tracklets[np.sort(np.unique(tracklets, return_index=True)[1])]
    x = F.normalize(features, dim=1) if unit_first else features
    rows = torch.stack([x[torch.as_tensor(tracklets == t)].mean(dim=0) for t in ids])
    return F.normalize(rows, dim=1) if unit_after else rows


def _pool_raw_mean(features, tracklets):
    return _pool_with(features, tracklets, unit_first=False)


def _pool_not_renormalised(features, tracklets):
    return _pool_with(features, tracklets, unit_after=False)


def _pool_first_appearance(features, tracklets):
    return _pool_with(features, tracklets, order="appearance")


def _pool_contiguous_runs(features, tracklets):  # one row per run of equal ids, then sorted
    tracklets = np.asarray(tracklets)
    starts = np.flatnonzero(np.r_[True, tracklets[1:] != tracklets[:-1]])
    x = F.normalize(features, dim=1)
    rows = [x[a:b].mean(dim=0) for a, b in zip(starts, np.r_[starts[1:], len(x)], strict=True)]
    order = np.argsort(tracklets[starts], kind="stable")
    return F.normalize(torch.stack([rows[k] for k in order]), dim=1)


def _pool_columns_normalised(features, tracklets):
    ids = np.unique(tracklets)
    x = F.normalize(features, dim=0)
    return F.normalize(torch.stack([x[torch.as_tensor(tracklets == t)].mean(0) for t in ids]),
                       dim=1)


def _pool_numpy(features, tracklets):  # right numbers, no gradient
    x = features.detach().numpy()
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    rows = np.stack([x[tracklets == t].mean(0) for t in np.unique(tracklets)])
    return torch.from_numpy(rows / np.linalg.norm(rows, axis=1, keepdims=True))


def _pool_float32(features, tracklets):
    return solutions.temporal_average_pool(features.float(), tracklets)


def _pool_in_place(features, tracklets):
    features.div_(features.norm(dim=1, keepdim=True))
    return solutions.temporal_average_pool(features, tracklets)


def _ap_with(distances, query_pid, query_cam, pids, cams, drop_same_cam="person", junk=True,
             distractors=False, descending=False, full_ranks=False, none_value=math.nan,
             top=None):
    distances, pids, cams = np.asarray(distances), np.asarray(pids), np.asarray(cams)
    order = np.argsort(-distances if descending else distances, kind="stable")
    if top is not None:
        order = order[:top]
    p, c = pids[order], cams[order]
    keep = np.ones(len(order), dtype=bool)
    if drop_same_cam == "person":
        keep &= ~((p == query_pid) & (c == query_cam))
    elif drop_same_cam == "camera":
        keep &= c != query_cam
    if junk:
        keep &= p != -1
    if distractors:
        keep &= p != 0
    ranks = np.arange(1, len(order) + 1) if full_ranks else np.cumsum(keep)
    hits = keep & (p == query_pid)
    if not hits.any():
        return none_value
    return float(np.mean(np.arange(1, hits.sum() + 1) / ranks[hits]))


def _ap_no_same_camera_rule(*args):  # the query's person in its own camera counts as a match
    return _ap_with(*args, drop_same_cam="none")


def _ap_whole_camera_dropped(*args):
    return _ap_with(*args, drop_same_cam="camera")


def _ap_junk_kept(*args):
    return _ap_with(*args, junk=False)


def _ap_distractors_dropped(*args):
    return _ap_with(*args, distractors=True)


def _ap_similarity_order(*args):
    return _ap_with(*args, descending=True)


def _ap_ranks_before_filtering(*args):
    return _ap_with(*args, full_ranks=True)


def _ap_zero_without_match(*args):
    return _ap_with(*args, none_value=0.0)


def _ap_top_50(*args):  # the ranked list cut at 50, as a CMC curve is
    return _ap_with(*args, top=50)


def _ap_junk_pushed_in_place(distances, query_pid, query_cam, gallery_pids, gallery_cams):
    # right value: junk moved behind everything is never ranked before a match
    distances[gallery_pids == -1] = np.inf
    return _ap_with(distances, query_pid, query_cam, gallery_pids, gallery_cams, junk=False)


def _hist_with(first, second, gaps, num_cams, bin_seconds, max_seconds, swap=True,
               directed=True, per_pair=True, empty="uniform", index="floor", bins="ceil",
               keep="gap", zero="forward"):
    first, second, gaps = np.asarray(first), np.asarray(second), np.asarray(gaps, float)
    forward = gaps >= 0 if zero == "forward" else gaps > 0
    if swap:
        src, dst = np.where(forward, first, second), np.where(forward, second, first)
    else:
        src, dst = first, second
    size = np.abs(gaps)
    num_bins = math.ceil(max_seconds / bin_seconds) if bins == "ceil" else \
        int(max_seconds // bin_seconds)
    k = (np.floor(size / bin_seconds) if index == "floor" else np.round(size / bin_seconds))
    k = k.astype(int)
    if keep == "gap":
        kept = size < max_seconds
    elif keep == "bin":
        kept = k < num_bins
    else:  # np.histogram: the last bin is closed on the right
        kept = size <= max_seconds
        k = np.minimum(k, num_bins - 1)
    kept &= k < num_bins
    counts = np.zeros((num_cams, num_cams, num_bins))
    np.add.at(counts, (src[kept], dst[kept], k[kept]), 1.0)
    if not directed:
        counts = counts + counts.transpose(1, 0, 2)
    total = counts.sum(axis=2, keepdims=True) if per_pair else counts.sum()
    fill = 1.0 / num_bins if empty == "uniform" else 0.0
    return np.where(counts.sum(axis=2, keepdims=True) > 0, counts / np.maximum(total, 1.0),
                    fill)


def _hist_no_swap(*args):  # |gap| into [first, second] whatever its sign
    return _hist_with(*args, swap=False)


def _hist_undirected(*args):
    return _hist_with(*args, directed=False)


def _hist_normalised_over_all(*args):
    return _hist_with(*args, per_pair=False)


def _hist_empty_zero(*args):
    return _hist_with(*args, empty="zero")


def _hist_rounded_bins(*args):
    return _hist_with(*args, index="round")


def _hist_signed_gaps_dropped(first, second, gaps, num_cams, bin_seconds, max_seconds):
    gaps = np.asarray(gaps, float)
    ok = gaps >= 0  # negative gaps thrown away instead of swapped
    return solutions.transit_histogram(np.asarray(first)[ok], np.asarray(second)[ok], gaps[ok],
                                       num_cams, bin_seconds, max_seconds)


def _hist_histogram_edges(*args):  # np.histogram's closed last bin keeps gap == max_seconds
    return _hist_with(*args, keep="closed")


def _hist_bin_index_only(*args):  # drops by bin index: keeps [max, ceil(max / bin) * bin)
    return _hist_with(*args, keep="bin")


def _hist_zero_gap_backwards(*args):
    return _hist_with(*args, zero="backward")


def _hist_floor_bins(*args):  # B = max // bin: no partial last bin
    return _hist_with(*args, bins="floor")


def _hist_swapped_in_place(first, second, gaps, num_cams, bin_seconds, max_seconds):
    back = gaps < 0
    first[back], second[back] = second[back], first[back].copy()
    np.abs(gaps, out=gaps)
    return solutions.transit_histogram(first, second, gaps, num_cams, bin_seconds, max_seconds)


def _fuse_no_floor(visual, st, random):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(visual) * st / random


def _fuse_floor_added(visual, st, random):
    return np.asarray(visual) * st / (np.asarray(random) + 2e-5)


def _fuse_ratio_inverted(visual, st, random):
    return np.asarray(visual) * np.maximum(random, 2e-5) / np.maximum(st, 2e-5)


def _fuse_sum(visual, st, random):
    return np.asarray(visual) + st / np.maximum(random, 2e-5)


def _fuse_floor_1e5(visual, st, random):
    return np.asarray(visual) * st / np.maximum(random, 1e-5)


def _fuse_row_max(visual, st, random):  # the official ranker's per-query division
    score = solutions.bayesian_fusion(visual, st, random)
    return score / np.maximum(score.max(axis=1, keepdims=True), 1e-12)


def _fuse_zero_random_is_zero(visual, st, random):
    random = np.asarray(random)
    return np.where(random > 0, solutions.bayesian_fusion(visual, st, random), 0.0)


def _fuse_float32(visual, st, random):
    v, s, r = (torch.as_tensor(np.asarray(a), dtype=torch.float32) for a in (visual, st, random))
    return (v * s / r.clamp(min=2e-5)).numpy()


def _fuse_clamped_in_place(visual, st, random):
    np.maximum(random, 2e-5, out=random)
    return np.asarray(visual) * st / random


WRONG = [
    ("q1", _pool_raw_mean, False),
    ("q1", _pool_not_renormalised, False),
    ("q1", _pool_first_appearance, False),
    ("q1", _pool_contiguous_runs, False),
    ("q1", _pool_columns_normalised, False),
    ("q1", _pool_numpy, True),
    ("q1", _pool_float32, True),
    ("q1", _pool_in_place, True),
    ("q2", _ap_no_same_camera_rule, False),
    ("q2", _ap_whole_camera_dropped, False),
    ("q2", _ap_junk_kept, False),
    ("q2", _ap_distractors_dropped, False),
    ("q2", _ap_similarity_order, False),
    ("q2", _ap_ranks_before_filtering, False),
    ("q2", _ap_zero_without_match, False),
    ("q2", _ap_top_50, True),
    ("q2", _ap_junk_pushed_in_place, True),
    ("q3", _hist_no_swap, False),
    ("q3", _hist_undirected, False),
    ("q3", _hist_normalised_over_all, False),
    ("q3", _hist_empty_zero, False),
    ("q3", _hist_rounded_bins, False),
    ("q3", _hist_signed_gaps_dropped, False),
    ("q3", _hist_histogram_edges, True),
    ("q3", _hist_bin_index_only, True),
    ("q3", _hist_zero_gap_backwards, True),
    ("q3", _hist_floor_bins, True),
    ("q3", _hist_swapped_in_place, True),
    ("q4", _fuse_no_floor, False),
    ("q4", _fuse_floor_added, False),
    ("q4", _fuse_ratio_inverted, False),
    ("q4", _fuse_sum, False),
    ("q4", _fuse_floor_1e5, False),
    ("q4", _fuse_row_max, False),
    ("q4", _fuse_zero_random_is_zero, True),
    ("q4", _fuse_float32, True),
    ("q4", _fuse_clamped_in_place, True),
]


class TestVideoTracklets(ExerciseChecks):
    exercise = EX
    wrong_answers = WRONG
    solution_statements = 25


def test_failure_message_says_expected_got_and_hint():
    summary = check(EX.public("q1"), {"temporal_average_pool": _pool_raw_mean}).summary()
    assert "[[0.8944, -0.4472], [0.3162, 0.9487]]" in summary and "Hint: ids, inverse" in summary
    summary = check(EX.hidden("q1"), {"temporal_average_pool": _pool_numpy}).summary()
    assert "has no gradient" in summary
    summary = check(EX.public("q2"), {"tracklet_average_precision": _ap_junk_kept}).summary()
    assert "expected 0.5000" in summary and "Hint: valid = " in summary
    summary = check(EX.public("q2"),
                    {"tracklet_average_precision": _ap_zero_without_match}).summary()
    assert "expected float('nan')" in summary
    summary = check(EX.hidden("q2"), {"tracklet_average_precision": _ap_top_50}).summary()
    assert "not only its first 50" in summary
    summary = check(EX.public("q3"), {"transit_histogram": _hist_no_swap}).summary()
    assert "expected [0.25, 0.5, 0.25]" in summary and "counts as 0 -> 1, bin 2" in summary
    summary = check(EX.hidden("q3"), {"transit_histogram": _hist_histogram_edges}).summary()
    assert "exactly max_seconds is dropped" in summary
    summary = check(EX.public("q4"), {"bayesian_fusion": _fuse_floor_added}).summary()
    assert "expected [[1.2, 0.15, 0.0], [1000.0, 0.35, 0.2]]" in summary
    summary = check(EX.hidden("q4"), {"bayesian_fusion": _fuse_zero_random_is_zero}).summary()
    assert "expected [5000, 0.25]" in summary
    summary = check(EX.public("q4"), {"bayesian_fusion": lambda *args: None}).summary()
    assert "did you forget the return?" in summary


# --------------------------------------------------------------------------- hand-made data


def test_q1_example_agrees_with_reidlib():
    features = torch.tensor([[3.0, 4.0], [2.0, 0.0], [0.0, 2.0], [0.0, -3.0], [5.0, 0.0]],
                            dtype=torch.float64)
    tracklets = np.array([7, 2, 7, 2, 2])
    pooled, ids = temporal_average(features, tracklets)
    by_hand = torch.tensor([[2 / math.sqrt(5), -1 / math.sqrt(5)],
                            [0.3 / math.sqrt(0.9), 0.9 / math.sqrt(0.9)]], dtype=torch.float64)
    assert ids.tolist() == [2, 7] and torch.allclose(pooled, by_hand)
    assert torch.allclose(solutions.temporal_average_pool(features, tracklets), by_hand)
    assert [round(v, 3) for v in by_hand.flatten().tolist()] == [0.894, -0.447, 0.316, 0.949]
    raw, _ = temporal_average(features, tracklets, normalise=False)
    assert [round(v, 3) for v in F.normalize(raw, dim=1).flatten().tolist()] == \
        [0.919, -0.394, 0.447, 0.894]


def test_q2_example_agrees_with_reidlib():
    distances = np.array([[0.5, 0.1, 0.3, 0.2, 0.6, 0.4]])
    pids, cams = np.array([0, 3, 5, -1, 3, 3]), np.array([1, 0, 0, 1, 1, 2])
    result = evaluate(distances, np.array([3]), pids, np.array([0]), cams)
    assert result["AP"][0] == pytest.approx((1 / 2 + 2 / 4) / 2) == pytest.approx(0.5)
    assert solutions.tracklet_average_precision(distances[0], 3, 0, pids, cams) == 0.5
    assert math.isnan(solutions.tracklet_average_precision(np.array([0.3, 0.1, 0.2]), 3, 0,
                                                           np.array([3, 5, -1]),
                                                           np.array([0, 1, 1])))


def test_q3_example_agrees_with_reidlib():
    first, second = np.array([0, 0, 1, 0, 2, 2]), np.array([1, 1, 0, 1, 1, 1])
    gaps = np.array([12.0, 15.0, -25.0, 3.0, 40.0, 5.0])
    cams = np.stack([first, second], axis=1).ravel()
    times = np.stack([np.full(6, 100.0), 100.0 + gaps], axis=1).ravel()
    hist = transit_histograms(np.arange(0, 12, 2), np.arange(1, 12, 2), cams, times, 3,
                              bin_seconds=10.0, max_seconds=30.0, smooth_sigma=None)
    expected = np.full((3, 3, 3), 1 / 3)
    expected[0, 1] = [0.25, 0.5, 0.25]
    expected[2, 1] = [1.0, 0.0, 0.0]
    assert np.allclose(hist, expected)
    assert np.allclose(solutions.transit_histogram(first, second, gaps, 3, 10.0, 30.0), expected)


def test_q4_example_agrees_with_reidlib():
    visual = np.array([[0.6, 0.3, 0.1], [0.2, 0.7, 0.1]])
    st = np.array([[0.5, 0.25, 0.0], [0.1, 0.3, 0.4]])
    random = np.array([[0.25, 0.5, 0.1], [1e-5, 0.6, 0.2]])
    expected = [[1.2, 0.15, 0.0], [1000.0, 0.35, 0.2]]
    assert np.allclose(bayesian_fusion(visual, st, random), expected)
    assert np.allclose(solutions.bayesian_fusion(visual, st, random), expected)
