"""The library's CUDA code paths, run on a CPU with explicit switches (and on CUDA when present).

On CUDA reidlib trains under bf16 autocast with the models and the augmented batches in
channels_last, keeps the uint8 training set on the device, renders the ``full`` world there
and feeds the memories and the evaluation what autocast produces. The development and CI
machines have no GPU, so each of those paths is run here on the CPU:

- bf16 autocast: :func:`cuda_autocast_on_cpu` binds ``enabled=True`` into
  ``reidlib.training.features.autocast_for`` in every module that calls it, so every
  method's forward passes (and the feature extraction for clustering) run in CPU bf16,
  exactly where they run in CUDA bf16; compared with a float32 run of the same two steps;
- channels_last (``fit``'s default on every device): compared with a contiguous run,
  ``fit(channels_last=False)``;
- the full profile's shapes: P x K = 16 x 16 batches through every method, and ResNet-50 at
  256x128 (2048-d, a 16x8 map) through every method (``slow``; a 256-image ResNet-50 step
  takes minutes on 2 CPU cores, so these use 2 x 2 batches and one step);
- rendering at 256x128 through ``render_images``, the function ``load_world`` calls on CUDA
  for the ``full`` profile, with ``device="cpu"``;
- memories and ``evaluate`` fed bf16 embeddings / distances.

CPU bf16 differs from CUDA bf16 in which ops autocast lists (CPU keeps fewer in float32),
so the CPU runs are a stand-in, not a proof; the tests marked ``gpu`` run the same paths
on CUDA (``benchmarks/gpu_check.sh`` runs them with the GPU figures).
"""

from __future__ import annotations

import functools
import sys
import time
from dataclasses import dataclass

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from fakes import colour_identity_set
from torch import nn

from reidlib.data.synthetic.render import image_parameters, render_images
from reidlib.data.synthetic.sample import (
    sample_cameras,
    sample_nuisances,
    sample_people,
    sample_walks,
)
from reidlib.data.synthetic.spec import get_domain, get_size
from reidlib.evaluation import evaluate, pairwise_distance
from reidlib.feature_learning import (
    ECN,
    ClusterContrast,
    ClusterMemory,
    HybridMemory,
    InstanceMemory,
    MutualMeanTeaching,
    PartContrast,
    SpCL,
)
from reidlib.models import build_model
from reidlib.training import Batch, PseudoLabelClassification, fit
from reidlib.training.features import autocast_for

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="needs CUDA")

# Each method as a factory (model, cluster) -> method; the loop's two-step settings follow
# from its sampler (one P x K pass for "pk", ``iters=2`` for the reference samplers).
METHODS = {
    "ce+triplet": lambda m, c: PseudoLabelClassification(m),
    "ecn": lambda m, c: ECN(m, k=2, neighbour_epoch=0),  # neighbourhood term from epoch 0
    "cluster-contrast": lambda m, c: ClusterContrast(m),
    "spcl": lambda m, c: SpCL(m),  # trained on the oracle clusters, as in test_loop
    "mmt": lambda m, c: MutualMeanTeaching(m),
    "parts": lambda m, c: PartContrast(m, c),
}
# The modules whose methods run their forward passes under autocast_for.
AUTOCAST_CALLERS = {"reidlib.training.features", "reidlib.training.classification",
                    "reidlib.feature_learning.contrast", "reidlib.feature_learning.mmt",
                    "reidlib.feature_learning.part_contrast"}


# ------------------------------------------------------------------------------ helpers


def cuda_autocast_on_cpu(monkeypatch) -> set[str]:
    """Force the CUDA autocast path on any device: ``autocast_for(..., enabled=True)`` in
    every loaded reidlib module that imported it. Returns the patched module names."""
    forced = functools.partial(autocast_for, enabled=True)
    patched = set()
    for name, module in list(sys.modules.items()):
        if name.startswith("reidlib") and getattr(module, "autocast_for", None) is autocast_for:
            monkeypatch.setattr(module, "autocast_for", forced)
            patched.add(name)
    return patched


