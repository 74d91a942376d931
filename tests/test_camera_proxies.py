"""CAP's camera-aware proxies and ICE's inter-instance terms against loop references.

The references are written per sample in float64 from the papers' equations (and CAP's /
ICE's code where it differs), building proxies and centroids from the raw inputs, not from
the memory's buffers.
"""

import functools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from fakes import colour_identity_set

from reidlib.camera import cap, ice
from reidlib.camera.cap import (
    CAP,
    CameraProxyMemory,
    camera_proxies,
    hard_negatives,
    inter_camera_loss,
    intra_camera_loss,
    proxy_balanced_batches,
    proxy_labels,
)
from reidlib.camera.ice import (
    ICE,
    cluster_centroids,
    hard_instance_loss,
    more_camera_batches,
    soft_instance_consistency,
)
from reidlib.models import build_model
from reidlib.training import fit
from reidlib.training.features import autocast_for

TAU = 0.1
N, D = 18, 5
# clusters 7, 3, 5 (ids not contiguous) and outliers over cameras 2, 0, 4 (not contiguous);
# cluster 5 is never seen by camera 4
LABELS = np.array([7, 7, 3, -1, 5, 3, 7, 5, 3, 7, -1, 3, 5, 7, 3, 5, 7, 3])
CAMIDS = np.array([2, 0, 4, 2, 0, 0, 4, 2, 2, 2, 4, 4, 0, 0, 2, 2, 4, 0])
BATCH = torch.tensor([0, 6, 2, 9, 5, 11, 1, 12, 8, 16])  # clustered rows, several cameras


def _rand(n, d, seed):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


def _unit(v):
    return v / v.norm()


# --- references -------------------------------------------------------------------------------

def proxies_reference(features, labels, camids):
    """{(camera, cluster id): unit mean of the unit features}, in (camera, cluster) order."""
    members = {}
    for f, y, c in zip(features.double(), labels, camids, strict=True):
        if y != -1:
            members.setdefault((int(c), int(y)), []).append(_unit(f))
    return {key: _unit(torch.stack(v).mean(0)) for key, v in sorted(members.items())}


def per_camera_sum(values, cams):
    """CAP's reduction: sum over the batch's cameras of the mean over that camera."""
    total = 0
    for c in sorted(set(cams)):
        group = [v for v, cc in zip(values, cams, strict=True) if cc == c]
        total = total + sum(group) / len(group)
    return total


def intra_reference(features, labels, camids, emb, indices, tau=TAU):
    table = proxies_reference(features, labels, camids)
    losses, cams = [], []
    for e, i in zip(emb, indices.tolist(), strict=True):
        x, c, y = _unit(e.double()), int(camids[i]), int(labels[i])
        own = [key for key in table if key[0] == c]
        logits = torch.stack([table[key] @ x / tau for key in own])
        losses.append(torch.logsumexp(logits, 0) - logits[own.index((c, y))])
        cams.append(c)
    return per_camera_sum(losses, cams)


def picked_negatives(table, x, y, k):
    """The k proxies of other clusters most similar to x (a sort, as CAP's code)."""
    others = [key for key in table if key[1] != y]
    return sorted(others, key=lambda key: -float((table[key] @ x).detach()))[:k]


def inter_reference(features, labels, camids, emb, indices, k, tau=TAU):
    table = proxies_reference(features, labels, camids)
    losses, cams = [], []
    for e, i in zip(emb, indices.tolist(), strict=True):
        x, y = _unit(e.double()), int(labels[i])
        positives = [key for key in table if key[1] == y]
        chosen = positives + picked_negatives(table, x, y, k)
        norm = torch.logsumexp(torch.stack([table[key] @ x / tau for key in chosen]), 0)
        losses.append(sum(norm - table[p] @ x / tau for p in positives) / len(positives))
        cams.append(int(camids[i]))
    return per_camera_sum(losses, cams)


def sequential_update(bank, rows, emb, momentum):
    bank = bank.double().clone()
    for r, e in zip(rows, emb.double(), strict=True):
        bank[r] = _unit(momentum * bank[r] + (1 - momentum) * _unit(e))
    return bank


