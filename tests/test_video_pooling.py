"""Tracklet pooling and tracklet-level evaluation (reidlib.video.pooling) against Python
loops over tracklets, per-tracklet torch.softmax, a brute-force MARS AP and hand-made cases."""

import collections
import functools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from reidlib.data.augment import IMAGENET_MEAN, IMAGENET_STD
from reidlib.data.imageset import ImageSet
from reidlib.video.pooling import (
    TemporalAttention,
    evaluate_tracklets,
    evaluate_video,
    fit_temporal_attention,
    segment_softmax,
    temporal_average,
    tracklet_index,
    tracklet_labels,
    tracklet_times,
)


def _rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _shuffled_tracklets(seed=0):
    """40 rows of 4 tracklets with non-contiguous ids, rows interleaved."""
    rng = np.random.default_rng(seed)
    return rng.permutation(np.repeat([20, 3, 11, 7], [13, 1, 10, 16]))


# --- references -------------------------------------------------------------------------------

def mean_reference(features, tracklets, normalise):
    out = []
    for t in sorted(set(tracklets.tolist())):
        rows = features[torch.from_numpy(tracklets == t)]
        if normalise:
            rows = torch.stack([r / r.norm() for r in rows])
        m = rows.mean(0)
        out.append(m / m.norm() if normalise else m)
    return torch.stack(out)


def attention_reference(module, features, tracklets):
    """Gao & Nevatia's TA on vectors, tracklet by tracklet: scores, softmax, weighted sum."""
    W, b = module.hidden.weight.detach(), module.hidden.bias.detach()
    w = module.score.weight.detach()[0]
    out = []
    for t in sorted(set(tracklets.tolist())):
        rows = features[torch.from_numpy(tracklets == t)]
        scores = torch.stack([w @ torch.relu(W @ f + b) for f in rows])
        a = torch.softmax(scores, 0)
        out.append((a[:, None] * rows).sum(0))
    return torch.stack(out)


def brute_force_map(q_feat, q_pids, q_cams, g_feat, g_pids, g_cams):
    """MARS / Market protocol by a loop: Euclidean ranking, drop junk and same pid+camera."""
    aps, first = [], []
    for f, p, c in zip(q_feat, q_pids, q_cams, strict=True):
        d = [float((f - g).norm()) for g in g_feat]
        ranked = [j for j in sorted(range(len(g_feat)), key=d.__getitem__)
                  if g_pids[j] != -1 and not (g_pids[j] == p and g_cams[j] == c)]
        hits = [g_pids[j] == p for j in ranked]
        if not any(hits):
            continue
        precisions, found = [], 0
        for k, hit in enumerate(hits, 1):
            if hit:
                found += 1
                precisions.append(found / k)
        aps.append(np.mean(precisions))
        first.append(hits.index(True) + 1)
    return float(np.mean(aps)), np.asarray(first)


# --- bookkeeping ------------------------------------------------------------------------------

def test_tracklet_index_sorted_ids_and_inverse():
    ids, inverse = tracklet_index(torch.tensor([5, 2, 5, 9, 2]))
    assert ids.tolist() == [2, 5, 9]
    assert inverse.tolist() == [1, 0, 1, 2, 0]


@pytest.mark.parametrize("bad, message", [
    (np.array([3, -1, 3]), r"tracklets: 1 images without tracklets.*first at row 1"),
    (np.array([[1, 2]]), r"shape \(N,\)"),
    (np.array([1.0, 2.0]), "integers"),
    (np.array([], dtype=np.int64), "empty"),
])
def test_tracklet_index_errors(bad, message):
    with pytest.raises(ValueError, match=message):
        tracklet_index(bad)


