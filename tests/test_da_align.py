"""Alignment and mixing methods of chapter 4 (reidlib.domain_adaptation.align) against
brute-force references written here: MMD as a double loop over the batch with DAN's
bandwidths recomputed by hand, the attribute heads and their MMD by hand, the mixup step
with the BNNeck's per-half batch statistics by hand and mixup.py's loss on the same draws,
and the target BN statistics from the first BN layer's input."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from fakes import colour_identity_set

from reidlib.domain_adaptation.align import (
    MMFA,
    AttributeAlignment,
    CrossDomainMixup,
    MMDAlignment,
    estimate_domain_bn,
    row_attributes,
)
from reidlib.domain_adaptation.dsbn import convert_domain_bn, domain_bn_layers, domains
from reidlib.domain_adaptation.mixup import CrossDomainMix, mixup_loss, sample_lambda
from reidlib.domain_adaptation.spcl_uda import SOURCE, TARGET, source_target_set
from reidlib.models import build_model
from reidlib.models.pretrained import attribute_targets
from reidlib.training import fit
from reidlib.training.loop import Batch


def sets():
    source = colour_identity_set(4, 4, 2, seed=0)  # 16 source rows, classes 0..3
    target = colour_identity_set(4, 4, 2, seed=1)  # 16 target rows, other colours
    train, domain_ids = source_target_set(source, target)
    labels = np.where(domain_ids == SOURCE, train.pids, -1)
    return train, domain_ids, labels


CLASSES = np.concatenate([np.repeat(np.arange(4), 4), np.full(16, -1)])  # fit's labels


def make_batch(train, rows, labels, seed=5):
    """The same Batch twice (same augmentation draws): one for the method, one for us."""
    rows_t = torch.as_tensor(rows)
    return [Batch(train.tensor()[rows_t], rows_t, torch.as_tensor(labels[rows]),
                  torch.as_tensor(train.camids[rows]), torch.zeros(len(rows), dtype=torch.long),
                  torch.Generator().manual_seed(seed)) for _ in range(2)]


def close(got, expected):
    """float32 computation against a float64 reference."""
    torch.testing.assert_close(got.double(), expected.detach().double(), atol=1e-5, rtol=1e-4)


ROWS = np.array([0, 1, 4, 5, 16, 21, 26, 31])  # classes 0, 0, 1, 1; four target rows


def dan_bandwidths(x, y):
    pooled = torch.cat([x, y]).double()
    n = len(pooled)
    total = sum(float(((pooled[i] - pooled[j]) ** 2).sum())
                for i in range(n) for j in range(n) if i != j)
    return [total / (n * n - n) * 2.0 ** e for e in (-2, -1, 0, 1, 2)]


def brute_mmd2(x, y, hs):
    x, y = x.double(), y.double()

    def k(a, b):
        return sum(torch.exp(-((a - b) ** 2).sum() / h) for h in hs)

    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m)) / m ** 2
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n)) / n ** 2
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


def brute_source_loss(out, y, eps=0.1, margin=0.3):
    logits, feats = out.logits.double(), out.features.double()
    c = logits.shape[1]
    ce = 0
    for i in range(len(y)):
        logp = logits[i] - torch.logsumexp(logits[i], 0)
        ce = ce - ((1 - eps) * logp[y[i]] + eps / c * logp.sum())
    trip = 0
    for i in range(len(y)):
        d = [(feats[i] - feats[j]).norm() for j in range(len(y))]
        pos = max(d[j] for j in range(len(y)) if y[j] == y[i])
        neg = min(d[j] for j in range(len(y)) if y[j] != y[i])
        trip = trip + torch.clamp(pos - neg + margin, min=0)
    return ce / len(y), trip / len(y)


# --- batches ---------------------------------------------------------------------------------

def test_batches_are_a_source_half_then_a_target_half():
    train, domain_ids, _ = sets()
    method = MMDAlignment(build_model("small"), domain_ids)
    batches = method.batches(CLASSES, train.camids, p=2, k=2, iters=None, seed=0, epoch=0)
    assert len(batches) >= 4  # one P x K pass over the 16 source rows
    seen_target = []
    for b in batches:
        assert len(b) == 8
        assert (domain_ids[b[:4]] == SOURCE).all() and (domain_ids[b[4:]] == TARGET).all()
        assert sorted(np.bincount(CLASSES[b[:4]]).tolist())[-2:] == [2, 2]  # 2 ids x 2
        assert len(set(b[4:].tolist())) == 4
        seen_target += b[4:].tolist()
    # the target half: permutations of the target rows, one after the other
    assert sorted(seen_target[:16]) == list(range(16, 32))
    again = method.batches(CLASSES, train.camids, p=2, k=2, iters=None, seed=0, epoch=0)
    assert all(np.array_equal(a, b) for a, b in zip(batches, again, strict=True))
    gallery = MMDAlignment(build_model("small"), domain_ids, sampler="multi_gallery")
    many = gallery.batches(CLASSES, train.camids, p=2, k=2, iters=7, seed=0, epoch=1)
    assert len(many) == 7 and all((domain_ids[b[:4]] == SOURCE).all() for b in many)
    with pytest.raises(ValueError, match="target rows"):
        method.batches(CLASSES, train.camids, p=4, k=5, iters=None, seed=0, epoch=0)


# --- MMD alignment ---------------------------------------------------------------------------

def test_mmd_alignment_loss_against_brute_force():
    torch.manual_seed(0)
    train, domain_ids, _ = sets()
    model = build_model("small").train()
    method = MMDAlignment(model, domain_ids, weight=0.7)
    method.new_labels(None, CLASSES, train)
    assert model.num_classes == 4
    ours, ref = make_batch(train, ROWS, CLASSES)
    loss, parts = method.loss(ours)
    out = model(ref.augmented())
    x, y = out.features[:4].detach(), out.features[4:].detach()
    close(parts["mmd"], 0.7 * brute_mmd2(x, y, dan_bandwidths(x, y)))
    ce, trip = brute_source_loss(out, CLASSES[ROWS[:4]])
    close(parts["ce"], ce)
    close(parts["triplet"], trip)
    torch.testing.assert_close(loss, parts["ce"] + parts["triplet"] + parts["mmd"])
    # fixed bandwidths are used as given
    fixed = MMDAlignment(model, domain_ids, bandwidths=[3.0, 30.0])
    fixed.new_labels(None, CLASSES, train)
    _, parts = fixed.loss(make_batch(train, ROWS, CLASSES)[0])
    close(parts["mmd"], brute_mmd2(x, y, [3.0, 30.0]))


# --- attribute alignment ---------------------------------------------------------------------

def fake_world():
    rng = np.random.default_rng(0)
    pids = np.array([102, 100, 103, 101])  # unsorted on purpose
    people = {"rgb_upper": rng.random((4, 3)), "rgb_lower": rng.random((4, 3)),
              "upper_pattern": np.array([0, 1, 2, 1]), "lower_type": np.array([1, 0, 1, 2]),
              "bag": np.array([0, 2, 1, 0]), "hair_long": np.array([1, 0, 0, 1]),
              "long_sleeve": np.array([0, 1, 1, 0]), "hat": np.array([1, 1, 0, 0]),
              "coat": np.array([0, 0, 1, 1]), "scarf": np.array([1, 0, 1, 0])}
    return SimpleNamespace(people_pid=pids, people=people)


def test_row_attributes_map_rows_to_their_person():
    world = fake_world()
    table = attribute_targets(world.people)
    got = row_attributes(world, np.array([103, -1, 100, 0, 103]))
    assert set(got) == set(table)
    for name, column in got.items():
        assert column.tolist() == [table[name][2], -1, table[name][1], -1, table[name][2]]
    with pytest.raises(ValueError, match="not people"):
        row_attributes(world, np.array([100, 999]))
    with pytest.raises(ValueError, match="World"):
        row_attributes({"people": 1}, np.array([100]))


def attributes_for(domain_ids):
    colour = np.where(domain_ids == SOURCE, np.arange(32) % 3, -1)
    colour[1] = -1  # a source row (in ROWS) without this attribute
    bag = np.where(domain_ids == SOURCE, np.arange(32) // 2 % 2, -1)
    return {"colour": colour, "bag": bag}


def test_attribute_alignment_terms_by_hand():
    torch.manual_seed(0)
    train, domain_ids, _ = sets()
    model = build_model("small").train()
    attributes = attributes_for(domain_ids)
    method = AttributeAlignment(model, domain_ids, attributes, weight=0.5, attribute_weight=2.0)
    assert {k: h.out_features for k, h in method.heads.items()} == {"colour": 3, "bag": 2}
    with torch.no_grad():  # non-trivial heads, so that the predictions differ per row
        for head in method.heads.values():
            head.weight.normal_(0, 0.5, generator=torch.Generator().manual_seed(1))
    method.new_labels(None, CLASSES, train)
    ours, ref = make_batch(train, ROWS, CLASSES)
    loss, parts = method.loss(ours)
    out = model(ref.augmented())
    emb = out.embeddings.detach().double()
    probs, ce = [], 0
    for name, head in method.heads.items():
        logits = emb @ head.weight.detach().double().T + head.bias.detach().double()
        probs.append(logits.softmax(dim=1))
        terms = [-(logits[i] - torch.logsumexp(logits[i], 0))[attributes[name][r]]
                 for i, r in enumerate(ROWS[:4]) if attributes[name][r] >= 0]
        ce = ce + sum(terms) / len(terms)
    assert attributes["colour"][ROWS[1]] == -1  # skipped by the sum above and by the method
    close(parts["attributes"], 2.0 * ce)
    p = torch.cat(probs, dim=1)
    close(parts["attribute_mmd"], 0.5 * brute_mmd2(p[:4], p[4:], dan_bandwidths(p[:4], p[4:])))
    ce_id, trip = brute_source_loss(out, CLASSES[ROWS[:4]])
    close(parts["ce"], ce_id)
    torch.testing.assert_close(loss, sum(parts.values()))
    assert parts["attribute_mmd"] > 0


def test_mmfa_adds_the_feature_mmd_to_the_attribute_terms():
    """MMFA's loss = AttributeAlignment's parts (same weights) + feature_weight * the MMD of
    the halves' pooled features, the feature term checked against the brute-force MMD."""
    train, domain_ids, _ = sets()
    attributes = attributes_for(domain_ids)
    parts_of = {}
    for cls, extra in ((AttributeAlignment, {}), (MMFA, {"feature_weight": 0.25})):
        torch.manual_seed(0)
        model = build_model("small").train()
        method = cls(model, domain_ids, attributes, weight=0.5, **extra)
        method.new_labels(None, CLASSES, train)
        ours, ref = make_batch(train, ROWS, CLASSES)
        torch.manual_seed(1)  # the same augmentation draws in both runs
        loss, parts = method.loss(ours)
        torch.testing.assert_close(loss, sum(parts.values()))
        parts_of[cls] = parts
        if cls is MMFA:
            torch.manual_seed(1)
            f = model(ref.augmented()).features.detach().double()
            close(parts["mmd"], 0.25 * brute_mmd2(f[:4], f[4:], dan_bandwidths(f[:4], f[4:])))
            assert parts["mmd"] > 0
    assert set(parts_of[MMFA]) == set(parts_of[AttributeAlignment]) | {"mmd"}
    for key, value in parts_of[AttributeAlignment].items():
        torch.testing.assert_close(parts_of[MMFA][key], value)
    with pytest.raises(ValueError, match="feature_weight"):
        MMFA(build_model("small"), domain_ids, attributes, feature_weight=-1)