# --- proxies ----------------------------------------------------------------------------------

def test_proxies_are_per_cluster_and_camera_means():
    features = _rand(N, D, 0) * 3  # not unit length: normalised first, as CAP's features
    proxies, row_proxy, proxy_cluster, proxy_camera = camera_proxies(features, LABELS, CAMIDS)
    table = proxies_reference(features, LABELS, CAMIDS)
    assert len(proxies) == len(table) == 8  # 3 cameras x 3 clusters, minus (4, cluster 5)
    torch.testing.assert_close(proxies, torch.stack(list(table.values())).float())
    cluster_index = {3: 0, 5: 1, 7: 2}
    assert [(int(c), int(y)) for c, y in zip(proxy_camera, proxy_cluster, strict=True)] == \
        [(c, cluster_index[y]) for c, y in table]
    keys = list(table)
    for r in range(N):
        expected = -1 if LABELS[r] == -1 else keys.index((CAMIDS[r], LABELS[r]))
        assert int(row_proxy[r]) == expected


def test_proxy_labels_handle_outliers_and_a_cluster_in_one_camera():
    row_proxy, proxy_cluster, proxy_camera = proxy_labels([4, 4, -1, 9], [1, 3, 1, 1])
    assert row_proxy.tolist() == [0, 2, -1, 1]  # camera 1: clusters 4, 9; camera 3: 4
    assert proxy_cluster.tolist() == [0, 1, 0] and proxy_camera.tolist() == [1, 1, 3]


# --- losses -----------------------------------------------------------------------------------

def test_intra_loss_matches_loop_reference():
    features, emb = _rand(N, D, 1), _rand(len(BATCH), D, 2)
    memory = CameraProxyMemory(features, LABELS, CAMIDS, temperature=TAU)
    ref = intra_reference(features, LABELS, CAMIDS, emb, BATCH)
    assert memory.intra_loss(emb, BATCH).item() == pytest.approx(float(ref), rel=1e-5)


@pytest.mark.parametrize("k", [1, 2, 3, 50])
def test_inter_loss_matches_loop_reference(k):
    features, emb = _rand(N, D, 3), _rand(len(BATCH), D, 4)
    memory = CameraProxyMemory(features, LABELS, CAMIDS, temperature=TAU, k=k)
    ref = inter_reference(features, LABELS, CAMIDS, emb, BATCH, k)
    assert memory.inter_loss(emb, BATCH).item() == pytest.approx(float(ref), rel=1e-5)


@pytest.mark.parametrize("k", [1, 3, 5, 8])
def test_hard_negatives_are_the_most_similar_other_cluster_proxies(k):
    features, emb = _rand(N, D, 5), _rand(len(BATCH), D, 6)
    proxies, _, proxy_cluster, _ = camera_proxies(features, LABELS, CAMIDS)
    table = proxies_reference(features, LABELS, CAMIDS)
    keys = list(table)
    x = F.normalize(emb, dim=1)
    clusters = torch.tensor([{3: 0, 5: 1, 7: 2}[int(LABELS[i])] for i in BATCH])
    positives = clusters[:, None] == proxy_cluster[None, :]
    mask = hard_negatives(x @ proxies.T, positives, k)
    for row, i in enumerate(BATCH.tolist()):
        picked = picked_negatives(table, _unit(emb[row].double()), int(LABELS[i]), k)
        assert sorted(keys.index(key) for key in picked) == \
            torch.nonzero(mask[row]).flatten().tolist()
    assert not (mask & positives).any()


def test_intra_and_inter_hand_case():
    # Two proxies in camera 0 (clusters 0, 1) and one in camera 1 (cluster 0), all unit;
    # x = e1, tau = 1. Intra (camera 0, proxy 0): log(e + e^0) - 1 = log(1 + e^-1).
    proxies = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    x = torch.tensor([[1.0, 0.0]])
    camids = torch.tensor([0])
    intra = intra_camera_loss(x, proxies, torch.tensor([0, 0, 1]), torch.tensor([0]), camids,
                              temperature=1.0)
    assert intra.item() == pytest.approx(math.log1p(math.exp(-1.0)), abs=1e-6)
    # Inter: positives = proxies 0 and 2 (cluster 0), negative = proxy 1 (k = 1):
    # norm = log(e^1 + e^0.6 + e^0); loss = norm - (1 + 0.6) / 2
    inter = inter_camera_loss(x, proxies, torch.tensor([0, 1, 0]), torch.tensor([0]), camids,
                              temperature=1.0, k=1)
    expected = math.log(math.e + math.exp(0.6) + 1.0) - 0.8
    assert inter.item() == pytest.approx(expected, abs=1e-6)


