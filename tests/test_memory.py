"""Memory banks (survey Eq. 6-7; ECN, Cluster Contrast, SpCL) against loop references.

The references are written per sample in float64 with torch ops (so that gradients can be
compared too), building the targets from the raw inputs, not from the memories' buffers.
"""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from reidlib.feature_learning.memory import ClusterMemory, HybridMemory, InstanceMemory

TAU = 0.1


def _unit(v):
    return v / v.norm()


def _rand(n, d, seed):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


def _nll(logits, target):
    """-log softmax(logits)[target] for one sample (float64 vector)."""
    return torch.logsumexp(logits, 0) - logits[target]


# --- references -------------------------------------------------------------------------------

def instance_reference(bank, emb, indices, k, tau=TAU):
    """ECN's code: weight 1/k on the k most similar slots (the own slot may be one of them),
    then the own slot's weight set to 1."""
    bank = torch.stack([_unit(m) for m in bank.double()])
    total = 0
    for e, i in zip(emb, indices.tolist(), strict=True):
        logits = bank @ _unit(e.double()) / tau
        sims = logits.detach().tolist()
        weights = dict.fromkeys(sorted(range(len(bank)), key=lambda j: -sims[j])[:k], 1 / max(k, 1))
        weights[i] = 1.0
        for j, w in weights.items():
            total = total + w * _nll(logits, j)
    return total / len(emb)


def cluster_centroids_reference(features, labels):
    """{original label: unit mean of the unit features}, clusters in sorted id order."""
    members = {}
    for f, y in zip(features.double(), labels, strict=True):
        if y != -1:
            members.setdefault(int(y), []).append(_unit(f))
    return {y: _unit(torch.stack(v).mean(0)) for y, v in sorted(members.items())}


def cluster_reference(features, labels, emb, indices, tau=TAU):
    cents = cluster_centroids_reference(features, labels)
    order = list(cents)
    table = torch.stack([cents[y] for y in order])
    total = 0
    for e, i in zip(emb, indices.tolist(), strict=True):
        total = total + _nll(table @ _unit(e.double()) / tau, order.index(int(labels[i])))
    return total / len(emb)


def hybrid_reference(features, labels, emb, indices, tau=TAU):
    """SpCL: [plain mean of each cluster's unit features; each outlier's unit feature]."""
    feats = [_unit(f) for f in features.double()]
    clusters = sorted({int(y) for y in labels if y != -1})
    outliers = [r for r, y in enumerate(labels) if y == -1]
    table = [torch.stack([feats[r] for r, y in enumerate(labels) if y == c]).mean(0)
             for c in clusters] + [feats[r] for r in outliers]
    table = torch.stack(table)
    total = 0
    for e, i in zip(emb, indices.tolist(), strict=True):
        y = int(labels[i])
        target = clusters.index(y) if y != -1 else len(clusters) + outliers.index(i)
        total = total + _nll(table @ _unit(e.double()) / tau, target)
    return total / len(emb)


def sequential_update(bank, rows, emb, momentum):
    """The reference code bases' backward: one sample after the other, in batch order."""
    bank = bank.double().clone()
    for r, e in zip(rows.tolist(), emb.double(), strict=True):
        bank[r] = momentum * bank[r] + (1 - momentum) * _unit(e)
        bank[r] = bank[r] / bank[r].norm()
    return bank


# --- fixtures ---------------------------------------------------------------------------------

N, D = 14, 5
LABELS = np.array([4, 4, 9, -1, 9, 2, 4, -1, 2, 9, 2, -1, 4, 9])  # ids not contiguous
BATCH = torch.tensor([0, 6, 2, 9, 5, 10, 1, 13])  # clustered rows only


def _memories(features):
    return [InstanceMemory(features, temperature=TAU, k=3),
            ClusterMemory(features, LABELS, temperature=TAU),
            HybridMemory(features, LABELS, temperature=TAU)]


# --- losses -----------------------------------------------------------------------------------

@pytest.mark.parametrize("k", [0, 1, 3])
def test_instance_loss_matches_loop_reference(k):
    features, emb = _rand(N, D, 0), _rand(6, D, 1)
    indices = torch.tensor([3, 0, 11, 7, 0, 13])
    memory = InstanceMemory(features, temperature=TAU, k=k)
    ref = instance_reference(features, emb, indices, k)
    assert memory(emb, indices).item() == pytest.approx(float(ref), rel=1e-5)