def test_tracklet_index_expected_length_and_name():
    ids, inverse = tracklet_index(np.array([8, 8, 2]), n=3, name="train.tracklets")
    assert ids.tolist() == [2, 8] and inverse.tolist() == [1, 1, 0]
    with pytest.raises(ValueError, match=r"train\.tracklets must have shape \(N,\) = \(4,\)"):
        tracklet_index(np.array([8, 8, 2]), n=4, name="train.tracklets")
    with pytest.raises(ValueError, match=r"train\.tracklets: 2 images without.*row 0"):
        tracklet_index(np.array([-1, 8, -1]), name="train.tracklets")


def test_tracklet_labels_constant_and_mixed():
    tracklets = np.array([4, 1, 4, 1, 9])
    assert tracklet_labels([7, 3, 7, 3, 0], tracklets).tolist() == [3, 7, 0]
    with pytest.raises(ValueError, match=r"values differ within 1 tracklet\(s\), e\.g\. "
                                         r"tracklet 4 \(values \[2, 7\]\).*majority"):
        tracklet_labels([7, 3, 2, 3, 0], tracklets)
    with pytest.raises(ValueError, match=r"one per frame"):
        tracklet_labels([7, 3], tracklets)


def test_tracklet_labels_majority_matches_counter():
    rng = np.random.default_rng(1)
    tracklets = rng.integers(0, 30, 400) * 3
    values = rng.integers(-1, 4, 400)
    expected = []
    for t in sorted(set(tracklets.tolist())):
        counts = collections.Counter(values[tracklets == t].tolist())
        top = max(counts.values())
        expected.append(min(v for v, c in counts.items() if c == top))  # ties: the smallest
    assert tracklet_labels(values, tracklets, majority=True).tolist() == expected


def test_tracklet_times_earliest_frame():
    rng = np.random.default_rng(2)
    tracklets = rng.integers(0, 12, 100)
    frames = rng.integers(0, 100_000, 100)
    stamps = frames // 25
    by_frames = tracklet_times(tracklets, stamps, frames)
    by_stamps = tracklet_times(tracklets, timestamps=stamps)
    for i, t in enumerate(sorted(set(tracklets.tolist()))):
        assert by_frames[i] == frames[tracklets == t].min() / 25
        assert by_stamps[i] == stamps[tracklets == t].min()
    assert by_frames.dtype == np.float64
    with pytest.raises(ValueError, match="neither"):
        tracklet_times(tracklets)
    with pytest.raises(ValueError, match=r"frames must be >= 0.*-1"):
        tracklet_times(tracklets, frames=np.full(100, -1))


# --- pooling ----------------------------------------------------------------------------------

@pytest.mark.parametrize("normalise", [True, False])
def test_temporal_average_matches_a_loop(normalise):
    tracklets = _shuffled_tracklets()
    features = _rand(40, 6) * 3
    pooled, ids = temporal_average(features, tracklets, normalise=normalise)
    assert ids.tolist() == [3, 7, 11, 20]
    assert pooled.dtype == torch.float64
    torch.testing.assert_close(pooled, mean_reference(features, tracklets, normalise))
    pooled_np, _ = temporal_average(features.numpy(), tracklets, normalise=normalise)
    torch.testing.assert_close(pooled_np, pooled)


def test_temporal_average_errors():
    with pytest.raises(ValueError, match="one id per feature row: 5 rows, got 4"):
        temporal_average(torch.zeros(5, 3), [0, 0, 1, 1])
    with pytest.raises(ValueError, match=r"features must be 2-D \(num_frames, dim\)"):
        temporal_average(torch.zeros(5), [0, 0, 1, 1, 1])
    with pytest.raises(ValueError, match="images without tracklets"):
        temporal_average(torch.zeros(3, 2), [0, -1, 1])