class ConvSpy:
    """Records the output dtype of every Conv2d call, and the memory format of its input
    in training mode (``extract_features`` feeds NHWC-strided images, whatever the model)."""

    def __init__(self, models):
        self.dtypes: set[torch.dtype] = set()
        self.layouts: set[str] = set()
        self.handles = [conv.register_forward_hook(self.hook) for model in models
                        for conv in model.modules() if isinstance(conv, nn.Conv2d)]

    def hook(self, module, inputs, output):
        self.dtypes.add(output.dtype)
        if not module.training:
            return
        x = inputs[0]
        self.layouts.add("contiguous" if x.is_contiguous() else
                         "channels_last" if x.is_contiguous(memory_format=torch.channels_last)
                         else "other")

    def remove(self):
        for handle in self.handles:
            handle.remove()


def oracle_cluster(train):
    """The true ids as 0..C-1: every run of a method trains on the same labels."""
    labels = np.unique(train.pids, return_inverse=True)[1].astype(np.int64)
    return lambda features: labels


def backbone_vector(method) -> torch.Tensor:
    """The first trained network's parameters, flattened (classifiers are rebuilt at each
    clustering, so they are left out)."""
    model = method.models()[0]
    return torch.cat([q.detach().float().flatten().cpu() for name, q in model.named_parameters()
                      if "classifier" not in name])


def memories_of(method) -> list[nn.Module]:
    if getattr(method, "memories", None):
        return list(method.memories.values())
    return [] if getattr(method, "memory", None) is None else [method.memory]


@dataclass
class Run:
    method: object
    losses: dict
    update: torch.Tensor  # parameters after minus before the two steps
    spy: ConvSpy
    batches: list
    seconds: float


def train_two_steps(name, *, arch="small", size=(32, 16), n_ids=4, per_id=6, p=4, k=3,
                    seed=0, device="cpu", channels_last=False, images=None) -> Run:
    """Two optimiser steps of method ``name`` through ``fit`` on the oracle labels."""
    train = colour_identity_set(n_ids, per_id, 3, size, 0)
    cluster = oracle_cluster(train)
    torch.manual_seed(seed)
    method = METHODS[name](build_model(arch).to(device), cluster)
    steps = {} if method.sampler == "pk" and name != "ecn" else {"iters": 2}
    batches = []
    loss = method.loss

    def spy_loss(batch):
        batches.append((len(batch.indices), np.bincount(batch.labels.cpu().numpy())))
        return loss(batch)

    method.loss = spy_loss
    spy = ConvSpy(method.models())
    before = backbone_vector(method)
    start = time.perf_counter()
    history = fit(method, train, cluster=cluster, epochs=1, p=p, k=k, lr=1e-3, seed=seed,
                  progress=False, channels_last=channels_last, **steps)
    seconds = time.perf_counter() - start
    spy.remove()
    assert len(batches) == 2, f"{name}: expected two steps, got {len(batches)}"
    return Run(method, history[0].losses, backbone_vector(method) - before, spy, batches,
               seconds)


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(F.cosine_similarity(a.double(), b.double(), dim=0))


def assert_memories_close(a, b, max_row_distance: float) -> None:
    """Same memories, row by row: unit rows within ``max_row_distance`` of each other."""
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x.features.dtype == y.features.dtype == torch.float32
        assert x.features.shape == y.features.shape
        gap = (x.features.cpu() - y.features.cpu()).norm(dim=1).max()
        assert gap <= max_row_distance, f"{type(x).__name__}: rows differ by {gap:.4f}"


# ------------------------------------------------------------------- bf16 autocast (CPU)


