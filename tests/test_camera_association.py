"""Intra- then inter-camera association (IICS; reidlib.camera.association) against loop and
dense references written here from the paper's code (``cluster.py`` of SY-Xuan/IICS)."""

import functools

import numpy as np
import pytest
import torch
from fakes import colour_identity_set
from kreciprocal_reference import dense_kreciprocal_jaccard
from sklearn.metrics import adjusted_rand_score

from reidlib.camera.association import (
    IICS,
    camera_batches,
    camera_dbscan,
    camera_scores,
    inter_camera_distance,
    inter_camera_jaccard,
    inter_camera_labels,
    intra_camera_labels,
    mix_weight,
    score_jaccard,
)
from reidlib.models import build_model
from reidlib.pseudo_labels import jaccard_distance
from reidlib.training import fit


def as_dense(sparse_result):
    """Absent pairs of a sparse Jaccard result are at distance 1."""
    full = np.ones(sparse_result.shape)
    coo = sparse_result.tocoo()
    full[coo.row, coo.col] = coo.data
    return full


def jaccard_loop(a, b):
    """IICS's score similarity, one pair at a time: sum min / sum max."""
    return sum(min(x, y) for x, y in zip(a, b, strict=True)) / \
        sum(max(x, y) for x, y in zip(a, b, strict=True))


def mixed_distance_loop(x, s, cams, mix):
    """1 - cos(f_i, f_j) - mix [cam_i != cam_j] J(s_i, s_j), pair by pair (float64)."""
    x = np.asarray(x, np.float64)
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    n = len(x)
    d = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            d[i, j] = 1.0 - x[i] @ x[j]
            if cams[i] != cams[j]:
                d[i, j] -= mix * jaccard_loop(s[i], s[j])
    return d


def random_case(n=40, dim=8, cams=3, classes=5, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, dim)).astype(np.float32)
    logits = rng.normal(size=(n, cams * classes))
    s = np.concatenate([np.exp(b) / np.exp(b).sum(1, keepdims=True)
                        for b in np.split(logits, cams, axis=1)], 1).astype(np.float32)
    return x, s, rng.integers(0, cams, n)


def shared_identity_world(ids=4, cams=3, per_cam=3, shift=2.0, seed=0):
    """Features = identity vector + a strong camera vector + noise: a person's images are
    nearer to other people of their camera than to themselves elsewhere. Scores as trained
    per-camera classifiers would give them: each camera's block puts most of its mass on that
    camera's class of the image's identity (class = identity within each camera)."""
    rng = np.random.default_rng(seed)
    dim = 16
    ident, camera = rng.normal(size=(ids, dim)), rng.normal(size=(cams, dim))
    ident /= np.linalg.norm(ident, axis=1, keepdims=True)
    camera /= np.linalg.norm(camera, axis=1, keepdims=True)
    pid = np.repeat(np.arange(ids), cams * per_cam)
    cam = np.tile(np.repeat(np.arange(cams), per_cam), ids)
    x = ident[pid] + shift * camera[cam] + 0.05 * rng.normal(size=(len(pid), dim))
    logits = 4.0 * np.eye(ids)[pid][:, None, :].repeat(cams, 1) \
        + 0.3 * rng.normal(size=(len(pid), cams, ids))
    s = np.exp(logits) / np.exp(logits).sum(2, keepdims=True)
    return x.astype(np.float32), s.reshape(len(pid), -1).astype(np.float32), cam, pid


# --- stage 1 --------------------------------------------------------------------------------

