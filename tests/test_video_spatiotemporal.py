"""Spatio-temporal consistency (TFusion / st-ReID / JVTC) against plain-loop references."""

import math

import numpy as np
import pytest

from reidlib.evaluation.metrics import evaluate
from reidlib.video.spatiotemporal import (
    bayesian_fusion,
    confident_matches,
    fused_distance,
    joint_similarity,
    pair_counts,
    peak_agreement,
    peak_bin,
    random_pairs,
    rerank_st,
    st_grid,
    st_probability,
    transit_histograms,
    true_pairs,
    true_transit_histograms,
    visual_probability,
)

# ---------------------------------------------------------------------------------------
# Independent references: plain loops, np.histogram, direct sums of Gaussians
# ---------------------------------------------------------------------------------------


def reference_counts(pairs, cams, times, num_cams, bin_seconds, max_seconds, directed=True):
    """Per camera pair, np.histogram of the |gaps| (pair loop, dict of lists)."""
    num_bins = math.ceil(max_seconds / bin_seconds)
    edges = np.arange(num_bins + 1) * bin_seconds
    gaps = {(a, b): [] for a in range(num_cams) for b in range(num_cams)}
    for i, j in pairs:
        dt = times[j] - times[i]
        a, b = (cams[i], cams[j]) if dt >= 0 else (cams[j], cams[i])
        if not directed:
            a, b = min(a, b), max(a, b)
        if abs(dt) < max_seconds:
            gaps[a, b].append(abs(dt))
    if not directed:
        for a in range(num_cams):
            for b in range(a):
                gaps[a, b] = gaps[b, a]
    out = np.zeros((num_cams, num_cams, num_bins))
    for (a, b), values in gaps.items():
        out[a, b], _ = np.histogram(values, bins=edges)
    return out


def reference_parzen(row, sigma_bins):
    """Direct sum of one Gaussian per count, cut at 3 sigma as the official code."""
    radius = int(3 * sigma_bins + 0.5)
    out = np.zeros(len(row))
    for k, count in enumerate(row):
        for x in range(len(row)):
            if abs(x - k) <= radius:
                out[x] += count * math.exp(-((x - k) ** 2) / (2 * sigma_bins**2))
    return out


def normalise(counts):
    out = np.empty_like(counts)
    for a in range(counts.shape[0]):
        for b in range(counts.shape[1]):
            total = counts[a, b].sum()
            out[a, b] = counts[a, b] / total if total > 0 else 1.0 / counts.shape[2]
    return out


def reference_matches(sim, cams, top, mutual, min_sim=None, times=None, max_seconds=None):
    n = len(sim)
    chosen = []
    for i in range(n):
        others = [j for j in range(n) if cams[j] != cams[i]
                  and (max_seconds is None or abs(times[i] - times[j]) <= max_seconds)]
        others.sort(key=lambda j: -sim[i, j])
        chosen.append({j for j in others[:top] if min_sim is None or sim[i, j] >= min_sim})
    pairs = set()
    for i in range(n):
        for j in chosen[i]:
            if not mutual or i in chosen[j]:
                pairs.add((min(i, j), max(i, j)))
    return sorted(pairs)


def as_pairs(i, j):
    """Sorted list of (i, j) tuples of two index arrays."""
    return sorted(zip(np.asarray(i).tolist(), np.asarray(j).tolist(), strict=True))


def random_setting(n=40, num_cams=3, num_pairs=200, span=500.0, seed=0):
    rng = np.random.default_rng(seed)
    cams = rng.integers(0, num_cams, n)
    times = rng.uniform(0, span, n)
    i = rng.integers(0, n, num_pairs)
    j = (i + rng.integers(1, n, num_pairs)) % n  # j != i
    return cams, times, i, j


# ---------------------------------------------------------------------------------------
# Histograms and lookups
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("directed, max_seconds", [(True, 300.0), (False, 300.0), (True, 310.0)])
def test_histograms_match_np_histogram_loop(directed, max_seconds):
    cams, times, i, j = random_setting()
    got = transit_histograms(i, j, cams, times, 3, bin_seconds=25.0, max_seconds=max_seconds,
                             directed=directed)
    counts = reference_counts(as_pairs(i, j), cams, times, 3, 25.0, max_seconds, directed)
    assert got.shape == (3, 3, math.ceil(max_seconds / 25.0))
    kept = pair_counts(i, j, cams, times, 3, max_seconds=max_seconds).sum()
    assert 0 < kept < len(i)  # some gaps fall beyond the range and are dropped
    np.testing.assert_allclose(got, normalise(counts), atol=1e-12)
    np.testing.assert_array_equal(
        pair_counts(i, j, cams, times, 3, max_seconds=max_seconds, directed=directed),
        counts.sum(axis=2))
    if not directed:
        np.testing.assert_allclose(got, got.transpose(1, 0, 2))