def test_instance_neighbours_count_the_own_slot_as_ecn_does():
    # The embedding of row 0 is closest to its own slot: with k=2 ECN's code gives slot 0
    # weight 1 (not 1 + 1/2) and the one other nearest slot (slot 1) 1/2.
    features = torch.tensor([[1.0, 0.0, 0.0], [0.8, 0.6, 0.0], [0.0, 0.0, 1.0]])
    memory = InstanceMemory(features, temperature=1.0, k=2)
    x = torch.tensor([[1.0, 0.0, 0.0]])
    logp = torch.log_softmax(features @ x[0], dim=0)
    expected = -(logp[0] + 0.5 * logp[1])
    assert memory(x, torch.tensor([0])).item() == pytest.approx(expected.item(), rel=1e-6)


def test_cluster_loss_matches_loop_reference():
    features, emb = _rand(N, D, 2), _rand(len(BATCH), D, 3)
    memory = ClusterMemory(features, LABELS, temperature=TAU)
    ref = cluster_reference(features, LABELS, emb, BATCH)
    assert memory(emb, BATCH).item() == pytest.approx(float(ref), rel=1e-5)


def test_hybrid_loss_matches_loop_reference():
    features, emb = _rand(N, D, 4), _rand(6, D, 5)
    indices = torch.tensor([3, 0, 11, 9, 7, 3])  # outliers (3, 7, 11) included
    memory = HybridMemory(features, LABELS, temperature=TAU)
    ref = hybrid_reference(features, LABELS, emb, indices)
    assert memory(emb, indices).item() == pytest.approx(float(ref), rel=1e-5)


def test_cluster_infonce_hand_case():
    # Two clusters whose centroids are e1 and e2; x at 60 degrees from e1.
    # cos = (1/2, sqrt(3)/2), tau = 1/2 -> logits (1, sqrt 3); label 0:
    # -log e / (e + e^sqrt3) = log(1 + e^(sqrt3 - 1)) = 1.124715...
    features = torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 3.0]])
    memory = ClusterMemory(features, [5, 5, 9], temperature=0.5)
    x = torch.tensor([[1.0, math.sqrt(3.0)]])  # not unit length: normalised inside
    expected = math.log1p(math.exp(math.sqrt(3.0) - 1.0))
    assert expected == pytest.approx(1.124715, abs=1e-6)
    assert memory(x, torch.tensor([1])).item() == pytest.approx(expected, abs=1e-6)
    # the same image labelled with the other cluster: log(1 + e^(1 - sqrt3))
    assert memory(x, torch.tensor([2])).item() == pytest.approx(
        math.log1p(math.exp(1.0 - math.sqrt(3.0))), abs=1e-6)


def test_hybrid_hand_case_uses_unnormalised_centroids():
    # Cluster {e1, e2} -> centroid (1/2, 1/2) (length 0.71, as in SpCL); outlier -e1.
    features = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    memory = HybridMemory(features, [0, 0, -1], temperature=1.0)
    x = torch.tensor([[1.0, 0.0]])
    # logits: centroid 1/2, outlier -1; target = the cluster
    expected = math.log(math.exp(0.5) + math.exp(-1.0)) - 0.5
    assert memory(x, torch.tensor([0])).item() == pytest.approx(expected, abs=1e-6)
    # the outlier's own image: target = its instance slot
    expected_outlier = math.log(math.exp(0.5) + math.exp(-1.0)) + 1.0
    assert memory(x, torch.tensor([2])).item() == pytest.approx(expected_outlier, abs=1e-6)


# --- gradients --------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["instance", "cluster", "hybrid"])
def test_gradient_reaches_embeddings_only(kind):
    features = _rand(N, D, 6)
    base = _rand(len(BATCH), D, 7)
    memory = dict(zip(["instance", "cluster", "hybrid"], _memories(features), strict=True))[kind]
    before = {name: buf.clone() for name, buf in memory.named_buffers()}
    emb = base.clone().requires_grad_()
    memory(emb, BATCH).backward()
    assert list(memory.parameters()) == []
    for name, buf in memory.named_buffers():
        assert not buf.requires_grad and buf.grad is None
        torch.testing.assert_close(buf, before[name])  # the loss does not touch the memory

    ref_emb = base.clone().double().requires_grad_()
    if kind == "instance":
        ref = instance_reference(features, ref_emb, BATCH, 3)
    elif kind == "cluster":
        ref = cluster_reference(features, LABELS, ref_emb, BATCH)
    else:
        ref = hybrid_reference(features, LABELS, ref_emb, BATCH)
    ref.backward()
    torch.testing.assert_close(emb.grad, ref_emb.grad.float(), rtol=1e-4, atol=1e-6)


