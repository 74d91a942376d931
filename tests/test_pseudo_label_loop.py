"""The cluster -> train -> re-cluster loop (survey §3.1) on a tiny learnable ImageSet (CPU)."""

from collections import Counter

import numpy as np
import pytest
import torch
from fakes import colour_identity_set

from reidlib.data.imageset import ImageSet
from reidlib.models import build_model
from reidlib.pseudo_labels import kmeans_labels, label_quality
from reidlib.pseudo_labels.loop import (
    drop_small_clusters,
    majority_correct,
    pseudo_label_rounds,
)
from reidlib.training import PseudoLabelClassification

QUALITY_KEYS = {"n_clusters", "n_identities", "outlier_share", "nmi", "ari",
                "pairwise_precision", "pairwise_recall", "pairwise_f", "purity",
                "single_camera_share"}


def tiny_set(n_ids=12, per_id=6, cams=3, size=(32, 16), seed=0):
    return colour_identity_set(n_ids, per_id, cams, size, seed)


def small_model(seed=0):
    torch.manual_seed(seed)
    return build_model("small")


def brute_force_correct(labels, pids):
    """Per point: is its pid the most common pid of its cluster (smallest pid on ties)?"""
    out = []
    for label, pid in zip(labels, pids, strict=True):
        if label == -1:
            out.append(False)
            continue
        members = [q for l2, q in zip(labels, pids, strict=True) if l2 == label]
        counts = Counter(members)
        majority = max(sorted(counts), key=lambda q: counts[q])  # first max = smallest pid
        out.append(pid == majority)
    return np.array(out)


@pytest.fixture
def captured(monkeypatch):
    """Spy on the method's loss: the (rows, labels) of every batch the loop trains on."""
    calls = []
    real = PseudoLabelClassification.loss

    def spy(self, batch):
        calls.append((batch.indices.numpy().copy(), batch.labels.numpy().copy()))
        return real(self, batch)

    monkeypatch.setattr(PseudoLabelClassification, "loss", spy)
    return calls


def test_two_rounds_with_kmeans(captured):
    train = tiny_set()
    model = small_model()
    before = [p.detach().clone() for p in model.backbone.parameters()]
    rounds = pseudo_label_rounds(model, train, lambda f: kmeans_labels(f, 12, seed=0),
                                 rounds=2, epochs_per_round=1, p=4, k=4, lr=3.5e-4,
                                 progress=False)
    assert [r.round for r in rounds] == [0, 1]
    per_round = len(captured) // 2
    assert per_round > 0 and len(captured) == 2 * per_round
    for i, r in enumerate(rounds):
        batches = captured[i * per_round:(i + 1) * per_round]
        n = len(train)
        assert r.features.dtype == np.float32 and r.features.shape[0] == n
        np.testing.assert_allclose(np.linalg.norm(r.features, axis=1), 1.0, atol=1e-5)
        assert r.labels.shape == (n,) and r.train_seconds > 0
        assert set(r.quality) == QUALITY_KEYS
        assert r.quality == pytest.approx(label_quality(r.labels, train.pids, train.camids),
                                          nan_ok=True)
        snap = r.snapshot
        assert snap.features.shape == r.features.shape
        for arr in (snap.pid, snap.camid, snap.pseudo_label, snap.correct):
            assert arr.shape == (n,)
        np.testing.assert_array_equal(snap.pid, train.pids)
        np.testing.assert_array_equal(snap.camid, train.camids)
        np.testing.assert_array_equal(snap.pseudo_label, r.labels)
        np.testing.assert_array_equal(snap.correct, brute_force_correct(r.labels, train.pids))
        # training saw the pseudo-labels of the kept rows, never the true ids
        keep = r.labels != -1
        rows = np.concatenate([b[0] for b in batches])
        assert keep[rows].all() and set(rows) == set(np.flatnonzero(keep))
        for idx, labels in batches:
            np.testing.assert_array_equal(labels, r.labels[idx])
    # the model was trained in place, and round 1 clustered the trained model's features
    assert any(not torch.equal(a, b) for a, b in zip(before, model.backbone.parameters(),
                                                      strict=True))
    assert not np.allclose(rounds[0].features, rounds[1].features)


