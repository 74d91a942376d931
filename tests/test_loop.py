"""The course's one training loop (``reidlib.training.fit``) and every method on it (CPU).

Covers: every method trains and records; hidden ids never reach training; ``select`` keeps
rows out; memories move after each step; MMT's teachers; a camera-aware method added in a
few lines from ``batch.camids``; checkpoints resume to the same weights as an uninterrupted
run for every method, in process and after a SIGKILL of a training subprocess.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from fakes import colour_identity_set

from reidlib.data.imageset import ImageSet
from reidlib.feature_learning import (
    ECN,
    ClusterContrast,
    MutualMeanTeaching,
    PartContrast,
    SpCL,
    credible_selector,
)
from reidlib.feature_learning.selection import credible_mask
from reidlib.models import build_model
from reidlib.training import Method, PseudoLabelClassification, fit
from reidlib.training.classification import centroid_classifier
from reidlib.training.features import autocast_for

TESTS = Path(__file__).parent


def tiny_set(n_ids=8, per_id=6, cams=3, size=(32, 16), seed=0):
    return colour_identity_set(n_ids, per_id, cams, size, seed)


def oracle_cluster(train: ImageSet):
    """Clusters = the true ids (as 0..C-1), so each test knows the labels the loop gets."""
    _, labels = np.unique(train.pids, return_inverse=True)
    return lambda features: labels.astype(np.int64)


def small_model(seed=0):
    torch.manual_seed(seed)
    return build_model("small")


def state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def changed(before, model):
    return any(not torch.equal(before[k], v) for k, v in model.state_dict().items()
               if k in before)


def spcl_oracle(m, c):
    """SpCL with the oracle clustering instead of its own self-paced one (tiny data)."""
    return SpCL(m)


METHODS = {
    "ce+triplet": lambda m, c: PseudoLabelClassification(m),
    "triplet": lambda m, c: PseudoLabelClassification(m, ce=False),
    "ce+triplet-random-pk": lambda m, c: PseudoLabelClassification(m, classifier_init="random"),
    "ecn": lambda m, c: ECN(m, k=2, neighbour_epoch=1),
    "cluster-contrast": lambda m, c: ClusterContrast(m),
    "spcl": spcl_oracle,
    "mmt": lambda m, c: MutualMeanTeaching(m),
    "parts": lambda m, c: PartContrast(m, c),
}


# ------------------------------------------------------------------ the loop


@pytest.mark.parametrize("name", list(METHODS))
def test_every_method_trains_and_records(name):
    train = tiny_set()
    cluster = oracle_cluster(train)
    method = METHODS[name](small_model(), cluster)
    before = [state(m) for m in method.models()]
    rows = np.arange(0, len(train), 2)
    history = fit(method, train, cluster=cluster, epochs=2, p=4, k=3, lr=1e-3,
                  snapshot_rows=rows, progress=False)
    assert [e.epoch for e in history] == [0, 1]
    for e in history:
        assert e.quality["ari"] == pytest.approx(1.0)  # the oracle's labels, scored
        assert all(np.isfinite(v) for v in e.losses.values()) and "loss" in e.losses
        assert len(e.snapshot) == len(rows) and e.images > 0
        np.testing.assert_array_equal(e.snapshot.pid, train.pids[rows])
    assert any(changed(b, m) for b, m in zip(before, method.models(), strict=True))
    assert not any(m.training for m in method.models())  # handed back in eval mode


def test_fixed_labels_and_reclustering_every_n_epochs():
    train = tiny_set()
    calls = []

    def cluster(features):
        calls.append(len(features))
        return oracle_cluster(train)(features)

    method = PseudoLabelClassification(small_model())
    history = fit(method, train, cluster=cluster, recluster_every=2, epochs=4, p=4, k=3,
                  lr=1e-3, progress=False)
    assert len(calls) == 2
    assert [e.labels is not None for e in history] == [True, False, True, False]
    fixed = fit(PseudoLabelClassification(small_model(), classifier_init="random"), train,
                labels=train.pids, epochs=2, p=4, k=3, lr=1e-3, progress=False)
    assert fixed[0].labels is None and fixed[0].losses["ce"] > 0


def test_hidden_ids_never_reach_training():
    """Same clustering, other hidden ids: the trained weights are identical (and seeded)."""
    train = tiny_set()
    cluster = oracle_cluster(train)
    relabelled = ImageSet(train.images, train.pids[::-1].copy(), train.camids)
    weights = []
    for data in (train, train, relabelled):
        method = ClusterContrast(small_model())
        fit(method, data, cluster=cluster, epochs=1, p=4, k=3, lr=1e-3, progress=False)
        weights.append(state(method.model))
    for other in weights[1:]:
        assert all(torch.equal(weights[0][k], other[k]) for k in weights[0])


def test_select_keeps_doubtful_rows_out_of_batches():
    train = tiny_set()
    seen = []

    class Spy(ClusterContrast):
        def loss(self, batch):
            seen.append(batch.indices.cpu().numpy())
            return super().loss(batch)

    def drop_first_cluster(features, labels):
        return np.where(labels == 0, -1, labels)

    method = Spy(small_model())
    history = fit(method, train, cluster=oracle_cluster(train), epochs=1, p=4, k=3, lr=1e-3,
                  select=drop_first_cluster, progress=False)
    rows = np.concatenate(seen)
    assert not np.isin(rows, np.arange(6)).any()  # cluster 0 = the first identity's 6 rows
    assert (history[0].labels[:6] == -1).all()
    assert method.memory.num_classes == 7


def test_iters_fixes_the_epoch_length():
    train = tiny_set()
    history = fit(ClusterContrast(small_model()), train, cluster=oracle_cluster(train),
                  epochs=1, p=2, k=3, iters=7, lr=1e-3, progress=False)
    assert history[0].images == 7 * 6


def test_cluster_memory_moves_after_each_step():
    train = tiny_set()
    method = ClusterContrast(small_model())
    steps = []
    original = method.after_step

    def after_step(batch):
        before = method.memory.features.clone()
        original(batch)
        steps.append(not torch.equal(before, method.memory.features))

    method.after_step = after_step
    fit(method, train, cluster=oracle_cluster(train), epochs=1, p=4, k=3, lr=1e-3,
        progress=False)
    assert steps and all(steps)


def test_mmt_trains_students_and_averages_teachers():
    train = tiny_set()
    method = MutualMeanTeaching(small_model(), alpha=0.9)
    fit(method, train, cluster=oracle_cluster(train), epochs=1, p=4, k=3, lr=1e-3,
        progress=False)
    for pair in method.pairs:
        assert not any(q.requires_grad for q in pair.teacher.parameters())
        assert pair.step > 0
        student, teacher = dict(pair.student.named_parameters()), pair.teacher.named_parameters()
        assert any(not torch.equal(student[name], q) for name, q in teacher)
    trained = {id(q) for q in method.parameters()}
    assert not trained & {id(q) for p in method.pairs for q in p.teacher.parameters()}


def test_centroid_classifier_rows_are_normalised_class_means():
    rng = np.random.default_rng(0)
    features = torch.tensor(rng.standard_normal((10, 256)), dtype=torch.float32)
    labels = np.array([1, 1, -1, 0, 0, 0, 2, -1, 2, 2])
    model = small_model()
    centroid_classifier(model, features, labels)
    for cluster in range(3):
        mean = features[labels == cluster].mean(0)
        torch.testing.assert_close(model.classifier.weight[cluster], F.normalize(mean, dim=0))
    assert model.num_classes == 3


def test_credible_selector_matches_credible_mask():
    rng = np.random.default_rng(1)
    features = rng.standard_normal((40, 8)).astype(np.float32)
    labels = np.repeat(np.arange(8), 5)
    labels[3] = -1
    select = credible_selector(k=3, proto_threshold=0.5)
    mask = credible_mask(features, labels, k=3, proto_threshold=0.5)
    np.testing.assert_array_equal(select(features, labels), np.where(mask, labels, -1))
    assert 0 < mask.sum() < 39


def test_loop_errors_are_clear():
    train = tiny_set()
    junk = ImageSet(train.images, np.where(np.arange(len(train)) == 0, -1, train.pids),
                    train.camids)
    method = ClusterContrast(small_model())
    with pytest.raises(ValueError, match="junk"):
        fit(method, junk, cluster=oracle_cluster(train), epochs=1, p=4, k=3, lr=1e-3)
    with pytest.raises(ValueError, match="epochs"):
        fit(method, train, cluster=oracle_cluster(train), epochs=0, p=4, k=3, lr=1e-3)
    with pytest.raises(ValueError, match="exactly one"):
        fit(method, train, epochs=1, p=4, k=3, lr=1e-3)
    with pytest.raises(ValueError, match=r"cluster\(features\) must have shape \(N,\)"):
        fit(method, train, cluster=lambda f: np.zeros(3, dtype=int), epochs=1, p=4,
            k=3, lr=1e-3, progress=False)
    with pytest.raises(ValueError, match="schedule"):
        fit(method, train, cluster=oracle_cluster(train), epochs=1, lr=1e-3, schedule="x")
    with pytest.raises(ValueError, match="sampler must be one of"):
        ClusterContrast(small_model(), sampler="bank")
    with pytest.raises(ValueError, match="at least one loss"):
        PseudoLabelClassification(small_model(), ce=False, triplet=False)
    with pytest.raises(TypeError, match="ReidModel"):
        ClusterContrast(torch.nn.Linear(2, 2))


def test_part_branches_are_read_from_the_loops_concat_features():
    """The branch memories start from the same features one extraction per branch gives."""
    from reidlib.feature_learning.parts import extract_part_features
    from reidlib.training.features import extract_features

    train = tiny_set()
    method = PartContrast(small_model(), oracle_cluster(train))
    features = extract_features(method.feature_model(), train, flip=False, progress=False)
    method.new_labels(features, oracle_cluster(train)(None), train)
    direct = extract_part_features(method.model, train, flip=False, progress=False)
    for name, memory in method.memories.items():
        labels = method.branch_labels[name].numpy()
        for row, cluster in enumerate(np.unique(labels[labels >= 0])):
            mean = F.normalize(direct[name][labels == cluster].mean(0), dim=0)
            torch.testing.assert_close(memory.centroids[row], mean, rtol=1e-4, atol=1e-5)
    assert set(method.memories) == {"global", "upper", "lower"}
    with pytest.raises(ValueError, match="concat"):
        method.new_labels(features[:, :10], oracle_cluster(train)(None), train)


# ------------------------------------------------------- a camera-aware method in one file


class CameraCentredContrast(Method):
    """A test-only camera-aware method: embeddings centred per camera within the batch,
    then contrasted with per-(cluster) centroids. It reads ``batch.camids``: chapter 3's
    methods need nothing else from the loop."""

    def __init__(self, model):
        super().__init__(model)
        model.reset_classifier(0)
        self.seen_cameras = set()

    def new_labels(self, features, labels, train):
        keep = torch.as_tensor(labels >= 0)
        y = torch.as_tensor(labels[labels >= 0])
        self.centroids = F.normalize(torch.zeros(int(y.max()) + 1, features.shape[1])
                                     .index_add_(0, y, features[keep]), dim=1)

    def loss(self, batch):
        with autocast_for(batch.images.device):
            x = self.model(batch.augmented()).embeddings.float()
        for cam in batch.camids.unique():
            here = batch.camids == cam
            x[here] = x[here] - x[here].mean(0) + x.mean(0)
        self.seen_cameras.update(batch.camids.tolist())
        loss = F.cross_entropy(F.normalize(x, dim=1) @ self.centroids.T / 0.05, batch.labels)
        return loss, {"camera": loss}


def test_a_camera_aware_method_plugs_in_with_batch_camids():
    train = tiny_set()
    method = CameraCentredContrast(small_model())
    history = fit(method, train, cluster=oracle_cluster(train), epochs=1, p=4, k=3, lr=1e-3,
                  progress=False)
    assert method.seen_cameras == set(np.unique(train.camids).tolist())
    assert np.isfinite(history[0].losses["camera"])


# --------------------------------------------------------------------- resuming


class Interrupt(Exception):
    pass


def stop_at(epoch, step):
    def on_step(e, s):
        if (e, s) == (epoch, step):
            raise Interrupt
    return on_step


def all_weights(method):
    return [state(m) for m in method.models()]


RESUME_ARGS = dict(epochs=3, p=4, k=3, lr=1e-3, recluster_every=1, progress=False)


@pytest.mark.parametrize("name", list(METHODS))
def test_resume_after_interruption_equals_uninterrupted_run(name, tmp_path):
    """Stopped mid-epoch 1, rebuilt from scratch and resumed: the same weights and memory."""
    train = tiny_set()
    cluster = oracle_cluster(train)
    every = 2 if name == "ce+triplet-random-pk" else 1  # PUL-style rounds too
    args = {**RESUME_ARGS, "recluster_every": every}
    reference = METHODS[name](small_model(), cluster)
    ref_history = fit(reference, train, cluster=cluster, **args)

    path = tmp_path / "run.pt"
    first = METHODS[name](small_model(), cluster)
    with pytest.raises(Interrupt):
        fit(first, train, cluster=cluster, checkpoint=path, on_step=stop_at(1, 1), **args)
    resumed = METHODS[name](small_model(), cluster)
    history = fit(resumed, train, cluster=cluster, checkpoint=path, **args)

    assert [e.epoch for e in history] == [0, 1, 2]
    assert [e.losses for e in history] == [e.losses for e in ref_history]
    for a, b in zip(all_weights(reference), all_weights(resumed), strict=True):
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    if getattr(reference, "memory", None) is not None:
        assert torch.equal(reference.memory.features, resumed.memory.features)


def test_resume_refuses_other_settings(tmp_path):
    train = tiny_set()
    path = tmp_path / "run.pt"
    fit(ClusterContrast(small_model()), train, cluster=oracle_cluster(train), epochs=1, p=4,
        k=3, lr=1e-3, checkpoint=path, progress=False)
    with pytest.raises(ValueError, match="other settings"):
        fit(ClusterContrast(small_model()), train, cluster=oracle_cluster(train), epochs=1,
            p=4, k=3, lr=2e-3, checkpoint=path, progress=False)


CHILD = textwrap.dedent("""
    import sys, time
    import numpy as np, torch
    sys.path.insert(0, {tests!r})
    from fakes import colour_identity_set
    from reidlib.feature_learning import SpCL
    from reidlib.models import build_model
    from reidlib.training import fit

    train = colour_identity_set(8, 6, 3, (32, 16), 0)
    labels = np.unique(train.pids, return_inverse=True)[1]
    torch.manual_seed(0)
    method = SpCL(build_model("small"))
    marker = {marker!r}

    def on_step(epoch, step):
        if marker and (epoch, step) == (1, 1):
            open(marker, "w").close()
            time.sleep(60)  # a long epoch: the parent kills us here

    fit(method, train, cluster=lambda f: labels, epochs=3, p=4, k=3, lr=1e-3,
        checkpoint={path!r}, on_step=on_step, progress=False)
    torch.save(method.model.state_dict(), {out!r})
""")


def run_child(tmp_path, marker, out):
    code = CHILD.format(tests=str(TESTS), marker=str(marker) if marker else "",
                        path=str(tmp_path / "run.pt"), out=str(out))
    return subprocess.Popen([sys.executable, "-c", code])


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_equals_uninterrupted(tmp_path):
    marker = tmp_path / "in-epoch-1"
    child = run_child(tmp_path, marker, tmp_path / "killed.pt")
    deadline = time.time() + 120
    while not marker.exists():
        assert child.poll() is None and time.time() < deadline, "child ended before epoch 1"
        time.sleep(0.1)
    os.kill(child.pid, signal.SIGKILL)
    assert child.wait() == -signal.SIGKILL
    assert (tmp_path / "run.pt").exists() and not (tmp_path / "killed.pt").exists()
    resumed = run_child(tmp_path, None, tmp_path / "resumed.pt")
    assert resumed.wait() == 0
    (tmp_path / "run.pt").unlink()
    fresh = run_child(tmp_path, None, tmp_path / "fresh.pt")
    assert fresh.wait() == 0
    a, b = torch.load(tmp_path / "resumed.pt"), torch.load(tmp_path / "fresh.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)
