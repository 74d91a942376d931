"""Camera normalisation of images (SCCT) and of features (survey §3.3).

Each camera adds its own colour cast, brightness and contrast to every image it takes. The
simplest camera-invariance is to remove them before any learning:

- **images**: SCCT [83] (Xiang et al., "Second-order camera-aware color transformation for
  cross-domain person re-identification", ACCV 2020) measures the colour statistics of
  every camera view and applies a linear colour transform per camera so that all views
  share the same statistics (the paper maps them onto ImageNet's). We fit, per camera, the
  mean and covariance of its pixel colours over all its images (:func:`camera_colour_stats`),
  and map each camera onto a reference (:func:`normalise_camera_colours`):

      per channel (default):  y = ref_std / std_c * (x - mean_c) + ref_mean
      second order:           y = ref_cov^(1/2) cov_c^(-1/2) (x - mean_c) + ref_mean

  The second-order transform (whitening then re-colouring, as SCCT's title says) also
  removes the correlations between channels a camera adds; the per-channel one only their
  scales. The reference is the average of the cameras' statistics, one chosen camera, or
  ImageNet's per-channel mean and std (SCCT's choice). We found no public code of SCCT;
  this follows the paper's description.
- **features**: :func:`per_camera_normalise` removes each camera's mean feature and scale
  (defined in :mod:`reidlib.handcrafted`, re-exported here for chapter 3).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from reidlib.checks import labels_1d
from reidlib.data.augment import IMAGENET_MEAN, IMAGENET_STD
from reidlib.data.imageset import ImageSet
from reidlib.handcrafted import per_camera_normalise

__all__ = ["CameraColourStats", "camera_colour_stats", "normalise_camera_colours",
           "per_camera_normalise"]

EPS = 1e-6  # smallest variance (pixel units squared) treated as non-zero


@dataclass
class CameraColourStats:
    """Per-camera colour statistics of pixel values (0..255) and the reference they map to.

    ``cameras``: (K,) camera ids; ``mean``: (K, 3) RGB means; ``cov``: (K, 3, 3) colour
    covariances (population); ``reference_mean`` (3,) and ``reference_cov`` (3, 3): what
    every camera is mapped onto; ``second_order``: transform with the full covariance
    (True) or per channel (False). All tensors float64 on the CPU.
    """

    cameras: np.ndarray
    mean: torch.Tensor
    cov: torch.Tensor
    reference_mean: torch.Tensor
    reference_cov: torch.Tensor
    second_order: bool = False

    @property
    def std(self) -> torch.Tensor:
        """(K, 3) per-channel standard deviations."""
        return self.cov.diagonal(dim1=1, dim2=2).sqrt()

    def affine(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(K, 3, 3) matrices A and (K, 3) offsets b of each camera's map y = A x + b."""
        if self.second_order:
            matrix = _sqrtm(self.reference_cov)[None] @ _sqrtm(self.cov, inverse=True)
        else:
            ref_std = self.reference_cov.diagonal().sqrt()
            gain = ref_std / self.cov.diagonal(dim1=1, dim2=2).clamp(min=EPS).sqrt()
            matrix = torch.diag_embed(gain)
        offset = self.reference_mean - (matrix @ self.mean[:, :, None])[:, :, 0]
        return matrix, offset


def _sqrtm(cov: torch.Tensor, inverse: bool = False) -> torch.Tensor:
    """Symmetric square root (or inverse square root) of covariance matrices."""
    values, vectors = torch.linalg.eigh(cov)
    root = values.clamp(min=EPS).sqrt()
    root = 1.0 / root if inverse else root
    return vectors @ torch.diag_embed(root) @ vectors.transpose(-1, -2)


def _pixels(images) -> torch.Tensor:
    """A uint8 (N, 3, H, W) view of an ImageSet's pixels or of a checked tensor."""
    if isinstance(images, ImageSet):
        return torch.from_numpy(images.images).permute(0, 3, 1, 2)
    if isinstance(images, torch.Tensor) and images.dtype == torch.uint8 and images.ndim == 4 \
            and images.shape[1] == 3:
        return images
    desc = f"{images.dtype} {tuple(images.shape)}" if hasattr(images, "shape") else type(images)
    raise ValueError(f"images must be an ImageSet or a uint8 (N, 3, H, W) tensor, got {desc}")


def _camids(images, camids, n: int) -> np.ndarray:
    if camids is None:
        if not isinstance(images, ImageSet):
            raise ValueError("camids are needed with a tensor of images (one per image)")
        camids = images.camids
    return labels_1d(camids, n, "camids (one per image)", allow_outliers=False)


