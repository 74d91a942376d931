"""The pre-deep baseline: colour and texture histograms per horizontal stripe (chapter 0).

Survey §1-§2: before CNNs, Re-ID described a person by hand-made colour and texture
statistics (HSV / Lab colour histograms, LBP texture histograms; ELF, Gray & Tao, ECCV
2008; LOMO [33], Liao et al., CVPR 2015, which pools joint HSV histograms and texture
codes over horizontal strips). Horizontal stripes keep the coarse vertical layout of a
pedestrian (hair, shirt, trousers, shoes) while ignoring left-right shifts and small pose
changes.

Our descriptor, per stripe:

- colour: a joint HSV histogram with ``bins`` bins per channel (``bins**3`` values);
- texture: a histogram of rotation-invariant uniform LBP codes (Ojala et al., TPAMI 2002;
  8 neighbours at radius 1, codes 0..9) of the grey image.

Each histogram is divided by its pixel count and square-rooted (the Hellinger map), so the
Euclidean distance between two descriptors behaves like the Hellinger distance between
histograms and every histogram has unit L2 norm: colour and texture of every stripe weigh
the same. The concatenation is then L2-normalised. Layout of a feature row:
``[stripe 0: colour (bins**3), texture (10)], [stripe 1: ...], ...``.

``per_camera_normalise`` is a first look at camera bias (survey §3.3, SCCT [83] matches
per-camera colour statistics): subtracting each camera's mean feature removes what all
images of a camera share (light, colour cast, background).

Why by hand: scikit-image has LBP but no batched GPU version and it is not a dependency;
the histograms are a few ``bincount`` calls.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

NUM_LBP_CODES = 10  # rotation-invariant uniform LBP, P = 8: 0..8 ones, 9 = non-uniform
# Neighbours in circular order (row offset, column offset), as LBP requires.
_NEIGHBOURS = ((-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1))


def colour_texture_features(
    images,
    stripes: int = 6,
    bins: int = 4,
    chunk_size: int = 1024,
    centre_sigma: float | None = 0.15,
) -> torch.Tensor:
    """(N, stripes * (bins**3 + 10)) float32 L2-normalised colour-texture descriptors.

    Args:
        images: (N, H, W, 3) uint8 RGB, numpy array or torch tensor (any device; the
            work runs there), e.g. ``ImageSet.images``.
        stripes: horizontal stripes (1 <= stripes <= H); rows are split as evenly as
            possible, stripe of row y = floor(y * stripes / H).
        bins: bins per HSV channel.
        chunk_size: images processed at once (bounds the temporary memory).
        centre_sigma: weigh pixels by a Gaussian of this width (a fraction of the image
            width) around the vertical axis (see ``centre_weights``); None: all equal.
    """
    images = _check_images(images)
    if not 1 <= int(stripes) <= images.shape[1]:
        raise ValueError(f"stripes must be in [1, H={images.shape[1]}], got {stripes}")
    if int(bins) < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    parts = []
    for start in range(0, len(images), chunk_size):
        parts.append(_describe(images[start : start + chunk_size], stripes, bins, centre_sigma))
    if not parts:
        return torch.zeros(0, stripes * (bins**3 + NUM_LBP_CODES), device=images.device)
    return F.normalize(torch.cat(parts), dim=1)


def _describe(images: torch.Tensor, stripes: int, bins: int, centre_sigma) -> torch.Tensor:
    """Unnormalised descriptor of a chunk: Hellinger-mapped stripe histograms."""
    # Channel planes (N, 3, H, W): every step below is elementwise on contiguous planes.
    rgb = images.permute(0, 3, 1, 2).contiguous().float().div_(255.0)
    stripe = (torch.arange(images.shape[1], device=images.device) * stripes) // images.shape[1]
    weight = centre_weights(images.shape[2], centre_sigma, images.device)
    colour = stripe_histograms(hsv_bins(rgb, bins), stripe, stripes, bins**3, weight)
    r, g, b = rgb.unbind(1)
    grey = 0.299 * r + 0.587 * g + 0.114 * b
    texture = stripe_histograms(lbp_codes(grey), stripe, stripes, NUM_LBP_CODES, weight)
    return torch.cat([colour, texture], dim=2).sqrt().flatten(1)


def rgb_to_hsv(rgb: torch.Tensor) -> torch.Tensor:
    """(N, 3, ...) RGB in [0, 1] -> (N, 3, ...) HSV in [0, 1] (hue as a fraction of the
    circle); the same convention as ``matplotlib.colors.rgb_to_hsv``."""
    r, g, b = rgb.unbind(1)
    value = torch.maximum(torch.maximum(r, g), b)
    delta = value - torch.minimum(torch.minimum(r, g), b)
    safe = torch.where(delta > 0, delta, 1.0)
    # Where two channels tie for the maximum every formula gives the same hue.
    hue = torch.where(value == g, (b - r) / safe + 2, (g - b) / safe % 6)
    hue = torch.where(value == b, (r - g) / safe + 4, hue)
    hue = torch.where(delta > 0, hue / 6, 0.0)
    saturation = delta / value.clamp(min=1e-12)  # black: delta = 0, saturation 0
    return torch.stack([hue, saturation, value], 1)


def hsv_bins(rgb: torch.Tensor, bins: int) -> torch.Tensor:
    """(N, 3, ...) RGB -> joint HSV bin of every pixel, h * bins^2 + s * bins + v."""
    # Float arithmetic is exact on these small integers and cheaper than int64.
    q = (rgb_to_hsv(rgb) * bins).floor_().clamp_(0, bins - 1)
    return ((q[:, 0] * bins + q[:, 1]) * bins + q[:, 2]).long()


def lbp_codes(grey: torch.Tensor) -> torch.Tensor:
    """(N, H, W) rotation-invariant uniform LBP codes (P=8, R=1) in [0, 10).

    Bit p is 1 when neighbour p >= the centre; borders repeat the edge pixels. A code is
    the number of ones when the circular bit pattern has at most two 0/1 transitions
    ("uniform": a spot, an edge, a corner), else 9.
    """
    h, w = grey.shape[1:]
    padded = F.pad(grey[:, None], (1, 1, 1, 1), mode="replicate")[:, 0]
    bits = [padded[:, 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] >= grey for dy, dx in _NEIGHBOURS]
    ones = torch.zeros_like(grey, dtype=torch.uint8)
    transitions = torch.zeros_like(ones)
    for p in range(len(bits)):
        ones += bits[p]
        transitions += bits[p] != bits[p - 1]  # p - 1 = -1 closes the circle
    return torch.where(transitions <= 2, ones, NUM_LBP_CODES - 1).long()


def stripe_histograms(
    codes: torch.Tensor, stripe_of_row: torch.Tensor, stripes: int, num_bins: int,
    column_weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """(N, stripes, num_bins) per-stripe histograms of (N, H, W) integer codes, each
    divided by its stripe's pixel count (or total weight, when ``column_weight`` (W,)
    weighs each pixel by its column)."""
    n, h, w = codes.shape
    if column_weight is None:
        column_weight = torch.ones(w, device=codes.device)
    image = torch.arange(n, device=codes.device)[:, None, None]
    flat = (image * stripes + stripe_of_row[None, :, None]) * num_bins + codes
    weights = column_weight[None, None, :].expand(n, h, w)
    hist = torch.bincount(flat.flatten(), weights=weights.flatten(),
                          minlength=n * stripes * num_bins)
    hist = hist.view(n, stripes, num_bins).float()
    pixels = torch.bincount(stripe_of_row, minlength=stripes).float() * column_weight.sum()
    return hist / pixels[None, :, None]


def centre_weights(width: int, sigma: float | None, device=None) -> torch.Tensor | None:
    """Gaussian weight of each column around the crop's vertical axis (``sigma``: a fraction
    of the width). A detector box is centred on the person, so this favours the person over
    the background, as SDALF (Farenzena et al., CVPR 2010) weighs colours by their distance
    to the body's symmetry axis. ``None``: no weighting."""
    if sigma is None:
        return None
    x = (torch.arange(width, device=device, dtype=torch.float32) + 0.5) / width - 0.5
    return torch.exp(-0.5 * (x / sigma) ** 2)


