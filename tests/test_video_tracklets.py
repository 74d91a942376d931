"""Tracklets as free positives: TAUDL / UTAL (PCTD + CCTA) and BUC on tracklets.

Every loss and the association are checked against a plain-Python float64 reference
written here from the papers' formulas (one frame, one tracklet at a time); the tracklet
clustering wrappers against clustering hand-averaged features; the methods by short
training runs on a toy tracklet set (one tracklet per person and camera) and a resumed run.
"""

from functools import partial

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from fakes import colour_identity_set

from reidlib.data.imageset import ImageSet
from reidlib.models import build_model
from reidlib.pseudo_labels import buc_labels
from reidlib.training import fit
from reidlib.video.pooling import temporal_average, tracklet_labels
from reidlib.video.tracklet_learning import (
    TAUDL,
    UTAL,
    TrackletMemory,
    association_precision,
    batch_association_loss,
    cross_camera_association_loss,
    cross_camera_associations,
    per_camera_tracklet_loss,
    tracklet_buc,
    tracklet_classes,
    tracklet_cluster,
)

TAU = 0.2
# 9 tracklets (ids not contiguous) of 1-4 frames over cameras 0, 2, 5
TRACKLET_IDS = np.array([7, 7, 3, 3, 3, 11, 20, 20, 4, 9, 9, 9, 9, 15, 15, 30, 30, 8, 8, 8])
CAMERA_OF = {3: 0, 4: 2, 7: 0, 8: 5, 9: 2, 11: 5, 15: 0, 20: 2, 30: 5}
CAMIDS = np.array([CAMERA_OF[t] for t in TRACKLET_IDS])
N, D = len(TRACKLET_IDS), 6
BATCH = torch.tensor([0, 4, 9, 2, 15, 7, 12, 19, 13])


def _rand(n, d, seed):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


def _unit(v):
    return v / v.norm()


def hand_slots(features, tracklets):
    """Sorted tracklet ids and, per tracklet, the normalised mean of its normalised rows."""
    ids = sorted(set(tracklets.tolist()))
    slots = []
    for t in ids:
        rows = [_unit(features[i].double()) for i in range(len(tracklets)) if tracklets[i] == t]
        slots.append(_unit(sum(rows) / len(rows)))
    return ids, torch.stack(slots)


def _lse(values):
    return torch.logsumexp(torch.stack(values), 0)


def pctd_reference(slots, slot_cams, emb, targets, tau=TAU):
    """Mean over frames of -log softmax over the own camera's slots, at the own slot."""
    total = 0
    for e, y in zip(emb, targets, strict=True):
        x = _unit(e.double())
        same = [j for j in range(len(slots)) if slot_cams[j] == slot_cams[y]]
        total = total - (slots[y] @ x / tau - _lse([slots[j] @ x / tau for j in same]))
    return total / len(targets)


def ccta_reference(slots, pairs, emb, targets, tau=TAU):
    """Mean over frames with associates of -log sum_{associates} p, p over all other slots."""
    total, count = 0, 0
    for e, y in zip(emb, targets, strict=True):
        x = _unit(e.double())
        mates = [b for a, b in pairs if a == y] + [a for a, b in pairs if b == y]
        if not mates:
            continue
        others = [j for j in range(len(slots)) if j != y]
        log_den = _lse([slots[j] @ x / tau for j in others])
        total = total - (_lse([slots[j] @ x / tau for j in mates]) - log_den)
        count += 1
    return total / count if count else 0.0


def association_reference(features, cams, k, reciprocal, min_similarity=None):
    """Pairs (i < j) by brute force: each tracklet's k most similar other-camera ones."""
    x = [_unit(f.double()) for f in torch.as_tensor(features)]
    n = len(x)
    candidates = []
    for i in range(n):
        others = sorted((j for j in range(n) if cams[j] != cams[i]),
                        key=lambda j: -float(x[i] @ x[j]))
        candidates.append(set(others[:k]))
    pairs = []
    for i in range(n):
        for j in range(i + 1, n):
            if cams[i] == cams[j]:
                continue
            if min_similarity is not None and float(x[i] @ x[j]) < min_similarity:
                continue
            a, b = j in candidates[i], i in candidates[j]
            if (a and b) if reciprocal else (a or b):
                pairs.append((i, j))
    return pairs


def memory_and_slots(seed=0, tau=TAU):
    features = _rand(N, D, seed)
    memory = TrackletMemory(features, TRACKLET_IDS, CAMIDS, temperature=tau)
    ids, slots = hand_slots(features, TRACKLET_IDS)
    return memory, ids, slots, [CAMERA_OF[t] for t in ids]


