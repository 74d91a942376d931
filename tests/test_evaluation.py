"""mAP / CMC / mINP (Market-1501 protocol) and pairwise distances against references."""

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist
from sklearn.metrics import average_precision_score

from reidlib.evaluation import evaluate, pairwise_distance

# --------------------------------------------------------------------------- references


def reference_query(dist, q_pid, q_cam, g_pids, g_cams):
    """One query, brute force: walk the valid items in groups of equal distance.

    Returns (AP, INP, pessimistic first-match rank) or None when there is no valid match.
    """
    valid = (g_pids != -1) & ~((g_pids == q_pid) & (g_cams == q_cam))
    d, match = dist[valid], g_pids[valid] == q_pid
    n_pos = int(match.sum())
    if n_pos == 0:
        return None
    seen = seen_pos = 0
    ap, first, last_cum = 0.0, None, None
    for value in sorted(set(d.tolist())):
        group = d == value  # one tie group = one threshold step
        seen += int(group.sum())
        pos_here = int((group & match).sum())
        seen_pos += pos_here
        if pos_here:
            ap += pos_here * seen_pos / seen
            first = seen if first is None else first
            last_cum = seen
    return ap / n_pos, n_pos / last_cum, first


def reference_evaluate(distmat, q_pids, g_pids, q_cams, g_cams, max_rank):
    results = [
        reference_query(distmat[i], q_pids[i], q_cams[i], g_pids, g_cams)
        for i in range(len(q_pids))
    ]
    kept = [r for r in results if r is not None]
    first = np.array([r[2] for r in kept])
    cmc = (first[:, None] <= np.arange(1, max_rank + 1)[None, :]).mean(0)
    return np.mean([r[0] for r in kept]), cmc, np.mean([r[1] for r in kept]), len(kept)


def random_problem(num_q, num_g, num_ids, num_cams, seed, integer=True, high=6):
    rng = np.random.default_rng(seed)
    q_pids = rng.integers(1, num_ids + 1, num_q)
    g_pids = rng.integers(-1, num_ids + 1, num_g)  # includes junk (-1) and distractors (0)
    q_cams = rng.integers(0, num_cams, num_q)
    g_cams = rng.integers(0, num_cams, num_g)
    if integer:
        distmat = rng.integers(0, high, (num_q, num_g)).astype(np.float64)
    else:
        distmat = rng.random((num_q, num_g))
    return distmat, q_pids, g_pids, q_cams, g_cams


# --------------------------------------------------------------------------- evaluate


def test_hand_computed_case():
    # Query: pid 1, camera 0. Gallery, by distance:
    #   0.1 pid 1 cam 0 -> ignored (same identity, same camera)
    #   0.2 pid 2 cam 1 -> negative            valid rank 1
    #   0.3 pid 1 cam 1 -> positive            valid rank 2: precision 1/2
    #   0.4 pid -1      -> junk, ignored
    #   0.5 pid 3 cam 2 -> negative            valid rank 3
    #   0.6 pid 1 cam 2 -> positive            valid rank 4: precision 2/4
    #   0.7 pid 0 cam 1 -> distractor, negative
    # AP = (1/2 + 2/4) / 2 = 0.5; first match at rank 2 -> CMC = [0, 1, 1];
    # INP = 2 positives / 4 items up to the last positive = 0.5.
    dist = np.array([[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]])
    g_pids = np.array([1, 2, 1, -1, 3, 1, 0])
    g_cams = np.array([0, 1, 1, 1, 2, 2, 1])
    out = evaluate(dist, np.array([1]), g_pids, np.array([0]), g_cams, max_rank=3)
    assert out["mAP"] == pytest.approx(0.5)
    np.testing.assert_array_equal(out["cmc"], [0.0, 1.0, 1.0])
    assert out["mINP"] == pytest.approx(0.5)
    assert out["num_valid_queries"] == 1