def test_direction_goes_from_first_seen_to_later_seen():
    cams, times = np.array([0, 1, 2]), np.array([100.0, 130.0, 10.0])
    # (0, 1): camera 0 at 100 s, camera 1 at 130 s -> a 30 s gap from 0 to 1.
    # (0, 2): camera 2 at 10 s, camera 0 at 100 s -> a 90 s gap from 2 to 0.
    hist = transit_histograms([0, 0], [1, 2], cams, times, 3, bin_seconds=20.0,
                              max_seconds=200.0)
    assert hist[0, 1, 1] == 1.0 and hist[2, 0, 4] == 1.0
    np.testing.assert_allclose(hist[1, 0], 0.1)  # never seen: uniform over 10 bins
    assert st_probability(hist, 0, 1, 30.0, 20.0) == 1.0
    assert st_probability(hist, 1, 0, -30.0, 20.0) == 1.0  # same pair, other way round
    assert st_probability(hist, 0, 2, -90.0, 20.0) == 1.0
    assert st_probability(hist, 0, 1, 60.0, 20.0) == 0.0
    assert st_probability(hist, 0, 1, 250.0, 20.0) == 0.0  # beyond the histograms


@pytest.mark.parametrize("sigma_bins", [0.7, 1.5, 2.5])
def test_parzen_smoothing_equals_direct_sum_of_gaussians(sigma_bins):
    cams, times, i, j = random_setting(seed=1)
    bin_seconds = 25.0
    got = transit_histograms(i, j, cams, times, 3, bin_seconds=bin_seconds,
                             max_seconds=300.0, smooth_sigma=sigma_bins * bin_seconds)
    counts = reference_counts(as_pairs(i, j), cams, times, 3, bin_seconds, 300.0)
    smoothed = np.array([[reference_parzen(counts[a, b], sigma_bins) for b in range(3)]
                         for a in range(3)])
    np.testing.assert_allclose(got, normalise(smoothed), atol=1e-12)
    unsmoothed = transit_histograms(i, j, cams, times, 3, bin_seconds=bin_seconds,
                                    max_seconds=300.0)
    assert not np.allclose(got, unsmoothed)