# --- bookkeeping ---------------------------------------------------------------------------

def test_memory_starts_from_tracklet_means_with_their_cameras():
    memory, ids, slots, cams = memory_and_slots()
    torch.testing.assert_close(memory.features.double(), slots, rtol=0, atol=1e-6)
    assert memory.tracklet_camids.tolist() == cams
    assert memory.labels.tolist() == [ids.index(t) for t in TRACKLET_IDS]
    # the memory's slots are the pooling module's temporal average of each tracklet
    np.testing.assert_allclose(temporal_average(_rand(N, D, 0), TRACKLET_IDS)[0].numpy(),
                               slots.numpy(), atol=1e-6)


def test_tracklet_classes_and_their_errors():
    train = ImageSet(np.zeros((N, 4, 2, 3), np.uint8), np.arange(N), CAMIDS, TRACKLET_IDS)
    labels = tracklet_classes(train)
    assert labels.tolist() == [sorted(CAMERA_OF).index(t) for t in TRACKLET_IDS]
    missing = TRACKLET_IDS.copy()
    missing[3] = -1
    with pytest.raises(ValueError, match=r"train\.tracklets: 1 images without tracklets.*row 3"):
        tracklet_classes(ImageSet(train.images, train.pids, CAMIDS, missing))
    spanning = CAMIDS.copy()
    spanning[4] = 5  # tracklet 3 now seen by cameras 0 and 5
    with pytest.raises(ValueError, match=r"train\.camids differ within 1 tracklet\(s\), e\.g\. "
                                         r"tracklet 3 \(values \[0, 5\]\)"):
        tracklet_classes(ImageSet(train.images, train.pids, spanning, TRACKLET_IDS))
    with pytest.raises(ValueError, match="1 images without tracklets.*row 3"):
        TrackletMemory(_rand(N, D, 0), missing, CAMIDS)
    with pytest.raises(ValueError, match=r"camids differ within 1 tracklet\(s\), e\.g\. "
                                         r"tracklet 3 \(values \[0, 5\]\)"):
        TrackletMemory(_rand(N, D, 0), TRACKLET_IDS, spanning)
    with pytest.raises(ValueError, match=r"camids must have shape \(N,\) = \(20,\), one per frame"):
        TrackletMemory(_rand(N, D, 0), TRACKLET_IDS, CAMIDS[:-1])
    with pytest.raises(ValueError, match=r"one tracklet id per feature row\) must have shape "
                                         r"\(N,\) = \(19,\)"):
        TrackletMemory(_rand(N - 1, D, 0), TRACKLET_IDS, CAMIDS)


# --- the losses ----------------------------------------------------------------------------

def test_pctd_matches_a_per_camera_softmax_loop():
    memory, _, slots, cams = memory_and_slots()
    emb = _rand(len(BATCH), D, 1)
    pctd, ccta = memory(emb, BATCH)
    targets = memory.labels[BATCH].tolist()
    assert pctd.item() == pytest.approx(float(pctd_reference(slots, cams, emb, targets)),
                                        rel=1e-5)
    assert ccta.item() == 0.0  # nothing associated yet


def test_pctd_hand_case():
    """Two cameras, slots e1, e2 (camera 0) and e1 (camera 1): only camera 0 competes."""
    slots = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    x = F.normalize(torch.tensor([[3.0, 4.0]]), dim=1)
    loss = per_camera_tracklet_loss(x @ slots.T, torch.tensor([0]), torch.tensor([0, 0, 1]),
                                    0.5)
    expected = -(0.6 / 0.5 - np.log(np.exp(0.6 / 0.5) + np.exp(0.8 / 0.5)))
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_ccta_matches_a_loop_and_its_gradient_too():
    memory, _, slots, _ = memory_and_slots(seed=2)
    pairs = [(0, 1), (0, 4), (5, 7), (2, 3)]  # cross-camera, sorted-id tracklet indices
    memory.set_pairs(torch.tensor(pairs))
    base = _rand(len(BATCH), D, 3)
    emb = base.clone().requires_grad_(True)
    pctd, ccta = memory(emb, BATCH)
    targets = memory.labels[BATCH].tolist()
    ref_emb = base.double().requires_grad_(True)
    ref_pctd = pctd_reference(slots, memory.tracklet_camids.tolist(), ref_emb, targets)
    ref_ccta = ccta_reference(slots, pairs, ref_emb, targets)
    assert ccta.detach().item() == pytest.approx(ref_ccta.detach().item(), rel=1e-5)
    (0.3 * pctd + 0.7 * ccta).backward()
    (0.3 * ref_pctd + 0.7 * ref_ccta).backward()
    torch.testing.assert_close(emb.grad.double(), ref_emb.grad, rtol=1e-4, atol=1e-6)