def test_hand_computed_ties():
    # Query: pid 5, camera 0. Valid items: a negative at 0.5, a positive and a negative
    # tied at 1.0, a positive at 2.0. The tie is one threshold step:
    #   positive at 1.0: 1 positive among the 3 items with d <= 1.0 -> 1/3
    #   positive at 2.0: 2 positives among 4 items                  -> 2/4
    # AP = (1/3 + 1/2) / 2 = 5/12. The first match counts the tied negative against the
    # query: rank 3, so CMC = [0, 0, 1, 1]. INP = 2 / 4.
    dist = np.array([[1.0, 1.0, 0.5, 2.0]])
    g_pids = np.array([5, 7, 8, 5])
    g_cams = np.array([1, 1, 1, 2])
    out = evaluate(dist, [5], g_pids, [0], g_cams, max_rank=4)
    assert out["mAP"] == pytest.approx(5 / 12)
    np.testing.assert_array_equal(out["cmc"], [0.0, 0.0, 1.0, 1.0])
    assert out["mINP"] == pytest.approx(0.5)
    # Swapping the order of the tied items does not change anything.
    swapped = evaluate(
        dist[:, [1, 0, 2, 3]], [5], g_pids[[1, 0, 2, 3]], [0], g_cams[[1, 0, 2, 3]], max_rank=4
    )
    assert swapped["mAP"] == pytest.approx(5 / 12)


@pytest.mark.parametrize("integer", [True, False])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_brute_force_reference(integer, seed):
    problem = random_problem(60, 300, num_ids=12, num_cams=3, seed=seed, integer=integer)
    out = evaluate(*problem, max_rank=20, chunk_size=17)
    ref_map, ref_cmc, ref_minp, ref_n = reference_evaluate(*problem, max_rank=20)
    assert out["num_valid_queries"] == ref_n
    assert out["mAP"] == pytest.approx(ref_map, abs=1e-12)
    assert out["mINP"] == pytest.approx(ref_minp, abs=1e-12)
    np.testing.assert_allclose(out["cmc"], ref_cmc, atol=1e-12)
    assert out["cmc"].shape == (20,) and out["cmc"].dtype == np.float64


@pytest.mark.parametrize("block", [None, 1000])
def test_every_counting_path_matches_reference(monkeypatch, block):
    # Good, medium and random queries in one gallery; queries with hundreds of positives
    # (their rows are sorted rather than compared once per positive); a gallery with and
    # one without junk; and (block=1000) a work space so small that a query's positives
    # are compared in several passes. All must agree with the brute-force reference; a
    # spy checks that both counting paths really ran.
    import reidlib.evaluation.metrics as metrics

    if block is not None:
        monkeypatch.setattr(metrics, "_CPU_BLOCK", block)
    widths = []
    real = metrics._count_at_most

    def spy(values, thresholds, block, out):
        widths.append(thresholds.shape[1])
        return real(values, thresholds, block, out)

    monkeypatch.setattr(metrics, "_count_at_most", spy)
    rng = np.random.default_rng(7)
    mixed = random_problem(30, 1500, 40, 4, seed=7, high=50)
    distmat, q_pids, g_pids = mixed[:3]
    for i in range(10):  # good: positives far closer than everything else
        distmat[i, g_pids == q_pids[i]] = rng.integers(0, 3, int((g_pids == q_pids[i]).sum()))
        distmat[i, g_pids != q_pids[i]] += 3
    for i in range(10, 20):  # medium: positives in the first few hundred
        distmat[i, g_pids == q_pids[i]] = rng.integers(0, 8, int((g_pids == q_pids[i]).sum()))
    q_pids[29] = -1  # a junk query: no positive, skipped
    crowded = random_problem(12, 2000, 2, 3, seed=8, high=50)  # ~330 positives per query
    no_junk = random_problem(20, 300, 10, 3, seed=9, high=50)
    no_junk[2][no_junk[2] == -1] = 0
    for problem in (mixed, crowded, no_junk):
        out = evaluate(*problem, max_rank=50)
        ref_map, ref_cmc, ref_minp, ref_n = reference_evaluate(*problem, max_rank=50)
        assert out["num_valid_queries"] == ref_n
        assert out["mAP"] == pytest.approx(ref_map, abs=1e-12)
        assert out["mINP"] == pytest.approx(ref_minp, abs=1e-12)
        np.testing.assert_allclose(out["cmc"], ref_cmc, atol=1e-12)
    assert min(widths) <= metrics._MAX_COMPARE_WIDTH < max(widths)