# --- updates ----------------------------------------------------------------------------------

REPEATED = torch.tensor([3, 1, 3, 8, 3, 0, 1])  # row 3 three times, row 1 twice


@pytest.mark.parametrize("momentum", [0.0, 0.2, 0.5, 1.0])
def test_instance_update_matches_sequential_loop(momentum):
    features, emb = _rand(N, D, 8), _rand(len(REPEATED), D, 9)
    memory = InstanceMemory(features, momentum=momentum)
    memory.update(emb, REPEATED)
    ref = sequential_update(F.normalize(features, dim=1), REPEATED, emb, momentum)
    torch.testing.assert_close(memory.features, ref.float(), rtol=1e-5, atol=1e-6)
    untouched = [r for r in range(N) if r not in REPEATED.tolist()]
    torch.testing.assert_close(memory.features[untouched],
                               F.normalize(features, dim=1)[untouched])


def test_hybrid_update_matches_sequential_loop():
    features, emb = _rand(N, D, 10), _rand(len(REPEATED), D, 11)
    memory = HybridMemory(features, LABELS, momentum=0.2)
    memory.update(emb, REPEATED)  # instance level: rows, outlier row 3 included
    ref = sequential_update(F.normalize(features, dim=1), REPEATED, emb, 0.2)
    torch.testing.assert_close(memory.features, ref.float(), rtol=1e-5, atol=1e-6)


def test_cluster_update_matches_sequential_loop():
    features, emb = _rand(N, D, 12), _rand(len(BATCH), D, 13)
    memory = ClusterMemory(features, LABELS, momentum=0.1)
    memory.update(emb, BATCH)  # clusters 4, 9, 2 appear 3, 2, 2 times (plus row 13 = 9)
    cents = cluster_centroids_reference(features, LABELS)
    order = list(cents)
    rows = torch.tensor([order.index(int(LABELS[i])) for i in BATCH])
    ref = sequential_update(torch.stack(list(cents.values())), rows, emb, 0.1)
    torch.testing.assert_close(memory.centroids, ref.float(), rtol=1e-5, atol=1e-6)


def test_cluster_hard_update_uses_the_least_similar_member():
    features, emb = _rand(N, D, 14), _rand(len(BATCH), D, 15)
    memory = ClusterMemory(features, LABELS, momentum=0.1, hard=True)
    memory.update(emb, BATCH)
    cents = cluster_centroids_reference(features, LABELS)
    order = list(cents)
    ref = torch.stack(list(cents.values()))
    chosen = {}
    for pos, i in enumerate(BATCH.tolist()):  # numpy-argmin semantics: first lowest wins
        c = order.index(int(LABELS[i]))
        sim = float(_unit(emb[pos].double()) @ ref[c])
        if c not in chosen or sim < chosen[c][0]:
            chosen[c] = (sim, pos)
    expected = ref.clone()
    for c, (_, pos) in chosen.items():
        expected[c] = _unit(0.1 * ref[c] + 0.9 * _unit(emb[pos].double()))
    torch.testing.assert_close(memory.centroids, expected.float(), rtol=1e-5, atol=1e-6)
    assert len(chosen) == 3


def test_update_ignores_autograd_and_keeps_unit_norm():
    features = _rand(N, D, 16) * 7  # not unit length: normalised by the constructor
    for memory in _memories(features):
        torch.testing.assert_close(memory.features.norm(dim=1),
                                   torch.ones(len(memory.features)))
        emb = _rand(len(BATCH), D, 17).requires_grad_()
        memory.update(emb * 3, BATCH)
        assert not memory.features.requires_grad
        torch.testing.assert_close(memory.features.norm(dim=1),
                                   torch.ones(len(memory.features)))


