"""Recipe fidelity: reidlib against the behaviour of the official code of the papers.

Each test checks one behaviour of a reference code base against a small reference written
here from that code's logic (plain loops over lists and sets, brute force), never against
the output of the code under test:

- the batch sampler of SpCL / MMT / Cluster Contrast (``RandomMultipleGallerySampler`` and
  the camera-free ``...NoCam`` variant; ``IterLoader`` over a ``drop_last`` DataLoader with
  ``--iters`` batches per epoch);
- SpCL's cluster-reliability criterion (``spcl_train_usl.py``: R_comp, R_indep, the
  threshold fixed in epoch 0) and how SpCL feeds its un-clustered images to the sampler;
- ECN's exemplar memory (``reid/loss/invariance.py``: zero-initialised slots, momentum
  0.01 x epoch, neighbourhood soft targets after epoch 4, per-sample update in backward);
- MMT's clustering features (``mmt_train_dbscan.py``: mean of the two teachers'
  L2-normalised eval features, re-normalised);
- the optimiser of the reference scripts (Adam with per-parameter groups and weight decay
  on all of them, StepLR stepped once per epoch) and the recipes' hyper-parameters.
"""

from __future__ import annotations

import copy
from collections import Counter

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import reidlib.feature_learning.spcl as spcl_module
from reidlib.data.augment import eval_transform
from reidlib.data.sampler import iteration_batches, multi_gallery_pass
from reidlib.feature_learning import ECN, ClusterContrast, MutualMeanTeaching, SpCL
from reidlib.feature_learning.spcl import reliable_labels
from reidlib.models import build_model
from reidlib.training.features import extract_features
from reidlib.training.loop import lr_at, param_groups

# ============================================================================ sampler