def test_losses_sum_the_per_camera_means():
    # Proxies e1, e2 in each of cameras 0 and 1; six samples x = e1, four of camera 0 and
    # two of camera 1, each with CE log(1 + e^-1) at tau = 1. CAP's reduction sums one mean
    # per camera: 2 log(1 + e^-1), where a batch mean would give log(1 + e^-1).
    proxies = torch.tensor([[1.0, 0.0], [0.0, 1.0]] * 2)
    x = torch.tensor([[1.0, 0.0]] * 6)
    loss = intra_camera_loss(x, proxies, torch.tensor([0, 0, 1, 1]),
                             torch.tensor([0, 0, 2, 0, 0, 2]), torch.tensor([0, 0, 1, 0, 0, 1]),
                             temperature=1.0)
    assert loss.item() == pytest.approx(2 * math.log1p(math.exp(-1.0)), abs=1e-6)


def test_gradient_reaches_embeddings_only():
    features, base = _rand(N, D, 7), _rand(len(BATCH), D, 8)
    memory = CameraProxyMemory(features, LABELS, CAMIDS, temperature=TAU, k=3)
    before = memory.proxies.clone()
    emb = base.clone().requires_grad_()
    intra, inter = memory(emb, BATCH)
    (intra + 0.5 * inter).backward()
    torch.testing.assert_close(memory.proxies, before)
    ref_emb = base.clone().double().requires_grad_()
    ref = intra_reference(features, LABELS, CAMIDS, ref_emb, BATCH) + \
        0.5 * inter_reference(features, LABELS, CAMIDS, ref_emb, BATCH, 3)
    ref.backward()
    torch.testing.assert_close(emb.grad, ref_emb.grad.float(), rtol=1e-4, atol=1e-6)


# --- update -----------------------------------------------------------------------------------

@pytest.mark.parametrize("momentum", [0.0, 0.2, 1.0])
def test_proxy_update_matches_sequential_loop(momentum):
    features, emb = _rand(N, D, 9), _rand(len(BATCH) + 2, D, 10)
    rows = torch.cat([BATCH, torch.tensor([0, 6])])  # proxies hit more than once
    memory = CameraProxyMemory(features, LABELS, CAMIDS, momentum=momentum)
    memory.update(emb, rows)
    table = proxies_reference(features, LABELS, CAMIDS)
    keys = list(table)
    targets = [keys.index((CAMIDS[i], LABELS[i])) for i in rows.tolist()]
    ref = sequential_update(torch.stack(list(table.values())), targets, emb, momentum)
    torch.testing.assert_close(memory.proxies, ref.float(), rtol=1e-5, atol=1e-6)


def test_memory_state_round_trip():
    memory = CameraProxyMemory(_rand(N, D, 11), LABELS, CAMIDS, momentum=0.3, k=4)
    memory.update(_rand(3, D, 12), BATCH[:3])
    clone = CameraProxyMemory.from_state(memory.state_dict(), **memory.settings())
    for name, buf in memory.named_buffers():
        torch.testing.assert_close(getattr(clone, name), buf)
    assert clone.settings() == {"momentum": 0.3, "temperature": 0.07, "k": 4}
    emb = _rand(len(BATCH), D, 13)
    torch.testing.assert_close(torch.stack(clone(emb, BATCH)), torch.stack(memory(emb, BATCH)))
    assert "proxies=8" in repr(memory)


# --- ICE's terms ------------------------------------------------------------------------------

