"""Colour-texture descriptor and per-camera normalisation (the pre-deep baseline)."""

import numpy as np
import pytest
import torch
from matplotlib.colors import rgb_to_hsv as mpl_rgb_to_hsv

from reidlib.handcrafted import (
    NUM_LBP_CODES,
    colour_texture_features,
    hsv_bins,
    lbp_codes,
    per_camera_normalise,
    rgb_to_hsv,
)


def red_over_blue(n=1):
    """12 x 4 image: rows 0-5 pure red, rows 6-11 pure blue."""
    img = np.zeros((n, 12, 4, 3), np.uint8)
    img[:, :6, :, 0] = 255
    img[:, 6:, :, 2] = 255
    return img


def test_known_image_by_hand():
    # stripes=2 (rows 0-5, 6-11), bins=8, D per stripe = 512 colour + 10 texture.
    # Colour: red = HSV (0, 1, 1) -> bins (0, 7, 7) -> 0*64 + 7*8 + 7 = 63;
    #         blue = HSV (240/360, 1, 1) -> bins (5, 7, 7) -> 5*64 + 63 = 383.
    # Texture (grey: red 76.2, blue 29.1; a bit is 1 when neighbour >= centre):
    #   rows 0-4 and the whole blue stripe see only equal or brighter neighbours
    #   -> 8 ones, uniform -> code 8;
    #   row 5 (last red row) has its 3 lower neighbours darker -> bits 1111 0001 in
    #   circular order: 5 ones, 2 transitions -> code 5 (4 pixels).
    # Stripe 0: colour {63: 24/24}, texture {8: 20/24, 5: 4/24};
    # stripe 1: colour {383: 1}, texture {8: 1}. After the square root every histogram
    # has unit norm, four of them -> the final L2 division is by 2.
    f = colour_texture_features(red_over_blue(), stripes=2, bins=8)
    assert f.shape == (1, 2 * 522) and f.dtype == torch.float32
    expected = np.zeros(2 * 522, np.float32)
    expected[63] = 1 / 2
    expected[512 + 8] = np.sqrt(20 / 24) / 2
    expected[512 + 5] = np.sqrt(4 / 24) / 2
    expected[522 + 383] = 1 / 2
    expected[522 + 512 + 8] = 1 / 2
    np.testing.assert_allclose(f[0].numpy(), expected, atol=1e-6)


def test_lbp_codes_by_hand():
    # A single bright pixel on a dark background: the centre sees 8 darker neighbours
    # (code 0, a "spot"); each of its 4-neighbours sees 1 brighter and 7 equal (>=)
    # neighbours -> 8 ones (code 8). A checkerboard row pattern is non-uniform (code 9).
    grey = torch.zeros(1, 5, 5)
    grey[0, 2, 2] = 1.0
    codes = lbp_codes(grey)
    assert codes[0, 2, 2] == 0 and codes[0, 1, 2] == 8 and codes[0, 0, 0] == 8
    # Vertical stripes 0 1 0 1 0. A dark centre (column 2) has neighbours 1 0 1 in every
    # row, all >= 0 -> code 8. A bright centre (column 1) has only the pixels above and
    # below >= it: bits 0 1 0 0 0 1 0 0 in circular order, 4 transitions -> code 9.
    stripes = torch.tensor([[0.0, 1.0, 0.0, 1.0, 0.0]]).repeat(5, 1)[None]
    assert lbp_codes(stripes)[0, 2, 2] == 8
    assert lbp_codes(stripes)[0, 2, 1] == 9
    assert int(lbp_codes(torch.rand(3, 9, 7)).max()) < NUM_LBP_CODES


def test_hsv_matches_matplotlib():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (500, 3)).astype(np.float64) / 255
    rgb[:5] = [[0, 0, 0], [1, 1, 1], [0.5, 0.5, 0.5], [1, 1, 0], [0, 1, 1]]  # corner cases
    np.testing.assert_allclose(
        rgb_to_hsv(torch.from_numpy(rgb)).numpy(), mpl_rgb_to_hsv(rgb), atol=1e-12
    )
    q = hsv_bins(torch.from_numpy(rgb), 4).numpy()
    ref = np.minimum((mpl_rgb_to_hsv(rgb) * 4).astype(int), 3)
    np.testing.assert_array_equal(q, ref[:, 0] * 16 + ref[:, 1] * 4 + ref[:, 2])


def test_shapes_norms_and_input_types():
    rng = np.random.default_rng(1)
    imgs = rng.integers(0, 256, (7, 64, 32, 3), dtype=np.uint8)
    f = colour_texture_features(imgs, stripes=6, bins=4, chunk_size=3)
    assert f.shape == (7, 6 * (64 + 10))
    np.testing.assert_allclose(f.norm(dim=1).numpy(), 1.0, atol=1e-6)
    assert (f >= 0).all()
    same = colour_texture_features(torch.from_numpy(imgs), stripes=6, bins=4)
    np.testing.assert_allclose(same.numpy(), f.numpy(), atol=1e-6)  # chunking, tensor input
    # 64 rows in 5 stripes: uneven stripes still give unit-mass histograms.
    g = colour_texture_features(imgs[:2], stripes=5, bins=2)
    assert g.shape == (2, 5 * 18)