def test_ccta_without_associates_is_zero_and_own_slot_is_never_a_negative():
    sims = torch.tensor([[0.9, 0.1, 0.5], [0.2, 0.3, 0.4]])
    partners = torch.tensor([[False, False, True], [False, False, False]])
    got = cross_camera_association_loss(sims, torch.tensor([0, 1]), partners, 1.0)
    assert got.item() == pytest.approx(-(0.5 - np.log(np.exp(0.1) + np.exp(0.5))), rel=1e-6)
    none = cross_camera_association_loss(sims, torch.tensor([0, 1]), partners & False, 1.0)
    assert none.item() == 0.0


def taudl_reference(emb, tracklets, cams, tau, k=None):
    groups = sorted(set(tracklets))
    means, gcam = [], []
    for t in groups:
        rows = [_unit(emb[i].double()) for i in range(len(tracklets)) if tracklets[i] == t]
        means.append(_unit(sum(rows) / len(rows)))
        gcam.append(cams[tracklets.index(t)])
    k = k or max(1, len(set(gcam)) // 2)
    total, count = 0, 0
    for i, s in enumerate(means):
        others = sorted((j for j in range(len(groups)) if gcam[j] != gcam[i]),
                        key=lambda j: -float((s @ means[j]).detach()))
        near = others[:k]
        if not near:
            continue
        all_terms = [s @ m / tau for m in means]  # i itself included, as TAUDL's code
        total = total - (_lse([s @ means[j] / tau for j in near]) - _lse(all_terms))
        count += 1
    return total / count


@pytest.mark.parametrize("k", [None, 1, 3])
def test_taudl_batch_association_matches_a_loop(k):
    tracklets = [5, 5, 2, 2, 9, 9, 1, 1, 4, 4, 6, 6, 8, 8]
    cams = [0, 0, 1, 1, 2, 2, 0, 0, 1, 1, 3, 3, 2, 2]
    base = _rand(len(tracklets), D, 4)
    emb = base.clone().requires_grad_(True)
    got = batch_association_loss(emb, torch.tensor(tracklets), torch.tensor(cams), TAU, k)
    ref_emb = base.double().requires_grad_(True)
    ref = taudl_reference(ref_emb, tracklets, cams, TAU, k)
    assert got.detach().item() == pytest.approx(ref.detach().item(), rel=1e-5)
    got.backward()
    ref.backward()
    torch.testing.assert_close(emb.grad.double(), ref_emb.grad, rtol=1e-4, atol=1e-6)


def test_taudl_batch_of_one_camera_has_no_association():
    got = batch_association_loss(_rand(4, D, 0), torch.tensor([0, 0, 1, 1]),
                                 torch.tensor([3, 3, 3, 3]))
    assert got.item() == 0.0
    with pytest.raises(ValueError, match=r"camids differ within 1 tracklet\(s\), e\.g\. "
                                         r"tracklet 0 \(values \[3, 4\]\)"):
        batch_association_loss(_rand(4, D, 0), torch.tensor([0, 0, 1, 1]),
                               torch.tensor([3, 4, 3, 3]))


# --- the association -----------------------------------------------------------------------

@pytest.mark.parametrize("k,reciprocal,min_similarity",
                         [(1, True, None), (2, True, None), (3, False, None), (2, True, 0.2),
                          (1, False, None), (40, True, None)])
def test_association_matches_brute_force(k, reciprocal, min_similarity):
    features = _rand(24, 5, 5)
    cams = np.random.default_rng(0).integers(0, 4, 24)
    got = cross_camera_associations(features, cams, k, reciprocal, min_similarity)
    expected = association_reference(features, cams, k, reciprocal, min_similarity)
    assert [tuple(p) for p in got.tolist()] == expected
    assert all(cams[i] != cams[j] for i, j in expected)
    np.testing.assert_array_equal(cross_camera_associations(features.numpy(), cams, k,
                                                            reciprocal, min_similarity), got)


def test_mutual_neighbours_hand_case():
    """a(cam 0) and b(cam 1) point at each other; c(cam 1) also prefers a, a does not: with
    k = 1 only (a, b) is mutual; without reciprocity (a, c) joins."""
    features = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.7, -0.7], [0.0, 1.0]])
    cams = np.array([0, 1, 1, 2])
    assert cross_camera_associations(features, cams, 1).tolist() == [[0, 1]]
    assert cross_camera_associations(features, cams, 1, reciprocal=False).tolist() == \
        [[0, 1], [0, 2], [1, 3]]