def toy_rows(seed: int, k: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """(labels, camids) covering every branch of the reference sampler, rows shuffled.

    Singletons; labels seen by one camera only (the fallback pool of all other images,
    of size 1, 2, k - 1, k and more); labels whose anchor can have exactly k - 1 or k
    other-camera images; random mixed labels; -1 rows. Label ids are not contiguous.
    """
    rng = np.random.default_rng(seed)
    labels, cams = [], []

    def add(cam_list):
        label = 100 + 7 * len({*labels})  # non-contiguous, increasing ids
        labels.extend([label] * len(cam_list))
        cams.extend(cam_list)

    for _ in range(4):  # singletons
        add([int(rng.integers(0, 4))])
    for size in (2, 3, k, k + 1, k + 3):  # one camera only
        add([int(rng.integers(0, 4))] * size)
    add([0] + [1] * (k - 1))  # anchor in camera 0: exactly k - 1 other-camera images
    add([2] + [3] * k)  # anchor in camera 2: exactly k other-camera images
    add([0, 0, 0, 1])  # anchor in camera 0: a single other-camera image
    for _ in range(14):  # random mixed labels
        add(rng.integers(0, 4, int(rng.integers(2, 12))).tolist())
    labels.extend([-1] * 6)
    cams.extend(rng.integers(0, 4, 6).tolist())
    order = rng.permutation(len(labels))
    return np.asarray(labels)[order], np.asarray(cams)[order]


def split_pass(rows, labels, k: int) -> list[list[int]]:
    """Cut one sampler pass into its groups: a one-image label gives 1 row, any other k.

    The reference appends, per label, the anchor then k - 1 draws, or the anchor alone
    when the label has no other image; nothing else enters a pass.
    """
    sizes = Counter(labels[labels >= 0].tolist())
    groups, pos, rows = [], 0, list(rows)
    while pos < len(rows):
        label = labels[rows[pos]]
        assert label >= 0, f"row {rows[pos]} with label -1 in the pass"
        size = 1 if sizes[label] == 1 else k
        groups.append(rows[pos:pos + size])
        pos += size
    assert pos == len(rows), "the pass ends inside a group"
    return groups


def check_group(group, labels, camids, k: int, other_cameras: bool) -> dict:
    """Validate one group against the reference rules; return what it drew from where.

    Rules (``RandomMultipleGallerySampler``): all rows carry the anchor's label; the k - 1
    draws come from the label's images of other cameras than the anchor's when there are
    any (only with ``other_cameras``), else from the label's other images; they are
    distinct when that pool holds at least k images (``np.random.choice(replace=False)``).
    """
    anchor, draws = group[0], group[1:]
    label = labels[anchor]
    members = [i for i in range(len(labels)) if labels[i] == label]
    assert all(labels[r] == label for r in group)
    if len(members) == 1:
        assert draws == []
        return {"label": label, "anchor": anchor, "pool": 0, "draws": [], "by_camera": False}
    assert len(draws) == k - 1
    other_cam = [i for i in members if camids[i] != camids[anchor]]
    by_camera = other_cameras and len(other_cam) > 0
    pool = other_cam if by_camera else [i for i in members if i != anchor]
    assert set(draws) <= set(pool), (group, pool)
    if len(pool) >= k:
        assert len(set(draws)) == len(draws), f"pool of {len(pool)} >= k: no replacement"
    return {"label": label, "anchor": anchor, "pool": len(pool), "draws": draws,
            "by_camera": by_camera}


def check_pass(rows, labels, camids, k: int, other_cameras: bool) -> list[dict]:
    groups = split_pass(rows, labels, k)
    anchors = Counter(labels[g[0]] for g in groups)
    assert set(anchors) == set(labels[labels >= 0].tolist()), "a label is missing"
    assert set(anchors.values()) == {1}, "a label has more than one anchor group"
    return [check_group(g, labels, camids, k, other_cameras) for g in groups]


@pytest.mark.parametrize("other_cameras", [True, False])
@pytest.mark.parametrize("k", [4, 3])
def test_multi_gallery_pass_follows_the_reference_rules(other_cameras, k):
    labels, camids = toy_rows(seed=k, k=k)
    infos = []
    for seed in range(150):
        rows = multi_gallery_pass(labels, camids, k, np.random.default_rng(seed), other_cameras)
        assert rows.dtype == np.int64
        infos += check_pass(rows, labels, camids, k, other_cameras)

    # the toy data did reach every branch
    pools = Counter(i["pool"] for i in infos)
    assert pools[0] and pools[1] and pools[k - 1] and pools[k] and max(pools) > k
    if other_cameras:
        assert any(i["by_camera"] for i in infos)
        assert any(not i["by_camera"] and i["pool"] for i in infos)  # one-camera labels

    # replacement when the pool is short: k - 1 draws from k - 1 images repeat one
    # with probability 1 - (k-1)!/(k-1)^(k-1) (0.78 for k = 4, 0.5 for k = 3)
    short = [i for i in infos if 2 <= i["pool"] < k]
    repeated = np.mean([len(set(i["draws"])) < len(i["draws"]) for i in short])
    assert len(short) > 50 and repeated > 0.3

    # anchors are drawn over all images of a label, and so are the draws from the pools
    members = {}
    for row, label in enumerate(labels):
        members.setdefault(label, set()).add(row)
    anchored = {}
    drawn = {}
    for i in infos:
        anchored.setdefault(i["label"], set()).add(i["anchor"])
        drawn.setdefault(i["label"], set()).update(i["draws"])
    for label, rows in members.items():
        if label < 0:
            continue
        assert anchored[label] == rows
        if len(rows) == 1:
            continue
        # every image of the label is in the pool of some anchor, so is drawn at times
        assert drawn[label] == rows, label


def test_label_order_is_random_and_singletons_enter_once():
    labels, camids = toy_rows(seed=0)
    firsts = set()
    for seed in range(20):
        rows = multi_gallery_pass(labels, camids, 4, np.random.default_rng(seed))
        counts = Counter(labels[rows].tolist())
        sizes = Counter(labels[labels >= 0].tolist())
        assert all(counts[lab] == (1 if n == 1 else 4) for lab, n in sizes.items())
        assert -1 not in counts
        firsts.add(int(labels[rows[0]]))
    assert len(firsts) > 5


def test_camera_free_variant_picks_same_camera_images_and_camera_variant_never_does():
    """Labels with images of the anchor's camera *and* of other cameras: ``...NoCam`` draws
    from all other images (same-camera ones included), the camera variant never does."""
    labels = np.repeat(np.arange(10), 8)
    camids = np.tile([0, 0, 0, 0, 1, 1, 2, 2], 10)
    same = {True: 0, False: 0}
    for other_cameras in (True, False):
        for seed in range(40):
            rows = multi_gallery_pass(labels, camids, 4, np.random.default_rng(seed),
                                      other_cameras)
            for info in check_pass(rows, labels, camids, 4, other_cameras):
                same[other_cameras] += sum(camids[d] == camids[info["anchor"]]
                                           for d in info["draws"])
    assert same[True] == 0
    # 3 of the 7 other images share camera 0 with a camera-0 anchor, 1 of 7 otherwise
    assert same[False] > 0.1 * 40 * 10 * 3


def reference_iterations(labels, camids, batch_size, k, iters, seed, epoch, other_cameras):
    """The reference scripts' batches: ``IterLoader`` over a ``DataLoader(drop_last=True)``.

    Each epoch starts a new sampler pass (``new_epoch``); a pass is cut into full batches,
    its tail dropped; when it runs out a new pass starts; ``iters`` batches are taken.
    """
    rng = np.random.default_rng([seed, epoch])
    out = []
    while len(out) < (iters or 1):
        stream = list(multi_gallery_pass(labels, camids, k, rng, other_cameras))
        for start in range(0, len(stream) - batch_size + 1, batch_size):
            out.append(stream[start:start + batch_size])
        if iters is None:
            break
    return out if iters is None else out[:iters]


@pytest.mark.parametrize("other_cameras", [True, False])
@pytest.mark.parametrize("batch_size, iters", [(16, 25), (12, 40), (16, None)])
def test_iteration_batches_cut_consecutive_passes_and_drop_each_tail(batch_size, iters,
                                                                     other_cameras):
    labels, camids = toy_rows(seed=3)
    n_multi = sum(1 for n in Counter(labels[labels >= 0].tolist()).values() if n > 1)
    n_single = sum(1 for n in Counter(labels[labels >= 0].tolist()).values() if n == 1)
    pass_len = 4 * n_multi + n_single
    assert pass_len % batch_size, "the toy pass must leave a tail to drop"
    got = iteration_batches(labels, camids, batch_size, 4, iters, seed=5, epoch=2,
                            other_cameras=other_cameras)
    want = reference_iterations(labels, camids, batch_size, 4, iters, 5, 2, other_cameras)
    expected_len = pass_len // batch_size if iters is None else iters
    assert len(got) == len(want) == expected_len
    for g, w in zip(got, want, strict=True):
        assert len(g) == batch_size and g.tolist() == w
    if iters is not None:
        assert iters > pass_len // batch_size  # spans several passes
    again = iteration_batches(labels, camids, batch_size, 4, iters, seed=5, epoch=2,
                              other_cameras=other_cameras)
    assert all(np.array_equal(a, b) for a, b in zip(got, again, strict=True))
    other = iteration_batches(labels, camids, batch_size, 4, iters, seed=5, epoch=3,
                              other_cameras=other_cameras)
    assert not all(np.array_equal(a, b) for a, b in zip(got, other, strict=True))


def test_iteration_batches_rejects_a_batch_larger_than_a_pass():
    labels, camids = np.array([0, 0, 1, 1]), np.array([0, 1, 0, 1])
    with pytest.raises(ValueError, match="batch"):
        iteration_batches(labels, camids, 64, 4, 10, seed=0, epoch=0)


# ============================================================================ SpCL


def reference_reliability(labels, tight, loose, threshold=None):
    """SpCL's criterion on label lists, as ``spcl_train_usl.py`` computes it.

    Outliers (-1) are classes of their own. Per image i: R_comp = 1 - IoU of the sets of
    images sharing i's class at eps and when tight, R_indep the same with loose. Per class:
    the minimum over its members. Epoch 0: the threshold is the 90th-percentile element
    (index min(n - 1, round(0.9 n)) of the sorted values) of R_indep over classes with more
    than one image. An image keeps its cluster iff its class's R_indep <= threshold and its
    own R_comp <= its class's. Returns (kept mask over clustered rows, threshold).
    """
    n = len(labels)

    def own(values):
        return [("out", i) if values[i] == -1 else ("c", int(values[i])) for i in range(n)]

    base, t, lo = own(labels), own(tight), own(loose)

    def members(classes, i):
        return {j for j in range(n) if classes[j] == classes[i]}

    def one_minus_iou(a, b):
        return 1.0 - len(a & b) / len(a | b)

    r_comp = [one_minus_iou(members(base, i), members(t, i)) for i in range(n)]
    r_indep = [one_minus_iou(members(base, i), members(lo, i)) for i in range(n)]
    comp, indep, size = {}, {}, Counter(base)
    for i in range(n):
        comp[base[i]] = min(comp.get(base[i], 1.0), r_comp[i])
        indep[base[i]] = min(indep.get(base[i], 1.0), r_indep[i])
    if threshold is None:
        values = sorted(indep[c] for c in indep if size[c] > 1)
        threshold = values[min(len(values) - 1, round(len(values) * 0.9))]
    kept = [labels[i] != -1 and indep[base[i]] <= threshold and r_comp[i] <= comp[base[i]]
            for i in range(n)]
    return np.array(kept), threshold


def dbscan_like(seed: int, kind: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(labels at eps, tight, loose) with -1 outliers.

    ``"nested"``: tight refines the clusters (splits some, drops members to -1) and loose
    coarsens them (merges some, absorbs outliers), as DBSCAN at eps -/+ delta tends to;
    ``"random"``: three unrelated labelings with non-contiguous ids.
    """
    rng = np.random.default_rng(seed)
    n = int(rng.integers(30, 200))
    n_clusters = int(rng.integers(3, max(4, n // 5)))
    labels = rng.integers(0, n_clusters, n)
    labels[rng.random(n) < 0.2] = -1
    if kind == "random":
        def draw():
            x = rng.integers(0, int(rng.integers(2, 20)), n) * 3 + 5
            x[rng.random(n) < rng.uniform(0, 0.4)] = -1
            return x
        return labels * 2 + 1, draw(), draw()
    tight = np.full(n, -1)
    next_id = 0
    for c in np.unique(labels[labels >= 0]):
        rows = np.flatnonzero(labels == c)
        parts = rng.integers(0, int(rng.integers(1, 4)), len(rows))
        for part in np.unique(parts):
            tight[rows[parts == part]] = next_id
            next_id += 1
        tight[rows[rng.random(len(rows)) < 0.15]] = -1
    merge = rng.integers(0, max(1, n_clusters // 2), n_clusters)
    loose = np.where(labels >= 0, merge[np.maximum(labels, 0)], -1)
    outliers = np.flatnonzero(labels == -1)
    absorbed = outliers[rng.random(len(outliers)) < 0.4]
    loose[absorbed] = rng.integers(0, n_clusters // 2 + 1, len(absorbed))
    if len(outliers) >= 2:  # two outliers that join a fresh cluster when loose
        loose[outliers[:2]] = n_clusters + 10
    return labels, tight, loose


@pytest.mark.parametrize("kind", ["nested", "random"])
def test_spcl_reliability_matches_the_reference_at_epoch_zero_and_later(kind):
    thresholds = set()
    for seed in range(25):
        labels, tight, loose = dbscan_like(seed, kind)
        if not (Counter(labels[labels >= 0].tolist()).most_common(1)[0][1] > 1):
            continue
        got, threshold = reliable_labels(labels, tight, loose)
        kept, want_threshold = reference_reliability(labels, tight, loose)
        assert threshold == pytest.approx(want_threshold, abs=1e-12)
        np.testing.assert_array_equal(got != -1, kept)
        np.testing.assert_array_equal(got[kept], labels[kept])  # original ids kept
        thresholds.add(round(want_threshold, 9))
        # a later epoch reuses a given threshold (and returns it unchanged)
        labels2, tight2, loose2 = dbscan_like(seed + 1000, kind)
        for given in (threshold, 0.0, 0.5, 1.0):
            got2, same = reliable_labels(labels2, tight2, loose2, given)
            kept2, _ = reference_reliability(labels2, tight2, loose2, given)
            assert same == given
            np.testing.assert_array_equal(got2 != -1, kept2)
            np.testing.assert_array_equal(got2[kept2], labels2[kept2])
    assert len(thresholds) > 3  # the criterion was exercised, not a constant


def test_spcl_cluster_fixes_the_threshold_in_the_first_epoch(monkeypatch):
    """``SpCL.cluster``: one Jaccard distance (k1 30, k2 6), DBSCAN at eps, eps - 0.02 and
    eps + 0.02 (min_samples 4), the criterion with the epoch-0 threshold kept afterwards."""
    found = None
    for seed in range(200):  # two epochs whose own thresholds would keep different rows
        first, second = dbscan_like(seed, "nested"), dbscan_like(seed + 500, "nested")
        _, t0 = reference_reliability(*first)
        kept_fixed, _ = reference_reliability(*second, t0)
        kept_own, _ = reference_reliability(*second)
        if not np.array_equal(kept_fixed, kept_own):
            found = first, second, t0, kept_fixed
            break
    assert found is not None
    first, second, t0, kept_fixed = found
    current = {}
    calls = []

    def fake_jaccard(features, k1, k2, progress=True, max_distance=None):
        # pruning beyond the loose eps leaves every DBSCAN run's labels unchanged
        assert max_distance is None or max_distance >= 0.62 - 1e-9
        calls.append(("jaccard", k1, k2))
        return "distance"

    def fake_dbscan(dist, eps, min_samples):
        calls.append(("dbscan", round(eps, 9), min_samples))
        return current[round(eps, 9)]

    monkeypatch.setattr(spcl_module, "jaccard_distance", fake_jaccard)
    monkeypatch.setattr(spcl_module, "dbscan_labels", fake_dbscan)
    spcl = SpCL(build_model("small"))
    features = np.zeros((len(first[0]), 4), np.float32)
    current.update(zip((0.6, 0.58, 0.62), first, strict=True))
    labels = spcl.cluster(features)
    kept, _ = reference_reliability(*first)
    np.testing.assert_array_equal(labels != -1, kept)
    assert spcl.indep_threshold == pytest.approx(t0, abs=1e-12)
    assert calls == [("jaccard", 30, 6), ("dbscan", 0.6, 4), ("dbscan", 0.58, 4),
                     ("dbscan", 0.62, 4)]
    current.clear()
    current.update(zip((0.6, 0.58, 0.62), second, strict=True))
    features = np.zeros((len(second[0]), 4), np.float32)
    labels = spcl.cluster(features)
    np.testing.assert_array_equal(labels != -1, kept_fixed)
    assert spcl.indep_threshold == pytest.approx(t0, abs=1e-12)


def test_spcl_batches_put_each_unclustered_image_in_a_pass_once():
    """Un-clustered images are labels of their own in SpCL's sampler: one row per pass,
    not topped up to k copies, and not dropped like Cluster Contrast's outliers."""
    rng = np.random.default_rng(0)
    cluster_sizes = [2, 3, 4, 5, 6, 9]
    labels = np.concatenate([np.full(s, c) for c, s in enumerate(cluster_sizes)]
                            + [np.full(8, -1)])
    order = rng.permutation(len(labels))
    labels, camids = labels[order], rng.integers(0, 3, len(labels))
    # one pass: 6 clusters x 4 + 8 single rows = 32 = two batches of 4 x 4, no tail
    spcl = SpCL(build_model("small"))
    for epoch in range(3):
        batches = spcl.batches(labels, camids, p=4, k=4, iters=None, seed=1, epoch=epoch)
        assert len(batches) == 2
        rows = np.concatenate(batches)
        counts = Counter(rows.tolist())
        for row in np.flatnonzero(labels == -1):
            assert counts[row] == 1
        per_cluster = Counter(labels[rows][labels[rows] >= 0].tolist())
        assert per_cluster == dict.fromkeys(range(len(cluster_sizes)), 4)
        groups = split_pass(rows, np.where(labels >= 0, labels, 1000 + np.arange(len(labels))),
                            4)
        assert len(groups) == len(cluster_sizes) + 8


def test_spcl_clusters_the_memory_features():
    torch.manual_seed(0)
    spcl = SpCL(build_model("small"))
    assert spcl.cluster_features() is None  # before the first clustering: extract
    n, d = 20, spcl.model.feature_dim
    features = F.normalize(torch.randn(n, d), dim=1)
    labels = np.array([0] * 5 + [1] * 5 + [-1] * 10)
    spcl.new_labels(features, labels, None)
    batch = torch.randn(4, d)
    spcl.memory.update(batch, torch.tensor([0, 6, 12, 19]))
    got = spcl.cluster_features()
    assert torch.equal(got, spcl.memory.features)
    assert not torch.allclose(got, features)  # the updated memory, not a stale copy
    # a later clustering keeps the instance features (SpCL never re-extracts)
    spcl.new_labels(F.normalize(torch.randn(n, d), dim=1), np.array([0] * 10 + [-1] * 10),
                    None)
    assert torch.equal(spcl.cluster_features(), got)


# ============================================================================ ECN


class EcnReference:
    """ECN's ``InvNet`` + ``ExemplarMemory``, written from ``reid/loss/invariance.py``.

    Memory of zeros; logits x m^T / beta on the L2-normalised features; plain CE on the own
    slot while epoch <= 4, then soft targets: 1/knn on the knn highest logits (all slots,
    the own one included), then 1 on the own slot; loss -sum(w log softmax), batch mean.
    In backward, sample after sample: m[y] <- a m[y] + (1 - a) x, m[y] /= |m[y]|, with
    a = 0.01 x epoch.
    """

    def __init__(self, n: int, d: int, knn: int = 6, beta: float = 0.05, alpha: float = 0.01):
        self.em = torch.zeros(n, d)
        self.knn, self.beta, self.alpha = knn, beta, alpha

    def loss(self, raw: torch.Tensor, targets: torch.Tensor, epoch: int) -> torch.Tensor:
        x = F.normalize(raw, dim=1)
        self.saved = (x.detach().clone(), targets.clone())
        logits = x @ self.em.t() / self.beta
        if not (self.knn > 0 and epoch > 4):
            return F.cross_entropy(logits, targets)
        weights = torch.zeros_like(logits)
        ranked = torch.argsort(logits.detach(), dim=1, descending=True)
        for i in range(len(x)):
            for j in ranked[i, :self.knn].tolist():
                weights[i, j] = 1.0 / self.knn
            weights[i, int(targets[i])] = 1.0
        return -(weights * F.log_softmax(logits, dim=1)).sum(dim=1).mean()

    def backward_update(self, epoch: int) -> None:
        a = self.alpha * epoch
        for x, y in zip(*self.saved, strict=True):
            self.em[y] = a * self.em[y] + (1.0 - a) * x
            self.em[y] = self.em[y] / self.em[y].norm()


def test_ecn_memory_and_schedule_match_the_reference_step_by_step():
    torch.manual_seed(0)
    n = 24
    ecn = ECN(build_model("small"), k=6)
    ecn.new_labels(None, np.arange(n), None)
    d = ecn.model.feature_dim
    assert torch.count_nonzero(ecn.memory.features) == 0  # slots start at zero
    ref = EcnReference(n, d)
    gen = torch.Generator().manual_seed(1)
    switched = []
    for epoch in range(8):
        ecn.start_epoch(epoch)
        batches = ecn.batches(np.arange(n), np.zeros(n), p=2, k=4, iters=None, seed=0,
                              epoch=epoch)
        assert sorted(np.concatenate(batches).tolist()) == list(range(n))  # plain random
        # plus one batch with a repeated row: updates apply in batch order
        repeat = torch.randint(0, n, (7,), generator=gen).tolist()
        batches = [*batches, np.array([*repeat, repeat[0]])]
        for rows in batches:
            idx = torch.as_tensor(rows, dtype=torch.long)
            raw = torch.randn(len(rows), d, generator=gen) * 3
            ours_in = raw.clone().requires_grad_(True)
            ref_in = raw.clone().requires_grad_(True)
            ours = ecn.memory(ours_in, idx)
            want = ref.loss(ref_in, idx, epoch)
            ours.backward()
            want.backward()
            ecn.memory.update(ours_in.detach(), idx)
            ref.backward_update(epoch)
            assert ours.item() == pytest.approx(want.item(), rel=1e-5, abs=1e-5), epoch
            torch.testing.assert_close(ours_in.grad, ref_in.grad, rtol=1e-4, atol=1e-5)
            torch.testing.assert_close(ecn.memory.features, ref.em, rtol=0, atol=1e-5)
        switched.append(ecn.memory.k)
    assert switched == [0] * 5 + [6] * 3


# ============================================================================ MMT


def test_mmt_feature_model_averages_the_normalised_teachers():
    torch.manual_seed(0)
    model1 = build_model("small")
    torch.manual_seed(1)
    model2 = build_model("small")
    mmt = MutualMeanTeaching(model1, model2)
    gen = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for pair in mmt.pairs:  # students drift away from their teachers
            for q in pair.student.parameters():
                q.add_(0.3 * torch.randn(q.shape, generator=gen))
            pair.teacher.train()  # teachers get BN statistics of their own
            for _ in range(3):
                pair.teacher(torch.randn(8, 3, 32, 16, generator=gen) * 2 + 1)
        mmt.pairs[1].teacher.neck.weight.mul_(7.0)  # very different feature norms
    x = torch.randn(6, 3, 32, 16, generator=gen)
    fm = mmt.feature_model()
    fm.eval()
    with torch.no_grad():
        got = fm(x)
        teachers = [copy.deepcopy(p.teacher).eval() for p in mmt.pairs]
        each = [F.normalize(t(x), dim=1) for t in teachers]
    torch.testing.assert_close(got, (each[0] + each[1]) / 2, rtol=1e-5, atol=1e-6)
    assert (got.norm(dim=1) < 0.999).all()  # the two halves disagree: a real average

    # what the loop clusters (extract_features, no flip) is MMT's cf: the mean, re-normalised
    images = torch.randint(0, 256, (5, 3, 32, 16), dtype=torch.uint8, generator=gen)
    cf = extract_features(fm, images, flip=False, progress=False)
    with torch.no_grad():
        xi = eval_transform(images)
        want = F.normalize(sum(F.normalize(t(xi), dim=1) for t in teachers) / 2, dim=1)
    torch.testing.assert_close(cf, want, rtol=1e-5, atol=1e-6)


# ==================================================================== optimiser, recipes


def reference_step_lrs(base_lr: float, epochs: int, scheduler) -> list[float]:
    """Each epoch's lr from a torch scheduler stepped once at the end of every epoch."""
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=base_lr)
    sched = scheduler(opt)
    lrs = []
    for _ in range(epochs):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs


@pytest.mark.parametrize("method, step_size", [
    (ClusterContrast, 20), (SpCL, 20),  # StepLR(step_size=20, gamma=0.1) over 50 epochs
    (ECN, 40),  # ECN's main.py: lr x 0.1 ** (epoch // 40) over 60 epochs
])
def test_step_schedule_is_steplr_stepped_per_epoch(method, step_size):
    r = method.recipe
    assert r["schedule"] == "step"
    step_lr = reference_step_lrs(
        r["lr"], r["epochs"],
        lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=step_size, gamma=0.1))
    milestones = list(range(step_size, r["epochs"], step_size))
    multi = reference_step_lrs(
        r["lr"], r["epochs"],
        lambda o: torch.optim.lr_scheduler.MultiStepLR(o, milestones=milestones, gamma=0.1))
    steps = r.get("iters", 100)
    for epoch in range(r["epochs"]):
        for i in (0, 1, steps // 2, steps - 1):  # the loop's fractional epochs
            t = epoch + i / steps
            lr = lr_at(t, r["lr"], r["epochs"], schedule=r["schedule"],
                       milestones=r["milestones"])
            assert lr == pytest.approx(step_lr[epoch], rel=1e-9), (epoch, i)
            assert lr == pytest.approx(multi[epoch], rel=1e-9), (epoch, i)
    assert step_lr[step_size - 1] == r["lr"]
    assert step_lr[step_size] == pytest.approx(r["lr"] / 10)


def test_mmt_schedule_is_constant():
    r = MutualMeanTeaching.recipe
    for t in np.linspace(0, r["epochs"], 97, endpoint=False):
        assert lr_at(float(t), r["lr"], r["epochs"], schedule=r["schedule"],
                     milestones=r.get("milestones", ())) == r["lr"]


def _adam_steps(model, groups_of, steps: int = 3) -> dict[str, torch.Tensor]:
    optimizer = groups_of(model)
    gen = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(steps):
        out = model(torch.randn(8, 3, 32, 16, generator=gen))
        # a small loss scale makes the gradients comparable to wd x parameter, so that a
        # missing weight decay on any parameter changes the step
        loss = 1e-3 * (out.embeddings.pow(2).mean() + out.features.mean())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def test_weight_decay_on_every_parameter_equals_the_reference_groups():
    torch.manual_seed(0)
    base = build_model("small")
    lr, wd = 1e-2, 5e-4

    def ours(model):
        return torch.optim.Adam(param_groups(model.parameters(), wd, decay="all"), lr=lr)

    def reference(model):  # one group per trainable parameter, decay set on Adam itself
        groups = [{"params": [v]} for _, v in model.named_parameters() if v.requires_grad]
        return torch.optim.Adam(groups, lr=lr, weight_decay=wd)

    def matrices_only(model):
        return torch.optim.Adam(param_groups(model.parameters(), wd, decay="matrices"), lr=lr)

    got = _adam_steps(copy.deepcopy(base), ours)
    want = _adam_steps(copy.deepcopy(base), reference)
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=0, atol=1e-7, msg=name)
    # the comparison is sensitive: sparing the 1-D parameters changes the result
    spared = _adam_steps(copy.deepcopy(base), matrices_only)
    assert any(not torch.allclose(spared[n], want[n], rtol=0, atol=1e-6) for n in want)
    groups = param_groups(base.parameters(), wd, decay="all")
    trainable = {id(p) for p in base.parameters() if p.requires_grad}
    assert {id(p) for g in groups for p in g["params"]} == trainable
    assert all(g["weight_decay"] == wd for g in groups)