def test_intra_camera_clustering_never_mixes_cameras():
    # the same three points in every camera: a global clustering would join the cameras
    base = np.eye(3, dtype=np.float32)
    x = np.tile(base, (4, 1))
    cams = np.repeat([5, 2, 7, 2], 3)  # camera 2 holds two copies

    def by_argmax(f):  # the "clustering": each row's largest coordinate; last row an outlier
        out = f.argmax(1)
        out[-1] = -1
        return out

    got = intra_camera_labels(x, cams, by_argmax)
    for label in np.unique(got[got >= 0]):
        assert len(np.unique(cams[got == label])) == 1
    # within each camera the callable's partition, cameras numbered in sorted order:
    # camera 2 (rows 3-5, 9-11) -> 0, 1, 2, 0, 1, -1; camera 5 (3 ids after camera 2's
    # three) -> 3, 4, -1; camera 7 -> 5, 6, -1
    want = np.array([3, 4, -1, 0, 1, 2, 5, 6, -1, 0, 1, -1])
    np.testing.assert_array_equal(got, want)


def test_camera_dbscan_finds_each_cameras_identities():
    x, _, cams, pid = shared_identity_world()
    labels = intra_camera_labels(x, cams, camera_dbscan(eps=0.5, min_samples=2, k1=3, k2=1))
    for cam in np.unique(cams):
        rows = cams == cam
        assert adjusted_rand_score(pid[rows], labels[rows]) == pytest.approx(1.0)
    assert len(np.unique(labels)) == 12  # 4 identities x 3 cameras, never joined


# --- the inter-camera similarity ------------------------------------------------------------

def test_score_jaccard_by_hand_and_against_a_loop():
    a = torch.tensor([[0.5, 0.5, 1.0, 0.0]])
    b = torch.tensor([[0.25, 0.75, 0.0, 1.0]])
    # sum min = 0.25 + 0.5 = 0.75, sum max = 0.5 + 0.75 + 1 + 1 = 3.25
    assert score_jaccard(a, b).item() == pytest.approx(0.75 / 3.25)
    _, s, _ = random_case(n=12)
    got = score_jaccard(torch.from_numpy(s[:5]), torch.from_numpy(s)).numpy()
    want = np.array([[jaccard_loop(s[i], s[j]) for j in range(12)] for i in range(5)])
    np.testing.assert_allclose(got, want, rtol=1e-5)
    np.testing.assert_allclose(np.diag(got[:, :5]), 1.0, rtol=1e-6)


def test_inter_camera_distance_against_a_loop():
    x, s, cams = random_case(n=20)
    got = inter_camera_distance(x, s, cams, mix=0.3).numpy()
    np.testing.assert_allclose(got, mixed_distance_loop(x, s, cams, 0.3), atol=1e-5)
    same = cams[:, None] == cams[None, :]  # the score term only ever touches other cameras
    np.testing.assert_allclose(got[same], mixed_distance_loop(x, s, cams, 0.0)[same], atol=1e-5)


def test_camera_scores_concatenate_each_cameras_softmax():
    torch.manual_seed(0)
    heads = torch.nn.ModuleList([torch.nn.Linear(4, 3), torch.nn.Linear(4, 2)])
    pooled = torch.randn(5, 4)
    got = camera_scores(heads, pooled)
    assert got.shape == (5, 5)
    np.testing.assert_allclose(got[:, :3].sum(1), 1.0, rtol=1e-6)
    torch.testing.assert_close(got[:, 3:], torch.softmax(heads[1](pooled), 1))


@pytest.mark.parametrize("k1, k2", [(10, 4), (6, 1), (15, 6)])
def test_inter_camera_jaccard_without_scores_is_the_librarys_jaccard(k1, k2):
    x, s, cams = random_case(n=60, seed=1)
    got = as_dense(inter_camera_jaccard(x, s, cams, mix=0.0, k1=k1, k2=k2))
    want = jaccard_distance(x, k1=k1, k2=k2, dense=True, progress=False)
    np.testing.assert_allclose(got, want, atol=1e-5)


