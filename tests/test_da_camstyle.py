"""CamStyle / HHL camera-style augmentation with colour statistics: camera styles against a
per-camera loop, restyling against the equations and colour_transfer, and the wrapper
trained by fit."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fakes import colour_identity_set

from reidlib.data.imageset import ImageSet
from reidlib.domain_adaptation.camstyle import CameraStyles, CamStyle, camera_styles, restyle
from reidlib.domain_adaptation.style import colour_transfer
from reidlib.models import build_model
from reidlib.training.classification import PseudoLabelClassification
from reidlib.training.loop import fit


def _set(n=12, cams=(0, 3, 5), size=(8, 6), seed=0):
    """Random images, each camera with its own gain and offset per channel."""
    rng = np.random.default_rng(seed)
    camids = np.array([cams[i % len(cams)] for i in range(n)])
    base = rng.normal(120, 25, (n, *size, 3))
    gain = {c: rng.uniform(0.5, 1.2, 3) for c in cams}
    offset = {c: rng.uniform(-40, 40, 3) for c in cams}
    pixels = np.stack([base[i] * gain[c] + offset[c] for i, c in enumerate(camids)])
    return ImageSet(np.clip(pixels, 0, 255).astype(np.uint8), np.arange(n), camids)


def _styles_loop(images: ImageSet):
    """Per camera and channel: mean and population std of all its pixels, by hand."""
    cams = sorted(set(images.camids.tolist()))
    mean, std = [], []
    for c in cams:
        pixels = images.images[images.camids == c].astype(np.float64)  # (n, H, W, 3)
        mean.append([pixels[..., ch].mean() for ch in range(3)])
        std.append([np.sqrt(((pixels[..., ch] - pixels[..., ch].mean()) ** 2).mean())
                    for ch in range(3)])
    return cams, np.array(mean), np.array(std)


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_camera_styles_match_a_per_camera_loop():
    images = _set()
    styles = camera_styles(images)
    cams, mean, std = _styles_loop(images)
    assert styles.cameras.tolist() == cams == [0, 3, 5]
    np.testing.assert_allclose(styles.mean.numpy(), mean, rtol=1e-10)
    np.testing.assert_allclose(styles.std.numpy(), std, rtol=1e-8)
    assert len(styles) == 3


def test_restyle_p1_gives_the_chosen_camera_statistics():
    images = _set(seed=1)
    styles = camera_styles(_set(seed=2, cams=(1, 2)))
    x = images.tensor()
    out = restyle(x, styles, _gen(3), p=1.0)
    assert out.dtype == torch.uint8 and out.shape == x.shape
    means = out.double().mean((2, 3))  # (B, 3)
    # each image takes one camera's channel means (up to rounding), and both cameras occur
    dist = (means[:, None, :] - styles.mean[None]).abs().amax(2)  # (B, K)
    assert (dist.min(1).values < 0.6).all()
    assert set(dist.argmin(1).tolist()) == {0, 1}
    stds = out.double().std((2, 3), unbiased=False)
    chosen = dist.argmin(1)
    torch.testing.assert_close(stds, styles.std[chosen], atol=0.6, rtol=0.0)


def test_restyle_equals_colour_transfer_onto_one_camera():
    """With one style, p = 1 is Reinhard's transfer onto that camera's pixels."""
    images, reference = _set(seed=4), _set(seed=5, cams=(7,))
    out = restyle(images.tensor(), camera_styles(reference), _gen(0), p=1.0)
    assert torch.equal(out, colour_transfer(images.tensor(), reference.tensor()))


def test_restyle_p0_is_the_identity_and_p_picks_a_share():
    x = _set(n=200, seed=6).tensor()
    styles = camera_styles(_set(seed=7, cams=(1, 2)))
    assert torch.equal(restyle(x, styles, _gen(0), p=0.0), x)
    changed = (restyle(x, styles, _gen(0), p=0.3) != x).flatten(1).any(1).float().mean()
    assert 0.2 < changed < 0.4


def test_exclude_never_picks_the_own_camera():
    images = _set(n=90, cams=(0, 3, 5), seed=8)
    styles = camera_styles(images)
    x = images.tensor()
    out = restyle(x, styles, _gen(1), p=1.0, exclude=torch.from_numpy(images.camids))
    means = out.double().mean((2, 3))
    slot = (means[:, None, :] - styles.mean[None]).abs().amax(2).argmin(1).numpy()
    picked = styles.cameras[slot]
    assert (picked != images.camids).all()
    for cam in (0, 3, 5):  # both other cameras are drawn for every camera
        assert set(picked[images.camids == cam].tolist()) == set({0, 3, 5} - {cam})
    # a camera that is not among the styles may take any of them
    out2 = restyle(x, styles, _gen(1), p=1.0, exclude=np.full(len(x), 9))
    slot2 = (out2.double().mean((2, 3))[:, None, :] - styles.mean[None]).abs().amax(2)
    assert set(slot2.argmin(1).tolist()) == {0, 1, 2}


def test_restyle_is_deterministic_given_the_generator():
    x = _set(seed=9).tensor()
    styles = camera_styles(_set(seed=10))
    a = restyle(x, styles, _gen(5))
    assert torch.equal(a, restyle(x, styles, _gen(5)))
    assert not torch.equal(a, restyle(x, styles, _gen(6)))
    g, ref = _gen(5), _gen(5)
    restyle(x, styles, g, p=0.0)  # two draws per image whatever p
    torch.rand(len(x), generator=ref)
    torch.rand(len(x), generator=ref)
    assert torch.equal(g.get_state(), ref.get_state())


@pytest.mark.parametrize("images, kwargs, match", [
    (torch.zeros(2, 3, 4, 4), {}, "uint8"),
    (torch.zeros(2, 4, 4, 4, dtype=torch.uint8), {}, r"\(B, 3, H, W\)"),
    (torch.zeros(3, 4, 4, dtype=torch.uint8), {}, r"\(B, 3, H, W\)"),
    (torch.zeros(2, 3, 4, 4, dtype=torch.uint8), {"p": 1.5}, "p must be"),
    (torch.zeros(2, 3, 4, 4, dtype=torch.uint8), {"exclude": np.zeros(3, int)}, "exclude"),
    (torch.zeros(2, 3, 4, 4, dtype=torch.uint8), {"exclude": np.zeros(2)}, "integer"),
])
def test_restyle_errors(images, kwargs, match):
    with pytest.raises(ValueError, match=match):
        restyle(images, camera_styles(_set()), _gen(), **kwargs)


def test_other_errors():
    x = _set().tensor()
    one = camera_styles(_set(cams=(4,)))
    with pytest.raises(ValueError, match="two camera styles"):
        restyle(x, one, _gen(), exclude=np.zeros(len(x), int))
    with pytest.raises(ValueError, match="generator"):
        restyle(x, one, 0)
    with pytest.raises(ValueError, match="CameraStyles"):
        restyle(x, None, _gen())
    with pytest.raises(ValueError, match="ImageSet"):
        camera_styles(x)
    with pytest.raises(ValueError, match="Method"):
        CamStyle(object(), one)
    with pytest.raises(ValueError, match="two camera styles"):
        CamStyle(PseudoLabelClassification(build_model("small")), one, exclude_own_camera=True)


def test_restyle_keeps_the_device_and_the_unchosen_images():
    x = _set(n=40, seed=11).tensor()
    styles = CameraStyles(np.array([0]), torch.tensor([[10.0, 200.0, 90.0]]).double(),
                          torch.tensor([[5.0, 1.0, 0.0]]).double())
    out = restyle(x, styles, _gen(2), p=0.5)
    assert out.device == x.device
    same = (out == x).flatten(1).all(1)
    assert 0 < same.sum() < len(x)
    # a zero style std makes the channel constant at the style mean
    assert (out[~same][:, 2] == 90).all()


# --- the wrapper through fit -------------------------------------------------------------


def _two_camera_set(seed):
    """colour_identity_set with camera 1 darker: two clearly different camera styles."""
    train = colour_identity_set(4, 4, 2, size=(32, 16), seed=seed)
    dark = train.camids == 1
    train.images[dark] = (train.images[dark] * 0.5).astype(np.uint8)
    return train


def _spy(method):
    seen = []
    original = method.loss

    def loss(batch):
        seen.append((batch.images.clone(), batch.camids.clone()))
        return original(batch)

    method.loss = loss
    return seen


def test_camstyle_wrapper_trains_with_fit_on_restyled_images():
    train = _two_camera_set(0)
    styles = camera_styles(train)
    torch.manual_seed(0)
    inner = PseudoLabelClassification(build_model("small"))
    seen = _spy(inner)
    method = CamStyle(inner, styles, p=1.0, exclude_own_camera=True)
    assert method.name == "CE + triplet + CamStyle"
    assert method.sampler == inner.sampler and method.models() == inner.models()
    assert method.config()["camstyle_styles"] == 2 and method.config()["ce"]
    history = fit(method, train, labels=train.pids, epochs=1, lr=1e-4, p=2, k=2,
                  progress=False)
    assert len(seen) * 4 == history[0].images and len(seen) >= 4
    assert all(np.isfinite(v) for v in history[0].losses.values())
    all_rows = train.tensor()
    for images, camids in seen:
        # every image moved into the other camera's style: never one of the raw images
        raw = (images[:, None] == all_rows[None]).flatten(2).all(2).any(1)
        assert not raw.any()
        means = images.double().mean((2, 3))
        slot = (means[:, None, :] - styles.mean[None]).abs().amax(2).argmin(1)
        assert (torch.from_numpy(styles.cameras)[slot] != camids).all()


class _Stop(Exception):
    pass


def test_camstyle_fit_resumes_to_the_same_weights(tmp_path):
    """Restyling draws from the batch's generator, a function of (seed, epoch): a run killed
    mid-epoch and resumed ends with the weights of an uninterrupted one."""
    train = _two_camera_set(1)
    styles = camera_styles(train)

    def run(path, stop_at=None):
        torch.manual_seed(0)
        method = CamStyle(PseudoLabelClassification(build_model("small")), styles, p=0.5,
                          exclude_own_camera=True)

        def on_step(epoch, step):
            if (epoch, step) == stop_at:
                raise _Stop

        fit(method, train, labels=train.pids, epochs=2, lr=1e-3, p=2, k=2, progress=False,
            checkpoint=path, on_step=on_step)
        return method.state_dict()["models"][0]

    whole = run(tmp_path / "a.pt")
    with pytest.raises(_Stop):
        run(tmp_path / "b.pt", stop_at=(1, 1))
    resumed = run(tmp_path / "b.pt")
    for key, value in whole.items():
        assert torch.equal(value, resumed[key]), key