def test_attribute_loss_skips_rows_without_the_attribute():
    train, domain_ids, _ = sets()
    method = AttributeAlignment(build_model("small"), domain_ids, attributes_for(domain_ids))
    logits = {"colour": torch.tensor([[5.0, 0, 0], [0, 5.0, 0], [9.0, -9.0, 0]]),
              "bag": torch.zeros(3, 2)}
    rows = torch.tensor([0, 4, 1])  # colours 0, 1, none: the last (terrible) logits not counted
    got = method.attribute_loss(logits, rows)
    expected = (-F.log_softmax(logits["colour"][:2], 1)[[0, 1], [0, 1]]).mean() + np.log(2)
    torch.testing.assert_close(got, expected)


# --- cross-domain mixup ----------------------------------------------------------------------

def mixup_method(model, domain_ids, train, **kw):
    method = CrossDomainMixup(model, domain_ids, **kw)
    features = F.normalize(torch.randn(32, model.feature_dim,
                                       generator=torch.Generator().manual_seed(3)), dim=1)
    method.new_labels(features, CLASSES, train)
    return method, features


def by_hand_neck(f, neck):
    mean, var = f.mean(0), f.var(0, unbiased=False)
    return (f - mean) / torch.sqrt(var + neck.eps) * neck.weight + neck.bias


