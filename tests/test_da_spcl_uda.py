"""SpCL's UDA setting (reidlib.domain_adaptation.spcl_uda) against loop references.

The references follow SpCL's Eq. 1-2 (survey Eq. 6-7) per sample in float64, building the
table from the raw features by hand: source class centroids (normalised mean of the
normalised features of an identity), target cluster centroids (plain mean of the members'
normalised features), target outliers (their own normalised feature).
"""

import numpy as np
import pytest
import torch
from fakes import colour_identity_set

from reidlib.domain_adaptation.spcl_uda import (
    SOURCE,
    TARGET,
    SourceHybridMemory,
    SpCLUDA,
    source_target_set,
)
from reidlib.models import build_model
from reidlib.training import fit

TAU = 0.1
MOMENTUM = 0.3

# 8 training rows, the two domains interleaved: source ids 7 (rows 1, 6) and 3 (row 3);
# target clusters 5 (rows 0, 4) and 9 (rows 2, 7), one un-clustered target row (5).
IS_SOURCE = np.array([False, True, False, True, False, False, True, False])
LABELS = np.array([5, 7, 9, 3, 5, -1, 7, 9])


def _unit(v):
    return v / v.norm()


def _rand(n, d, seed):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


def reference_slots(features):
    """{name: vector}: one entry per *stored* slot, named by what it stands for."""
    f = [_unit(v) for v in features.double()]
    slots = {}
    for sid in (3, 7):
        rows = [r for r in range(8) if IS_SOURCE[r] and LABELS[r] == sid]
        slots[("source", sid)] = _unit(sum(f[r] for r in rows) / len(rows))
    for r in range(8):
        if not IS_SOURCE[r]:
            slots[("instance", r)] = f[r]
    return slots


def slot_of(row):
    return ("source", LABELS[row]) if IS_SOURCE[row] else ("instance", row)


def reference_loss(slots, emb, rows, tau=TAU):
    """Mean over the batch of -log softmax over [source classes, target clusters, outliers]."""
    table, positive = [], {}
    for sid in (3, 7):
        positive[("source", sid)] = len(table)
        table.append(slots[("source", sid)])
    for cid in (5, 9):
        members = [r for r in range(8) if not IS_SOURCE[r] and LABELS[r] == cid]
        for r in members:
            positive[("instance", r)] = len(table)
        table.append(sum(slots[("instance", r)] for r in members) / len(members))
    for r in range(8):
        if not IS_SOURCE[r] and LABELS[r] == -1:
            positive[("instance", r)] = len(table)
            table.append(slots[("instance", r)])
    table = torch.stack(table)
    total = 0
    for e, r in zip(emb, rows, strict=True):
        logits = table @ _unit(e.double()) / tau
        total = total + torch.logsumexp(logits, 0) - logits[positive[slot_of(r)]]
    return total / len(emb)


def reference_update(slots, emb, rows, momentum=MOMENTUM):
    slots = dict(slots)
    for e, r in zip(emb, rows, strict=True):
        key = slot_of(r)
        slots[key] = _unit(momentum * slots[key] + (1 - momentum) * _unit(e.double()))
    return slots


def memory(features):
    return SourceHybridMemory(features, LABELS, IS_SOURCE, momentum=MOMENTUM, temperature=TAU)


def test_loss_and_gradient_match_the_loop():
    features, emb = _rand(8, 5, 0), _rand(6, 5, 1).requires_grad_()
    rows = [1, 3, 0, 5, 6, 7]
    mem = memory(features)
    assert (mem.num_source, mem.num_target_clusters, mem.num_outliers) == (2, 2, 1)
    loss = mem(emb, torch.tensor(rows))
    ref_emb = emb.detach().double().requires_grad_()
    ref = reference_loss(reference_slots(features), ref_emb, rows)
    assert loss.item() == pytest.approx(ref.item(), rel=1e-5)
    loss.backward()
    ref.backward()
    torch.testing.assert_close(emb.grad.double(), ref_emb.grad, rtol=1e-4, atol=1e-6)