@pytest.mark.parametrize("name", list(METHODS))
def test_bf16_autocast_steps_of_every_method_match_float32(name, monkeypatch):
    """CUDA's bf16 path on a CPU: finite losses close to float32, float32 memories and
    parameters, and an update that points where the float32 update points."""
    fp32 = train_two_steps(name)
    patched = cuda_autocast_on_cpu(monkeypatch)
    assert AUTOCAST_CALLERS <= patched
    bf16 = train_two_steps(name)
    other_seed = train_two_steps(name, seed=1)  # what "not close" looks like

    assert fp32.spy.dtypes == {torch.float32}
    assert bf16.spy.dtypes == {torch.bfloat16}, "a forward pass escaped autocast"
    assert bf16.losses.keys() == fp32.losses.keys()
    for key, value in fp32.losses.items():
        assert np.isfinite(bf16.losses[key])
        assert bf16.losses[key] == pytest.approx(value, rel=0.03, abs=0.02), key
    # Adam's first steps are ~lr * sign(gradient): the cosine of two updates is about the
    # share of gradient signs they agree on (measured: 0.88-0.99; another seed: 0.05-0.66).
    assert cosine(bf16.update, fp32.update) > 0.8
    assert cosine(other_seed.update, fp32.update) < 0.8
    assert all(q.dtype == torch.float32 for m in bf16.method.models() for q in m.parameters())
    assert_memories_close(memories_of(bf16.method), memories_of(fp32.method), 0.1)


def test_autocast_for_switches():
    with autocast_for(torch.device("cpu")):
        assert not torch.is_autocast_enabled("cpu")
    with autocast_for("cpu", enabled=True):
        assert torch.is_autocast_enabled("cpu")
        assert torch.get_autocast_dtype("cpu") == torch.bfloat16
        assert nn.Linear(4, 4)(torch.ones(2, 4)).dtype == torch.bfloat16
    with autocast_for("cpu", dtype=torch.float16, enabled=True):
        assert torch.get_autocast_dtype("cpu") == torch.float16
    with pytest.raises(ValueError, match="autocast dtype"):
        autocast_for("cpu", dtype=torch.float64, enabled=True)


# --------------------------------------------------------------------- channels_last (CPU)


@pytest.mark.parametrize("name", list(METHODS))
def test_channels_last_steps_equal_contiguous(name):
    plain = train_two_steps(name)
    last = train_two_steps(name, channels_last=True)
    assert plain.spy.layouts == {"contiguous"}
    assert last.spy.layouts == {"channels_last"}, "a conv saw a contiguous input"
    convs = [c for m in last.method.models() for c in m.modules() if isinstance(c, nn.Conv2d)]
    assert convs and all(c.weight.is_contiguous(memory_format=torch.channels_last)
                         for c in convs if c.weight.shape[-1] > 1)
    for key, value in plain.losses.items():
        assert last.losses[key] == pytest.approx(value, rel=1e-4, abs=1e-5), key
    # The same arithmetic in another order: equal up to float rounding, which Adam's
    # normalised first steps can only amplify to about lr for near-zero gradients.
    assert cosine(last.update, plain.update) > 0.999
    assert_memories_close(memories_of(last.method), memories_of(plain.method), 1e-3)


def test_extraction_in_either_memory_format_gives_the_same_features():
    from reidlib.training.features import extract_features

    model = build_model("small").eval()
    crops = torch.randint(0, 256, (10, 3, 32, 16), dtype=torch.uint8)
    spy = ConvSpy([model])
    seen = []
    hook = next(m for m in model.modules() if isinstance(m, nn.Conv2d)).register_forward_hook(
        lambda module, inputs, output: seen.append(
            inputs[0].is_contiguous(memory_format=torch.channels_last)
            and not inputs[0].is_contiguous()))
    last = extract_features(model, crops, progress=False)
    plain = extract_features(model, crops, progress=False, channels_last=False)
    hook.remove()
    spy.remove()
    assert seen == [True, True, False, False]  # image and mirror image, in each layout
    torch.testing.assert_close(last, plain, rtol=1e-4, atol=1e-5)