def test_mixup_step_against_mixup_py_and_per_half_neck_statistics():
    torch.manual_seed(0)
    train, domain_ids, _ = sets()
    model = build_model("small").train()
    method, features = mixup_method(model, domain_ids, train, exemplar_start=0,
                                    exemplar_weight=0.5)
    torch.testing.assert_close(method.memory, features[16:])  # slots from fit's features
    method.start_epoch(1)
    neck_before = model.neck.running_mean.clone()
    ours, ref = make_batch(train, ROWS, CLASSES)
    loss, parts = method.loss(ours)
    assert set(parts) == {"mixup", "exemplar"}

    lam = sample_lambda(0.6, np.random.default_rng([0, 1]))  # the method's first draw
    x = ref.augmented()
    mixed = torch.cat([lam * x[:4] + (1 - lam) * x[4:], x[4:]])
    with torch.no_grad():
        f = model.pool(model.backbone(mixed))
    neck = model.neck
    emb_s, emb_t = by_hand_neck(f[:4], neck), by_hand_neck(f[4:], neck)
    slots = torch.as_tensor(ROWS[4:] - 16)
    mix = CrossDomainMix(mixed[:4], lam, torch.as_tensor(CLASSES[ROWS[:4]]), slots)
    expected = mixup_loss(emb_s, model.classifier.weight, features[16:][slots], mix)
    torch.testing.assert_close(parts["mixup"], expected, atol=1e-5, rtol=1e-4)
    t = F.normalize(emb_t, dim=1)
    exemplar = sum(-F.log_softmax(10 * t[i] @ features[16:].T, 0)[slots[i]] for i in range(4))
    torch.testing.assert_close(parts["exemplar"], 0.5 * exemplar / 4, atol=1e-5, rtol=1e-4)
    # the neck's running statistics moved with the target half only
    torch.testing.assert_close(neck.running_mean, 0.9 * neck_before + 0.1 * f[4:].mean(0),
                               atol=1e-5, rtol=1e-4)

    loss.backward()
    method.after_step(ours)
    moved = F.normalize(0.6 * features[16:][slots] + 0.4 * t.detach(), dim=1)
    torch.testing.assert_close(method.memory[slots], moved, atol=1e-5, rtol=1e-4)
    untouched = np.setdiff1d(np.arange(16), slots.numpy())
    torch.testing.assert_close(method.memory[untouched], features[16:][untouched])