def test_training_step_uses_the_updated_memory():
    features = _rand(N, D, 18)
    memory = ClusterMemory(features, LABELS, momentum=0.0)  # momentum 0: slot := embedding
    emb = _rand(len(BATCH), D, 19)
    first = memory(emb, BATCH).item()
    memory.update(emb, BATCH)
    assert memory(emb, BATCH).item() != pytest.approx(first)


# --- labels, repr, devices, AMP ---------------------------------------------------------------

def test_labels_are_mapped_and_exposed():
    features = _rand(N, D, 20)
    cluster = ClusterMemory(features, torch.as_tensor(LABELS))
    assert cluster.cluster_ids.tolist() == [2, 4, 9]
    expected = [{2: 0, 4: 1, 9: 2}.get(int(y), -1) for y in LABELS]
    assert cluster.labels.tolist() == expected and cluster.num_classes == 3

    hybrid = HybridMemory(features, LABELS)
    outlier_rows = [3, 7, 11]
    assert [int(hybrid.labels[r]) for r in outlier_rows] == [3, 4, 5]  # in row order
    assert hybrid.num_clusters == 3 and hybrid.num_outliers == 3 and hybrid.num_classes == 6
    assert hybrid.targets().shape == (6, D)

    instance = InstanceMemory(features)
    assert instance.labels.tolist() == list(range(N)) and instance.num_classes == N
    for memory, word in [(cluster, "clusters=3"), (hybrid, "outliers=3"), (instance, "k=6")]:
        assert word in repr(memory) and len(repr(memory)) < 160


def test_hybrid_set_labels_keeps_instance_features():
    memory = HybridMemory(_rand(N, D, 21), LABELS)
    memory.update(_rand(3, D, 22), torch.tensor([0, 1, 2]))
    kept = memory.features.clone()
    memory.set_labels(np.full(N, -1))  # every image an outlier: pure instance memory
    torch.testing.assert_close(memory.features, kept)
    assert memory.num_clusters == 0 and memory.num_classes == N


def test_state_dict_holds_the_memory():
    memory = ClusterMemory(_rand(N, D, 23), LABELS)
    state = memory.state_dict()
    assert set(state) == {"features", "labels", "cluster_ids"}
    clone = ClusterMemory(_rand(N, D, 24), LABELS)
    clone.load_state_dict(state)
    torch.testing.assert_close(clone.centroids, memory.centroids)


def test_memories_follow_the_module_device_on_cpu():
    features = _rand(N, D, 25)
    for memory in _memories(features):
        memory = memory.to("cpu")
        assert all(buf.device.type == "cpu" for buf in memory.buffers())
        meta = torch.empty(len(BATCH), D, device="meta")
        with pytest.raises(ValueError, match="memory's device"):
            memory(meta, BATCH)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    features, emb = _rand(N, D, 26), _rand(len(REPEATED), D, 27)
    rows = torch.tensor([0, 6, 2, 9, 0, 6, 0])  # clustered rows, repeated
    for cpu, gpu in zip(_memories(features), _memories(features.cuda()), strict=True):
        assert gpu.features.is_cuda and gpu.labels.is_cuda
        torch.testing.assert_close(gpu(emb.cuda(), rows.cuda()).cpu(), cpu(emb, rows),
                                   rtol=1e-5, atol=1e-5)
        cpu.update(emb, rows)
        gpu.update(emb.cuda(), rows.cuda())
        torch.testing.assert_close(gpu.features.cpu(), cpu.features, rtol=1e-5, atol=1e-5)
    moved = ClusterMemory(features, LABELS).to("cuda")
    assert moved(emb[:3].cuda(), rows[:3].cuda()).is_cuda


def test_autocast_bfloat16_gives_float32_and_matches_float():
    features = _rand(N, D, 28)
    layer = torch.nn.Linear(D, D)
    x = _rand(len(BATCH), D, 29)
    for memory in _memories(features):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            emb = layer(x)  # bf16, as a model under AMP returns it
            assert emb.dtype == torch.bfloat16
            loss = memory(emb, BATCH)
        assert loss.dtype == torch.float32 and torch.isfinite(loss)
        # the similarities are float32 inside: same value as without autocast
        torch.testing.assert_close(loss, memory(emb.float(), BATCH), rtol=1e-6, atol=1e-6)
        loss.backward()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            memory.update(layer(x), BATCH)
        assert memory.features.dtype == torch.float32


