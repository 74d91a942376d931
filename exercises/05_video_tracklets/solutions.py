"""Reference solutions of exercises/05_video_tracklets (instructors only, never in the notebook).

Each function replaces the stub of the same name in ``05_video_tracklets.py``; ``grade.py
--solutions`` and tests/test_exercises_05.py paste them into the notebook and check that every
public and hidden check passes. Keep each function self-contained apart from the imports below:
they are pasted into the notebook one cell at a time, with these imports above them.
"""

import numpy as np
import torch
import torch.nn.functional as F


def temporal_average_pool(features, tracklets):
    """(T, D): per tracklet, in sorted id order, the mean of its L2-normalised frame features,
    L2-normalised again."""
    ids, inverse = np.unique(np.asarray(tracklets), return_inverse=True)
    unit = F.normalize(features, dim=1)
    index = torch.as_tensor(inverse.reshape(-1), device=features.device)
    sums = unit.new_zeros(len(ids), unit.shape[1]).index_add(0, index, unit)
    return F.normalize(sums, dim=1)  # the mean's direction: dividing by the count first is moot


def tracklet_average_precision(distances, query_pid, query_cam, gallery_pids, gallery_cams):
    """AP of one query under the MARS / Market-1501 rule (junk and the query's own person in
    its own camera left out); NaN when no valid match remains."""
    distances, pids, cams = (np.asarray(a) for a in (distances, gallery_pids, gallery_cams))
    valid = (pids != -1) & ~((pids == query_pid) & (cams == query_cam))
    order = np.argsort(distances[valid], kind="stable")
    matches = pids[valid][order] == query_pid
    if not matches.any():
        return float("nan")
    ranks = np.flatnonzero(matches) + 1  # 1-based rank of each match in the valid list
    return float(np.mean(np.arange(1, len(ranks) + 1) / ranks))


def transit_histogram(first_cams, second_cams, gaps, num_cams, bin_seconds, max_seconds):
    """(C, C, B) transit-time histograms, without smoothing: each pair's |gap| counted in the
    histogram of (camera seen first, camera seen later), gaps >= max_seconds dropped, each
    camera pair normalised, an empty camera pair uniform."""
    first, second = np.asarray(first_cams), np.asarray(second_cams)
    gaps = np.asarray(gaps, dtype=np.float64)
    forward = gaps >= 0  # a gap of 0 counts as first -> second
    src, dst = np.where(forward, first, second), np.where(forward, second, first)
    size = np.abs(gaps)
    num_bins = int(np.ceil(max_seconds / bin_seconds))
    keep = size < max_seconds
    counts = np.zeros((num_cams, num_cams, num_bins))
    bins = np.floor(size[keep] / bin_seconds).astype(int)
    np.add.at(counts, (src[keep], dst[keep], bins), 1.0)
    total = counts.sum(axis=2, keepdims=True)
    return np.where(total > 0, counts / np.maximum(total, 1.0), 1.0 / num_bins)


def bayesian_fusion(visual_prob, st_prob, random_prob):
    """TFusion's Bayesian fusion with zero error rates: P(same | visual) P(gap | matched) /
    P(gap), the denominator clamped at 2e-5."""
    visual_prob, st_prob, random_prob = (np.asarray(a, dtype=np.float64)
                                         for a in (visual_prob, st_prob, random_prob))
    return visual_prob * st_prob / np.maximum(random_prob, 2e-5)