def test_momentum_update_matches_the_loop_with_repeated_classes():
    features, emb = _rand(8, 5, 2), _rand(7, 5, 3)
    rows = [1, 6, 1, 0, 5, 3, 0]  # source id 7 three times, target row 0 twice
    mem = memory(features)
    mem.update(emb, torch.tensor(rows))
    ref = reference_update(reference_slots(features), emb, rows)
    for r in range(8):
        torch.testing.assert_close(mem.row_features()[r].double(), ref[slot_of(r)],
                                   rtol=1e-5, atol=1e-6)
    # the next loss reads the moved slots (target centroids recomputed from instances)
    loss = mem(emb[:4], torch.tensor(rows[:4]))
    assert loss.item() == pytest.approx(reference_loss(ref, emb[:4], rows[:4]).item(), rel=1e-5)


def test_new_target_labels_keep_the_slots_and_restore_from_state():
    features = _rand(8, 5, 4)
    mem = memory(features)
    mem.update(_rand(2, 5, 5), torch.tensor([0, 1]))
    before = mem.features.clone()
    new = LABELS.copy()
    new[[0, 4, 2, 7]] = [-1, -1, 1, 1]  # cluster 5 dissolved: 1 cluster, 3 outliers
    mem.set_target_labels(new)
    assert torch.equal(mem.features, before)
    assert (mem.num_source, mem.num_target_clusters, mem.num_outliers) == (2, 1, 3)
    again = SourceHybridMemory.from_state(mem.state_dict(), **mem.settings())
    emb, rows = _rand(4, 5, 6), torch.tensor([0, 1, 2, 5])
    assert again(emb, rows).item() == pytest.approx(mem(emb, rows).item())
    assert (again.num_source, again.num_target_clusters) == (2, 1)


def test_memory_argument_checks():
    features = _rand(8, 5, 0)
    with pytest.raises(ValueError, match="is_source"):
        SourceHybridMemory(features, LABELS, IS_SOURCE.astype(int))
    with pytest.raises(ValueError, match="source rows and target rows"):
        SourceHybridMemory(features, np.abs(LABELS), np.ones(8, bool))
    bad = LABELS.copy()
    bad[1] = -1
    with pytest.raises(ValueError, match="true id"):
        SourceHybridMemory(features, bad, IS_SOURCE)
    mem = memory(features)
    with pytest.raises(ValueError, match=r"training rows in \[0, 8\)"):
        mem(_rand(2, 5, 1), torch.tensor([0, 8]))
    with pytest.raises(ValueError, match="integer"):
        mem(_rand(2, 5, 1), torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="embeddings"):
        mem(_rand(2, 4, 1), torch.tensor([0, 1]))


# --- the method through fit -------------------------------------------------------------------

def sets():
    source = colour_identity_set(4, 4, 2, seed=0)
    target = colour_identity_set(4, 4, 2, seed=1)  # other colours: another domain
    return source, target


class OracleUDA(SpCLUDA):
    """The target clustered by its true ids (one image un-clustered); records its input."""

    def cluster_target(self, features):
        self.seen = [*getattr(self, "seen", []), features.copy()]
        labels = self.target_pids.copy()
        labels[0] = -1
        return labels