def test_descriptor_separates_colours_and_ignores_left_right_flip():
    imgs = red_over_blue(2)
    imgs[1] = imgs[1, ::-1]  # blue over red: same colours, other stripes
    f = colour_texture_features(imgs, stripes=2)
    assert float(f[0] @ f[1]) < 0.5
    flipped = colour_texture_features(red_over_blue()[:, :, ::-1], stripes=2)
    np.testing.assert_allclose(flipped[0].numpy(), f[0].numpy(), atol=1e-6)


def test_feature_errors():
    with pytest.raises(ValueError, match=r"uint8 of shape \(N, H, W, 3\)"):
        colour_texture_features(np.zeros((2, 8, 4, 3), np.float32))
    with pytest.raises(ValueError, match=r"uint8 of shape \(N, H, W, 3\)"):
        colour_texture_features(np.zeros((2, 3, 8, 4), np.uint8))
    with pytest.raises(ValueError, match=r"stripes must be in \[1, H=8\]"):
        colour_texture_features(np.zeros((2, 8, 4, 3), np.uint8), stripes=9)
    with pytest.raises(ValueError, match="bins must be >= 1"):
        colour_texture_features(np.zeros((2, 8, 4, 3), np.uint8), bins=0)
    with pytest.raises(TypeError, match="numpy array or torch tensor"):
        colour_texture_features([[0]])


def test_per_camera_normalise_zero_means_unit_std():
    rng = np.random.default_rng(2)
    camids = rng.integers(0, 3, 60)
    feats = rng.normal(size=(60, 5)) + 4 * camids[:, None]  # strong camera offset
    out = per_camera_normalise(feats, camids, l2_normalise=False).numpy()
    for c in range(3):
        np.testing.assert_allclose(out[camids == c].mean(0), 0, atol=1e-10)
        np.testing.assert_allclose(out[camids == c].std(0), 1, atol=1e-5)
    centred = per_camera_normalise(feats, camids, standardise=False, l2_normalise=False)
    for c in range(3):  # mean removed, spread untouched
        expected = feats[camids == c] - feats[camids == c].mean(0)
        np.testing.assert_allclose(centred.numpy()[camids == c], expected, atol=1e-10)
    final = per_camera_normalise(torch.from_numpy(feats).float(), torch.from_numpy(camids))
    np.testing.assert_allclose(final.norm(dim=1).numpy(), 1, atol=1e-6)
    np.testing.assert_allclose(
        final.numpy(), out / np.linalg.norm(out, axis=1, keepdims=True), atol=1e-5
    )


def test_per_camera_normalise_removes_camera_signal():
    # Before: the nearest neighbour of an image is from its own camera (the offset
    # dominates); after: cameras are mixed.
    rng = np.random.default_rng(3)
    camids = np.repeat(np.arange(2), 50)
    feats = torch.from_numpy(rng.normal(size=(100, 8)) + 5 * camids[:, None]).float()

    def same_cam_nn(f):
        d = torch.cdist(f, f).fill_diagonal_(float("inf"))
        return float((camids[d.argmin(1).numpy()] == camids).mean())

    assert same_cam_nn(feats) == 1.0
    assert same_cam_nn(per_camera_normalise(feats, camids)) < 0.75


def test_per_camera_normalise_errors():
    with pytest.raises(ValueError, match="camids must be 1-D of length N=4"):
        per_camera_normalise(np.zeros((4, 3)), np.zeros(5, int))
    with pytest.raises(ValueError, match=r"features must be 2-D \(N, D\)"):
        per_camera_normalise(np.zeros(4), np.zeros(4, int))
    with pytest.raises(ValueError, match="camids must hold integers"):
        per_camera_normalise(np.zeros((4, 3)), np.zeros(4))


def test_centre_weighting_counts_central_columns_more():
    from reidlib.handcrafted import centre_weights, stripe_histograms

    # one image, one row, 4 columns: codes 0,1,1,0 ; weights w = centre_weights(4, 0.25)
    codes = torch.tensor([[[0, 1, 1, 0]]])
    w = centre_weights(4, 0.25)
    hist = stripe_histograms(codes, torch.zeros(1, dtype=torch.long), 1, 2, w)
    expected = torch.tensor([w[0] + w[3], w[1] + w[2]]) / w.sum()
    assert torch.allclose(hist[0, 0], expected)
    assert hist[0, 0, 1] > hist[0, 0, 0]  # the centre's code weighs more
    assert centre_weights(4, None) is None