def camera_colour_stats(images, camids=None, reference="mean", second_order: bool = False,
                        chunk_size: int = 64) -> CameraColourStats:
    """Fit each camera's colour statistics (SCCT [83], survey §3.3).

    Args:
        images: an ImageSet (its camids by default) or a uint8 (N, 3, H, W) tensor.
        camids: (N,) camera ids (needed with a tensor).
        reference: ``"mean"`` (the average of the cameras' means and of their stds, or of
            their covariances when ``second_order``), a camera id (that camera's
            statistics), or ``"imagenet"`` (ImageNet's channel means and stds x 255).
        second_order: map full colour covariances (True) or per-channel stds (False).
        chunk_size: images summed at once (bounds the temporary memory).
    """
    pixels = _pixels(images)
    camids = _camids(images, camids, len(pixels))
    cameras, slot = np.unique(camids, return_inverse=True)
    if len(pixels) == 0:
        raise ValueError("images is empty: no colour statistics to fit")
    sums = torch.zeros(len(cameras), 3, dtype=torch.float64)
    products = torch.zeros(len(cameras), 3, 3, dtype=torch.float64)
    slot_t = torch.from_numpy(slot)
    for start in range(0, len(pixels), chunk_size):
        x = pixels[start:start + chunk_size].to("cpu", torch.float64).flatten(2)  # (B, 3, P)
        rows = slot_t[start:start + chunk_size]
        sums.index_add_(0, rows, x.sum(2))
        products.index_add_(0, rows, x @ x.transpose(1, 2))
    count = torch.from_numpy(np.bincount(slot) * pixels[0, 0].numel()).double()
    mean = sums / count[:, None]
    cov = products / count[:, None, None] - mean[:, :, None] * mean[:, None, :]
    ref_mean, ref_cov = _reference(reference, cameras, mean, cov, second_order)
    return CameraColourStats(cameras, mean, cov, ref_mean, ref_cov, bool(second_order))


def _reference(reference, cameras, mean, cov, second_order):
    """(3,) mean and (3, 3) covariance every camera is mapped onto."""
    if isinstance(reference, str) and reference == "imagenet":
        std = torch.tensor(IMAGENET_STD, dtype=torch.float64) * 255.0
        return torch.tensor(IMAGENET_MEAN, dtype=torch.float64) * 255.0, torch.diag(std ** 2)
    if isinstance(reference, str) and reference == "mean":
        if second_order:
            return mean.mean(0), cov.mean(0)
        std = cov.diagonal(dim1=1, dim2=2).clamp(min=0).sqrt().mean(0)
        return mean.mean(0), torch.diag(std ** 2)
    if isinstance(reference, (int, np.integer)) and not isinstance(reference, bool):
        where = np.flatnonzero(cameras == reference)
        if len(where) == 1:
            return mean[where[0]], cov[where[0]]
    raise ValueError(f"reference must be 'mean', 'imagenet' or one of the cameras "
                     f"{cameras.tolist()}, got {reference!r}")


def normalise_camera_colours(images, stats: CameraColourStats, camids=None,
                             chunk_size: int = 256):
    """Map each image's colours with its camera's transform (SCCT [83], survey §3.3).

    ``images``: an ImageSet (its camids by default; returns a new ImageSet) or a uint8
    (N, 3, H, W) tensor with ``camids`` (returns a tensor on its device). Values are
    rounded and clipped to 0..255 (uint8). Every camera must have been fitted in ``stats``.
    """
    if not isinstance(stats, CameraColourStats):
        raise ValueError(f"stats must come from camera_colour_stats, got {type(stats).__name__}")
    pixels = _pixels(images)
    camids = _camids(images, camids, len(pixels))
    unknown = np.setdiff1d(camids, stats.cameras)
    if len(unknown):
        raise ValueError(f"cameras {unknown.tolist()} were not fitted (fitted: "
                         f"{stats.cameras.tolist()}): fit the statistics on their images")
    matrix, offset = (t.float().to(pixels.device) for t in stats.affine())
    slot = torch.from_numpy(np.searchsorted(stats.cameras, camids)).to(pixels.device)
    out = torch.empty_like(pixels)
    for start in range(0, len(pixels), chunk_size):
        rows = slot[start:start + chunk_size]
        x = pixels[start:start + chunk_size].float()
        y = torch.einsum("bij,bjhw->bihw", matrix[rows], x) + offset[rows][:, :, None, None]
        out[start:start + chunk_size] = y.round_().clamp_(0, 255).to(torch.uint8)
    if isinstance(images, ImageSet):
        return dataclasses.replace(images, images=out.permute(0, 2, 3, 1).contiguous().numpy())
    return out