@pytest.mark.parametrize("seed", [3, 4])
def test_ap_equals_sklearn_average_precision(seed):
    distmat, q_pids, g_pids, q_cams, g_cams = random_problem(40, 250, 8, 3, seed=seed)
    out = evaluate(distmat, q_pids, g_pids, q_cams, g_cams)
    checked = 0
    for i in range(len(q_pids)):
        valid = (g_pids != -1) & ~((g_pids == q_pids[i]) & (g_cams == q_cams[i]))
        y = g_pids[valid] == q_pids[i]
        if y.any():
            expected = average_precision_score(y, -distmat[i, valid])
            assert out["AP"][i] == pytest.approx(expected, abs=1e-12)
            checked += 1
        else:
            assert np.isnan(out["AP"][i]) and out["first_match_rank"][i] == -1
    assert checked == out["num_valid_queries"] > 30


def test_same_camera_rule():
    # The only same-identity image from the query's camera sits at distance 0; it must be
    # ignored, so the match at rank 2 (behind a negative) is the first match.
    dist = np.array([[0.0, 1.0, 2.0]])
    out = evaluate(dist, [3], [3, 4, 3], [1], [1, 2, 2], max_rank=3)
    np.testing.assert_array_equal(out["cmc"], [0.0, 1.0, 1.0])
    assert out["mAP"] == pytest.approx(0.5)
    # Same identity from the query's camera only -> no valid match -> error.
    with pytest.raises(ValueError, match="no query has a valid match"):
        evaluate(dist, [3], [3, 4, 5], [1], [1, 2, 2])
    # Images of *other* identities from the query's camera stay as negatives.
    out = evaluate(dist, [3], [4, 4, 3], [1], [1, 1, 2], max_rank=3)
    np.testing.assert_array_equal(out["cmc"], [0.0, 0.0, 1.0])


def test_junk_is_ignored():
    dist = np.array([[0.0, 1.0, 2.0]])
    with_junk = evaluate(dist, [3], [-1, 3, 4], [1], [2, 2, 2], max_rank=2)
    np.testing.assert_array_equal(with_junk["cmc"], [1.0, 1.0])
    assert with_junk["mAP"] == 1.0
    # The same image as a distractor (pid 0) is a negative.
    with_distractor = evaluate(dist, [3], [0, 3, 4], [1], [2, 2, 2], max_rank=2)
    np.testing.assert_array_equal(with_distractor["cmc"], [0.0, 1.0])


def test_queries_without_valid_match_are_skipped():
    dist = np.array([[0.0, 1.0], [0.5, 0.2], [0.3, 0.4]])
    q_pids, q_cams = np.array([1, 2, 9]), np.array([0, 0, 0])
    g_pids, g_cams = np.array([1, 2]), np.array([1, 0])
    # Query 1 (pid 2) only has a same-camera match, query 2 (pid 9) has none at all.
    out = evaluate(dist, q_pids, g_pids, q_cams, g_cams, max_rank=2)
    assert out["num_valid_queries"] == 1
    assert out["mAP"] == 1.0
    np.testing.assert_array_equal(np.isnan(out["AP"]), [False, True, True])
    np.testing.assert_array_equal(out["first_match_rank"], [1, -1, -1])


def test_chunking_and_input_types_do_not_change_results():
    problem = random_problem(50, 200, 10, 4, seed=11)
    base = evaluate(*problem)
    for chunk in (1, 7, 50, 1000):
        out = evaluate(*problem, chunk_size=chunk)
        assert out["mAP"] == base["mAP"] and out["mINP"] == base["mINP"]
        np.testing.assert_array_equal(out["cmc"], base["cmc"])
    as_torch = evaluate(*(torch.from_numpy(np.asarray(x)) for x in problem))
    assert as_torch["mAP"] == pytest.approx(base["mAP"], abs=1e-12)
    np.testing.assert_array_equal(as_torch["cmc"], base["cmc"])
    as_float32 = evaluate(torch.from_numpy(problem[0]).float(), *problem[1:])
    assert as_float32["mAP"] == pytest.approx(base["mAP"], abs=1e-12)  # integers: exact
    as_int = evaluate(problem[0].astype(np.int64), *problem[1:])
    assert as_int["mAP"] == pytest.approx(base["mAP"], abs=1e-12)