def hard_instance_reference(query, keys, labels, tau):
    q = [_unit(v.double()) for v in query]
    k = [_unit(v.double()) for v in keys]
    total = 0
    for i, y in enumerate(labels):
        sims = [float(q[i] @ kj) for kj in k]
        positive = min(s for s, yj in zip(sims, labels, strict=True) if yj == y)
        logits = [positive] + [s for s, yj in zip(sims, labels, strict=True) if yj != y]
        total += -positive / tau + math.log(sum(math.exp(s / tau) for s in logits))
    return total / len(labels)


def soft_reference(query, keys, weak, tau):
    q, k, w = ([_unit(v.double()) for v in t] for t in (query, keys, weak))
    total = 0
    for i in range(len(q)):
        qi = torch.softmax(torch.stack([q[i] @ kj for kj in k]) / tau, 0)
        pi = torch.softmax(torch.stack([w[i] @ wj for wj in w]) / tau, 0)
        total += float((pi * (pi.log() - qi.log())).sum())
    return total / len(q)


def test_hard_instance_loss_matches_loop_reference():
    labels = [0, 0, 1, 1, 2, 2, 2, 0]
    query, keys = _rand(8, D, 14), _rand(8, D, 15)
    loss = hard_instance_loss(query, keys, torch.tensor(labels), temperature=0.1)
    assert loss.item() == pytest.approx(hard_instance_reference(query, keys, labels, 0.1),
                                        rel=1e-5)


def test_hard_instance_positive_is_the_least_similar_key():
    # Query 0 is its own key; its cluster-mate's key is orthogonal: the positive is the
    # orthogonal one (cos 0), the negative (cluster 1) has cos 0.6. tau = 1.
    query = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    keys = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    loss = hard_instance_loss(query[:1].expand(3, 2), keys, torch.tensor([0, 0, 1]), 1.0)
    expected = math.log(1.0 + math.exp(0.6))  # -log e^0 / (e^0 + e^0.6), rows 0 and 1
    row2 = math.log(math.exp(0.6) + math.exp(1.0) + 1.0) - 0.6  # row 2: cluster 1 alone
    assert loss.item() == pytest.approx((2 * expected + row2) / 3, abs=1e-6)


def test_soft_instance_consistency_matches_loop_reference():
    query, keys, weak = _rand(6, D, 16), _rand(6, D, 17), _rand(6, D, 18)
    loss = soft_instance_consistency(query, keys, weak, temperature=0.4)
    assert loss.item() == pytest.approx(soft_reference(query, keys, weak, 0.4), rel=1e-5)
    assert soft_instance_consistency(weak, weak, weak).item() == pytest.approx(0.0, abs=1e-6)


def test_ice_centroids_are_plain_means_of_unit_features():
    features = _rand(N, D, 19) * 2
    centroids = cluster_centroids(features, LABELS)
    for c, y in enumerate([3, 5, 7]):
        members = [_unit(f.double()) for f, yy in zip(features, LABELS, strict=True) if yy == y]
        torch.testing.assert_close(centroids[c], torch.stack(members).mean(0).float())
    assert (centroids.norm(dim=1) < 1).all()  # not re-normalised, as ICE's code


# --- samplers ---------------------------------------------------------------------------------

def test_proxy_balanced_batches():
    labels = np.array([0] * 9 + [1] * 5 + [-1] * 3)
    camids = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2] + [0, 0, 0, 0, 1] + [0, 1, 2])
    row_proxy = proxy_labels(labels, camids)[0]
    batches = proxy_balanced_batches(labels, camids, p=2, k=3, seed=0, epoch=0)
    assert len(batches) == 14 // 6  # CAP's epoch: clustered images // batch size
    for b in batches:
        chunks = b.reshape(2, 3)
        assert (labels[b] >= 0).all()
        assert all(len(set(row_proxy[c])) == 1 for c in chunks)  # k rows of one proxy
        assert row_proxy[chunks[0, 0]] != row_proxy[chunks[1, 0]]  # p distinct proxies
    lonely = np.flatnonzero(row_proxy == row_proxy[13])  # cluster 1 in camera 1: one image
    assert lonely.tolist() == [13]
    many = proxy_balanced_batches(labels, camids, p=2, k=3, seed=0, epoch=0, iters=30)
    assert len(many) == 30
    drawn = [c for b in many for c in b.reshape(2, 3) if row_proxy[c[0]] == row_proxy[13]]
    assert drawn and all(c.tolist() == [13, 13, 13] for c in drawn)  # k copies of its list
    for b, again in zip(batches, proxy_balanced_batches(labels, camids, 2, 3, 0, 0),
                        strict=True):
        np.testing.assert_array_equal(b, again)  # (seed, epoch) decide the batches