def test_outliers_and_singletons_are_not_trained_on(captured):
    train = tiny_set()

    def cluster(features):
        labels = np.repeat(np.arange(12), 6)  # the true grouping, under other ids
        labels[[0, 7, 20]] = -1  # DBSCAN-style outliers
        labels[30] = 50  # a cluster of one: must become an outlier
        return labels

    (r,) = pseudo_label_rounds(small_model(), train, cluster, rounds=1, epochs_per_round=1,
                               p=4, k=2, lr=3.5e-4, progress=False)
    expected = cluster(None)
    expected[30] = -1
    keep = expected != -1
    # the labels are the clustering's, renumbered 0..C-1
    np.testing.assert_array_equal(r.labels == -1, ~keep)
    np.testing.assert_array_equal(np.unique(expected[keep], return_inverse=True)[1],
                                  r.labels[keep])
    rows = np.concatenate([idx for idx, _ in captured])
    assert set(rows) == set(np.flatnonzero(keep)) and keep.sum() == len(train) - 4
    assert not r.snapshot.correct[~keep].any() and r.snapshot.correct[keep].all()
    assert r.quality["outlier_share"] == pytest.approx(4 / len(train))


def test_drop_small_clusters_against_brute_force():
    rng = np.random.default_rng(1)
    labels = rng.integers(-1, 15, 40)
    counts = Counter(labels.tolist())
    expected = [-1 if counts[x] < 2 else x for x in labels.tolist()]
    np.testing.assert_array_equal(drop_small_clusters(labels), expected)
    np.testing.assert_array_equal(drop_small_clusters(np.array([-1, -1])), [-1, -1])


def test_majority_correct_hand_case_and_purity():
    labels = np.array([0, 0, 0, 1, 1, 2, 2, -1])
    pids = np.array([5, 5, 7, 3, 4, 9, 9, 5])
    # cluster 0: majority 5; cluster 1: tie 3 / 4 -> 3; cluster 2: 9; the outlier is False
    np.testing.assert_array_equal(majority_correct(labels, pids),
                                  [True, True, False, True, False, True, True, False])
    rng = np.random.default_rng(2)
    labels, pids = rng.integers(-1, 6, 200), rng.integers(0, 9, 200)
    correct = majority_correct(labels, pids)
    np.testing.assert_array_equal(correct, brute_force_correct(labels, pids))
    keep = labels != -1
    assert correct[keep].mean() == pytest.approx(label_quality(labels, pids)["purity"])
    assert not majority_correct(np.full(3, -1), np.arange(3)).any()


@pytest.mark.parametrize(
    ("cluster", "match"),
    [
        (lambda f: np.zeros(len(f) - 1, dtype=int), r"cluster\(features\) must have shape "
                                                    r"\(N,\) = \(72,\)"),
        (lambda f: np.zeros(len(f)), r"must be integers .* got dtype float64"),
        (lambda f: np.full(len(f), -2), "must be >= -1 .* -1 for outliers"),
        (lambda f: np.arange(len(f)) % 3, "needs at least p=4 identities .* found 3"),
    ],
)
def test_bad_clusterings_raise(cluster, match):
    with pytest.raises(ValueError, match=match):
        pseudo_label_rounds(small_model(), tiny_set(), cluster, rounds=1, epochs_per_round=1,
                            p=4, k=2, lr=3.5e-4, progress=False)


def test_bad_arguments_raise():
    train = tiny_set()
    with pytest.raises(ValueError, match="rounds and epochs_per_round must be >= 1"):
        pseudo_label_rounds(small_model(), train, lambda f: kmeans_labels(f, 12), rounds=0,
                            epochs_per_round=1, p=4, k=2, lr=1e-3, progress=False)
    junk = ImageSet(train.images, np.where(np.arange(len(train)) < 2, -1, train.pids),
                    train.camids)
    with pytest.raises(ValueError, match=r"2 junk images .* train.subset\(train.pids >= 0\)"):
        pseudo_label_rounds(small_model(), junk, lambda f: kmeans_labels(f, 12), rounds=1,
                            epochs_per_round=1, p=4, k=2, lr=1e-3, progress=False)
