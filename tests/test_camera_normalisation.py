"""Camera colour-statistics normalisation (SCCT, survey §3.3) against numpy references.

The references compute each camera's pixel statistics with numpy on the raw pixels and
check what the transform promises: every camera ends with the reference's channel means
and stds (and covariance, second order), up to rounding to integers.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

import reidlib.handcrafted
from reidlib.camera.normalisation import (
    CameraColourStats,
    camera_colour_stats,
    normalise_camera_colours,
    per_camera_normalise,
)
from reidlib.data.augment import IMAGENET_MEAN, IMAGENET_STD
from reidlib.data.imageset import ImageSet


def _pixels_of(images, rows):
    """(P, 3) float64 pixels of the (N, 3, H, W) uint8 tensor's rows."""
    return images[rows].permute(0, 2, 3, 1).reshape(-1, 3).double().numpy()


def _cameras(mix=False, seed=0):
    """uint8 (N, 3, 12, 8) images of 3 cameras, each with its own gain and offset (and a
    channel mixing when ``mix``); values stay inside 0..255, so nothing clips."""
    rng = np.random.default_rng(seed)
    camids = np.repeat([0, 1, 4], [5, 7, 6])
    base = rng.uniform(-3 ** 0.5, 3 ** 0.5, (len(camids), 3, 12, 8))  # std 1, bounded
    gain = np.array([[12, 18, 9], [20, 8, 15], [10, 14, 22]], dtype=float)
    offset = np.array([[90, 120, 140], [150, 100, 110], [120, 130, 90]], dtype=float)
    slot = np.searchsorted([0, 1, 4], camids)
    if mix:  # correlated channels, a different mixing per camera
        mixes = np.array([[[1, .6, 0], [0, 1, .5], [0, 0, 1]], [[1, 0, 0], [-.7, 1, 0],
                          [.4, .3, 1]], [[1, .2, .2], [.2, 1, .2], [.2, .2, 1]]])
        base = np.einsum("nij,njhw->nihw", mixes[slot], base)
    x = gain[slot][:, :, None, None] * base + offset[slot][:, :, None, None]
    assert x.min() > 0 and x.max() < 255
    return torch.from_numpy(np.round(x).astype(np.uint8)), camids


def test_hand_computed_two_cameras():
    """Camera 0: values 100 / 120 (mean 110, std 10); camera 1: 50 / 90 (mean 70, std 20).
    Reference = their mean: mean 90, std 15; both cameras map onto 75 / 105."""
    cam0 = torch.tensor([100, 120], dtype=torch.uint8).repeat(2, 3, 2, 1)
    cam1 = torch.tensor([50, 90], dtype=torch.uint8).repeat(2, 3, 2, 1)
    images, camids = torch.cat([cam0, cam1]), np.array([0, 0, 1, 1])
    stats = camera_colour_stats(images, camids)
    torch.testing.assert_close(stats.mean, torch.tensor([[110.0] * 3, [70.0] * 3]).double())
    torch.testing.assert_close(stats.std, torch.tensor([[10.0] * 3, [20.0] * 3]).double())
    torch.testing.assert_close(stats.reference_mean, torch.full((3,), 90.0).double())
    out = normalise_camera_colours(images, stats, camids)
    expected = torch.tensor([75, 105], dtype=torch.uint8).repeat(4, 3, 2, 1)
    assert out.dtype == torch.uint8 and torch.equal(out, expected)
    # onto camera 1: camera 0's 100 / 120 become 50 / 90, camera 1 is unchanged
    out = normalise_camera_colours(images, camera_colour_stats(images, camids, reference=1),
                                   camids)
    assert torch.equal(out[:2], cam1) and torch.equal(out[2:], cam1)


@pytest.mark.parametrize("second_order", [False, True])
def test_statistics_match_numpy(second_order):
    images, camids = _cameras(mix=True)
    stats = camera_colour_stats(images, camids, second_order=second_order, chunk_size=4)
    assert stats.cameras.tolist() == [0, 1, 4]
    covs = []
    for i, c in enumerate([0, 1, 4]):
        pixels = _pixels_of(images, camids == c)
        np.testing.assert_allclose(stats.mean[i].numpy(), pixels.mean(0), rtol=1e-10)
        covs.append(np.cov(pixels.T, bias=True))
        np.testing.assert_allclose(stats.cov[i].numpy(), covs[-1], rtol=1e-8, atol=1e-8)
    reference = np.mean(covs, 0) if second_order else \
        np.diag(np.mean([np.sqrt(np.diag(c)) for c in covs], 0) ** 2)
    np.testing.assert_allclose(stats.reference_cov.numpy(), reference, rtol=1e-8)


def _reference_map(pixels, mean, cov, ref_mean, ref_cov, second_order):
    """y = ref_cov^(1/2) cov^(-1/2) (x - mean) + ref_mean (scipy's sqrtm), or per channel."""
    if second_order:
        matrix = np.real(scipy.linalg.sqrtm(ref_cov)) @ np.linalg.inv(
            np.real(scipy.linalg.sqrtm(cov)))
    else:
        matrix = np.diag(np.sqrt(np.diag(ref_cov)) / np.sqrt(np.diag(cov)))
    return (pixels - mean) @ matrix.T + ref_mean