def test_more_camera_batches_cover_the_cluster_cameras():
    labels = np.array([0] * 6 + [1] * 4 + [2] * 3 + [3] + [-1])
    camids = np.array([0, 0, 0, 1, 2, 3] + [1, 1, 1, 1] + [0, 2, 2] + [1] + [3])
    batches = more_camera_batches(labels, camids, p=3, k=3, seed=1, epoch=0, iters=20)
    assert len(batches) == 20
    for b in batches:
        chunks = b.reshape(3, 3)
        assert len({labels[c[0]] for c in chunks}) == 3 and (labels[b] >= 0).all()
        for c in chunks:
            assert len(set(labels[c])) == 1
            cameras = len(set(camids[labels == labels[c[0]]]))
            assert len(set(camids[c])) == min(3, cameras)  # spread over the cameras
            if labels[c[0]] == 3:
                assert c.tolist() == [13, 13, 13]  # a one-image cluster, repeated
            else:
                assert len(set(c)) == 3  # enough images: no repeats
    one_pass = more_camera_batches(labels, camids, p=3, k=3, seed=1, epoch=0)
    assert len(one_pass) == 1  # 4 clusters x 3 rows: one batch of 9, the tail dropped


# --- the methods through fit ------------------------------------------------------------------

def tiny_set():
    return colour_identity_set(n_ids=6, per_id=6, cams=3, size=(32, 16), seed=0)


def oracle(train):
    _, labels = np.unique(train.pids, return_inverse=True)
    return lambda features: labels.astype(np.int64)


def small_model(seed=0):
    torch.manual_seed(seed)
    return build_model("small")


def test_cap_trains_through_fit_and_moves_its_proxies():
    train = tiny_set()
    method = CAP(small_model(), inter_epoch=1)
    snapshots = []
    history = fit(method, train, cluster=oracle(train), epochs=2, iters=2, p=3, k=3, lr=1e-3,
                  progress=False, on_step=lambda e, s: snapshots.append(method.memory.proxies
                                                                       .clone()))
    assert set(history[0].losses) == {"loss", "intra"}  # no inter loss before inter_epoch
    assert set(history[1].losses) == {"loss", "intra", "inter"}
    assert all(np.isfinite(v) for r in history for v in r.losses.values())
    assert not torch.equal(snapshots[0], snapshots[1])  # the first step moved the proxies
    assert method.memory.num_proxies == 18  # 6 ids x 3 cameras

    clone = CAP(small_model(1), inter_epoch=1)
    clone.load_state_dict(method.state_dict())
    torch.testing.assert_close(clone.memory.proxies, method.memory.proxies)
    torch.testing.assert_close(clone.memory.labels, method.memory.labels)
    for a, b in zip(clone.model.state_dict().values(), method.model.state_dict().values(),
                    strict=True):
        torch.testing.assert_close(a, b)


def test_ice_trains_through_fit_and_averages_its_teacher():
    train = tiny_set()
    method = ICE(small_model(), alpha=0.9)
    teacher_before = [q.clone() for q in method.teacher.parameters()]
    history = fit(method, train, cluster=oracle(train), epochs=1, iters=2, p=3, k=3, lr=1e-3,
                  progress=False)
    assert set(history[0].losses) == {"loss", "proxy", "camera", "hard_instance",
                                      "soft_instance"}
    assert all(np.isfinite(v) for v in history[0].losses.values())
    assert method.model is method.teacher and method.feature_model() is method.teacher
    assert any(not torch.equal(a, b) for a, b in zip(teacher_before,
                                                     method.teacher.parameters(), strict=True))
    assert not any(q.requires_grad for q in method.teacher.parameters())

    clone = ICE(small_model(1), alpha=0.9)
    clone.load_state_dict(method.state_dict())
    torch.testing.assert_close(clone.centroids, method.centroids)
    torch.testing.assert_close(clone.memory.proxies, method.memory.proxies)
    for a, b in zip(clone.teacher.state_dict().values(), method.teacher.state_dict().values(),
                    strict=True):
        torch.testing.assert_close(a, b)


