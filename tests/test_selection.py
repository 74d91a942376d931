"""DCML credible-sample selection (survey §3.2): scores against brute-force numpy loops."""

import numpy as np
import pytest
import torch

from reidlib.feature_learning.selection import (
    credible_mask,
    knn_agreement,
    knn_similarity,
    prototype_similarity,
)


def blobs(n=90, dim=8, n_clusters=5, spread=0.5, outliers=0.1, seed=0):
    """Clustered features and noisy pseudo-labels: some labels wrong, some -1."""
    rng = np.random.default_rng(seed)
    true = rng.integers(0, n_clusters, n)
    x = rng.normal(size=(n_clusters, dim))[true] + spread * rng.normal(size=(n, dim))
    labels = true.copy()
    wrong = rng.random(n) < 0.1
    labels[wrong] = rng.integers(0, n_clusters, wrong.sum())
    labels[rng.random(n) < outliers] = -1
    return x.astype(np.float32), labels


def unit(x):
    x = np.asarray(x, dtype=np.float64)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def ref_knn_similarity(x, labels, k):
    x, out = unit(x), np.full(len(x), np.nan)
    for i in range(len(x)):
        if labels[i] < 0:
            continue
        sims = [float(x[i] @ x[j]) for j in range(len(x)) if j != i and labels[j] == labels[i]]
        if sims:
            out[i] = np.mean(sorted(sims, reverse=True)[:k])
    return out


def ref_knn_agreement(x, labels, k):
    x, out = unit(x), np.full(len(x), np.nan)
    for i in range(len(x)):
        if labels[i] < 0:
            continue
        others = [j for j in range(len(x)) if j != i]
        nearest = sorted(others, key=lambda j: -float(x[i] @ x[j]))[:k]
        out[i] = np.mean([labels[j] == labels[i] for j in nearest])
    return out


def ref_prototype_similarity(x, labels):
    x, out = unit(x), np.full(len(x), np.nan)
    for i in range(len(x)):
        if labels[i] >= 0:
            proto = x[labels == labels[i]].mean(axis=0)
            out[i] = x[i] @ proto / np.linalg.norm(proto)
    return out


@pytest.mark.parametrize("k", [1, 3, 10, 40])  # 40: more than any cluster holds
def test_knn_similarity_matches_brute_force(k):
    x, labels = blobs()
    labels[labels == 4] = -1
    labels[0] = 7  # a singleton cluster: no same-label neighbour
    got = knn_similarity(x, labels, k)
    want = ref_knn_similarity(x, labels, k)
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert np.isnan(got[labels == -1]).all() and np.isnan(got[0])


@pytest.mark.parametrize("k", [1, 5, 89])
def test_knn_agreement_matches_brute_force(k):
    x, labels = blobs()
    np.testing.assert_allclose(knn_agreement(x, labels, k), ref_knn_agreement(x, labels, k),
                               atol=1e-12)


def test_prototype_similarity_matches_brute_force():
    x, labels = blobs(seed=3)
    got = prototype_similarity(x, labels)
    np.testing.assert_allclose(got, ref_prototype_similarity(x, labels), atol=1e-6)
    assert np.isnan(got[labels == -1]).all()


def test_scores_are_cosine_scale_invariant_and_accept_tensors():
    x, labels = blobs(seed=1)
    scaled = x * np.random.default_rng(0).uniform(0.1, 10, (len(x), 1)).astype(np.float32)
    t_x, t_labels = torch.from_numpy(scaled), torch.from_numpy(labels)
    for fn in (knn_similarity, knn_agreement):
        np.testing.assert_allclose(fn(t_x, t_labels, 4), fn(x, labels, 4), atol=1e-5)
    np.testing.assert_allclose(prototype_similarity(t_x, t_labels), prototype_similarity(x, labels),
                               atol=1e-6)


def test_hand_made_intruder_is_not_credible():
    """Two tight clusters; sample 4 is labelled 0 but lies in cluster 1 (a wrong merge)."""
    x = np.array([[1, 0.05], [1, -0.05], [1, 0.0], [0.98, 0.02],  # cluster 0
                  [0.02, 1.0],  # labelled 0, looks like cluster 1
                  [0.05, 1], [-0.05, 1], [0.0, 1.0], [0.5, 0.5]], dtype=np.float32)
    labels = np.array([0, 0, 0, 0, 0, 1, 1, 1, -1])
    expected = np.array([True] * 4 + [False] + [True] * 3 + [False])
    np.testing.assert_array_equal(credible_mask(x, labels, k=2, knn_threshold=0.9), expected)
    np.testing.assert_array_equal(credible_mask(x, labels, proto_threshold=0.8), expected)
    # the intruder's prototype similarity by hand: cos(x4, mean of the unit rows of cluster 0)
    u = unit(x[:5])
    proto = u.mean(0) / np.linalg.norm(u.mean(0))
    assert prototype_similarity(x, labels)[4] == pytest.approx(u[4] @ proto, abs=1e-6)
    # its 2 nearest neighbours overall carry label 1: agreement 0
    assert knn_agreement(x, labels, 2)[4] == 0.0
    np.testing.assert_array_equal(
        credible_mask(x, labels, k=2, knn_threshold=0.5, knn="agreement"), expected)


def test_credible_mask_combines_thresholds():
    x, labels = blobs(seed=2)
    knn = ref_knn_similarity(x, labels, 5)
    proto = ref_prototype_similarity(x, labels)
    agree = ref_knn_agreement(x, labels, 5)
    with np.errstate(invalid="ignore"):
        want = (knn >= 0.8) & (proto >= 0.85)
        want_agree = agree >= 0.6
    got = credible_mask(x, labels, k=5, knn_threshold=0.8, proto_threshold=0.85)
    assert got.dtype == bool and got.shape == labels.shape
    np.testing.assert_array_equal(got, want)
    assert 0 < got.sum() < (labels >= 0).sum()  # the thresholds really select
    np.testing.assert_array_equal(
        credible_mask(x, labels, k=5, knn_threshold=0.6, knn="agreement"), want_agree)
    np.testing.assert_array_equal(credible_mask(x, labels), labels >= 0)


def test_errors():
    x, labels = blobs(n=20)
    with pytest.raises(ValueError, match=r"labels must have shape \(N,\) = \(20,\)"):
        knn_similarity(x, labels[:-1])
    with pytest.raises(ValueError, match=r"2-D \(N, D\)"):
        prototype_similarity(x[0], labels)
    with pytest.raises(TypeError, match="labels must be integers"):
        prototype_similarity(x, labels.astype(float))
    with pytest.raises(ValueError, match="-1 for outliers"):
        prototype_similarity(x, labels - 5)
    with pytest.raises(ValueError, match="NaN"):
        knn_similarity(np.full_like(x, np.nan), labels)
    with pytest.raises(ValueError, match="norm 0"):
        knn_similarity(np.zeros_like(x), labels)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        knn_similarity(x, labels, k=0)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        knn_similarity(x, labels, k=2.5)
    with pytest.raises(ValueError, match=r"k <= N - 1 = 19"):
        knn_agreement(x, labels, k=20)
    with pytest.raises(ValueError, match="knn must be one of"):
        credible_mask(x, labels, knn="density")
    with pytest.raises(ValueError, match="proto_threshold must be a finite number"):
        credible_mask(x, labels, proto_threshold="high")
    with pytest.raises(ValueError, match="knn_threshold must be a finite number"):
        credible_mask(x, labels, knn_threshold=float("nan"))