def test_batch_augmented_memory_format():
    images = torch.randint(0, 256, (4, 3, 16, 8), dtype=torch.uint8)
    batch = Batch(images, torch.arange(4), torch.zeros(4, dtype=torch.long),
                  torch.zeros(4, dtype=torch.long), torch.zeros(4, dtype=torch.long),
                  torch.Generator().manual_seed(0))
    last = batch.augmented()  # fit's default, on every device
    batch.generator.manual_seed(0)
    plain = batch.augmented(channels_last=False)
    assert plain.is_contiguous()
    assert last.is_contiguous(memory_format=torch.channels_last) and not last.is_contiguous()
    torch.testing.assert_close(last, plain, rtol=0, atol=0)
    batch.channels_last = False  # what fit(channels_last=False) builds
    batch.generator.manual_seed(0)
    assert batch.augmented().is_contiguous()


# ------------------------------------------------------------- the full profile's shapes


@pytest.mark.parametrize("name", list(METHODS))
def test_full_profile_batches_of_every_method(name):
    """P x K = 16 x 16 (256 images a step, Cluster Contrast's recipe) through every
    method: every step holds 16 labels x 16 images and the losses are finite."""
    n_ids = 32 if name == "ce+triplet" else 16  # the P x K sampler: two steps = two passes
    run = train_two_steps(name, n_ids=n_ids, per_id=16, p=16, k=16)
    for rows, counts in run.batches:
        assert rows == 256
        if name != "ecn":  # ECN's batches are plain random images
            assert sorted(counts[counts > 0].tolist()) == [16] * 16
    assert all(np.isfinite(v) for v in run.losses.values())
    for memory in memories_of(run.method):
        assert memory.features.dtype == torch.float32 and memory.dim == 256


@pytest.mark.slow
@pytest.mark.parametrize("name", list(METHODS))
def test_resnet50_at_256x128_trains_every_method(name):
    """ResNet-50 (random weights, no download) at the full profile's 256x128: 2048-d
    embeddings from a 16x8 map (last stride 1). One step of 2 x 2 images: on 2 CPU cores
    a ResNet-50 step costs ~1 s per image, so the 16 x 16 batches are left to CUDA."""
    train = colour_identity_set(2, 2, 2, (256, 128), 0)
    cluster = oracle_cluster(train)
    torch.manual_seed(0)
    method = METHODS[name](build_model("resnet50"), cluster)
    steps = {} if method.sampler == "pk" and name != "ecn" else {"iters": 1}
    maps = []
    layer4 = method.models()[0]
    layer4 = getattr(layer4, "base", layer4).backbone.layer4
    handle = layer4.register_forward_hook(lambda m, i, out: maps.append(tuple(out.shape[1:])))
    history = fit(method, train, cluster=cluster, epochs=1, p=2, k=2, lr=1e-3,
                  progress=False, **steps)
    handle.remove()
    assert history[0].images == 4
    assert set(maps) == {(2048, 16, 8)}
    assert all(np.isfinite(v) for v in history[0].losses.values())
    for memory in memories_of(method):
        assert memory.dim == 2048 and memory.features.dtype == torch.float32


# ----------------------------------------------------------------- full-size rendering


def full_size_parameters(n_people: int, domain: str = "A", seed: int = 0):
    """Per-image parameters of ``n_people`` people sampled as ``build_world`` samples
    the ``full`` profile, one image per (person, camera) pass: (params, walks)."""
    dom, size = get_domain(domain), get_size("full")
    rng = np.random.default_rng([dom.seed, seed])
    cameras = sample_cameras(dom, rng)
    people = sample_people(dom, n_people, rng)
    walks = sample_walks(n_people, size, cameras, rng)
    nuisances = sample_nuisances(walks, cameras, rng)
    params = image_parameters(people, cameras, walks, nuisances)
    first = np.unique(walks["tracklet"], return_index=True)[1]
    return {key: value[first] for key, value in params.items()}, \
        {key: value[first] for key, value in walks.items()}