def test_ice_teacher_is_the_ema_of_the_student():
    train = tiny_set()
    method = ICE(small_model(), alpha=0.75)
    fit(method, train, cluster=oracle(train), epochs=1, iters=1, p=3, k=3, lr=1e-3,
        progress=False, on_step=lambda e, s: setattr(method, "_before", (
            [q.clone() for q in method.teacher.parameters()])))
    # one step: teacher = 0.75 teacher_before + 0.25 student_after
    for t, before, s in zip(method.teacher.parameters(), method._before,
                            method.student.parameters(), strict=True):
        torch.testing.assert_close(t, 0.75 * before + 0.25 * s)


@pytest.mark.parametrize("name", ["cap", "ice"])
def test_methods_under_bf16_autocast(name, monkeypatch):
    # The CUDA path (bf16 autocast) on the CPU: memories and losses get bf16 embeddings.
    for module in (cap, ice):
        monkeypatch.setattr(module, "autocast_for", functools.partial(autocast_for,
                                                                      enabled=True))
    train = tiny_set()
    method = CAP(small_model(), inter_epoch=0) if name == "cap" else ICE(small_model())
    history = fit(method, train, cluster=oracle(train), epochs=1, iters=1, p=3, k=3, lr=1e-3,
                  progress=False)
    assert all(np.isfinite(v) for v in history[0].losses.values())
    assert method.memory.proxies.dtype == torch.float32


# --- argument checks --------------------------------------------------------------------------

def test_bad_arguments_raise_clear_errors():
    features = _rand(N, D, 20)
    with pytest.raises(ValueError, match="at least one cluster"):
        CameraProxyMemory(features, np.full(N, -1), CAMIDS)
    with pytest.raises(ValueError, match="one camera id per feature row"):
        CameraProxyMemory(features, LABELS, CAMIDS[:-1])
    with pytest.raises(ValueError, match="one pseudo-label per feature row"):
        CameraProxyMemory(features, LABELS[:-1], CAMIDS)
    with pytest.raises(ValueError, match="hard negative"):
        CameraProxyMemory(features, LABELS, CAMIDS, k=0)
    with pytest.raises(ValueError, match="temperature"):
        CameraProxyMemory(features, LABELS, CAMIDS, temperature=0)
    memory = CameraProxyMemory(features, LABELS, CAMIDS)
    with pytest.raises(ValueError, match=r"outlier rows \(label -1\)"):
        memory(_rand(2, D, 21), torch.tensor([0, 3]))
    with pytest.raises(ValueError, match=rf"\(B, {D}\)"):
        memory.inter_loss(_rand(2, D + 1, 21), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="inter_weight"):
        CAP(small_model(), inter_weight=-1)
    with pytest.raises(ValueError, match="hard negative"):
        CAP(small_model(), k=2.5)
    with pytest.raises(TypeError, match="ReidModel"):
        CAP(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="temperatures"):
        ICE(small_model(), instance_temperature=0)
    with pytest.raises(ValueError, match="alpha"):
        ICE(small_model(), alpha=1.5)
    with pytest.raises(ValueError, match="sampler"):
        ICE(small_model(), sampler="bank")
    with pytest.raises(ValueError, match="clustered rows"):
        proxy_balanced_batches(np.full(4, -1), np.zeros(4, int), 2, 2, 0, 0)
    with pytest.raises(ValueError, match="lower p"):
        proxy_balanced_batches(LABELS, CAMIDS, p=9, k=2, seed=0, epoch=0)
    with pytest.raises(ValueError, match="lower p"):
        more_camera_batches(LABELS, CAMIDS, p=4, k=2, seed=0, epoch=0)
    with pytest.raises(ValueError, match=">= 1"):
        more_camera_batches(LABELS, CAMIDS, p=0, k=2, seed=0, epoch=0)
