"""Spatio-temporal consistency: transit-time histograms learned without labels, fused with
appearance (survey §3.2 and §3.4.3: JVTC; §3.4.1: TFusion).

People walk between cameras at human speed, so the time between two sightings of one person
in cameras a and b is not arbitrary: it clusters around the walking time from a to b. A
model's own confident cross-camera matches, although some are wrong, reveal that
distribution; once it is known, a gallery image whose time gap is implausible for the
query's camera pair can be pushed down the ranking even when it looks alike.

1. **Matches** (:func:`confident_matches`): pairs of rows in different cameras that are
   mutual top-k neighbours by appearance. TFusion (Lv, Chen, Li, Yang, "Unsupervised
   cross-dataset person re-identification by transfer learning of spatial-temporal
   patterns", CVPR 2018) takes each image's top-10 cross-camera predictions
   (``mutual=False, top=10``); JVTC (Li & Zhang, "Joint visual and temporal consistency
   for unsupervised domain adaptive person re-identification", ECCV 2020) takes DBSCAN
   clusters; mutual top-1 is the cleanest of these small sets of pairs.
2. **Histograms** (:func:`transit_histograms`): for every camera pair, the histogram of
   the time gap of the matched pairs, Parzen-smoothed with a Gaussian along the bins and
   normalised to one probability per pair, as in st-ReID (Wang, Lai, Huang, Xie,
   "Spatial-temporal person re-identification", AAAI 2019), whose code JVTC reuses.
   :func:`true_transit_histograms` builds the same from ground-truth pairs, the reference
   a course notebook draws next to the learned one.
3. **Fusion**: st-ReID / JVTC+'s logistic "joint similarity" (:func:`joint_similarity`),
   or TFusion's Bayesian fusion (:func:`bayesian_fusion`, on a sharp appearance probability
   such as :func:`visual_probability`), then a distance for
   :func:`reidlib.evaluation.metrics.evaluate` (:func:`fused_distance`, :func:`rerank_st`).

Everything here is small (C x C x B histograms, a Q x G grid) and runs in numpy: arrays or
tensors go in (tensors are copied to the CPU), numpy arrays come out.

What the official codes do, and what we keep (st-ReID ``gen_st_model_market.py`` /
``evaluate_st.py``, JVTC ``utils/st_distribution.py``, TFusion ``TrackViz/train`` and
``TrackViz/post_process/track_prob.py``):

- The histograms are *directed* with unsigned gaps: a matched pair counts its |gap| in the
  histogram of (the camera seen first, the camera seen later); a query-gallery lookup
  reads the histogram of whichever of the two was seen first. ``directed=False`` pools the
  two directions (half as many histograms to fill, for small data).
- Smoothing: zero padding outside [0, max_seconds), the kernel cut at 3 sigma, then
  renormalised, as the official ``gauss_smooth2``; st-ReID and JVTC use sigma = 50 bins of
  100 frames (200 s at 25 fps), 3000 bins.
- Joint similarity ``f(s; 1, gamma) * f(p_st; lam, gamma)`` with
  ``f(x; lam, gamma) = 1 / (1 + lam exp(-gamma x))``, gamma = 5 and lam = 2 (st-ReID,
  JVTC's ``joint_similarity``).

Deliberate differences, and why:

- Indexing: ``hist[a, b]`` is "seen in a, then in b" (from, to), the order of the world's
  ``transit[a, b]``; the official arrays are stored ``[to][from]``, the transpose.
- Units: seconds, not frame numbers; ``bin_seconds`` and ``smooth_sigma`` are in seconds.
- One time gap per pair of *rows*: pass tracklet-level arrays (one time per tracklet) for
  one gap per visit. st-ReID and JVTC first average the frame numbers of each (identity,
  camera), which merges two passes of one person past one camera.
- An empty camera pair is uniform (no evidence either way). The official codes leave it at
  0, which forbids every match between two cameras that happened to get no confident pair.
  Gaps at or beyond ``max_seconds`` have probability 0 (the official arrays are sized so
  that none occurs; TFusion scores such pairs -1, i.e. last).
- No same-camera histogram: JVTC also fills ``hist[c, c]`` from the spread of frames within
  a camera. Confident matches here are cross-camera only, so the diagonal stays uniform
  unless same-camera pairs are passed in.
- TFusion's spatio-temporal score counts the matched gaps within +-interval of the query's
  gap, divided by *all* of camera a's matches (so it also carries how often a leads to b);
  we use the same per-pair Parzen histogram for the matched and the random models, so the
  camera-pair frequency is left out. See :func:`bayesian_fusion` for the fusion itself.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.special import expit, softmax

from reidlib.checks import InputTypeError, as_numpy, features_2d, int_in_range, real_in_range

__all__ = [
    "bayesian_fusion",
    "confident_matches",
    "fused_distance",
    "joint_similarity",
    "pair_counts",
    "peak_agreement",
    "peak_bin",
    "random_pairs",
    "rerank_st",
    "st_grid",
    "st_probability",
    "transit_histograms",
    "true_pairs",
    "true_transit_histograms",
    "visual_probability",
]

# The official gauss_smooth2 cuts the kernel at 3 sigma.
_TRUNCATE = 3.0
# Query rows looked up at once in st_grid: keeps the (rows, G) index arrays small.
_GRID_ROWS = 1024


# ---------------------------------------------------------------------------------------
# 1. Confident matches (the model's own, no labels)
# ---------------------------------------------------------------------------------------


def confident_matches(sim, cams, times=None, *, top: int = 1, mutual: bool = True,
                      min_sim: float | None = None, max_seconds: float | None = None):
    """Pairs (i, j), i < j, of rows in different cameras that the model itself matches.

    j is a candidate of i when it is among i's ``top`` most similar rows *in other
    cameras*; with ``mutual`` the pair needs i to be a candidate of j as well (mutual top-k
    neighbours), otherwise either direction suffices (TFusion's top-k predictions). Survey
    §3.4.1 (TFusion) and §3.2 (JVTC): no identity label is used.

    Args:
        sim: (N, N) similarities between the rows of one set (e.g. the training set's
            cosine similarities), numpy array or tensor; larger is more alike.
        cams: (N,) camera ids (integers >= 0).
        times: (N,) times in seconds; needed only with ``max_seconds``.
        top: k of the top-k (>= 1).
        mutual: require mutual top-k neighbours.
        min_sim: drop pairs less similar than this (None: keep all).
        max_seconds: only rows at most this many seconds apart are candidates (TFusion's
            ``filter_interval``; None: no limit).

    Returns:
        (i, j): two int64 arrays of equal length, i < j, sorted by i then j.
    """
    s = features_2d(sim, "sim", min_rows=2, dtype=np.float64)
    n = len(s)
    if s.shape != (n, n):
        raise ValueError(f"sim must be a square (N, N) similarity matrix of one set, got "
                         f"shape {s.shape}")
    cams = _int_ids(cams, n, "cams")
    top = int_in_range(top, "top", 1)
    min_sim = real_in_range(min_sim, "min_sim", allow_none=True)
    max_seconds = real_in_range(max_seconds, "max_seconds", lo=0, lo_open=True,
                                allow_none=True)
    excluded = cams[:, None] == cams[None, :]
    if max_seconds is not None:
        if times is None:
            raise ValueError("confident_matches: max_seconds needs times, got times=None")
        t = _times(times, n, "times")
        excluded |= np.abs(t[:, None] - t[None, :]) > max_seconds
    candidate = np.where(excluded, -np.inf, s)
    k = min(top, n - 1)
    # argpartition finds each row's k largest without sorting the whole row.
    nearest = np.argpartition(-candidate, k - 1, axis=1)[:, :k]
    rows = np.repeat(np.arange(n), k)
    cols = nearest.ravel()
    value = candidate[rows, cols]
    keep = np.isfinite(value)  # rows with fewer than k candidates pick excluded entries
    if min_sim is not None:
        keep &= value >= min_sim
    chosen = np.zeros((n, n), dtype=bool)
    chosen[rows[keep], cols[keep]] = True
    pairs = chosen & chosen.T if mutual else chosen | chosen.T
    i, j = np.nonzero(np.triu(pairs, 1))
    return i.astype(np.int64), j.astype(np.int64)


def true_pairs(pids, cams):
    """Ground-truth pairs (i, j), i < j: same identity (pid > 0), different cameras.

    Every such pair, consecutive visits or not (a person walking a -> b -> c gives a-b,
    b-c and a-c). Distractors (pid 0) and junk (pid -1) are left out. For reference plots
    only: it reads the labels.
    """
    pids = as_numpy(pids)
    n = len(pids) if pids.ndim == 1 else -1
    pids = _int_ids(pids, n, "pids", lowest=-1)
    cams = _int_ids(cams, len(pids), "cams")
    out_i, out_j = [], []
    for pid in np.unique(pids[pids > 0]):
        rows = np.flatnonzero(pids == pid)
        a, b = np.triu_indices(len(rows), 1)
        cross = cams[rows[a]] != cams[rows[b]]
        out_i.append(rows[a[cross]])
        out_j.append(rows[b[cross]])
    if not out_i:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(out_i).astype(np.int64), np.concatenate(out_j).astype(np.int64)


def random_pairs(cams, *, per_row: int = 10, seed: int = 0):
    """Random cross-camera pairs, ``per_row`` for every row (partners drawn with
    replacement among the rows of other cameras): TFusion's "random" model, whose gap
    histogram estimates P(gap) for the denominator of :func:`bayesian_fusion`.

    Returns (i, j) int64 arrays of length N * per_row (i is the row, not i < j). A camera
    with no other camera to pair with gets no pairs.
    """
    cams = as_numpy(cams)
    cams = _int_ids(cams, len(cams) if cams.ndim == 1 else -1, "cams")
    per_row = int_in_range(per_row, "per_row", 1)
    rng = np.random.default_rng(seed)
    out_i, out_j = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    for cam in np.unique(cams):
        rows, others = np.flatnonzero(cams == cam), np.flatnonzero(cams != cam)
        if len(others):
            out_i.append(np.repeat(rows, per_row))
            out_j.append(rng.choice(others, size=len(rows) * per_row))
    return np.concatenate(out_i), np.concatenate(out_j)


# ---------------------------------------------------------------------------------------
# 2. Transit-time histograms
# ---------------------------------------------------------------------------------------


def pair_counts(pairs_i, pairs_j, cams, times, num_cams: int, *, max_seconds: float,
                directed: bool = True) -> np.ndarray:
    """(C, C) number of pairs per camera pair with |gap| < ``max_seconds``, counted as in
    :func:`transit_histograms` (row a: the camera seen first, unless not ``directed``)."""
    pi, pj, cams, times, num_cams = _check_pairs(pairs_i, pairs_j, cams, times, num_cams)
    max_seconds = real_in_range(max_seconds, "max_seconds", lo=0, lo_open=True)
    src, dst, gap = _directed_gaps(pi, pj, cams, times, directed)
    keep = gap < max_seconds
    counts = np.zeros((num_cams, num_cams), dtype=np.int64)
    np.add.at(counts, (src[keep], dst[keep]), 1)
    return _mirror(counts) if not directed else counts


def transit_histograms(pairs_i, pairs_j, cams, times, num_cams: int, *, bin_seconds: float,
                       max_seconds: float, smooth_sigma: float | None = None,
                       directed: bool = True) -> np.ndarray:
    """(C, C, B) transit-time distribution of every camera pair from matched pairs (st-ReID
    "spatial-temporal stream", Wang et al. AAAI 2019; JVTC's temporal consistency,
    survey §3.2; TFusion's spatio-temporal model, survey §3.4.1).

    ``hist[a, b, k]`` is the probability that a person seen in camera a is seen in camera b
    between ``k * bin_seconds`` and ``(k + 1) * bin_seconds`` later. A pair (i, j) adds its
    gap ``|times[j] - times[i]|`` to the histogram of (camera seen first, camera seen
    later); a tie counts as (cams[i], cams[j]).

    Args:
        pairs_i, pairs_j: (P,) row indices of the matched pairs (e.g. from
            :func:`confident_matches`).
        cams: (N,) camera ids in [0, num_cams); times: (N,) seconds, finite and >= 0.
        num_cams: C.
        bin_seconds: bin width in seconds (> 0).
        max_seconds: gaps at or beyond it are dropped; B = ceil(max_seconds /
            bin_seconds) bins (pick a multiple of bin_seconds, or the last bin is partial).
        smooth_sigma: standard deviation in seconds of the Gaussian Parzen window along
            the bins (None or 0: no smoothing). Zero padding at both ends, kernel cut at
            3 sigma, as the official code.
        directed: False pools (a, b) and (b, a), giving a symmetric array.

    Returns:
        float64 (C, C, B), each [a, b] row summing to 1; a camera pair without any pair is
        uniform, 1 / B in every bin (the official code leaves it at 0: module docstring).
    """
    pi, pj, cams, times, num_cams = _check_pairs(pairs_i, pairs_j, cams, times, num_cams)
    bin_seconds, num_bins = _bins(bin_seconds, max_seconds)
    sigma = real_in_range(smooth_sigma, "smooth_sigma", lo=0, allow_none=True)
    src, dst, gap = _directed_gaps(pi, pj, cams, times, directed)
    k = np.floor(gap / bin_seconds).astype(np.int64)
    keep = (gap < max_seconds) & (k < num_bins)  # the second guards against rounding
    counts = np.zeros((num_cams, num_cams, num_bins))
    np.add.at(counts, (src[keep], dst[keep], k[keep]), 1.0)
    if not directed:
        counts = _mirror(counts)
    return _smooth_normalise(counts, sigma, bin_seconds)


def true_transit_histograms(pids, cams, times, num_cams: int, *, bin_seconds: float,
                            max_seconds: float, smooth_sigma: float | None = None,
                            directed: bool = True) -> np.ndarray:
    """:func:`transit_histograms` of the ground-truth pairs (:func:`true_pairs`): what the
    learned histograms should look like. Reads the labels: for reference plots and checks,
    never for the unsupervised method."""
    i, j = true_pairs(pids, cams)
    return transit_histograms(i, j, cams, times, num_cams, bin_seconds=bin_seconds,
                              max_seconds=max_seconds, smooth_sigma=smooth_sigma,
                              directed=directed)


def st_probability(hist, cam_a, cam_b, dt, bin_seconds: float) -> np.ndarray:
    """P(gap | camera pair) looked up in ``hist`` (st-ReID's p_st), vectorised.

    ``cam_a``, ``cam_b`` and ``dt`` broadcast together (e.g. (Q, 1), (1, G), (Q, G));
    ``dt = t_b - t_a`` in seconds. For dt >= 0 the person went a -> b: ``hist[a, b,
    bin(dt)]``; otherwise ``hist[b, a, bin(-dt)]``. Gaps beyond the histogram's range give
    0. Returns a float64 array of the broadcast shape.
    """
    hist = _check_hist(hist)
    num_cams, _, num_bins = hist.shape
    bin_seconds = real_in_range(bin_seconds, "bin_seconds", lo=0, lo_open=True)
    a, b = as_numpy(cam_a), as_numpy(cam_b)
    dt = np.asarray(as_numpy(dt), dtype=np.float64)
    for name, x in (("cam_a", a), ("cam_b", b)):
        if not np.issubdtype(x.dtype, np.integer):
            raise InputTypeError(f"{name} must hold integer camera ids, got dtype {x.dtype}")
        if x.size and (x.min() < 0 or x.max() >= num_cams):
            raise ValueError(f"{name} must hold camera ids in [0, {num_cams}) (hist has "
                             f"{num_cams} cameras), got values in [{x.min()}, {x.max()}]")
    if not np.isfinite(dt).all():
        raise ValueError("dt must be finite time differences in seconds, got NaN or inf")
    try:
        a, b, dt = np.broadcast_arrays(a, b, dt)
    except ValueError:
        raise ValueError(f"cam_a, cam_b and dt must broadcast together, got shapes "
                         f"{np.shape(a)}, {np.shape(b)}, {np.shape(dt)}") from None
    forward = dt >= 0
    src, dst = np.where(forward, a, b), np.where(forward, b, a)
    k = np.floor(np.abs(dt) / bin_seconds)
    inside = k < num_bins
    out = np.zeros(dt.shape)
    out[inside] = hist[src[inside], dst[inside], k[inside].astype(np.int64)]
    return out


def st_grid(hist, q_cams, q_times, g_cams, g_times, bin_seconds: float) -> np.ndarray:
    """(Q, G) :func:`st_probability` of every query-gallery pair (gap = g_time - q_time),
    computed a block of query rows at a time."""
    q_cams, g_cams = as_numpy(q_cams), as_numpy(g_cams)
    if q_cams.ndim != 1 or g_cams.ndim != 1:
        raise ValueError(f"q_cams and g_cams must be 1-D, got shapes {q_cams.shape}, "
                         f"{g_cams.shape}")
    q_times = _times(q_times, len(q_cams), "q_times")
    g_times = _times(g_times, len(g_cams), "g_times")
    out = np.empty((len(q_cams), len(g_cams)))
    for start in range(0, len(q_cams), _GRID_ROWS):
        rows = slice(start, start + _GRID_ROWS)
        out[rows] = st_probability(hist, q_cams[rows, None], g_cams[None, :],
                                   g_times[None, :] - q_times[rows, None], bin_seconds)
    return out


# ---------------------------------------------------------------------------------------
# 3. Fusion with appearance, and distances for evaluate()
# ---------------------------------------------------------------------------------------


def joint_similarity(visual_sim, st_prob, *, lam: float = 2.0, gamma: float = 5.0
                     ) -> np.ndarray:
    """st-ReID's joint similarity, which JVTC+ uses at test time (survey §3.4.3):

        p = f(s; 1, gamma) * f(p_st; lam, gamma),   f(x; lam, gamma) = 1 / (1 + lam e^(-gamma x))

    Defaults as the official codes (st-ReID ``evaluate_st.py`` alpha = 5; JVTC
    ``joint_similarity`` gamma = 5; both lam = 1 for appearance, 2 for space-time). The
    logistic bounds each factor, so neither an odd visual score nor a spiky histogram
    decides alone. Note p_st is a per-bin probability, so its scale (and the weight the
    second factor gets) shrinks as bins get narrower.

    Args:
        visual_sim: (Q, G) appearance similarities (cosine of L2-normalised features).
        st_prob: (Q, G) probabilities from :func:`st_grid`.

    Returns:
        (Q, G) float64 similarity in (0, 1).
    """
    v, p = _check_grids(visual_sim, st_prob)
    lam = real_in_range(lam, "lam", lo=0, lo_open=True)
    gamma = real_in_range(gamma, "gamma", lo=0, lo_open=True)
    # 1 / (1 + lam e^(-g x)) = expit(g x - log lam): no overflow for large |x|.
    return expit(gamma * v) * expit(gamma * p - np.log(lam))


def bayesian_fusion(visual_prob, st_prob, random_prob, *, e_pos: float = 0.0,
                    e_neg: float = 0.0, diff_prob=None, floor: float = 2e-5) -> np.ndarray:
    """TFusion's Bayesian fusion of appearance and space-time (survey §3.4.1; Lv et al.,
    CVPR 2018), as in its ``fusion_st_gallery_ranker``:

        score = ((1 - E_p) P(gap | matched) - E_n P(gap | diff))
                * (P(same | visual) + E_p / (1 - E_p - E_n)) / P(gap)

    P(gap | matched) is the histogram of the visual classifier's matches (``st_prob``),
    P(gap) that of random pairs (``random_prob``, from :func:`random_pairs`), P(gap | diff)
    that of pairs known to be different people (``diff_prob``); E_p, E_n are the visual
    classifier's error rates, which correct the matched histogram for its wrong matches.
    With E_p = E_n = 0 (the official default) the score is the plain Bayes ratio
    P(same | visual) * P(gap | matched) / P(gap).

    Simplifications: the denominator is clamped at ``floor`` (TFusion: 2e-5) but, unlike
    the official ranker, a pair whose random probability is below it is not penalised
    further; a negative score is kept (the official ranker sets it to 0 when the matched
    probability is positive) and the per-query division by the row maximum is left out:
    neither changes the order that :func:`fused_distance` hands to ``evaluate``, except
    for ties at 0.

    Args:
        visual_prob: (Q, G) P(same | visual) in [0, 1], e.g. :func:`visual_probability` of
            the cosine similarities. It must be sharp: (1 + s) / 2 squeezes appearance into a
            narrow range and the histogram ratio then outweighs it (on the toy network of
            the tests it loses to appearance alone).
        st_prob, random_prob: (Q, G) from :func:`st_grid` on the matched and the random
            histograms.
        e_pos, e_neg: error rates in [0, 1), e_pos + e_neg < 1.
        diff_prob: (Q, G) P(gap | different people); required when e_neg > 0.
        floor: smallest denominator (> 0).

    Returns:
        (Q, G) float64 scores; larger is more likely the same person. An st probability
        of 0 gives 0 whatever the appearance (TFusion's filter).
    """
    v, p = _check_grids(visual_prob, st_prob, first="visual_prob")
    _, r = _check_grids(visual_prob, random_prob, first="visual_prob", second="random_prob")
    if v.min() < 0 or v.max() > 1:
        raise ValueError(f"visual_prob must be probabilities in [0, 1] (see "
                         f"visual_probability), got values in "
                         f"[{v.min():.3g}, {v.max():.3g}]")
    e_pos = real_in_range(e_pos, "e_pos", lo=0, hi=1, hi_open=True)
    e_neg = real_in_range(e_neg, "e_neg", lo=0, hi=1, hi_open=True)
    if e_pos + e_neg >= 1:
        raise ValueError(f"e_pos + e_neg must be < 1, got {e_pos} + {e_neg}")
    floor = real_in_range(floor, "floor", lo=0, lo_open=True)
    if diff_prob is None:
        if e_neg > 0:
            raise ValueError("bayesian_fusion: e_neg > 0 needs diff_prob, P(gap | different "
                             "people), got diff_prob=None")
        d = np.zeros_like(p)
    else:
        _, d = _check_grids(visual_prob, diff_prob, first="visual_prob", second="diff_prob")
    st_same = (1 - e_pos) * p - e_neg * d
    return st_same * (v + e_pos / (1 - e_pos - e_neg)) / np.maximum(r, floor)


def visual_probability(visual_sim, *, temperature: float = 0.1) -> np.ndarray:
    """(Q, G) P(gallery item g is the query's match | appearance): the softmax of each query
    row of similarities at ``temperature``, a classifier-like probability for
    :func:`bayesian_fusion`. Ours: TFusion feeds the scores of its own visual classifier
    (a Siamese ranking network), which are sharp where cosine similarities are not."""
    s = features_2d(visual_sim, "visual_sim", dtype=np.float64)
    temperature = real_in_range(temperature, "temperature", lo=0, lo_open=True)
    return softmax(s / temperature, axis=1)


def fused_distance(fused_sim) -> np.ndarray:
    """(Q, G) distance ``-fused_sim`` for ``evaluate``, which only ranks: any decreasing
    map gives the same mAP and CMC. (JVTC writes 1 - joint; -s also suits the unbounded
    Bayesian scores.)"""
    s = features_2d(fused_sim, "fused_sim", dtype=np.float64)
    return -s


def rerank_st(visual_sim, hist, q_cams, q_times, g_cams, g_times, *, bin_seconds: float,
              lam: float = 2.0, gamma: float = 5.0) -> np.ndarray:
    """JVTC+ / st-ReID re-ranking in one call: the (Q, G) distance ``1 - joint similarity``
    (:func:`joint_similarity` of ``visual_sim`` and the :func:`st_grid` of ``hist``), as
    JVTC's ``joint_similarity`` returns it."""
    st = st_grid(hist, q_cams, q_times, g_cams, g_times, bin_seconds)
    return 1.0 - joint_similarity(visual_sim, st, lam=lam, gamma=gamma)


# ---------------------------------------------------------------------------------------
# 4. Checks against the truth
# ---------------------------------------------------------------------------------------


def peak_bin(hist) -> np.ndarray:
    """(C, C) int64 index of each camera pair's most probable bin (the first on a tie, so
    bin 0 for a uniform, i.e. empty, pair)."""
    return np.argmax(_check_hist(hist), axis=2).astype(np.int64)


def peak_agreement(learned, truth, truth_counts, *, counts_min: int = 10,
                   tolerance: int = 1) -> float:
    """Share of camera pairs a != b with at least ``counts_min`` true pairs
    (``truth_counts`` from :func:`pair_counts` on :func:`true_pairs`) whose learned peak
    bin is within ``tolerance`` bins of the true peak. NaN when no pair qualifies."""
    learned, truth = _check_hist(learned, "learned"), _check_hist(truth, "truth")
    if learned.shape != truth.shape:
        raise ValueError(f"learned and truth must have the same (C, C, B) shape, got "
                         f"{learned.shape} and {truth.shape}")
    counts = as_numpy(truth_counts)
    if counts.shape != learned.shape[:2]:
        raise ValueError(f"truth_counts must have shape (C, C) = {learned.shape[:2]}, got "
                         f"{counts.shape}")
    counts_min = int_in_range(counts_min, "counts_min", 1)
    tolerance = int_in_range(tolerance, "tolerance", 0)
    qualifies = (counts >= counts_min) & ~np.eye(len(counts), dtype=bool)
    if not qualifies.any():
        return float("nan")
    close = np.abs(peak_bin(learned) - peak_bin(truth)) <= tolerance
    return float(close[qualifies].mean())


# ---------------------------------------------------------------------------------------
# Internal helpers (inputs checked by the public functions above)
# ---------------------------------------------------------------------------------------


def _directed_gaps(pi, pj, cams, times, directed):
    """(camera seen first, camera seen later, |gap|) of every pair; with not ``directed``,
    (smaller camera id, larger camera id, |gap|)."""
    dt = times[pj] - times[pi]
    j_later = dt >= 0
    src = np.where(j_later, cams[pi], cams[pj])
    dst = np.where(j_later, cams[pj], cams[pi])
    if not directed:
        src, dst = np.minimum(src, dst), np.maximum(src, dst)
    return src, dst, np.abs(dt)


def _mirror(counts):
    """Copy the upper camera triangle of (C, C, ...) counts to the lower one."""
    upper = np.triu(np.ones(counts.shape[:2], dtype=bool), 1)
    out = counts.copy()
    out[upper.T] = counts.swapaxes(0, 1)[upper.T]
    return out


def _smooth_normalise(counts, sigma, bin_seconds):
    """Parzen (Gaussian) smoothing along the bins, then one distribution per camera pair;
    empty pairs uniform."""
    if sigma:
        # scipy's kernel is normalised, the official one is not: a constant factor that the
        # normalisation below removes.
        counts = gaussian_filter1d(counts, sigma / bin_seconds, axis=2, mode="constant",
                                   truncate=_TRUNCATE)
    total = counts.sum(axis=2, keepdims=True)
    uniform = np.full_like(counts, 1.0 / counts.shape[2])
    return np.where(total > 0, counts / np.where(total > 0, total, 1.0), uniform)


def _bins(bin_seconds, max_seconds):
    bin_seconds = real_in_range(bin_seconds, "bin_seconds", lo=0, lo_open=True)
    max_seconds = real_in_range(max_seconds, "max_seconds", lo=0, lo_open=True)
    if max_seconds < bin_seconds:
        raise ValueError(f"max_seconds must be >= bin_seconds (at least one bin), got "
                         f"max_seconds={max_seconds}, bin_seconds={bin_seconds}")
    return bin_seconds, int(np.ceil(max_seconds / bin_seconds))


def _int_ids(x, n, name, lowest=0):
    x = as_numpy(x)
    if x.ndim != 1 or (n >= 0 and len(x) != n):
        expected = f"({n},)" if n >= 0 else "(N,)"
        raise ValueError(f"{name} must be a 1-D array of shape {expected}, got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.integer):
        raise InputTypeError(f"{name} must hold integer ids, got dtype {x.dtype}")
    if len(x) and x.min() < lowest:
        raise ValueError(f"{name} must be >= {lowest}, got a minimum of {x.min()}")
    return x.astype(np.int64)


def _times(times, n, name):
    t = as_numpy(times)
    if t.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), one time per row, got shape "
                         f"{t.shape}")
    if not np.issubdtype(t.dtype, np.number) or np.issubdtype(t.dtype, np.complexfloating):
        raise InputTypeError(f"{name} must be real numbers (seconds), got dtype {t.dtype}")
    t = t.astype(np.float64)
    if not np.isfinite(t).all():
        raise ValueError(f"{name} must be finite seconds, got NaN or infinite values")
    if len(t) and t.min() < 0:
        raise ValueError(f"{name} must be >= 0 (seconds since the day's start), got a "
                         f"minimum of {t.min()}")
    return t


def _check_pairs(pairs_i, pairs_j, cams, times, num_cams):
    num_cams = int_in_range(num_cams, "num_cams", 1)
    cams = as_numpy(cams)
    cams = _int_ids(cams, len(cams) if cams.ndim == 1 else -1, "cams")
    if len(cams) and cams.max() >= num_cams:
        raise ValueError(f"cams must be < num_cams = {num_cams}, got a maximum of "
                         f"{cams.max()}")
    times = _times(times, len(cams), "times")
    pi, pj = as_numpy(pairs_i), as_numpy(pairs_j)
    if pi.ndim != 1 or pi.shape != pj.shape:
        raise ValueError(f"pairs_i and pairs_j must be 1-D arrays of the same length, got "
                         f"shapes {pi.shape} and {pj.shape}")
    for name, p in (("pairs_i", pi), ("pairs_j", pj)):
        if len(p) and not np.issubdtype(p.dtype, np.integer):
            raise InputTypeError(f"{name} must hold integer row indices, got dtype {p.dtype}")
        if len(p) and (p.min() < 0 or p.max() >= len(cams)):
            raise ValueError(f"{name} must be row indices in [0, N = {len(cams)}), got "
                             f"values in [{p.min()}, {p.max()}]")
    return pi.astype(np.int64), pj.astype(np.int64), cams, times, num_cams


def _check_hist(hist, name="hist"):
    h = np.asarray(as_numpy(hist), dtype=np.float64)
    if h.ndim != 3 or h.shape[0] != h.shape[1] or h.shape[2] < 1:
        raise ValueError(f"{name} must be a (C, C, B) array of transit-time histograms, got "
                         f"shape {h.shape}")
    if not np.isfinite(h).all() or h.min() < 0:
        raise ValueError(f"{name} must hold finite, non-negative probabilities")
    return h


def _check_grids(first_grid, second_grid, first="visual_sim", second="st_prob"):
    a = features_2d(first_grid, first, dtype=np.float64)
    b = features_2d(second_grid, second, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"{first} and {second} must have the same (Q, G) shape, got "
                         f"{a.shape} and {b.shape}")
    if b.min() < 0:
        raise ValueError(f"{second} must be probabilities >= 0, got a minimum of {b.min()}")
    return a, b