def quiet(params: dict) -> dict:
    """The same scenes without sensor noise (the only per-device random numbers)."""
    return {**params, "noise": np.zeros_like(params["noise"])}


def test_full_resolution_rendering_on_cpu():
    """``render_images`` at 256x128 (what ``load_world`` runs on CUDA for ``full``) on
    the CPU, in several batches: the same pixels twice, and the same scenes as at 64x32."""
    height, width = get_size("full").height, get_size("full").width
    params, walks = full_size_parameters(4)
    assert len(np.unique(walks["person"])) == 4 and len(walks["person"]) >= 8
    images = render_images(params, height, width, seed=0, batch_size=8, progress=False)
    assert images.shape == (len(walks["person"]), 256, 128, 3) and images.dtype == np.uint8
    assert images.std() > 20  # people on backgrounds, not a blank canvas
    again = render_images(params, height, width, seed=0, batch_size=8, progress=False)
    assert images.tobytes() == again.tobytes()

    # A scene is drawn in image units, so the full render, area-averaged down to 64x32,
    # shows what the 64x32 render shows: each one closest to its own small render.
    big = render_images(quiet(params), height, width, seed=0, batch_size=8, progress=False)
    small = render_images(quiet(params), 64, 32, seed=0, batch_size=8, progress=False)
    down = F.interpolate(torch.from_numpy(big).permute(0, 3, 1, 2).float(), size=(64, 32),
                         mode="area").permute(0, 2, 3, 1)
    gaps = (down[:, None] - torch.from_numpy(small)[None].float()).abs().mean(dim=(2, 3, 4))
    assert torch.equal(gaps.argmin(dim=1), torch.arange(len(gaps)))
    assert gaps.diagonal().mean() < 6


# ------------------------------------------------------- memories and evaluation in bf16


def reference_memory_loss(targets, target_of_row, x, rows, tau):
    """-log softmax(normalise(x) . targets / tau)[target of the row], one row at a time."""
    losses = []
    for xi, row in zip(x.double(), rows.tolist(), strict=True):
        logits = F.normalize(xi, dim=0) @ targets.double().T / tau
        losses.append(-torch.log_softmax(logits, dim=0)[target_of_row[row]])
    return torch.stack(losses).mean()


def reference_update(bank, slot_of_row, x, rows, momentum):
    """The reference codes' in-backward update: one batch member after the other."""
    bank = bank.double().clone()
    for xi, row in zip(x.double(), rows.tolist(), strict=True):
        slot = slot_of_row[row]
        bank[slot] = F.normalize(momentum * bank[slot] + (1 - momentum) * F.normalize(xi, dim=0),
                                 dim=0)
    return bank