def per_camera_normalise(
    features,
    camids,
    standardise: bool = True,
    l2_normalise: bool = True,
    eps: float = 1e-6,
) -> torch.Tensor:
    """Remove each camera's mean feature (and scale), then L2-normalise (survey §3.3).

    Uses no identity label, only which camera took each image, so it is fair in the
    unsupervised setting. Pass query and gallery together (concatenated with their
    camids): the statistics belong to a camera, not to a split.

    Args:
        features: (N, D) float tensor or numpy array.
        camids: (N,) integer camera ids.
        standardise: also divide each dimension by the camera's standard deviation
            (population std, + ``eps``; a camera with one image becomes all zeros).
        l2_normalise: L2-normalise each row at the end (the per-camera means are then
            no longer exactly zero; switch it off to inspect them).
    """
    features, camids = _check_features_camids(features, camids)
    cams, inverse = torch.unique(camids, return_inverse=True)
    count = torch.bincount(inverse, minlength=len(cams)).to(features.dtype)[:, None]
    zeros = torch.zeros(len(cams), features.shape[1], dtype=features.dtype, device=features.device)
    mean = zeros.index_add(0, inverse, features) / count
    out = features - mean[inverse]
    if standardise:
        std = (zeros.index_add(0, inverse, out * out) / count).sqrt()
        out = out / (std[inverse] + eps)
    return F.normalize(out, dim=1) if l2_normalise else out


def _check_images(images) -> torch.Tensor:
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(np.ascontiguousarray(images))
    if not isinstance(images, torch.Tensor):
        raise TypeError(
            f"images must be a numpy array or torch tensor, got {type(images).__name__}"
        )
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != torch.uint8:
        raise ValueError(
            "images must be uint8 of shape (N, H, W, 3) (channels last, like ImageSet.images), "
            f"got {images.dtype} {tuple(images.shape)}"
        )
    return images


def _check_features_camids(features, camids):
    if isinstance(features, np.ndarray):
        features = torch.from_numpy(np.ascontiguousarray(features))
    if isinstance(camids, (np.ndarray, list, tuple)):
        camids = torch.as_tensor(np.asarray(camids))
    if not isinstance(features, torch.Tensor) or not isinstance(camids, torch.Tensor):
        raise TypeError("features and camids must be torch tensors or numpy arrays")
    if features.ndim != 2:
        raise ValueError(f"features must be 2-D (N, D), got shape {tuple(features.shape)}")
    if camids.ndim != 1 or len(camids) != len(features):
        raise ValueError(
            f"camids must be 1-D of length N={len(features)}, got shape {tuple(camids.shape)}"
        )
    if torch.is_floating_point(camids):
        raise ValueError(f"camids must hold integers, got dtype {camids.dtype}")
    if not torch.is_floating_point(features):
        features = features.float()
    return features, camids.to(features.device)