def test_cmc_is_monotone_and_ends_at_one_with_large_rank():
    problem = random_problem(40, 120, 6, 3, seed=5, integer=False)
    out = evaluate(*problem, max_rank=150)
    assert np.all(np.diff(out["cmc"]) >= 0)
    assert out["cmc"][-1] == 1.0  # more ranks than gallery items: every query matched
    assert 0 < out["mINP"] <= out["mAP"] <= 1


def test_matches_classic_argsort_loop_without_ties():
    # Classic open-reid / torchreid evaluation (argsort + per-query loop); with
    # continuous distances (no ties) it must agree exactly with ours.
    distmat, q_pids, g_pids, q_cams, g_cams = random_problem(30, 200, 8, 3, 9, integer=False)
    indices = np.argsort(distmat, axis=1)
    aps, cmcs = [], []
    for i in range(len(q_pids)):
        order = indices[i]
        keep = (g_pids[order] != -1) & ~(
            (g_pids[order] == q_pids[i]) & (g_cams[order] == q_cams[i])
        )
        matches = (g_pids[order] == q_pids[i])[keep].astype(float)
        if not matches.any():
            continue
        cmc = matches.cumsum().clip(max=1)[:10]
        cmcs.append(cmc)
        precision = matches.cumsum() / np.arange(1, len(matches) + 1)
        aps.append((precision * matches).sum() / matches.sum())
    out = evaluate(distmat, q_pids, g_pids, q_cams, g_cams, max_rank=10)
    assert out["mAP"] == pytest.approx(np.mean(aps), abs=1e-12)
    np.testing.assert_allclose(out["cmc"], np.mean(cmcs, axis=0), atol=1e-12)


def test_errors_are_clear():
    dist, q_pids, g_pids, q_cams, g_cams = random_problem(5, 8, 3, 2, seed=0)
    with pytest.raises(ValueError, match=r"distmat must be 2-D \(num_query, num_gallery\)"):
        evaluate(dist[0], q_pids, g_pids, q_cams, g_cams)
    with pytest.raises(ValueError, match="gallery_pids must be 1-D of length num_gallery=8"):
        evaluate(dist, q_pids, g_pids[:7], q_cams, g_cams)
    with pytest.raises(ValueError, match="query_camids must be 1-D of length num_query=5"):
        evaluate(dist, q_pids, g_pids, q_cams[:, None], g_cams)
    with pytest.raises(ValueError, match="query_pids must hold integers"):
        evaluate(dist, q_pids.astype(float), g_pids, q_cams, g_cams)
    bad = dist.copy()
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        evaluate(bad, q_pids, g_pids, q_cams, g_cams)
    bad[1, 2] = np.inf
    with pytest.raises(ValueError, match="NaN or infinite"):
        evaluate(bad, q_pids, g_pids, q_cams, g_cams)
    with pytest.raises(ValueError, match="max_rank must be >= 1"):
        evaluate(dist, q_pids, g_pids, q_cams, g_cams, max_rank=0)
    with pytest.raises(ValueError, match="chunk_size"):
        evaluate(dist, q_pids, g_pids, q_cams, g_cams, chunk_size=0)
    with pytest.raises(TypeError, match="torch tensor or numpy array"):
        evaluate("distances", q_pids, g_pids, q_cams, g_cams)
    with pytest.raises(ValueError, match="no query has a valid match"):
        evaluate(dist, q_pids, np.full(8, -1), q_cams, g_cams)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    problem = random_problem(80, 400, 10, 4, seed=12)
    cpu = evaluate(*problem)
    gpu = evaluate(torch.from_numpy(problem[0]).cuda(), *problem[1:])
    assert gpu["mAP"] == pytest.approx(cpu["mAP"], abs=1e-12)
    np.testing.assert_array_equal(gpu["cmc"], cpu["cmc"])