def test_memory_association_uses_its_slots_and_association_precision():
    memory, _, slots, cams = memory_and_slots(seed=6)
    pairs = memory.associate(k=2).tolist()
    assert [tuple(p) for p in pairs] == association_reference(slots, cams, 2, True)
    assert memory.partners.sum().item() == 2 * len(pairs)
    pids = np.array([1, 1, 2, 2, 3, 3])
    assert association_precision(np.array([[0, 1], [2, 4], [4, 5], [1, 3]]), pids) == 0.5
    assert np.isnan(association_precision(np.zeros((0, 2), np.int64), pids))
    with pytest.raises(ValueError, match=r"\(P, 2\)"):
        association_precision(np.array([0, 1]), pids)
    with pytest.raises(ValueError, match=r"\[0, 6\)"):
        association_precision(np.array([[0, 6]]), pids)
    with pytest.raises(ValueError, match="camids"):
        cross_camera_associations(_rand(5, 3, 0), np.zeros(4, np.int64))
    with pytest.raises(ValueError, match="k must be a positive integer"):
        cross_camera_associations(_rand(5, 3, 0), np.arange(5), k=0)


def test_update_moves_each_frames_tracklet_slot_in_batch_order():
    memory, _, slots, _ = memory_and_slots(seed=7)
    memory.momentum = 0.3
    emb = _rand(len(BATCH), D, 8)
    expected = slots.clone()
    for row, e in zip(BATCH.tolist(), emb, strict=True):
        t = int(memory.labels[row])
        expected[t] = _unit(0.3 * expected[t] + 0.7 * _unit(e.double()))
    memory.update(emb, BATCH)
    torch.testing.assert_close(memory.features.double(), expected, rtol=0, atol=1e-6)


def test_memory_state_round_trip_keeps_the_pairs():
    memory, *_ = memory_and_slots(seed=9)
    memory.associate(k=2)
    restored = TrackletMemory.from_state(memory.state_dict(), **memory.settings())
    for name in ("features", "labels", "tracklet_camids", "pairs"):
        assert torch.equal(getattr(restored, name), getattr(memory, name))
    assert torch.equal(restored.partners, memory.partners)
    assert "partners" not in memory.state_dict()  # derived, not saved
    emb = _rand(len(BATCH), D, 10)
    for a, b in zip(memory(emb, BATCH), restored(emb, BATCH), strict=True):
        assert torch.equal(a, b)


# --- tracklet clustering -------------------------------------------------------------------

def hand_means(features, tracklets):
    ids, slots = hand_slots(torch.as_tensor(features), tracklets)
    index = np.array([ids.index(t) for t in tracklets])
    return slots.float().numpy(), index


def test_tracklet_cluster_equals_clustering_the_averaged_features():
    features = F.normalize(_rand(N, D, 11), dim=1).numpy()
    frame_level = partial(buc_labels, n_clusters=4)
    got = tracklet_cluster(frame_level, TRACKLET_IDS)(features)
    means, index = hand_means(features, TRACKLET_IDS)
    np.testing.assert_array_equal(got, buc_labels(means, 4)[index])
    for t in set(TRACKLET_IDS.tolist()):  # a tracklet is never split
        assert len(set(got[TRACKLET_IDS == t].tolist())) == 1
    # outliers (-1) of the tracklet clustering reach every frame of the tracklet
    odd = tracklet_cluster(lambda x: np.where(np.arange(len(x)) % 3 == 0, -1, 0), TRACKLET_IDS)
    assert (odd(features) == -1).tolist() == (index % 3 == 0).tolist()
    with pytest.raises(ValueError, match="features have 19 rows but the tracklet ids 20"):
        tracklet_cluster(frame_level, TRACKLET_IDS)(features[:-1])
    with pytest.raises(ValueError, match=r"cluster\(tracklet features\)"):
        tracklet_cluster(lambda x: np.zeros(3, np.int64), TRACKLET_IDS)(features)


@pytest.mark.parametrize("diversity,merge_fraction", [(0.0, None), (0.05, None), (0.05, 0.2)])
def test_tracklet_buc_equals_buc_on_hand_averaged_features(diversity, merge_fraction):
    features = F.normalize(_rand(N, D, 12), dim=1).numpy()
    got = tracklet_buc(features, TRACKLET_IDS, 3, diversity, merge_fraction)
    means, index = hand_means(features, TRACKLET_IDS)
    expected = buc_labels(means, 3, diversity=diversity, merge_fraction=merge_fraction)
    np.testing.assert_array_equal(got, expected[index])
    assert len(np.unique(got)) == 3
    with pytest.raises(ValueError, match="n_clusters"):
        tracklet_buc(features, TRACKLET_IDS, 10)  # only 9 tracklets