def test_fit_two_epochs_trains_on_source_and_target_halves():
    source, target = sets()
    train, domains = source_target_set(source, target)
    assert (train.pids[16:] > train.pids[:16].max()).all()  # target ids never collide
    torch.manual_seed(0)
    method = OracleUDA(build_model("small"), train, domains)
    method.target_pids = target.pids.copy()
    steps = []
    original_loss = method.loss

    def loss(batch):
        steps.append((batch.indices.tolist(), batch.domains.tolist()))
        return original_loss(batch)

    method.loss = loss
    history = fit(method, train, domains=domains, cluster=method.cluster, epochs=2, lr=1e-4,
                  p=2, k=2, iters=2, progress=False)
    assert len(steps) == 4
    for rows, doms in steps:  # 4 source rows then 4 target rows
        assert doms == [SOURCE] * 4 + [TARGET] * 4
        assert all(r < 16 for r in rows[:4]) and all(r >= 16 for r in rows[4:])
    for record in history:
        assert all(np.isfinite(v) for v in record.losses.values())
        assert set(record.losses) == {"loss", "source", "target"}
        # source rows keep their true classes; the un-clustered target row is -1
        assert record.labels[:16].tolist() == np.repeat(np.arange(4), 4).tolist()
        assert record.labels[16] == -1
    # only the target rows were clustered: 16 rows, the memory's target slots
    assert [len(f) for f in method.seen] == [16, 16]
    assert method.memory.num_source == 4
    assert method.memory.num_outliers == 1


def test_cluster_never_reads_source_rows():
    source, target = sets()
    train, domains = source_target_set(source, target)
    method = SpCLUDA(build_model("small"), train, domains, k1=5, k2=2)
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 8)) * 5
    features = np.full((32, 8), np.nan, np.float32)  # NaN source rows would break DBSCAN
    features[16:] = centres[np.repeat(np.arange(4), 4)] + rng.normal(0, 0.01, (16, 8))
    features[16:] /= np.linalg.norm(features[16:], axis=1, keepdims=True)
    labels = method.cluster(features)
    assert labels[:16].tolist() == np.repeat(np.arange(4), 4).tolist()
    assert (labels[16:] >= 4).all()  # four well-separated target clusters found
    assert len(np.unique(labels[16:])) == 4


def test_method_argument_checks():
    source, target = sets()
    train, domains = source_target_set(source, target)
    with pytest.raises(ValueError, match="both present"):
        SpCLUDA(build_model("small"), train, np.zeros(32, np.int64))
    with pytest.raises(ValueError, match="hold 0"):
        SpCLUDA(build_model("small"), train, np.full(32, 2))
    with pytest.raises(ValueError, match="ImageSet"):
        SpCLUDA(build_model("small"), train.images, domains)
    with pytest.raises(ValueError, match="sampler"):
        SpCLUDA(build_model("small"), train, domains, sampler="pk")
    with pytest.raises(ValueError, match="one size"):
        source_target_set(source, colour_identity_set(2, 2, 2, size=(16, 8)))


def test_source_centroids_start_as_normalised_class_means():
    features = _rand(8, 5, 7)
    mem = memory(features)
    ref = reference_slots(features)
    for r in range(8):
        torch.testing.assert_close(mem.row_features()[r].double(), ref[slot_of(r)])
    assert torch.allclose(mem.features.norm(dim=1), torch.ones(len(mem.features)))
    assert mem.features.shape == (2 + 5, 5)  # 2 source classes, 5 target instances


def test_fit_with_domain_specific_bn():
    from reidlib.domain_adaptation.dsbn import convert_domain_bn, domain_bn_layers

    source, target = sets()
    train, domains = source_target_set(source, target)
    torch.manual_seed(0)
    model = convert_domain_bn(build_model("small"), 2)
    start = domain_bn_layers(model)[0].running_mean.clone()
    method = OracleUDA(model, train, domains)
    method.target_pids = target.pids.copy()
    history = fit(method, train, domains=domains, cluster=method.cluster, epochs=2, lr=1e-4,
                  p=2, k=2, iters=2, progress=False)
    assert method.dsbn and all(np.isfinite(v) for r in history for v in r.losses.values())
    first = domain_bn_layers(model)[0]
    # each domain's statistics moved, each with its own half (different colours)
    for d in (SOURCE, TARGET):
        assert not torch.allclose(first.running_mean[d], start[d])
    assert not torch.allclose(first.running_mean[SOURCE], first.running_mean[TARGET])