@pytest.mark.parametrize("method, expected", [
    # Cluster Contrast README (Market-1501, DBSCAN): -b 256 --num-instances 16 --iters 200
    # --momentum 0.1; script defaults: lr 3.5e-4, wd 5e-4, 50 epochs, StepLR(20), temp 0.05
    (ClusterContrast, {"epochs": 50, "iters": 200, "lr": 3.5e-4, "weight_decay": 5e-4,
                       "decay": "all", "schedule": "step", "milestones": (20, 40),
                       "p": 16, "k": 16, "momentum": 0.1, "temperature": 0.05}),
    # spcl_train_usl.py defaults: -b 64, --num-instances 4, --iters 400, momentum 0.2
    (SpCL, {"epochs": 50, "iters": 400, "lr": 3.5e-4, "weight_decay": 5e-4, "decay": "all",
            "schedule": "step", "milestones": (20, 40), "p": 16, "k": 4, "momentum": 0.2,
            "temperature": 0.05}),
])
def test_memory_method_recipes_and_samplers(method, expected):
    r = method.recipe
    for key in ("epochs", "iters", "lr", "weight_decay", "decay", "schedule", "p", "k"):
        assert r[key] == expected[key], key
    assert tuple(r["milestones"]) == expected["milestones"]
    assert r["p"] * r["k"] == (256 if method is ClusterContrast else 64)
    m = method(build_model("small"))
    assert (m.momentum, m.temperature) == (expected["momentum"], expected["temperature"])
    assert (m.sampler, m.other_cameras) == ("multi_gallery", True)


def test_mmt_recipe_and_sampler():
    # mmt_train_dbscan.py defaults: -b 64, --num-instances 4, --iters 400, 40 epochs,
    # lr 3.5e-4 with no scheduler, wd 5e-4 on every parameter
    r = MutualMeanTeaching.recipe
    assert (r["epochs"], r["iters"], r["lr"], r["weight_decay"]) == (40, 400, 3.5e-4, 5e-4)
    assert (r["schedule"], r["decay"], r["p"], r["k"]) == ("constant", "all", 16, 4)
    m = MutualMeanTeaching(build_model("small"))
    assert (m.sampler, m.other_cameras) == ("multi_gallery", True)
