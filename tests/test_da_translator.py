"""The small CycleGAN / SPGAN translator: network shapes, every loss term against hand
computation, a tiny run that learns, exact resume from a checkpoint, translation I/O."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from reidlib.data.imageset import ImageSet
from reidlib.domain_adaptation.translator import (
    Discriminator,
    Generator,
    SiameseNet,
    Translator,
    contrastive_loss,
    discriminator_loss,
    from_gan,
    generator_losses,
    lsgan_loss,
    siamese_losses,
    to_gan,
    train_translator,
    translate_set,
)


class Fn(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


def _images(n=8, size=(32, 16), seed=0, gain=(1.0, 1.0, 1.0)):
    """Smooth random images (a colour per image + a vertical ramp + noise), channel gains."""
    rng = np.random.default_rng(seed)
    colour = rng.uniform(60, 200, (n, 1, 1, 3))
    ramp = np.linspace(-40, 40, size[0])[None, :, None, None]
    noise = rng.normal(0, 10, (n, *size, 3))
    x = (colour + ramp + noise) * np.array(gain)
    return ImageSet(np.clip(x, 0, 255).astype(np.uint8), np.arange(n) % 3, np.arange(n) % 2)


def test_network_shapes_and_ranges():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 32, 16) * 2 - 1
    for g in (Generator(4, 1), Generator(8, 0)):
        y = g(x)
        assert y.shape == x.shape and y.abs().max() <= 1
    assert Discriminator(4)(x).shape == (2, 1, 6, 2)  # H/4 - 2, W/4 - 2
    assert Discriminator(4)(torch.zeros(1, 3, 64, 32)).shape == (1, 1, 14, 6)
    e = SiameseNet(4)(x)
    assert e.shape == (2, 4)
    torch.testing.assert_close(e.norm(dim=1), torch.ones(2))
    t = Translator(4, 1, siamese=True)
    convs = [m for m in t.modules() if isinstance(m, nn.Conv2d)]
    assert all(abs(m.weight.std().item() - 0.02) < 0.01 for m in convs if m.weight.numel() > 200)
    assert all((m.bias == 0).all() for m in convs if m.bias is not None)


def test_gan_range_round_trip():
    x = torch.arange(256, dtype=torch.uint8).view(1, 1, 16, 16).expand(1, 3, 16, 16)
    y = to_gan(x)
    assert y.min() == -1 and y.max() == 1
    assert torch.equal(from_gan(y), x)
    assert from_gan(torch.tensor([-3.0, 3.0])).tolist() == [0, 255]


def test_lsgan_and_contrastive_by_hand():
    pred = torch.tensor([[0.5, 2.0], [-1.0, 1.0]])
    assert math.isclose(lsgan_loss(pred, True).item(), (0.25 + 1 + 4 + 0) / 4)
    assert math.isclose(lsgan_loss(pred, False).item(), (0.25 + 4 + 1 + 1) / 4)
    a, b = torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([[0.0, 1.0], [0.0, 1.0]])
    # distances sqrt(2) and 0: positives mean d^2, negatives mean max(0, 2 - d)^2
    assert math.isclose(contrastive_loss(a, b, True).item(), 1.0, rel_tol=1e-5)
    expected = ((2 - math.sqrt(2)) ** 2 + 4) / 2
    assert math.isclose(contrastive_loss(a, b, False).item(), expected, rel_tol=1e-5)


def _hand_translator():
    """g_st(x) = x / 2, g_ts(x) = x + 0.1, each D scores a patch by its first channel."""
    t = Translator(4, 0)
    t.g_st, t.g_ts = Fn(lambda x: 0.5 * x), Fn(lambda x: x + 0.1)
    t.d_s = t.d_t = Fn(lambda x: x[:, :1])
    return t


def test_generator_and_discriminator_losses_by_hand():
    t = _hand_translator()
    x_s, x_t = torch.full((2, 3, 4, 4), 0.4), torch.full((2, 3, 4, 4), -0.2)
    total, parts, (fake_t, fake_s) = generator_losses(t, x_s, x_t)
    # fake_t = 0.2, fake_s = -0.1; D scores them (0.2 - 1)^2 and (-0.1 - 1)^2
    hand = {"adv_st": 0.64, "adv_ts": 1.21,
            "cycle_s": 0.1,     # g_ts(0.2) = 0.3 vs 0.4
            "cycle_t": 0.15,    # g_st(-0.1) = -0.05 vs -0.2
            "identity_t": 0.1,  # g_st(-0.2) = -0.1 vs -0.2
            "identity_s": 0.1}  # g_ts(0.4) = 0.5 vs 0.4
    for key, value in hand.items():
        assert math.isclose(parts[key].item(), value, rel_tol=1e-5), key
    assert math.isclose(total.item(), 0.64 + 1.21 + 10 * 0.25 + 5 * 0.2, rel_tol=1e-5)
    assert torch.allclose(fake_t, torch.full_like(x_s, 0.2))
    # D: ((0.4 - 1)^2 + (-0.1)^2) / 2
    assert math.isclose(discriminator_loss(t.d_s, x_s, fake_s).item(), 0.185, rel_tol=1e-5)


def _contrastive_loop(a, b, positive, margin=2.0):
    out = []
    for i in range(len(a)):
        d = math.sqrt(sum((float(a[i, j]) - float(b[i, j])) ** 2 for j in range(a.shape[1])))
        out.append(d * d if positive else max(0.0, margin - d) ** 2)
    return sum(out) / len(out)


def test_siamese_terms_match_spgans_combination():
    torch.manual_seed(1)
    t = Translator(4, 1, siamese=True)
    x_s, x_t = torch.rand(3, 3, 16, 16) * 2 - 1, torch.rand(3, 3, 16, 16) * 2 - 1
    total_plain, _, _ = generator_losses(t, x_s, x_t)
    total, parts, (fake_t, fake_s) = generator_losses(t, x_s, x_t, siamese=True)
    with torch.no_grad():
        m = t.siamese
        e_s, e_t, e_ft, e_fs = m(x_s), m(x_t), m(fake_t), m(fake_s)
        pos = _contrastive_loop(e_s, e_ft, True) + _contrastive_loop(e_t, e_fs, True)
        neg = _contrastive_loop(e_ft, e_t, False) + _contrastive_loop(e_fs, e_s, False)
        expected_g = (pos + 0.5 * neg) / 4
        expected_m = (pos + 2 * _contrastive_loop(e_s, e_t, False)) / 3
    assert math.isclose(parts["siamese_g"].item(), expected_g, rel_tol=1e-4)
    assert math.isclose(total.item(), total_plain.item() + 2 * expected_g, rel_tol=1e-4)
    loss_m = siamese_losses(m, x_s, x_t, fake_t, fake_s)
    assert math.isclose(loss_m.item(), expected_m, rel_tol=1e-4)
    loss_m.backward()  # the translations are detached: M's loss never reaches G
    assert all(q.grad is None for q in t.g_st.parameters())


def _blocks(n, seed, background, foreground, size=(32, 16)):
    """One palette per domain, the structure (a block at a random place) per image:
    InstanceNorm discards each image's absolute colour, so a generator can learn the
    identity / cycle of a domain's layouts, not of per-image colours."""
    rng = np.random.default_rng(seed)
    x = np.tile(np.array(background, float), (n, *size, 1))
    for i in range(n):
        r, c = rng.integers(0, size[0] - 8), rng.integers(0, size[1] - 6)
        x[i, r:r + 8, c:c + 6] = foreground
    x += rng.normal(0, 5, x.shape)
    return ImageSet(np.clip(x, 0, 255).astype(np.uint8), np.arange(n), np.zeros(n, int))