# --- the methods on the loop ---------------------------------------------------------------

def tracklet_set(n_ids=8, per_id=6, cams=3, seed=0):
    """colour_identity_set with a tracklet per (person, camera): 2 frames each here."""
    base = colour_identity_set(n_ids, per_id, cams, (32, 16), seed)
    tracklets = (base.pids - 100) * cams + base.camids
    return ImageSet(base.images, base.pids, base.camids, tracklets)


def small_model(seed=0):
    torch.manual_seed(seed)
    return build_model("small")


def test_utal_toy_run_associates_the_right_tracklets_and_learns():
    """8 people x 3 cameras, one 2-frame tracklet each: a true pair links two of a person's
    3 tracklets, so k = 1 mutual neighbours give at most 8 pairs (one per person)."""
    train = tracklet_set()
    labels = tracklet_classes(train)
    truth = tracklet_labels(train.pids, labels)
    method = UTAL(small_model())
    used = []  # the pairs each epoch trained with
    history = fit(method, train, labels=labels, epochs=4, p=8, k=2, lr=1e-3, progress=False,
                  on_epoch_end=lambda record: used.append(method.associations()))
    assert len(used[0]) == 8 and association_precision(used[0], truth) == 1.0
    assert all(association_precision(pairs, truth) >= 0.6 for pairs in used)
    assert history[-1].losses["loss"] < history[0].losses["loss"]
    assert history[0].losses["ccta"] > 0
    fresh = cross_camera_associations(method.memory.features, method.memory.tracklet_camids)
    assert len(fresh) >= 6 and association_precision(fresh, truth) >= 0.8


def test_taudl_toy_run_and_the_ccta_switch():
    train = tracklet_set()
    method = TAUDL(small_model(), ccta_start=1)
    history = fit(method, train, labels=tracklet_classes(train), epochs=2, p=4, k=2, lr=1e-3,
                  progress=False)
    assert history[0].losses["ccta"] == 0.0 and history[1].losses["ccta"] > 0
    assert np.isfinite(history[1].losses["loss"])
    assert method.config()["k"] is None and method.config()["ccta_start"] == 1


class Interrupt(Exception):
    pass


def test_resume_after_interruption_equals_uninterrupted_run(tmp_path):
    train = tracklet_set(n_ids=6)
    args = dict(labels=tracklet_classes(train), epochs=3, p=4, k=2, lr=1e-3, progress=False)
    reference = UTAL(small_model(), k=2)
    ref_history = fit(reference, train, **args)

    def stop(epoch, step):
        if (epoch, step) == (1, 1):
            raise Interrupt

    path = tmp_path / "run.pt"
    with pytest.raises(Interrupt):
        fit(UTAL(small_model(), k=2), train, checkpoint=path, on_step=stop, **args)
    resumed = UTAL(small_model(), k=2)
    history = fit(resumed, train, checkpoint=path, **args)
    assert [e.losses for e in history] == [e.losses for e in ref_history]
    for a, b in zip(reference.model.state_dict().values(), resumed.model.state_dict().values(),
                    strict=True):
        assert torch.equal(a, b)
    for name in ("features", "tracklet_camids", "pairs"):
        assert torch.equal(getattr(reference.memory, name), getattr(resumed.memory, name))


def test_method_errors_are_clear():
    train = tracklet_set(n_ids=4)
    with pytest.raises(ValueError, match="lam"):
        UTAL(small_model(), lam=1.5)
    with pytest.raises(ValueError, match="temperature"):
        UTAL(small_model(), temperature=0.0)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        UTAL(small_model(), k=0)
    with pytest.raises(ValueError, match="ccta_start"):
        TAUDL(small_model(), ccta_start=-1)
    with pytest.raises(ValueError, match="association_temperature"):
        TAUDL(small_model(), association_temperature=0.0)
    with pytest.raises(ValueError, match="no tracklet memory"):
        UTAL(small_model()).associations()
    missing = tracklet_classes(train)
    missing[:2] = -1
    with pytest.raises(ValueError, match="2 rows labelled -1"):
        fit(UTAL(small_model()), train, labels=missing, epochs=1, p=2, k=2, lr=1e-3,
            progress=False)
    # pids are no tracklets: a person's frames span several cameras
    with pytest.raises(ValueError, match=r"camids differ within \d+ tracklet\(s\)"):
        fit(UTAL(small_model()), train, labels=train.pids, epochs=1, p=2, k=2, lr=1e-3,
            progress=False)