@pytest.mark.parametrize("mix, k1, k2", [(0.5, 8, 3), (2.0, 10, 1), (0.05, 12, 6)])
def test_inter_camera_jaccard_against_a_dense_reference(mix, k1, k2):
    x, s, cams = random_case(n=45, seed=2)
    d = 2.0 * mixed_distance_loop(x, s, cams, mix)
    ordered = np.sort(d + np.diag(np.full(len(d), -np.inf)), axis=1)[:, 1:k1 + 2]
    assert np.diff(ordered, axis=1).min() > 1e-5, "near-ties in the toy data"
    got = as_dense(inter_camera_jaccard(x, s, cams, mix=mix, k1=k1, k2=k2))
    np.testing.assert_allclose(got, dense_kreciprocal_jaccard(d, k1, k2), atol=1e-5)
    cut = as_dense(inter_camera_jaccard(x, s, cams, mix=mix, k1=k1, k2=k2, max_distance=0.5))
    np.testing.assert_allclose(cut, np.where(got <= 0.5, got, 1.0), atol=1e-6)


def test_association_joins_the_per_camera_clusters_of_one_person():
    x, s, cams, pid = shared_identity_world()
    intra = intra_camera_labels(x, cams, camera_dbscan(eps=0.5, min_samples=2, k1=3, k2=1))
    assert len(np.unique(intra)) == 12  # stage 1: 4 people in each of 3 cameras
    joined = inter_camera_labels(x, s, cams, mix=1.0, eps=0.5, min_samples=2, k1=10, k2=1)
    assert adjusted_rand_score(pid, joined) == pytest.approx(1.0)
    for label in np.unique(intra):  # each per-camera cluster went whole into one
        assert len(np.unique(joined[intra == label])) == 1
    # without the score term the camera, not the person, decides
    alone = inter_camera_labels(x, s, cams, mix=0.0, eps=0.5, min_samples=2, k1=10, k2=1)
    assert adjusted_rand_score(pid, alone) < 0.5


def test_mix_weight_decays_as_iics():
    assert mix_weight(0.02, 0, 40) == pytest.approx(0.02)
    assert mix_weight(0.02, 20, 40) == pytest.approx(0.02 * 0.5 ** 0.6)
    assert mix_weight(0.02, 40, 40) == 0.0
    assert mix_weight(0.02, 45, 40) == 0.0


# --- intra-camera batches -------------------------------------------------------------------

def test_camera_batches_hold_the_same_share_of_every_camera():
    cams = np.repeat([0, 1, 4], [10, 7, 3])
    labels = np.arange(20) % 5
    labels[[0, 11]] = -1
    batches = camera_batches(labels, cams, per_camera=3, seed=0, epoch=2)
    assert len(batches) == 1  # camera 4: 3 labelled images = one share
    big = camera_batches(labels, cams, per_camera=2, seed=0, epoch=2)
    assert len(big) == 1 and len(big[0]) == 6  # camera 4 has 3 // 2 = 1 share
    for per_camera in (2, 3, 5):
        out = camera_batches(labels, cams, per_camera=per_camera, seed=1, epoch=0)
        for rows in out:
            assert (labels[rows] >= 0).all()
            np.testing.assert_array_equal(np.bincount(cams[rows], minlength=5)[[0, 1, 4]],
                                          per_camera)  # camera 4 topped up when short
    again = camera_batches(labels, cams, per_camera=3, seed=0, epoch=2)
    assert all(np.array_equal(a, b) for a, b in zip(batches, again, strict=True))
    rows = np.concatenate(camera_batches(labels, cams, per_camera=1, seed=0, epoch=0))
    assert len(rows) == 3 * 3 and len(np.unique(rows)) == 9  # without replacement


# --- the method, through fit ----------------------------------------------------------------

def small_iics(train, **kw):
    torch.manual_seed(0)
    settings = {"per_camera": 4, "eps": 0.7, "min_samples": 2, "intra_eps": 0.7,
                "intra_min_samples": 2, "k1": 4, "k2": 2, "rounds": 2}
    return IICS(build_model("small"), train, **{**settings, **kw})