def test_mixup_before_start_epoch_is_plain_source_ce():
    torch.manual_seed(0)
    train, domain_ids, _ = sets()
    model = build_model("small").train()
    method, _ = mixup_method(model, domain_ids, train, start_epoch=1)
    method.start_epoch(0)
    ours, ref = make_batch(train, ROWS, CLASSES)
    _, parts = method.loss(ours)
    assert set(parts) == {"ce"}  # exemplar loss starts at epoch 10, mixing at 1
    with torch.no_grad():
        f = model.pool(model.backbone(ref.augmented()))
    logits = by_hand_neck(f[:4], model.neck) @ model.classifier.weight.T
    expected = F.cross_entropy(logits, torch.as_tensor(CLASSES[ROWS[:4]]))
    torch.testing.assert_close(parts["ce"], expected, atol=1e-5, rtol=1e-4)


# --- through fit -----------------------------------------------------------------------------

def weights(model):
    return [p.detach().clone() for p in model.parameters()]


def changed(before, model):
    return any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


@pytest.mark.parametrize("kind", ["mmd", "attributes", "mixup"])
def test_fit_two_epochs_trains(kind):
    torch.manual_seed(0)
    train, domain_ids, labels = sets()
    model = build_model("small")
    if kind == "mmd":
        method = MMDAlignment(model, domain_ids)
    elif kind == "attributes":
        method = AttributeAlignment(model, domain_ids, attributes_for(domain_ids))
    else:
        method = CrossDomainMixup(model, domain_ids, exemplar_start=1)
    start = weights(model)
    seen = []
    original = method.loss
    method.loss = lambda batch: (seen.append(batch.domains.tolist()), original(batch))[1]
    history = fit(method, train, labels=labels, domains=domain_ids, epochs=2, lr=1e-3, p=2,
                  k=2, progress=False)
    assert len(seen) >= 8 and all(d == [SOURCE] * 4 + [TARGET] * 4 for d in seen)
    assert changed(start, model)
    assert all(np.isfinite(v) for r in history for v in r.losses.values())
    if kind == "mixup":
        assert set(history[0].losses) == {"loss", "ce"}
        assert set(history[1].losses) == {"loss", "mixup", "exemplar"}
        assert method.memory.shape == (16, model.feature_dim)
    if kind == "attributes":
        assert set(history[0].losses) == {"loss", "ce", "triplet", "attributes",
                                          "attribute_mmd"}
        assert len(method.state_dict()["models"]) == 2  # the heads are saved too