# --------------------------------------------------------------------------- distances


@pytest.mark.parametrize("metric", ["euclidean", "sqeuclidean", "cosine"])
def test_pairwise_distance_matches_scipy(metric):
    rng = np.random.default_rng(0)
    qf, gf = rng.normal(size=(23, 16)), rng.normal(size=(31, 16))
    expected = cdist(qf, gf, metric=metric)
    got = pairwise_distance(torch.from_numpy(qf), torch.from_numpy(gf), metric, chunk_size=5)
    assert got.dtype == torch.float64 and got.shape == (23, 31)
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-10)
    got32 = pairwise_distance(qf.astype(np.float32), gf.astype(np.float32), metric)
    assert got32.dtype == torch.float32
    np.testing.assert_allclose(got32.numpy(), expected, atol=1e-4)


def test_pairwise_distance_is_never_negative_or_nan():
    # Large, nearly equal vectors: the |q|^2 + |g|^2 - 2 q.g form cancels badly and can
    # dip below zero before the clamp; the square root would then give NaN.
    rng = np.random.default_rng(1)
    base = rng.normal(size=(1, 64)).astype(np.float32) * 100
    feats = torch.from_numpy(np.repeat(base, 5, axis=0) + 1e-4 * rng.normal(size=(5, 64)))
    d = pairwise_distance(feats.float(), feats.float())
    assert torch.isfinite(d).all() and (d >= 0).all()


def test_pairwise_distance_errors():
    a, b = torch.zeros(3, 4), torch.zeros(5, 6)
    with pytest.raises(ValueError, match="feature dimensions differ: query_features has 4"):
        pairwise_distance(a, b)
    with pytest.raises(ValueError, match="metric must be one of"):
        pairwise_distance(a, a, metric="manhattan")
    with pytest.raises(ValueError, match=r"gallery_features must be 2-D \(num_images, dim\)"):
        pairwise_distance(a, torch.zeros(4))


# ------------------------------------------------------------------- camera confusions


def test_camera_confusions_against_brute_force():
    from reidlib.evaluation.camera_bias import camera_confusions

    rng = np.random.default_rng(3)
    pids = rng.integers(1, 6, 40)
    cams = rng.integers(0, 3, 40)
    feats = rng.normal(size=(40, 5))
    dist = cdist(feats, feats)
    found = camera_confusions(dist, pids, cams)
    for i in range(40):
        look = [j for j in range(40) if cams[j] == cams[i] and pids[j] != pids[i]]
        self_ = [j for j in range(40) if cams[j] != cams[i] and pids[j] == pids[i]]
        near_look = min(look, key=lambda j: dist[i, j]) if look else -1
        near_self = min(self_, key=lambda j: dist[i, j]) if self_ else -1
        assert found["other_person"][i] == near_look
        assert found["same_person"][i] == near_self
        expected = bool(look and self_ and dist[i, near_look] < dist[i, near_self])
        assert found["confused"][i] == expected
        if self_:
            assert found["same_person_dist"][i] == pytest.approx(dist[i, near_self], rel=1e-6)
        else:
            assert found["same_person_dist"][i] == np.inf
    assert found["confused"].any() and not found["confused"].all()


def test_camera_confusions_hand_made_case_and_errors():
    from reidlib.evaluation.camera_bias import camera_confusions

    # crop 0 (id 1, cam 0): id 2 in cam 0 at distance 1, itself in cam 1 at distance 3
    dist = np.array([[0, 1, 3], [1, 0, 2], [3, 2, 0]], float)
    found = camera_confusions(dist, [1, 2, 1], [0, 0, 1])
    assert found["other_person"].tolist() == [1, 0, -1]
    assert found["same_person"].tolist() == [2, -1, 0]
    assert found["confused"].tolist() == [True, False, False]
    with pytest.raises(ValueError, match="pid <= 0"):
        camera_confusions(dist, [1, 0, 1], [0, 0, 1])
    with pytest.raises(ValueError, match=r"\(N, N\)"):
        camera_confusions(dist[:2], [1, 2, 1], [0, 0, 1])