class _HostReads(TorchFunctionMode):
    """Counts the tensor calls that read a value back to the host: each is a GPU sync on
    CUDA (a boolean mask too: its size must be known). Public TorchFunctionMode sees them
    on CPU as well, so the count is tested without a GPU."""

    READS = {"item", "tolist", "cpu", "numpy", "__bool__", "__int__", "__float__",
             "__index__", "nonzero", "bincount", "unique", "masked_select"}

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        mask = (name in ("__getitem__", "__setitem__") and isinstance(args[1], torch.Tensor)
                and args[1].dtype == torch.bool)
        self.count += name in self.READS or mask
        return func(*args, **(kwargs or {}))


def test_a_training_step_reads_the_device_back_at_most_three_times():
    # P x K batch, every cluster 4 times: the update still needs one read, not one per round.
    labels = np.repeat(np.arange(8), 4)
    features, emb = _rand(32, D, 40), _rand(32, D, 41)
    rows = torch.randperm(32, generator=torch.Generator().manual_seed(0))
    for memory in [InstanceMemory(features), ClusterMemory(features, labels),
                   HybridMemory(features, labels)]:
        with _HostReads() as forward:
            memory(emb, rows)
        with _HostReads() as update:
            memory.update(emb, rows)
        assert (forward.count, update.count) == (1, 2), type(memory).__name__


# --- errors -----------------------------------------------------------------------------------

@pytest.mark.parametrize("memory_index", [0, 1, 2])
def test_bad_batches_raise_clear_errors(memory_index):
    memory = _memories(_rand(N, D, 30))[memory_index]
    emb = _rand(3, D, 31)
    idx = torch.tensor([0, 1, 2])
    for call in (memory, memory.update):
        with pytest.raises(ValueError, match=rf"\(B, {D}\)"):
            call(_rand(3, D + 1, 32), idx)
        with pytest.raises(ValueError, match=rf"\(B, {D}\)"):
            call(emb[0], idx)
        with pytest.raises(ValueError, match="one per embedding"):
            call(emb, idx[:2])
        with pytest.raises(ValueError, match="one per embedding"):
            call(emb, idx[:, None])
        with pytest.raises(ValueError, match="integer"):
            call(emb, idx.float())
        with pytest.raises(ValueError, match=rf"\[0, {N}\)"):
            call(emb, torch.tensor([0, N, 1]))
        with pytest.raises(ValueError, match=rf"\[0, {N}\)"):
            call(emb, torch.tensor([0, -1, 1]))


def test_cluster_memory_rejects_outliers_in_the_batch():
    memory = ClusterMemory(_rand(N, D, 33), LABELS)
    with pytest.raises(ValueError, match=r"outlier rows \(label -1\).*\[3\]"):
        memory(_rand(2, D, 34), torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="outlier"):
        memory.update(_rand(2, D, 34), torch.tensor([7, 0]))


def test_bad_constructor_arguments_raise_clear_errors():
    features = _rand(N, D, 35)
    with pytest.raises(ValueError, match="one pseudo-label per feature row"):
        ClusterMemory(features, LABELS[:-1])
    with pytest.raises(ValueError, match="one pseudo-label per feature row"):
        HybridMemory(features, LABELS[:-1])
    with pytest.raises(ValueError, match="integers"):
        ClusterMemory(features, LABELS.astype(float))
    with pytest.raises(ValueError, match=">= -1 "):
        HybridMemory(features, np.where(LABELS == -1, -2, LABELS))
    with pytest.raises(ValueError, match="at least one cluster"):
        ClusterMemory(features, np.full(N, -1))
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        InstanceMemory(features[0])
    with pytest.raises(ValueError, match="floating point"):
        InstanceMemory(torch.ones(N, D, dtype=torch.long))
    with pytest.raises(ValueError, match="momentum"):
        InstanceMemory(features, momentum=1.5)
    with pytest.raises(ValueError, match="temperature"):
        ClusterMemory(features, LABELS, temperature=0.0)
    with pytest.raises(ValueError, match=rf"\[0, {N}\]"):
        InstanceMemory(features, k=N + 1)
    memory = InstanceMemory(features, k=2)
    memory.k = -1  # switched later by a training loop: checked at use
    with pytest.raises(ValueError, match="k "):
        memory(_rand(2, D, 36), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="one pseudo-label per feature row"):
        HybridMemory(features, LABELS).set_labels(LABELS[:3])