def test_segment_softmax_matches_per_segment_softmax_with_large_scores():
    rng = np.random.default_rng(3)
    inverse = torch.from_numpy(rng.choice([0, 1, 2, 4], 50))  # segment 3 is empty
    scores = (_rand(50, seed=4) * 1000).requires_grad_()
    weights = segment_softmax(scores, inverse, 5)
    coef = _rand(50, seed=5)
    (weights * coef).sum().backward()
    ref_scores = scores.detach().clone().requires_grad_()
    expected = torch.zeros(50, dtype=torch.float64)
    for s in range(5):
        rows = torch.nonzero(inverse == s).flatten()
        if len(rows):
            expected = expected.index_put((rows,), torch.softmax(ref_scores[rows], 0))
    (expected * coef).sum().backward()
    assert torch.isfinite(weights).all()
    torch.testing.assert_close(weights, expected)
    torch.testing.assert_close(scores.grad, ref_scores.grad)


def test_attention_starts_as_exact_average():
    torch.manual_seed(0)
    tracklets = _shuffled_tracklets(1)
    features = _rand(40, 6, seed=1)
    module = TemporalAttention(6, hidden=5).double()
    _, inverse = tracklet_index(tracklets)
    torch.testing.assert_close(module(features, inverse),
                               mean_reference(features, tracklets, normalise=False))
    pooled, ids = module.pool(features, tracklets)
    expected, expected_ids = temporal_average(features, tracklets)
    torch.testing.assert_close(pooled, expected)
    assert ids.tolist() == expected_ids.tolist()


def test_attention_forward_matches_a_loop_once_trained_weights_are_set():
    torch.manual_seed(0)
    module = TemporalAttention(6, hidden=5).double()
    with torch.no_grad():
        module.score.weight.copy_(_rand(1, 5, seed=7) * 3)
    tracklets = _shuffled_tracklets(2)
    features = _rand(40, 6, seed=2)
    out = module(features, torch.from_numpy(tracklet_index(tracklets)[1]))
    expected = attention_reference(module, features, tracklets)
    torch.testing.assert_close(out, expected)
    assert not torch.allclose(out, mean_reference(features, tracklets, normalise=False))


def test_attention_errors():
    module = TemporalAttention(4, hidden=3)
    with pytest.raises(ValueError, match=r"features must be a \(N, 4\) tensor, got \(5, 3\)"):
        module(torch.zeros(5, 3), torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match=r"inverse must have shape \(N,\) = \(5,\)"):
        module(torch.zeros(5, 4), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="dim must be a positive integer"):
        TemporalAttention(0)


# --- fitting on a toy: occluded frames ----------------------------------------------------------

DIM = 16


def occluded_tracklets(n_ids, seed, cams=2, frames=8):
    """Tracklets of unit identity vectors plus noise; in each, 1 to 7 of the 8 frames are
    occluded: a shared occluder vector plus strong noise, no identity at all. Returns
    frame features, tracklet ids, pids, camids and the occluded-frame mask."""
    rng = np.random.default_rng(seed)
    occluder = np.eye(DIM)[0] * 2.0  # shared by every split: what the attention can learn
    identity = rng.normal(size=(n_ids, DIM))
    identity[:, 0] = 0
    identity /= np.linalg.norm(identity, axis=1, keepdims=True)
    feats, trk, pids, cams_col, hidden = [], [], [], [], []
    for p in range(n_ids):
        for c in range(cams):
            occluded = rng.permutation(frames) < rng.integers(1, 8)
            clean = identity[p] + 0.3 * rng.normal(size=(frames, DIM))
            noise = occluder + rng.normal(size=(frames, DIM))
            feats.append(np.where(occluded[:, None], noise, clean))
            hidden.append(occluded)
            trk += [p * cams + c] * frames
            pids += [p + 1] * frames
            cams_col += [c] * frames
    return (torch.from_numpy(np.concatenate(feats)).float(), np.asarray(trk),
            np.asarray(pids), np.asarray(cams_col), np.concatenate(hidden))


def _split_cameras(data):
    feats, trk, pids, cams, _ = data
    q, g = cams == 0, cams == 1
    return (feats[q], trk[q], pids[q], cams[q], feats[g], trk[g], pids[g], cams[g])


