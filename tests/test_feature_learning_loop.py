"""Chapter 2's unsupervised loop and its methods on a tiny learnable ImageSet (CPU)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from fakes import colour_identity_set

from reidlib.data.imageset import ImageSet
from reidlib.feature_learning.loop import epoch_batches, sampling_labels, train_unsupervised
from reidlib.feature_learning.methods import (
    MemoryContrast,
    MutualMeanTeaching,
    PartContrast,
    PseudoLabelClassification,
    centroid_classifier,
    credible_selector,
)
from reidlib.feature_learning.selection import credible_mask
from reidlib.models import build_model


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


# ------------------------------------------------------------------ sampling


def test_sampling_labels_hand_made():
    labels = np.array([7, 7, -1, 3, 3, -1, 9])
    # clusters -> 0..C-1 in sorted order, outliers left out
    np.testing.assert_array_equal(sampling_labels(labels, True, False), [1, 1, -1, 0, 0, -1, 2])
    # SpCL: outliers become their own identities after the clusters
    np.testing.assert_array_equal(sampling_labels(labels, True, True), [1, 1, 3, 0, 0, 4, 2])
    # ECN: every row is its own identity
    np.testing.assert_array_equal(sampling_labels(labels, False, False), np.arange(7))


def test_instance_batches_cover_rows_once():
    batches = epoch_batches(np.arange(50), p=4, k=3, seed=0, epoch=0, instance_level=True)
    rows = np.concatenate(batches)
    assert all(len(b) == 12 for b in batches) and len(batches) == 4
    assert len(np.unique(rows)) == len(rows)  # no repeats within an epoch
    again = epoch_batches(np.arange(50), p=4, k=3, seed=0, epoch=0, instance_level=True)
    assert all(np.array_equal(a, b) for a, b in zip(batches, again, strict=True))


# ------------------------------------------------------------------ the loop


@pytest.mark.parametrize("make", [
    lambda m, c: PseudoLabelClassification(m),
    lambda m, c: PseudoLabelClassification(m, ce=False),
    lambda m, c: MemoryContrast(m, "instance", k=2),
    lambda m, c: MemoryContrast(m, "cluster"),
    lambda m, c: MemoryContrast(m, "hybrid"),
    lambda m, c: MutualMeanTeaching(m),
    lambda m, c: PartContrast(m, c),
], ids=["ce+triplet", "triplet", "ecn", "cluster-contrast", "spcl", "mmt", "parts"])
def test_every_method_trains_and_records(make):
    train = tiny_set()
    cluster = oracle_cluster(train)
    method = make(small_model(), cluster)
    before = [state(m) for m in method.models()]
    rows = np.arange(0, len(train), 2)
    history = train_unsupervised(method, train, cluster, epochs=2, p=4, k=3, lr=1e-3,
                                 snapshot_rows=rows, progress=False)
    assert [e.epoch for e in history] == [0, 1]
    for e in history:
        assert e.quality["ari"] == pytest.approx(1.0)  # the oracle's labels, scored
        assert all(np.isfinite(v) for v in e.losses.values()) and "loss" in e.losses
        assert len(e.snapshot) == len(rows) and e.images > 0
        np.testing.assert_array_equal(e.snapshot.pid, train.pids[rows])
    assert any(changed(b, m) for b, m in zip(before, method.models(), strict=True))
    assert not any(m.training for m in method.models())  # handed back in eval mode


def test_hidden_ids_never_reach_training():
    """Same clustering, other hidden ids: the trained weights are identical (and seeded)."""
    train = tiny_set()
    cluster = oracle_cluster(train)
    relabelled = ImageSet(train.images, train.pids[::-1].copy(), train.camids)
    weights = []
    for data in (train, train, relabelled):
        method = MemoryContrast(small_model(), "cluster")
        train_unsupervised(method, data, cluster, epochs=1, p=4, k=3, lr=1e-3, progress=False)
        weights.append(state(method.model))
    for other in weights[1:]:
        assert all(torch.equal(weights[0][k], other[k]) for k in weights[0])


def test_select_keeps_doubtful_rows_out_of_batches():
    train = tiny_set()
    seen = []

    class Spy(MemoryContrast):
        def loss(self, batch):
            seen.append(batch.indices.cpu().numpy())
            return super().loss(batch)

    def drop_first_cluster(features, labels):
        return np.where(labels == 0, -1, labels)

    method = Spy(small_model(), "cluster")
    history = train_unsupervised(method, train, oracle_cluster(train), epochs=1, p=4, k=3,
                                 lr=1e-3, select=drop_first_cluster, progress=False)
    rows = np.concatenate(seen)
    assert not np.isin(rows, np.arange(6)).any()  # cluster 0 = the first identity's 6 rows
    assert (history[0].labels[:6] == -1).all()
    assert method.memory.num_classes == 7


def test_cluster_memory_moves_after_each_step():
    train = tiny_set()
    method = MemoryContrast(small_model(), "cluster")
    steps = []

    original = method.after_step

    def after_step():
        before = method.memory.features.clone()
        original()
        steps.append(not torch.equal(before, method.memory.features))

    method.after_step = after_step
    train_unsupervised(method, train, oracle_cluster(train), epochs=1, p=4, k=3, lr=1e-3,
                       progress=False)
    assert steps and all(steps)


def test_mmt_trains_students_and_averages_teachers():
    train = tiny_set()
    method = MutualMeanTeaching(small_model(), alpha=0.9)
    train_unsupervised(method, train, oracle_cluster(train), epochs=1, p=4, k=3, lr=1e-3,
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
    labels = np.array([5, 5, -1, 2, 2, 2, 9, -1, 9, 9])
    model = small_model()
    centroid_classifier(model, features, labels)
    for row, cluster in enumerate([2, 5, 9]):  # classes in sorted label order
        mean = features[labels == cluster].mean(0)
        torch.testing.assert_close(model.classifier.weight[row], F.normalize(mean, dim=0))
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
    method = MemoryContrast(small_model(), "cluster")
    with pytest.raises(ValueError, match="junk"):
        train_unsupervised(method, junk, oracle_cluster(train), epochs=1, p=4, k=3, lr=1e-3)
    with pytest.raises(ValueError, match="epochs"):
        train_unsupervised(method, train, oracle_cluster(train), epochs=0, p=4, k=3, lr=1e-3)
    with pytest.raises(ValueError, match="integer labels"):
        train_unsupervised(method, train, lambda f: np.zeros(3, dtype=int), epochs=1, p=4,
                           k=3, lr=1e-3, progress=False)
    with pytest.raises(ValueError, match="memory must be one of"):
        MemoryContrast(small_model(), "bank")
    with pytest.raises(ValueError, match="at least one loss"):
        PseudoLabelClassification(small_model(), ce=False, triplet=False)
    with pytest.raises(TypeError, match="ReidModel"):
        MemoryContrast(torch.nn.Linear(2, 2))


def test_part_branches_are_read_from_the_loops_concat_features():
    """The branch memories start from the same features one extraction per branch gives."""
    from reidlib.feature_learning.parts import extract_part_features
    from reidlib.training.features import extract_features

    train = tiny_set()
    method = PartContrast(small_model(), oracle_cluster(train))
    features = extract_features(method.feature_model(), train, flip=False, progress=False)
    method.start_epoch(features, oracle_cluster(train)(None), train)
    direct = extract_part_features(method.model, train, flip=False, progress=False)
    for name, memory in method.memories.items():
        labels = method.branch_labels[name].numpy()
        for row, cluster in enumerate(np.unique(labels[labels >= 0])):
            mean = F.normalize(direct[name][labels == cluster].mean(0), dim=0)
            torch.testing.assert_close(memory.centroids[row], mean, rtol=1e-4, atol=1e-5)
    assert set(method.memories) == {"global", "upper", "lower"}
    with pytest.raises(ValueError, match="concat"):
        method.start_epoch(features[:, :10], oracle_cluster(train)(None), train)