def test_fit_with_domain_specific_bn_extracts_through_the_target_bn():
    torch.manual_seed(0)
    train, domain_ids, labels = sets()
    model = convert_domain_bn(build_model("small"), 2)
    start = domain_bn_layers(model)[0].running_mean.clone()
    method = MMDAlignment(model, domain_ids)
    fit(method, train, labels=labels, domains=domain_ids, epochs=1, lr=1e-3, p=2, k=2,
        progress=False)
    first = domain_bn_layers(model)[0]
    for d in (SOURCE, TARGET):
        assert not torch.allclose(first.running_mean[d], start[d])
    with domains(model, TARGET):
        x = torch.randn(2, 3, 32, 16)
        torch.testing.assert_close(method.feature_model()(x), model(x))


# --- target BN -------------------------------------------------------------------------------

def test_estimate_domain_bn_sets_the_target_slot_to_the_images_statistics():
    torch.manual_seed(0)
    _, target = colour_identity_set(4, 4, 2, seed=0), colour_identity_set(4, 4, 2, seed=1)
    model = convert_domain_bn(build_model("small"), 2).eval()
    layers = domain_bn_layers(model)
    first = layers[0]
    source_before = [layer.running_mean[SOURCE].clone() for layer in layers]
    params_before = weights(model)
    inputs = []
    hook = first.register_forward_hook(lambda m, i, o: inputs.append(i[0].detach()))
    from reidlib.data.augment import eval_transform
    with torch.no_grad(), domains(model, TARGET):  # the first BN's input needs no BN
        model(eval_transform(target.tensor()))
    hook.remove()
    x = inputs[0].transpose(0, 1).reshape(first.num_features, -1)
    out = estimate_domain_bn(model, target, TARGET, batch=16)  # one batch of all 16
    assert out is model and not model.training
    torch.testing.assert_close(first.running_mean[TARGET], x.mean(1), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(first.running_var[TARGET], x.var(1), atol=1e-4, rtol=1e-4)
    for layer, before in zip(layers, source_before, strict=True):
        assert torch.equal(layer.running_mean[SOURCE], before)
    assert not changed(params_before, model)
    # two equal batches: the cumulative average of the batch means is the overall mean
    estimate_domain_bn(model, target, TARGET, batch=8)
    torch.testing.assert_close(first.running_mean[TARGET], x.mean(1), atol=1e-5, rtol=1e-4)


# --- argument checks -------------------------------------------------------------------------

def test_argument_checks():
    train, domain_ids, labels = sets()
    model = build_model("small")
    with pytest.raises(ValueError, match="both present"):
        MMDAlignment(model, np.zeros(32, np.int64))
    with pytest.raises(ValueError, match="hold 0"):
        MMDAlignment(model, np.full(32, 2))
    with pytest.raises(ValueError, match="1-D"):
        MMDAlignment(model, domain_ids[None])
    with pytest.raises(TypeError, match="ReidModel"):
        MMDAlignment(torch.nn.Linear(2, 2), domain_ids)
    method = MMDAlignment(model, domain_ids)
    with pytest.raises(ValueError, match="target row -1"):
        method.new_labels(None, np.concatenate([CLASSES[:16], np.zeros(16, np.int64)]), train)
    with pytest.raises(ValueError, match="weight"):
        MMDAlignment(model, domain_ids, weight=-1)
    with pytest.raises(ValueError, match="non-empty dict"):
        AttributeAlignment(model, domain_ids, {})
    bad = attributes_for(domain_ids)
    bad["bag"] = np.zeros(32, np.int64)  # target rows labelled
    with pytest.raises(ValueError, match="source only"):
        AttributeAlignment(model, domain_ids, bad)
    with pytest.raises(ValueError, match="labels no source row"):
        AttributeAlignment(model, domain_ids, {"hat": np.full(32, -1)})
    with pytest.raises(ValueError, match="one per row"):
        AttributeAlignment(model, domain_ids, {"hat": np.zeros(5, np.int64)})
    with pytest.raises(ValueError, match="alpha"):
        CrossDomainMixup(model, domain_ids, alpha=0)
    with pytest.raises(ValueError, match="domain-specific BN"):
        estimate_domain_bn(model, train, TARGET)
    dsbn = convert_domain_bn(build_model("small"), 2)
    for domain in (2, -1, True, 1.0):
        with pytest.raises(ValueError, match="domain must be"):
            estimate_domain_bn(dsbn, train, domain)
    with pytest.raises(ValueError, match=">= 2 images"):
        estimate_domain_bn(dsbn, train.subset(np.array([0])), TARGET)