@pytest.mark.parametrize("second_order", [False, True])
@pytest.mark.parametrize("reference", ["mean", "imagenet", 4])
def test_each_camera_ends_with_the_reference_statistics(reference, second_order):
    """Each output pixel is the exact map rounded (|error| <= 0.5), so each camera's channel
    means and stds are the reference's within 0.5 (a std is a norm: Minkowski); the exact
    map gives the reference mean and covariance (second order) or channel stds. ImageNet's
    stds (~58) are wide: unmixed images there; a few whitened pixels still clip to 0 / 255."""
    images, camids = _cameras(mix=reference != "imagenet")
    stats = camera_colour_stats(images, camids, reference=reference,
                                second_order=second_order)
    out = normalise_camera_colours(images, stats, camids)
    if reference == "imagenet":
        ref_mean = np.array(IMAGENET_MEAN) * 255
        ref_cov = np.diag((np.array(IMAGENET_STD) * 255) ** 2)
    elif reference == 4:
        ref_mean, ref_cov = _pixels_of(images, camids == 4).mean(0), \
            np.cov(_pixels_of(images, camids == 4).T, bias=True)
    else:
        ref_mean, ref_cov = stats.reference_mean.numpy(), stats.reference_cov.numpy()
    ref_std = np.sqrt(np.diag(ref_cov))
    for c in (0, 1, 4):
        pixels = _pixels_of(images, camids == c)
        exact = _reference_map(pixels, pixels.mean(0), np.cov(pixels.T, bias=True), ref_mean,
                               ref_cov, second_order)
        np.testing.assert_allclose(exact.mean(0), ref_mean, atol=1e-9)
        if second_order:
            np.testing.assert_allclose(np.cov(exact.T, bias=True), ref_cov, atol=1e-6)
        else:
            np.testing.assert_allclose(exact.std(0), ref_std, rtol=1e-9)
        got = _pixels_of(out, camids == c)
        assert np.abs(got - np.clip(exact, 0, 255)).max() <= 0.5 + 1e-4
        if (exact < 0).any() or (exact > 255).any():  # whitening spreads the uniform
            assert reference == "imagenet" and second_order  # noise past ImageNet's range
            continue
        np.testing.assert_allclose(got.mean(0), ref_mean, atol=0.5)
        np.testing.assert_allclose(got.std(0), ref_std, atol=0.5)
    if reference == 4:  # the reference camera is left as it was
        assert torch.equal(out[camids == 4], images[camids == 4])


def test_per_channel_leaves_each_cameras_channel_correlations():
    images, camids = _cameras(mix=True)
    stats = camera_colour_stats(images, camids)
    out = normalise_camera_colours(images, stats, camids)
    correlation = [np.corrcoef(_pixels_of(out, camids == c).T)[0, 1] for c in (0, 1, 4)]
    original = [np.corrcoef(_pixels_of(images, camids == c).T)[0, 1] for c in (0, 1, 4)]
    np.testing.assert_allclose(correlation, original, atol=0.01)
    assert max(correlation) - min(correlation) > 0.3  # the cameras still differ there


def test_clipping_and_image_sets():
    images, camids = _cameras()
    images[0, :, 0, 0] = torch.tensor([0, 255, 3], dtype=torch.uint8)  # extremes clip
    stats = camera_colour_stats(images, camids, reference="imagenet")
    out = normalise_camera_colours(images, stats, camids)
    assert out.min() == 0 and out.max() == 255
    data = ImageSet(images.permute(0, 2, 3, 1).numpy().copy(), np.arange(len(camids)), camids)
    stats_set = camera_colour_stats(data, reference="imagenet")
    torch.testing.assert_close(stats_set.cov, stats.cov)
    mapped = normalise_camera_colours(data, stats_set)
    assert isinstance(mapped, ImageSet) and mapped.images.dtype == np.uint8
    np.testing.assert_array_equal(mapped.images, out.permute(0, 2, 3, 1).numpy())
    np.testing.assert_array_equal(mapped.camids, camids)
    np.testing.assert_array_equal(mapped.pids, data.pids)


def test_argument_checks():
    images, camids = _cameras()
    stats = camera_colour_stats(images, camids)
    with pytest.raises(ValueError, match=r"cameras \[7\] were not fitted"):
        normalise_camera_colours(images[:2], stats, np.array([0, 7]))
    with pytest.raises(ValueError, match="reference must be"):
        camera_colour_stats(images, camids, reference=2)
    with pytest.raises(ValueError, match="reference must be"):
        camera_colour_stats(images, camids, reference="median")
    with pytest.raises(ValueError, match="camids are needed"):
        camera_colour_stats(images)
    with pytest.raises(ValueError, match="uint8"):
        camera_colour_stats(images.float(), camids)
    with pytest.raises(ValueError, match="one per image"):
        camera_colour_stats(images, camids[:3])
    with pytest.raises(ValueError, match="camera_colour_stats"):
        normalise_camera_colours(images, {"mean": 0}, camids)
    assert isinstance(stats, CameraColourStats)


def test_feature_normalisation_is_the_handcrafted_one():
    assert per_camera_normalise is reidlib.handcrafted.per_camera_normalise