def test_tiny_run_lowers_the_cycle_loss():
    source = _blocks(16, 0, (60, 120, 180), (200, 80, 40))
    target = _blocks(16, 1, (90, 90, 90), (180, 200, 60))
    t = train_translator(source, target, steps=30, batch=4, width=4, blocks=1, seed=0,
                         lr=1e-3, device="cpu", progress=False)
    cycle = [r["cycle_s"] + r["cycle_t"] for r in t.history]
    assert len(cycle) == 30 and not t.training
    assert np.mean(cycle[-5:]) < 0.5 * np.mean(cycle[:5])
    assert all(np.isfinite(list(r.values())).all() for r in t.history)


class _Stop(Exception):
    pass


def test_checkpoint_resume_gives_the_uninterrupted_weights(tmp_path):
    source, target = _images(8, seed=2), _images(8, seed=3, gain=(1.2, 0.8, 1.0))
    kw = dict(steps=6, batch=3, width=4, blocks=1, seed=3, siamese=True, pool_size=4,
              device="cpu", progress=False, checkpoint_every=2)
    whole = train_translator(source, target, **kw)

    def stop(step):
        if step == 3:
            raise _Stop

    path = tmp_path / "t.pt"
    with pytest.raises(_Stop):
        train_translator(source, target, checkpoint=path, on_step=stop, **kw)
    resumed_steps = []
    resumed = train_translator(source, target, checkpoint=path, on_step=resumed_steps.append,
                               **kw)
    assert resumed_steps == [2, 3, 4, 5]  # from the checkpoint of step 2
    a, b = whole.state_dict(), resumed.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert resumed.history == whole.history
    # a finished checkpoint is returned without training; other settings are refused
    again = train_translator(source, target, checkpoint=path, on_step=_raise, **kw)
    assert torch.equal(again.g_st.net[1].weight, whole.g_st.net[1].weight)
    with pytest.raises(ValueError, match="other settings"):
        train_translator(source, target, checkpoint=path, **{**kw, "lr": 1e-3})


