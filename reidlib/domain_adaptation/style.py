"""Image-level style transfer that runs on a CPU (survey §3.4.2, image style transfer).

The survey's style-transfer methods (PTGAN, SPGAN, CR-GAN...) train a CycleGAN to render
source images in the target's style and keep the source labels. Two closed-form transfers
show the same idea in seconds:

- :func:`adain`: adaptive instance normalisation (Huang & Belongie, "Arbitrary style
  transfer in real-time with adaptive instance normalization", ICCV 2017, Eq. 8): each
  channel of a content feature map takes the mean and standard deviation of the matching
  channel of a style feature map. As the authors' PyTorch code (naoto0804/pytorch-AdaIN,
  ``function.py``, ``calc_mean_std``), the statistics are over H x W per image and channel,
  the variance is the unbiased one and ``eps`` is added to it before the square root.
- :func:`colour_transfer`: Reinhard et al., "Color transfer between images" (IEEE CG&A
  2001): shift and scale each colour channel of an image to the mean and standard
  deviation of a reference. Reinhard et al. work in the decorrelated l-alpha-beta space;
  we work in **RGB**, on purpose: a camera's or a domain's cast in our synthetic world (and
  a white-balance or gain difference in a real one) is a per-RGB-channel gain and offset,
  which this transfer removes exactly, and the result needs no colour-space round trip
  (the log of l-alpha-beta is undefined at black pixels).
"""

from __future__ import annotations

import torch

from reidlib.checks import real_in_range

__all__ = ["adain", "channel_mean_std", "colour_transfer"]


def channel_mean_std(x: torch.Tensor, eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, C, 1, 1) mean and sqrt(unbiased variance + eps) of each image's channels over
    H x W (AdaIN's ``calc_mean_std``)."""
    flat = x.flatten(2)
    mean = flat.mean(2)[..., None, None]
    std = (flat.var(2, unbiased=True) + eps).sqrt()[..., None, None]
    return mean, std


def _check_maps(content, style) -> None:
    for name, value in (("content", content), ("style", style)):
        if not isinstance(value, torch.Tensor) or not value.is_floating_point():
            raise ValueError(f"{name} must be a floating-point torch tensor (feature maps), "
                             f"got {getattr(value, 'dtype', type(value).__name__)}")
        if value.ndim != 4 or value.shape[2] * value.shape[3] < 2 or len(value) == 0:
            raise ValueError(f"{name} must be (B, C, H, W) feature maps with B >= 1 and "
                             f"H * W >= 2 (a standard deviation), got {tuple(value.shape)}")
    if content.shape[1] != style.shape[1]:
        raise ValueError(f"content and style must have the same channels, got "
                         f"{content.shape[1]} and {style.shape[1]}")
    if len(style) not in (1, len(content)):
        raise ValueError(f"style must hold one map for every content map or a single map for "
                         f"all, got {len(style)} style and {len(content)} content maps")


def adain(content: torch.Tensor, style: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """AdaIN(x, y) = sigma(y) (x - mu(x)) / sigma(x) + mu(y), per image and channel.

    ``content`` (B, C, H, W), ``style`` (B or 1, C, H', W') (sizes may differ; one style
    map is used for every content map). Differentiable in both. ``eps`` > 0 is added to the
    variances (the reference's 1e-5).
    """
    _check_maps(content, style)
    eps = real_in_range(eps, "eps", 0.0, lo_open=True)
    c_mean, c_std = channel_mean_std(content, eps)
    s_mean, s_std = channel_mean_std(style, eps)
    return (content - c_mean) / c_std * s_std + s_mean


def _check_images(value, name: str) -> None:
    if not isinstance(value, torch.Tensor) or value.dtype != torch.uint8:
        raise ValueError(f"{name} must be a uint8 torch tensor of images, got "
                         f"{getattr(value, 'dtype', type(value).__name__)}")
    if value.ndim != 4 or value.shape[1] != 3 or len(value) == 0:
        raise ValueError(f"{name} must have shape (B, 3, H, W) with B >= 1, got "
                         f"{tuple(value.shape)}")


def colour_transfer(images: torch.Tensor, reference_images: torch.Tensor,
                    per_image: bool = True) -> torch.Tensor:
    """uint8 (B, 3, H, W): each image's R, G, B channels shifted and scaled to the mean and
    standard deviation of that channel over all pixels of ``reference_images`` (Reinhard
    et al. 2001, in RGB; see the module docstring).

    ``per_image``: each image is matched on its own (Reinhard's per-image transfer);
    False: the batch's statistics are matched as a whole, so the images keep their
    differences. A constant channel takes the reference mean. The result is rounded and
    clipped to 0..255, so its statistics equal the reference's up to rounding where
    nothing clips. Standard deviations are population ones (divide by the pixel count).
    """
    _check_images(images, "images")
    _check_images(reference_images, "reference_images")
    ref = reference_images.double().transpose(0, 1).flatten(1)  # (3, pixels)
    ref_mean = ref.mean(1).to(images.device).view(1, 3, 1, 1)
    ref_std = ref.std(1, unbiased=False).to(images.device).view(1, 3, 1, 1)
    x = images.double()
    dims = (2, 3) if per_image else (0, 2, 3)
    mean = x.mean(dims, keepdim=True)
    std = x.std(dims, unbiased=False, keepdim=True)
    scale = torch.where(std > 0, ref_std / std.clamp_min(1e-12), torch.zeros_like(std))
    out = (x - mean) * scale + ref_mean
    return out.round().clamp(0, 255).to(torch.uint8)