def test_fit_attention_downweights_occluded_frames_and_beats_averaging():
    train = occluded_tracklets(32, seed=0, cams=4)
    labels = tracklet_labels(train[2], train[1])  # the pid of each tracklet
    fit = functools.partial(fit_temporal_attention, train[0], train[1], labels, epochs=20,
                            lr=3e-3, seed=0, batch=8, hidden=16)
    module = fit()
    again = fit()
    for a, b in zip(module.state_dict().values(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b)  # seeded: the same weights twice

    test = occluded_tracklets(30, seed=1)
    feats, trk = test[0], test[1]
    with torch.no_grad():
        weights = module.weights(F.normalize(feats, dim=1), torch.from_numpy(trk),
                                 int(trk.max()) + 1)
    occluded = torch.from_numpy(test[4])
    assert weights[occluded].mean() < 0.5 * weights[~occluded].mean()  # measured: 0.38

    average = evaluate_tracklets(*_split_cameras(test), pool=temporal_average)
    attention = evaluate_tracklets(*_split_cameras(test), pool=module)
    assert attention["mAP"] > average["mAP"] + 0.1  # measured: 0.815 against 0.607


def test_fit_attention_errors():
    feats, trk = torch.zeros(6, 3), np.array([0, 0, 1, 1, 2, 2])
    with pytest.raises(ValueError, match=r"one class per tracklet.*\(3,\)"):
        fit_temporal_attention(feats, trk, [0, 1], epochs=1)
    with pytest.raises(ValueError, match="every tracklet is unlabelled"):
        fit_temporal_attention(feats, trk, [-1, -1, -1], epochs=1)
    with pytest.raises(ValueError, match="epochs must be a positive integer"):
        fit_temporal_attention(feats, trk, [0, 1, 0], epochs=0)


# --- tracklet-level evaluation ----------------------------------------------------------------

def test_evaluate_tracklets_hand_made_case():
    """One query tracklet (pid 1, camera 0) at 0. Gallery tracklets by distance: pid 1 in
    camera 0 (ignored), pid 2 (negative), junk (ignored), pid 1 in camera 1 (hit at rank
    2), a distractor pid 0 (negative), pid 1 in camera 2 (hit at rank 4):
    AP = (1/2 + 2/4) / 2 = 0.5, first match at rank 2."""
    q_feat = torch.tensor([[-1.0], [1.0]])
    g_values = [0.1, 0.1, 0.5, 0.3, 0.6, 0.6, 0.8, 1.0, 2.0, 2.0, 3.0, 3.0]
    g_feat = torch.tensor(g_values)[:, None]
    g_trk = np.repeat([10, 11, 12, 13, 14, 15], 2)
    g_pids = np.repeat([1, 2, -1, 1, 0, 1], 2)
    g_cams = np.repeat([0, 1, 1, 1, 2, 2], 2)
    plain = functools.partial(temporal_average, normalise=False)
    out = evaluate_tracklets(q_feat, [4, 4], [1, 1], [0, 0], g_feat, g_trk, g_pids, g_cams,
                             pool=plain, metric="euclidean", max_rank=5)
    assert out["mAP"] == pytest.approx(0.5)
    assert out["cmc"].tolist() == [0.0, 1.0, 1.0, 1.0, 1.0]
    assert out["gallery_tracklets"].tolist() == [10, 11, 12, 13, 14, 15]
    assert out["gallery_pids"].tolist() == [1, 2, -1, 1, 0, 1]
    torch.testing.assert_close(out["distmat"], torch.tensor([[0.1, 0.4, 0.6, 0.9, 2.0, 3.0]]))
    torch.testing.assert_close(out["query_features"], torch.tensor([[0.0]]))


def test_evaluate_tracklets_matches_brute_force():
    rng = np.random.default_rng(4)

    def side(n_trk, seed, offset):
        per = rng.integers(1, 5, n_trk)
        trk = np.repeat(np.arange(n_trk) + offset, per)
        pids = np.repeat(rng.integers(-1, 6, n_trk), per)
        cams = np.repeat(rng.integers(0, 3, n_trk), per)
        return _rand(len(trk), 8, seed=seed), trk, pids, cams

    q, g = side(15, 10, 0), side(60, 11, 100)
    q = (q[0], q[1], np.abs(q[2]) + 1, q[3])  # query pids >= 1
    for pool in (temporal_average, TemporalAttention(8, 4).double()):
        out = evaluate_tracklets(*q, *g, pool=pool, metric="euclidean")
        pq, _ = temporal_average(q[0], q[1])
        pg, _ = temporal_average(g[0], g[1])
        mean_ap, first = brute_force_map(pq, tracklet_labels(q[2], q[1]),
                                         tracklet_labels(q[3], q[1]), pg,
                                         tracklet_labels(g[2], g[1]), tracklet_labels(g[3], g[1]))
        assert out["mAP"] == pytest.approx(mean_ap)
        assert out["num_valid_queries"] == len(first)
        assert out["cmc"][0] == pytest.approx(np.mean(first == 1))
        assert out["cmc"][4] == pytest.approx(np.mean(first <= 5))


def test_evaluate_tracklets_errors():
    f, t, p, c = torch.zeros(4, 2), [0, 0, 1, 1], [1, 1, 2, 2], [0, 0, 1, 1]
    with pytest.raises(ValueError, match=r"gallery_pids must have shape \(N,\) = \(4,\)"):
        evaluate_tracklets(f, t, p, c, f, t, [1, 2, 3], c)
    with pytest.raises(ValueError, match=r"query_pids differ within 1 tracklet\(s\)"):
        evaluate_tracklets(f, t, [1, 1, 2, 3], c, f, t, p, c)
    with pytest.raises(ValueError, match="metric must be one of"):
        evaluate_tracklets(f, t, p, c, f, t, p, c, metric="manhattan")
    with pytest.raises(ValueError, match="images without tracklets"):
        evaluate_tracklets(f, [0, 0, -1, 1], p, c, f, t, p, c)


def test_evaluate_video_on_colour_tracklets():
    """A model whose embedding is the mean normalised colour: features computed by hand."""
    rng = np.random.default_rng(5)
    colours = rng.integers(0, 256, (4, 3))
    pids = np.repeat([1, 2, 3, 4, 1, 2, 3, 4], 3)
    cams = np.repeat([0, 0, 0, 0, 1, 1, 1, 1], 3)
    trk = np.repeat(np.arange(8), 3)
    images = np.clip(colours[pids - 1][:, None, None, :] + rng.normal(0, 40, (24, 8, 4, 3)),
                     0, 255).astype(np.uint8)
    world = ImageSet(images, pids, cams, tracklets=trk)
    model = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 3))
    with torch.no_grad():
        model[2].weight.copy_(torch.eye(3))
        model[2].bias.zero_()
    query, gallery = world.subset(cams == 0), world.subset(cams == 1)
    out = evaluate_video(model, query, gallery)

    x = (images / 255.0 - np.asarray(IMAGENET_MEAN)) / np.asarray(IMAGENET_STD)
    frames = torch.from_numpy(x.mean(axis=(1, 2)))
    expected = mean_reference(frames[cams == 1], trk[cams == 1], normalise=True)
    torch.testing.assert_close(out["gallery_features"].double(), expected, atol=1e-5, rtol=0)
    pooled_q = mean_reference(frames[cams == 0], trk[cams == 0], normalise=True)
    mean_ap, _ = brute_force_map(pooled_q, [1, 2, 3, 4], [0] * 4, expected, [1, 2, 3, 4], [1] * 4)
    assert out["mAP"] == pytest.approx(mean_ap, abs=1e-6)
    with pytest.raises(ValueError, match="query must be an ImageSet"):
        evaluate_video(model, images, gallery)
    with pytest.raises(ValueError, match="images without tracklets"):
        evaluate_video(model, ImageSet(images, pids, cams), gallery)