@pytest.mark.parametrize("bf16", [False, True])
def test_iics_alternates_intra_and_inter_camera_stages_through_fit(bf16, monkeypatch):
    if bf16:  # the CUDA path (bf16 autocast in training and extraction), run on the CPU
        import reidlib.camera.association as module
        import reidlib.training.features as features
        forced = functools.partial(features.autocast_for, enabled=True)
        for m in (module, features):
            monkeypatch.setattr(m, "autocast_for", forced)
    train = colour_identity_set(n_ids=6, per_id=6, cams=3, size=(32, 16), seed=0)
    iics = small_iics(train)
    seen = []
    history = fit(iics, train, cluster=iics.cluster, epochs=2, p=2, k=2, lr=1e-3,
                  progress=False, on_epoch_end=lambda e: seen.append(
                      (iics.stage, len(iics.heads), iics.model.num_classes)))
    intra, inter = history[0], history[1]
    assert [s[0] for s in seen] == ["intra", "inter"]
    assert seen[0][1] == 3 and seen[0][2] == 0  # a classifier per camera, no global one
    assert seen[1][1] == 0 and seen[1][2] > 0  # then one global classifier
    for label in np.unique(intra.labels[intra.labels >= 0]):
        assert len(np.unique(train.camids[intra.labels == label])) == 1
    assert set(intra.losses) == {"loss", "intra_ce"}
    assert set(inter.losses) == {"loss", "ce", "triplet"}
    assert all(np.isfinite(v) for e in history for v in e.losses.values())
    assert iics.round == 1


def test_iics_state_dict_restores_the_per_camera_classifiers():
    train = colour_identity_set(n_ids=6, per_id=6, cams=3, size=(32, 16), seed=0)
    iics = small_iics(train)
    fit(iics, train, cluster=iics.cluster, epochs=1, p=2, k=2, lr=1e-3, progress=False)
    state = iics.state_dict()
    other = small_iics(train)
    other.load_state_dict(state)
    assert other.stage == "intra" and other.next_stage() == "inter"
    for a, b in zip(iics.heads.state_dict().values(), other.heads.state_dict().values(),
                    strict=True):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(other._head_of_class, iics._head_of_class)
    # the inter-camera clustering runs from the restored classifiers
    features = other.cluster_features()
    assert features.shape == (len(train), other.model.feature_dim)
    assert other._scores.shape == (len(train), sum(h[1].out_features for h in other.heads))


# --- argument checks ------------------------------------------------------------------------

def test_argument_checks_are_clear():
    x, s, cams = random_case(n=10)
    with pytest.raises(ValueError, match="camids"):
        inter_camera_distance(x, s, cams[:5], mix=0.1)
    with pytest.raises(ValueError, match="one row per feature row"):
        inter_camera_distance(x, s[:5], cams, mix=0.1)
    with pytest.raises(ValueError, match="non-negative"):
        inter_camera_distance(x, -s, cams, mix=0.1)
    with pytest.raises(ValueError, match="mix"):
        inter_camera_distance(x, s, cams, mix=-1.0)
    with pytest.raises(ValueError, match="k1"):
        inter_camera_jaccard(x, s, cams, mix=0.1, k1=11)
    with pytest.raises(ValueError, match="per_camera"):
        camera_batches(np.zeros(4, int), np.zeros(4, int), per_camera=0, seed=0, epoch=0)
    with pytest.raises(ValueError, match="labelled rows"):
        camera_batches(np.full(4, -1), np.zeros(4, int), per_camera=2, seed=0, epoch=0)
    with pytest.raises(ValueError, match="camids"):
        intra_camera_labels(x, cams[:3], camera_dbscan())
    train = colour_identity_set(n_ids=2, per_id=4, cams=2, size=(32, 16))
    with pytest.raises(ValueError, match="per_camera"):
        IICS(build_model("small"), train, per_camera=1)
    with pytest.raises(ValueError, match="ImageSet"):
        IICS(build_model("small"), np.zeros(4))
    iics = IICS(build_model("small"), train)
    with pytest.raises(RuntimeError, match="cluster_features"):
        iics.stage = "intra"
        iics.cluster(np.ones((len(train), 4), np.float32))