def test_memories_take_bf16_embeddings_as_under_autocast():
    """A model under autocast returns bf16 embeddings: losses and updates are float32 and
    equal to a float64 reference on the same (bf16) values, close to the float32 inputs'."""
    gen = torch.Generator().manual_seed(0)
    n, d = 24, 32
    features = torch.randn(n, d, generator=gen)
    labels = np.repeat(np.arange(6), 4)
    labels[[3, 9]] = -1  # two outliers
    rows = torch.tensor([0, 5, 12, 13, 0, 20])  # clustered rows, row 0 twice
    head, x = nn.Linear(d, d), torch.randn(len(rows), d, generator=gen)
    with torch.no_grad():
        head.weight.copy_(torch.randn(d, d, generator=gen) / d**0.5)
    emb32 = head(x)  # what the float32 model returns
    with torch.autocast("cpu", dtype=torch.bfloat16):
        emb16 = head(x)  # bf16, as the model returns it under autocast
    assert emb16.dtype == torch.bfloat16
    for make in (lambda: ClusterMemory(features, labels, momentum=0.2),
                 lambda: InstanceMemory(features, momentum=0.2, k=0),
                 lambda: HybridMemory(features, labels, momentum=0.2)):
        memory, twin = make(), make()
        if isinstance(memory, HybridMemory):
            targets, slot_of_row = memory.targets(), memory.labels.tolist()
        else:
            targets, slot_of_row = memory.features, memory.labels.tolist()
        expected = reference_memory_loss(targets, slot_of_row, emb16.float(), rows, 0.05)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = memory(emb16, rows)
        assert loss.dtype == torch.float32 and torch.isfinite(loss)
        torch.testing.assert_close(loss.double(), expected, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(loss, twin(emb16.float(), rows), rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(loss, twin(emb32, rows), rtol=0.02, atol=0.02)
        grad = torch.autograd.grad(loss, emb16)[0]
        assert grad.dtype == torch.bfloat16 and torch.isfinite(grad).all()

        bank = memory.features.clone()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            memory.update(emb16.detach(), rows)
        assert memory.features.dtype == torch.float32
        update_slots = memory.labels.tolist() if isinstance(memory, ClusterMemory) \
            else list(range(n))
        expected_bank = reference_update(bank, update_slots, emb16.float(), rows, 0.2)
        torch.testing.assert_close(memory.features.double(), expected_bank, rtol=1e-5,
                                   atol=1e-5)
        twin.update(emb32.detach(), rows)
        assert (memory.features - twin.features).norm(dim=1).max() < 0.05


def reference_evaluate(distmat, q_pids, g_pids, q_cams, g_cams, max_rank=10):
    """mAP / CMC / mINP by the definitions of ``reidlib.evaluation.metrics`` (ties: one
    threshold step), one query and one positive at a time."""
    aps, inps, firsts = [], [], []
    for i in range(len(q_pids)):
        valid = (g_pids != -1) & ~((g_pids == q_pids[i]) & (g_cams == q_cams[i]))
        d, positive = distmat[i][valid], g_pids[valid] == q_pids[i]
        if not positive.any():
            continue
        aps.append(np.mean([(positive & (d <= dj)).sum() / (d <= dj).sum()
                            for dj in d[positive]]))
        inps.append(positive.sum() / (d <= d[positive].max()).sum())
        firsts.append((d <= d[positive].min()).sum())
    firsts = np.array(firsts)
    cmc = np.array([(firsts <= r).mean() for r in range(1, max_rank + 1)])
    return np.mean(aps), cmc, np.mean(inps)


def small_retrieval_problem(seed=0, num_ids=12, dim=16):
    rng = np.random.default_rng(seed)
    q_pids = np.repeat(np.arange(1, num_ids + 1), 2)
    q_cams = np.tile([0, 1], num_ids)
    g_pids = np.concatenate([np.repeat(np.arange(1, num_ids + 1), 6), [0] * 10, [-1] * 5])
    g_cams = rng.integers(0, 3, len(g_pids))
    centres = rng.normal(size=(num_ids + 1, dim))

    def features(pids):
        base = np.where(pids[:, None] > 0, centres[np.maximum(pids, 0)], 0.0)
        return torch.tensor(base + 0.9 * rng.normal(size=(len(pids), dim)), dtype=torch.float32)

    return features(q_pids), features(g_pids), q_pids, g_pids, q_cams, g_cams


def test_evaluate_takes_bf16_distances():
    """Distances computed under autocast (bf16 products) or stored in bf16 (with many
    ties): evaluate equals the tie-aware reference on them, and is close to float32's."""
    qf, gf, *labels = small_retrieval_problem()
    exact = pairwise_distance(qf.double(), gf.double())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under_autocast = pairwise_distance(qf, gf)
    stored = pairwise_distance(qf, gf).to(torch.bfloat16)
    assert (under_autocast.double() - exact).abs().max() < 0.05 * exact.max()
    reference32 = reference_evaluate(pairwise_distance(qf, gf).numpy(), *labels)
    values = stored.double().numpy()
    assert len(np.unique(values)) < values.size * 0.9  # bf16 rounding: ties galore
    for distmat in (under_autocast, stored):
        values = distmat.double().numpy()
        ours = evaluate(distmat, *labels, max_rank=10)
        m_ap, cmc, m_inp = reference_evaluate(values, *labels)
        assert ours["mAP"] == pytest.approx(m_ap, abs=1e-9)
        assert ours["mINP"] == pytest.approx(m_inp, abs=1e-9)
        np.testing.assert_allclose(ours["cmc"], cmc, atol=1e-12)
        assert ours["mAP"] == pytest.approx(reference32[0], abs=0.03)


# ------------------------------------------------------------------------ on CUDA itself


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("name", list(METHODS))
def test_cuda_steps_of_every_method_match_cpu_float32(name):
    """The real thing: fit on CUDA (bf16 autocast, channels_last, the set on the device)
    against the CPU's float32 steps."""
    cpu = train_two_steps(name)
    gpu = train_two_steps(name, device="cuda", channels_last=True)  # fit's default
    assert gpu.spy.dtypes == {torch.bfloat16}
    assert gpu.spy.layouts == {"channels_last"}
    for key, value in cpu.losses.items():
        assert np.isfinite(gpu.losses[key])
        assert gpu.losses[key] == pytest.approx(value, rel=0.05, abs=0.03), key
    assert cosine(gpu.update, cpu.update) > 0.7
    for memory in memories_of(gpu.method):
        assert memory.features.is_cuda
    assert_memories_close(memories_of(gpu.method), memories_of(cpu.method), 0.15)


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("name", list(METHODS))
def test_cuda_full_profile_steps_of_every_method(name):
    """ResNet-50 at 256x128, P x K = 16 x 16, two steps, on CUDA."""
    n_ids = 32 if name == "ce+triplet" else 16
    run = train_two_steps(name, arch="resnet50", size=(256, 128), n_ids=n_ids, per_id=16,
                          p=16, k=16, device="cuda")
    print(f"{name}: two ResNet-50 16 x 16 steps in {run.seconds:.1f} s (with clustering)")
    assert all(rows == 256 for rows, _ in run.batches)
    assert all(np.isfinite(v) for v in run.losses.values())
    assert run.spy.dtypes == {torch.bfloat16}
    for memory in memories_of(run.method):
        assert memory.dim == 2048 and memory.features.dtype == torch.float32


@pytest.mark.gpu
@needs_cuda
def test_cuda_rendering_matches_cpu():
    """Without sensor noise (the generators differ by device) the CUDA render of the full
    profile is the CPU's up to float rounding at soft edges."""
    params, _ = full_size_parameters(4)
    cpu = render_images(quiet(params), 256, 128, seed=0, progress=False).astype(np.int16)
    gpu = render_images(quiet(params), 256, 128, seed=0, device="cuda",
                        progress=False).astype(np.int16)
    gap = np.abs(cpu - gpu)
    assert gap.mean() < 0.5 and (gap > 2).mean() < 1e-3


@pytest.mark.gpu
@needs_cuda
def test_cuda_evaluate_and_memories_take_bf16():
    qf, gf, *labels = small_retrieval_problem()
    stored = pairwise_distance(qf, gf).to(torch.bfloat16)
    cpu, gpu = evaluate(stored, *labels), evaluate(stored.cuda(), *labels)
    assert gpu["mAP"] == pytest.approx(cpu["mAP"], abs=1e-12)
    np.testing.assert_array_equal(gpu["cmc"], cpu["cmc"])
    features, emb = torch.randn(24, 32), torch.randn(6, 32).to(torch.bfloat16)
    labels = np.repeat(np.arange(6), 4)
    rows = torch.tensor([0, 5, 12, 13, 0, 20])
    memory = ClusterMemory(features, labels).cuda()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss = memory(emb.cuda(), rows.cuda())
        memory.update(emb.cuda(), rows.cuda())
    expected = ClusterMemory(features, labels)(emb.float(), rows)
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss.cpu(), expected, rtol=1e-5, atol=1e-5)
    assert memory.features.dtype == torch.float32