def test_st_probability_matches_loop_and_grid_matches_it():
    rng = np.random.default_rng(2)
    hist = rng.dirichlet(np.ones(8), size=(3, 3))
    q_cams, g_cams = rng.integers(0, 3, 1100), rng.integers(0, 3, 7)
    q_times, g_times = rng.uniform(0, 400, 1100), rng.uniform(0, 400, 7)
    got = st_grid(hist, q_cams, q_times, g_cams, g_times, 25.0)
    expected = np.zeros((1100, 7))
    for q in range(1100):
        for g in range(7):
            dt = g_times[g] - q_times[q]
            k = int(abs(dt) // 25.0)
            a, b = (q_cams[q], g_cams[g]) if dt >= 0 else (g_cams[g], q_cams[q])
            expected[q, g] = hist[a, b, k] if k < 8 else 0.0
    np.testing.assert_array_equal(got, expected)
    assert (expected == 0).any() and (expected > 0).any()


def test_true_pairs_and_true_histograms():
    pids = np.array([1, 1, 1, 2, 2, 0, 0, -1, -1, 3])
    cams = np.array([0, 1, 0, 1, 2, 0, 1, 0, 1, 2])
    times = np.arange(10, dtype=float) * 7
    expected = [(i, j) for i in range(10) for j in range(i + 1, 10)
                if pids[i] == pids[j] and pids[i] > 0 and cams[i] != cams[j]]
    i, j = true_pairs(pids, cams)
    assert as_pairs(i, j) == expected == [(0, 1), (1, 2), (3, 4)]
    got = true_transit_histograms(pids, cams, times, 3, bin_seconds=5.0, max_seconds=50.0)
    np.testing.assert_allclose(got, normalise(reference_counts(expected, cams, times, 3,
                                                               5.0, 50.0)))


def test_random_pairs_cross_camera_and_deterministic():
    cams = np.array([0, 0, 1, 2, 2, 2])
    i, j = random_pairs(cams, per_row=5, seed=3)
    assert len(i) == 30 and np.all(np.bincount(i, minlength=6) == 5)
    assert np.all(cams[i] != cams[j])
    i2, j2 = random_pairs(cams, per_row=5, seed=3)
    np.testing.assert_array_equal(j, j2)
    i0, _ = random_pairs(np.zeros(4, dtype=int))  # one camera: nothing to pair
    assert len(i0) == 0


# ---------------------------------------------------------------------------------------
# Confident matches
# ---------------------------------------------------------------------------------------


def test_confident_matches_hand_case():
    cams = np.array([0, 0, 1, 1])
    sim = np.array([[1.0, 0.95, 0.9, 0.1],
                    [0.95, 1.0, 0.8, 0.7],
                    [0.9, 0.8, 1.0, 0.99],
                    [0.1, 0.7, 0.99, 1.0]])
    # Top-1 in the other camera: 0 -> 2, 1 -> 2, 2 -> 0, 3 -> 1.
    assert as_pairs(*confident_matches(sim, cams)) == [(0, 2)]
    got = confident_matches(sim, cams, mutual=False)
    assert as_pairs(*got) == [(0, 2), (1, 2), (1, 3)]
    assert as_pairs(*confident_matches(sim, cams, min_sim=0.95)) == []


@pytest.mark.parametrize("top, mutual", [(1, True), (2, True), (3, False), (1, False)])
def test_confident_matches_brute_force(top, mutual):
    rng = np.random.default_rng(top * 10 + mutual)
    x = rng.normal(size=(30, 5))
    sim = x @ x.T
    cams = rng.integers(0, 3, 30)
    times = rng.uniform(0, 100, 30)
    i, j = confident_matches(sim, cams, top=top, mutual=mutual)
    got = as_pairs(i, j)
    assert got == reference_matches(sim, cams, top, mutual) and got
    i, j = confident_matches(sim, cams, times, top=top, mutual=mutual, min_sim=0.5,
                             max_seconds=40.0)
    assert (as_pairs(i, j)
            == reference_matches(sim, cams, top, mutual, 0.5, times, 40.0))


# ---------------------------------------------------------------------------------------
# Fusion
# ---------------------------------------------------------------------------------------


def test_joint_similarity_formula_on_scalars():
    got = joint_similarity([[0.6, -0.2]], [[0.1, 0.0]])
    f = [1 / (1 + math.exp(-5 * 0.6)) * 1 / (1 + 2 * math.exp(-5 * 0.1)),
         1 / (1 + math.exp(-5 * -0.2)) * 1 / (1 + 2 * math.exp(0.0))]
    np.testing.assert_allclose(got, [f], rtol=1e-14)
    got = joint_similarity([[0.3]], [[0.4]], lam=0.5, gamma=2.0)
    np.testing.assert_allclose(got, [[1 / (1 + math.exp(-0.6)) / (1 + 0.5 * math.exp(-0.8))]])
    # A far-off gap (p_st = 0) cannot be rescued by appearance alone: factor 1 / 3.
    assert joint_similarity([[50.0]], [[0.0]])[0, 0] == pytest.approx(1 / 3)


def test_bayesian_fusion_hand_case():
    v, st, rand = [[0.5, 0.8]], [[0.2, 0.0]], [[0.1, 0.0]]
    np.testing.assert_allclose(bayesian_fusion(v, st, rand), [[1.0, 0.0]])
    got = bayesian_fusion(v, st, rand, e_pos=0.2, e_neg=0.1, diff_prob=[[0.05, 0.3]])
    first = (0.8 * 0.2 - 0.1 * 0.05) * (0.5 + 0.2 / 0.7) / 0.1
    second = (0.8 * 0.0 - 0.1 * 0.3) * (0.8 + 0.2 / 0.7) / 2e-5  # denominator floored
    np.testing.assert_allclose(got, [[first, second]], rtol=1e-12)
    # A plausible gap outranks an implausible one of equal appearance.
    assert bayesian_fusion([[0.6, 0.6]], [[0.3, 0.01]], [[0.1, 0.1]]).argmax() == 0


def test_visual_probability_is_a_row_softmax():
    sim = np.array([[0.9, 0.1, 0.5], [0.0, 0.0, 0.3]])
    got = visual_probability(sim, temperature=0.2)
    for r in range(2):
        e = [math.exp(x / 0.2) for x in sim[r]]
        np.testing.assert_allclose(got[r], [x / sum(e) for x in e], rtol=1e-12)
    with pytest.raises(ValueError, match="temperature must be a finite number"):
        visual_probability(sim, temperature=0.0)


def test_fused_distance_and_rerank_st():
    np.testing.assert_array_equal(fused_distance([[0.2, 0.7]]), [[-0.2, -0.7]])
    hist = np.full((2, 2, 4), 0.25)
    hist[0, 1] = [0.0, 1.0, 0.0, 0.0]
    vis = np.array([[0.5, 0.5]])
    d = rerank_st(vis, hist, [0], [0.0], [1, 1], [15.0, 35.0], bin_seconds=10.0)
    st = np.array([[1.0, 0.0]])
    np.testing.assert_allclose(d, 1 - joint_similarity(vis, st))
    assert d[0, 0] < d[0, 1]


# ---------------------------------------------------------------------------------------
# Peaks
# ---------------------------------------------------------------------------------------


def test_peak_bin_and_agreement():
    truth = np.full((3, 3, 6), 0.1)
    learned = np.full((3, 3, 6), 0.1)
    truth_peaks = {(0, 1): 2, (1, 0): 2, (0, 2): 4, (2, 0): 5, (1, 2): 1, (2, 1): 3}
    learned_peaks = {(0, 1): 3, (1, 0): 0, (0, 2): 4, (2, 0): 1, (1, 2): 1, (2, 1): 3}
    for (a, b), k in truth_peaks.items():
        truth[a, b, k] = 0.9
    for (a, b), k in learned_peaks.items():
        learned[a, b, k] = 0.9
    assert peak_bin(truth)[0, 2] == 4 and peak_bin(truth)[0, 0] == 0
    counts = np.full((3, 3), 50)
    counts[1, 2] = 3  # too few true pairs: not judged
    # Judged: (0,1) yes, (1,0) no, (0,2) yes, (2,0) no, (2,1) yes -> 3 of 5.
    assert peak_agreement(learned, truth, counts) == pytest.approx(0.6)
    assert peak_agreement(learned, truth, counts, tolerance=2) == pytest.approx(0.8)
    assert math.isnan(peak_agreement(learned, truth, np.zeros((3, 3)), counts_min=1))


# ---------------------------------------------------------------------------------------
# End to end on a toy camera network with known walking times
# ---------------------------------------------------------------------------------------

TRANSIT = np.array([[0.0, 60.0, 150.0], [60.0, 0.0, 100.0], [150.0, 100.0, 0.0]])


def toy_walks(n_people, seed, noise, span=3600.0, dim=16):
    """People walk past 2-3 of 3 cameras in random order; gap = transit * pace + Exp(10);
    one row per visit with a noisy copy of the person's appearance."""
    rng = np.random.default_rng(seed)
    identity = rng.normal(size=(n_people, dim))
    pids, cams, times, feats = [], [], [], []
    for p in range(n_people):
        order = rng.permutation(3)[: rng.integers(2, 4)]
        t, pace = rng.uniform(0, span), math.exp(rng.normal(0, 0.1))
        for k, cam in enumerate(order):
            if k:
                t += TRANSIT[order[k - 1], cam] * pace + rng.exponential(10)
            pids.append(p + 1)
            cams.append(cam)
            times.append(t)
            feats.append(identity[p] + noise * rng.normal(size=dim))
    feats = np.array(feats)
    feats /= np.linalg.norm(feats, axis=1, keepdims=True)
    return np.array(pids), np.array(cams), np.array(times), feats


def test_toy_network_learned_peaks_and_fusion_gain():
    bins = dict(bin_seconds=10.0, max_seconds=400.0, smooth_sigma=10.0)
    pids, cams, times, feats = toy_walks(300, seed=0, noise=0.7, span=7200.0)
    mi, mj = confident_matches(feats @ feats.T, cams)
    precision = np.mean(pids[mi] == pids[mj])
    assert 0.4 < precision < 0.95  # the model's own matches: mostly, not all, right
    learned = transit_histograms(mi, mj, cams, times, 3, **bins)
    ri, rj = random_pairs(cams, per_row=50)  # TFusion's random model, P(gap)
    rand = transit_histograms(ri, rj, cams, times, 3, **bins)
    truth = true_transit_histograms(pids, cams, times, 3, **bins)
    ti, tj = true_pairs(pids, cams)
    counts = pair_counts(ti, tj, cams, times, 3, max_seconds=400.0)
    assert peak_agreement(learned, truth, counts, counts_min=20) == 1.0
    # Direct neighbours peak within one bin of the walking time (+ a little waiting).
    for a, b in [(0, 1), (1, 0), (1, 2), (2, 1)]:
        assert abs(peak_bin(learned)[a, b] - TRANSIT[a, b] // 10) <= 1

    # Fusion on fresh people: query = each person's first visit, gallery = the rest.
    pids, cams, times, feats = toy_walks(150, seed=1, noise=0.7)
    first = np.r_[True, pids[1:] != pids[:-1]]
    q, g = np.flatnonzero(first), np.flatnonzero(~first)
    vis = feats[q] @ feats[g].T
    args = (pids[q], pids[g], cams[q], cams[g])
    visual = evaluate(-vis, *args)
    joint = evaluate(rerank_st(vis, learned, cams[q], times[q], cams[g], times[g],
                               bin_seconds=10.0), *args)
    st = st_grid(learned, cams[q], times[q], cams[g], times[g], 10.0)
    st_rand = st_grid(rand, cams[q], times[q], cams[g], times[g], 10.0)
    bayes = evaluate(fused_distance(bayesian_fusion(visual_probability(vis), st, st_rand)),
                     *args)
    for fused in (joint, bayes):
        assert fused["mAP"] > visual["mAP"] + 0.05
        assert fused["cmc"][0] > visual["cmc"][0] + 0.05


# ---------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------


def test_errors_histograms():
    cams, times, i, j = random_setting()
    kw = dict(bin_seconds=25.0, max_seconds=300.0)
    with pytest.raises(ValueError, match="same length"):
        transit_histograms(i, j[:-1], cams, times, 3, **kw)
    with pytest.raises(ValueError, match=r"times must be >= 0"):
        transit_histograms(i, j, cams, times - 1000, 3, **kw)
    bad = times.copy()
    bad[3] = np.nan
    with pytest.raises(ValueError, match="times must be finite"):
        transit_histograms(i, j, cams, bad, 3, **kw)
    with pytest.raises(ValueError, match=r"times must have shape \(40,\)"):
        transit_histograms(i, j, cams, times[:-1], 3, **kw)
    for value in (0.0, -5.0):
        with pytest.raises(ValueError, match="bin_seconds must be a finite number"):
            transit_histograms(i, j, cams, times, 3, bin_seconds=value, max_seconds=300.0)
    with pytest.raises(ValueError, match="max_seconds must be >= bin_seconds"):
        transit_histograms(i, j, cams, times, 3, bin_seconds=25.0, max_seconds=10.0)
    with pytest.raises(ValueError, match="cams must be < num_cams = 2"):
        transit_histograms(i, j, cams, times, 2, **kw)
    with pytest.raises(ValueError, match=r"pairs_j must be row indices in \[0, N = 40\)"):
        transit_histograms(i, j + 40, cams, times, 3, **kw)
    with pytest.raises(ValueError, match="smooth_sigma"):
        transit_histograms(i, j, cams, times, 3, smooth_sigma=-1.0, **kw)


def test_errors_matches_lookup_fusion():
    sim = np.eye(4)
    with pytest.raises(ValueError, match="square"):
        confident_matches(sim[:3], np.zeros(4, dtype=int))
    with pytest.raises(ValueError, match=r"cams must be a 1-D array of shape \(4,\)"):
        confident_matches(sim, np.zeros(5, dtype=int))
    with pytest.raises(ValueError, match="max_seconds needs times"):
        confident_matches(sim, np.array([0, 0, 1, 1]), max_seconds=10.0)
    hist = np.full((2, 2, 4), 0.25)
    with pytest.raises(ValueError, match=r"\(C, C, B\)"):
        st_probability(hist[0], 0, 1, 3.0, 10.0)
    with pytest.raises(ValueError, match=r"camera ids in \[0, 2\)"):
        st_probability(hist, 0, 2, 3.0, 10.0)
    with pytest.raises(ValueError, match="dt must be finite"):
        st_probability(hist, 0, 1, np.inf, 10.0)
    with pytest.raises(ValueError, match="same .Q, G. shape"):
        joint_similarity(np.zeros((2, 3)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="st_prob must be probabilities >= 0"):
        joint_similarity(np.zeros((2, 3)), -np.ones((2, 3)))
    ones = np.ones((1, 2))
    with pytest.raises(ValueError, match=r"visual_prob must be probabilities in \[0, 1\]"):
        bayesian_fusion(ones * 1.5, ones, ones)
    with pytest.raises(ValueError, match="e_neg > 0 needs diff_prob"):
        bayesian_fusion(ones, ones, ones, e_neg=0.1)
    with pytest.raises(ValueError, match="e_pos \\+ e_neg must be < 1"):
        bayesian_fusion(ones, ones, ones, e_pos=0.5, e_neg=0.5, diff_prob=ones)
    with pytest.raises(ValueError, match="learned and truth must have the same"):
        peak_agreement(hist, np.full((2, 2, 5), 0.2), np.ones((2, 2)))