def _raise(step):
    raise AssertionError("a finished run must not train")


def test_translate_keeps_shape_dtype_and_labels():
    torch.manual_seed(0)
    t = Translator(4, 1).eval()
    images = _images(5, seed=4)
    x = images.tensor()
    out = t.translate(x, batch_size=2)
    assert out.dtype == torch.uint8 and out.shape == x.shape and out.device == x.device
    assert torch.equal(out, t.translate(images))  # an ImageSet gives the same
    back = t.translate(x, direction="target_to_source")
    assert not torch.equal(back, out)
    with torch.no_grad():
        assert torch.equal(out, from_gan(t.g_st(to_gan(x))))
    translated = translate_set(t, images)
    assert isinstance(translated, ImageSet)
    assert np.array_equal(translated.pids, images.pids)
    assert np.array_equal(translated.camids, images.camids)
    assert np.array_equal(translated.images, out.permute(0, 2, 3, 1).numpy())
    assert not t.training


def test_input_errors():
    good = _images(4)
    t = Translator(4, 0)
    with pytest.raises(ValueError, match="uint8"):
        t.translate(torch.zeros(2, 3, 8, 8))
    with pytest.raises(ValueError, match="multiples of 4"):
        t.translate(torch.zeros(2, 3, 10, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match="direction"):
        t.translate(good, direction="sideways")
    with pytest.raises(ValueError, match="ImageSet"):
        translate_set(t, good.tensor())
    with pytest.raises(ValueError, match="train_translator"):
        translate_set(object(), good)
    with pytest.raises(ValueError, match="one size"):
        train_translator(good, _images(4, size=(16, 16)), steps=1, progress=False)
    with pytest.raises(ValueError, match="at least 12"):
        train_translator(_images(4, size=(8, 8)), _images(4, size=(8, 8)), steps=1,
                         progress=False)
    with pytest.raises(ValueError, match="steps"):
        train_translator(good, good, steps=0, progress=False)
    with pytest.raises(ValueError, match="uint8"):
        train_translator(good.tensor().float(), good, steps=1, progress=False)
