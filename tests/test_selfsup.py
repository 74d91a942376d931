"""Chapter 6's self-supervised start (survey §5): SimCLR's NT-Xent, views, the method, resuming."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from fakes import colour_identity_set

from reidlib.data.synthetic import load_world
from reidlib.directions.selfsup import (
    SimCLR,
    agreement,
    colour_distortion,
    nt_xent,
    random_resized_crop,
    self_supervised_start,
    simclr_augment,
    view_agreement,
)
from reidlib.models import build_model
from reidlib.training import fit


def loop_nt_xent(z1, z2, t):
    """NT-Xent written out: 2N anchors, each against every other view, one at a time."""
    views = [v / v.norm() for v in torch.cat([z1, z2]).double()]
    n = len(z1)
    total = 0.0
    for a in range(2 * n):
        positive = (a + n) % (2 * n)
        denominator = sum(math.exp(float(views[a] @ views[j]) / t)
                          for j in range(2 * n) if j != a)
        total += -math.log(math.exp(float(views[a] @ views[positive]) / t) / denominator)
    return total / (2 * n)


@pytest.mark.parametrize("temperature", [0.05, 0.1, 0.5, 1.0])
def test_nt_xent_matches_a_double_loop(temperature):
    g = torch.Generator().manual_seed(int(temperature * 100))
    z1, z2 = torch.randn(6, 5, generator=g) * 3, torch.randn(6, 5, generator=g)
    expected = loop_nt_xent(z1, z2, temperature)
    assert nt_xent(z1, z2, temperature).item() == pytest.approx(expected, rel=1e-5)


def test_nt_xent_is_low_when_views_agree_and_symmetric():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(8, 16, generator=g)
    other = torch.randn(8, 16, generator=g)
    assert nt_xent(z, z + 0.01 * other) < nt_xent(z, other)
    assert nt_xent(z, other).item() == pytest.approx(nt_xent(other, z).item(), rel=1e-6)


def test_agreement_matches_a_loop():
    g = torch.Generator().manual_seed(1)
    z1 = torch.randn(7, 4, generator=g)
    z2 = z1 + torch.randn(7, 4, generator=g) * 0.8
    views = torch.nn.functional.normalize(torch.cat([z1, z2]), dim=1)
    hits = 0
    for a in range(14):
        best = max((j for j in range(14) if j != a), key=lambda j: float(views[a] @ views[j]))
        hits += best == (a + 7) % 14
    assert agreement(z1, z2).item() == pytest.approx(hits / 14)


def test_loss_arguments_are_checked():
    z = torch.randn(4, 3)
    with pytest.raises(ValueError, match="same shape"):
        nt_xent(z, z[:3])
    with pytest.raises(ValueError, match="N >= 2"):
        nt_xent(z[:1], z[:1])
    with pytest.raises(ValueError, match="temperature"):
        nt_xent(z, z, temperature=0.0)


# ------------------------------------------------------------------------- the views


def test_crop_of_the_whole_image_is_the_image_and_mirror_flips_it():
    x = torch.rand(2, 3, 8, 4, generator=torch.Generator().manual_seed(0))
    # area 1, aspect log-midpoint (= 1), centred; mirror when u[4] < 0.5
    whole = torch.tensor([[1.0, 0.5, 0.5, 0.5, 0.9], [1.0, 0.5, 0.5, 0.5, 0.1]])
    out = random_resized_crop(x, whole)
    assert torch.allclose(out[0], x[0], atol=1e-5)
    assert torch.allclose(out[1], x[1].flip(-1), atol=1e-5)
    # a box of a quarter of the area at the top-left corner, sampled bilinearly: on ramps
    # the output is each output pixel's source coordinate (clamped at the image border)
    corner = torch.tensor([[0.0, 0.5, 0.0, 0.0, 0.9]])
    rows = torch.arange(8.0).view(1, 1, 8, 1).expand(1, 3, 8, 4)
    cols = torch.arange(4.0).view(1, 1, 1, 4).expand(1, 3, 8, 4)
    for ramp, size, dim in ((rows, 8, 2), (cols, 4, 3)):
        out = random_resized_crop(ramp, corner, scale=(0.25, 1.0))
        centre = (2 * torch.arange(size) + 1) / size - 1  # output pixel centres in [-1, 1]
        source = ((0.5 * centre - 0.5 + 1) * size - 1) / 2  # box half the size, at -0.5
        shape = [1, 1, 1, 1]
        shape[dim] = size
        assert torch.allclose(out, source.clamp(0, size - 1).view(shape).expand_as(out),
                              atol=1e-5)


def test_colour_distortion_without_strength_is_the_identity_and_grey_is_luma():
    x = torch.rand(3, 3, 6, 4, generator=torch.Generator().manual_seed(0))
    u = torch.rand(3, 6, generator=torch.Generator().manual_seed(1))
    u[:, 5] = 1.0  # never grey
    assert torch.allclose(colour_distortion(x, u, strength=0.0), x, atol=1e-5)
    u[:, 5] = 0.0  # always grey
    grey = colour_distortion(x, u, strength=0.0)
    luma = 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]
    for c in range(3):
        assert torch.allclose(grey[:, c], luma, atol=1e-5)


def test_brightness_and_hue_turn_match_their_formulas():
    x = torch.rand(1, 3, 4, 2, generator=torch.Generator().manual_seed(2)) * 0.5 + 0.25
    # jittered; brightness factor 1 + 0.8 * 0.5 * (2 * 0.75 - 1) = 1.2; other factors 1 / 0
    u = torch.tensor([[0.0, 0.75, 0.5, 0.5, 0.5, 1.0]])
    assert torch.allclose(colour_distortion(x, u, 0.5), (x * 1.2).clamp(0, 1), atol=1e-5)
    # a hue turn keeps the luma of every pixel (the Y of YIQ) where nothing clips
    u = torch.tensor([[0.0, 0.5, 0.5, 0.5, 0.9, 1.0]])
    out = colour_distortion(x, u, 0.5)
    luma = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    assert not torch.allclose(out, x, atol=1e-3)
    assert torch.allclose((out * luma).sum(1), (x * luma).sum(1), atol=1e-5)


def test_views_are_seeded_normalised_and_differ():
    images = torch.from_numpy(colour_identity_set(n_ids=2, per_id=4).images).permute(0, 3, 1, 2)
    a = simclr_augment(images, torch.Generator().manual_seed(3))
    b = simclr_augment(images, torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    first, second = simclr_augment(images, g), simclr_augment(images, g)
    assert a.dtype == torch.float32 and a.shape == images.shape
    assert torch.equal(a, b) and torch.equal(a, first) and not torch.allclose(first, second)


# ------------------------------------------------------------------------ the method


def test_the_head_trains_but_is_not_part_of_the_feature_model():
    model = build_model("small")
    method = SimCLR(model)
    features = method.feature_model()
    assert features is model
    head_ids = {id(p) for p in method.head.parameters()}
    assert head_ids and head_ids <= {id(p) for p in method.parameters()}
    assert not head_ids & {id(p) for p in features.parameters()}
    assert method.head in method.models()  # saved and resumed with the run
    features.eval()
    assert features(torch.randn(2, 3, 64, 32)).shape == (2, model.feature_dim)
    assert method.head[-1].out_features == 128 != model.feature_dim


def test_batches_are_distinct_images_in_a_new_order_each_epoch():
    method = SimCLR(build_model("small"))
    labels = np.arange(50)
    labels[[3, 7]] = -1  # rows not trained on are never drawn
    args = dict(p=8, k=2, iters=None, seed=0)
    e0 = method.batches(labels, None, epoch=0, **args)
    e1 = method.batches(labels, None, epoch=1, **args)
    assert [len(b) for b in e0] == [16, 16, 16]  # 48 rows; the short last batch dropped
    for batch in e0:
        assert len(set(batch.tolist())) == len(batch)
    drawn = np.concatenate(e0)
    assert len(set(drawn.tolist())) == 48 and not {3, 7} & set(drawn.tolist())
    assert not np.array_equal(drawn, np.concatenate(e1))
    assert all(np.array_equal(a, b) for a, b in zip(e0, method.batches(labels, None, epoch=0,
                                                                          **args), strict=True))
    with pytest.raises(ValueError, match="iters"):
        method.batches(labels, None, epoch=0, **{**args, "iters": 3})


def test_a_short_run_on_the_smoke_world_learns_to_match_views():
    """36 steps: the NT-Xent falls and more views find their pair in the batch (a broken
    gradient, a wrong positive or views that share no content would stall both)."""
    train = load_world("A", "smoke", progress=False).train.subset(np.arange(192))
    torch.manual_seed(0)
    model = build_model("small")
    method = SimCLR(model, temperature=0.5)
    history = fit(method, train, labels=np.arange(len(train)), epochs=6, lr=2e-3, p=32, k=1,
                  schedule="constant", seed=0, progress=False)
    loss, matched = history.column("loss"), history.column("agreement")
    assert loss[-1] < loss[0] - 0.3, loss
    assert matched[-1] > matched[0] + 0.05, matched


def state(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


class Interrupt(Exception):
    pass


def test_resume_after_interruption_equals_uninterrupted_run(tmp_path):
    train = colour_identity_set(n_ids=6, per_id=4)
    args = dict(labels=np.arange(len(train)), epochs=2, lr=1e-3, p=8, k=1, seed=0,
                progress=False)
    torch.manual_seed(0)
    reference = SimCLR(build_model("small"))
    fit(reference, train, **args)

    def stop(epoch, step):
        if (epoch, step) == (1, 1):
            raise Interrupt

    path = tmp_path / "simclr.pt"
    torch.manual_seed(0)
    with pytest.raises(Interrupt):
        fit(SimCLR(build_model("small")), train, checkpoint=path, on_step=stop, **args)
    torch.manual_seed(2)  # other initial weights: the checkpoint must bring back its own
    resumed = SimCLR(build_model("small"))
    history = fit(resumed, train, checkpoint=path, **args)
    assert [r.epoch for r in history] == [0, 1]
    for a, b in zip(reference.models(), resumed.models(), strict=True):
        sa, sb = state(a), state(b)
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_self_supervised_start_returns_the_network_and_reuses_its_checkpoint(tmp_path):
    train = colour_identity_set(n_ids=4, per_id=4)
    args = dict(epochs=1, lr=1e-3, batch_size=8, temperature=0.2, seed=0, device="cpu",
                checkpoint=tmp_path / "start.pt", progress=False)
    first = self_supervised_start("small", train, **args)
    written = args["checkpoint"].stat().st_mtime_ns
    again = self_supervised_start("small", train, **args)  # finished: loaded, not retrained
    assert args["checkpoint"].stat().st_mtime_ns == written
    assert not first.training and first.num_classes == 0
    sa, sb = state(first), state(again)
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    fresh = state(build_model("small"))
    assert any(not torch.equal(sa[k], fresh[k]) for k in sa if k.endswith("weight"))
    with pytest.raises(ValueError, match="other settings"):
        self_supervised_start("small", train, **{**args, "temperature": 0.5})
    with pytest.raises(ValueError, match="batch_size"):
        self_supervised_start("small", train, **{**args, "batch_size": 1000})


class Pixels(torch.nn.Module):
    """A 'network' whose features are its input pixels (and one parameter, for its device)."""

    def __init__(self):
        super().__init__()
        self.unused = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x):
        assert not self.training
        return x.flatten(1)


def test_view_agreement_scores_two_seeded_views_in_eval_mode():
    images = torch.from_numpy(colour_identity_set(n_ids=5, per_id=4).images).permute(0, 3, 1, 2)
    model = Pixels().train()
    g = torch.Generator().manual_seed(7)
    v1, v2 = simclr_augment(images, g), simclr_augment(images, g)
    expected = agreement(v1.flatten(1), v2.flatten(1)).item()
    assert view_agreement(model, images, seed=7) == pytest.approx(expected)
    assert model.training  # restored
    with pytest.raises(ValueError, match="uint8"):
        view_agreement(model, images.float())
