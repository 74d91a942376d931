"""Camera-style augmentation: CamStyle and HHL's restyled images (survey §3.4.2).

Every camera renders people in its own style (colour cast, brightness, contrast). Two
papers turn that into data augmentation:

- **CamStyle** (Zhong, Zheng, Zheng, Li, Yang, "Camera Style Adaptation for Person
  Re-identification", CVPR 2018; "CamStyle: a novel data augmentation method for person
  re-identification", TIP 2019; code: zhunzhong07/CamStyle) trains one CycleGAN per pair
  of cameras, renders every training image as if seen by each other camera and trains on
  real + restyled images with the real image's label: the model learns features that do
  not change with the camera.
- **HHL** (Zhong, Zheng, Li, Yang, "Generalizing a Person Retrieval Model Hetero- and
  Homogeneously", ECCV 2018; code: zhunzhong07/HHL) renders images in the *target*
  domain's camera styles with one StarGAN, so that a model trained on labelled source
  data sees the target cameras' styles (the survey: "HHL generates images under
  different cameras ... camera-aware invariant features").

Our CPU stand-in for the GANs: a camera's *style* is the per-RGB-channel mean and standard
deviation of all its pixels (:func:`camera_styles`, the per-channel statistics of SCCT's
:func:`~reidlib.camera.normalisation.camera_colour_stats`), and an image is moved into a
camera's style by shifting and scaling each of its channels from its own statistics to
that camera's (:func:`restyle`: the maths of
:func:`~reidlib.domain_adaptation.style.colour_transfer`, Reinhard et al. 2001 in RGB).
In our synthetic world a camera's style *is* such a per-channel gain and offset, so this
renders exactly what the GAN is trained to learn there; on real images it misses what a
GAN also changes (blur, lighting direction, background).

:class:`CamStyle` wraps any method of the course and restyles each training batch before
the method's loss, with probability ``p`` per image, into a camera drawn uniformly from the
styles. The chapter uses it twice:

(a) HHL's camera styles on the source: supervised source training with the source images
    restyled into the *target* cameras' styles (``styles = camera_styles(target)``), then
    direct transfer to the target;
(b) CamStyle on the target: clustering-based training on the target with every image
    restyled into one of the *other* target cameras (``exclude_own_camera=True``).

Deliberate differences from the papers:

- colour statistics instead of a CycleGAN per camera pair (CamStyle) or a StarGAN (HHL);
- restyled images are drawn on the fly, each image with probability ``p`` (CamStyle
  pre-generates every image in every other camera and mixes real and fake images in a
  fixed ratio per batch);
- CamStyle's label-smoothing regularisation (LSR) of the fake images' cross-entropy is
  not used: the wrapper restyles images for any method's loss and cannot reach inside
  it, so restyled images get the same loss as real ones (the paper shows LSR matters
  when GAN artefacts make fakes noisy; our colour restyling adds no artefacts);
- HHL's triplet losses (a target image and its camera-style versions as positives, source
  images as negatives) are not part of (a): only the source classification on restyled
  images is.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from reidlib.camera.normalisation import camera_colour_stats
from reidlib.checks import as_numpy, real_in_range
from reidlib.data.imageset import ImageSet
from reidlib.training.method import Method

__all__ = ["CamStyle", "CameraStyles", "camera_styles", "restyle"]


@dataclass
class CameraStyles:
    """Each camera's colour style: ``cameras`` (K,) ids (sorted), ``mean`` and ``std``
    (K, 3) float64 CPU tensors, the per-RGB-channel mean and population standard
    deviation (pixel units, 0..255) over all pixels of the camera's images."""

    cameras: np.ndarray
    mean: torch.Tensor
    std: torch.Tensor

    def __len__(self) -> int:
        return len(self.cameras)


def camera_styles(images: ImageSet) -> CameraStyles:
    """The colour style of every camera that has images in ``images`` (module docstring).

    The per-channel part of SCCT's per-camera statistics
    (:func:`~reidlib.camera.normalisation.camera_colour_stats`).
    """
    if not isinstance(images, ImageSet) or len(images) == 0:
        raise ValueError(f"images must be a non-empty ImageSet (its camids name the cameras), "
                         f"got {type(images).__name__}")
    stats = camera_colour_stats(images)
    return CameraStyles(stats.cameras, stats.mean.clone(), stats.std.clone())


def _check_restyle(images, styles, generator, p, exclude) -> tuple[float, np.ndarray | None]:
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 \
            or images.ndim != 4 or images.shape[1] != 3:
        desc = (f"{images.dtype} {tuple(images.shape)}" if isinstance(images, torch.Tensor)
                else type(images).__name__)
        raise ValueError(f"images must be a uint8 (B, 3, H, W) tensor, got {desc}")
    if not isinstance(styles, CameraStyles) or len(styles) == 0:
        raise ValueError(f"styles must be a non-empty CameraStyles (camera_styles(images)), "
                         f"got {type(styles).__name__}")
    if not isinstance(generator, torch.Generator):
        raise ValueError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    p = real_in_range(p, "p", 0.0, 1.0)
    if exclude is None:
        return p, None
    own = as_numpy(exclude)
    if own.shape != (len(images),) or not np.issubdtype(own.dtype, np.integer):
        raise ValueError(f"exclude must be ({len(images)},) integer camera ids, one per "
                         f"image, got {own.dtype} {own.shape}")
    if len(styles) < 2:
        raise ValueError("exclude needs at least two camera styles: with one, an image of "
                         "that camera has no other camera to move to")
    return p, own.astype(np.int64)


def _draw_styles(n: int, styles: CameraStyles, generator, own: np.ndarray | None):
    """(n,) uniform draws for "restyle?" and (n,) style slots, uniform over the styles or,
    with ``own`` camera ids, over the styles other than the image's own camera."""
    device = generator.device
    coin = torch.rand(n, generator=generator, device=device).cpu()
    pick = torch.rand(n, generator=generator, device=device).cpu()
    k = len(styles)
    if own is None:
        return coin, (pick * k).long().clamp_max(k - 1)
    where = np.searchsorted(styles.cameras, own)
    has_own = torch.from_numpy((where < k) & (styles.cameras[np.minimum(where, k - 1)] == own))
    choices = k - has_own.long()  # the own camera is skipped when it is a style
    slot = (pick * choices).long().clamp_max(choices - 1)
    own_slot = torch.from_numpy(where)
    return coin, slot + (has_own & (slot >= own_slot)).long()


def _to_style(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 (B, 3, H, W) with each image's channels moved to ``mean`` / ``std`` (B, 3):
    :func:`~reidlib.domain_adaptation.style.colour_transfer`'s per-image maths (population
    std; a constant channel takes the style's mean), rounded and clipped to 0..255."""
    x = x.double()
    own_mean = x.mean((2, 3), keepdim=True)
    own_std = x.std((2, 3), unbiased=False, keepdim=True)
    std, mean = std[:, :, None, None], mean[:, :, None, None]
    scale = torch.where(own_std > 0, std / own_std.clamp_min(1e-12), torch.zeros_like(own_std))
    return ((x - own_mean) * scale + mean).round().clamp(0, 255).to(torch.uint8)


def restyle(images: torch.Tensor, styles: CameraStyles, generator: torch.Generator,
            p: float = 0.5, exclude=None) -> torch.Tensor:
    """Each image, with probability ``p``, moved into the colour style of a camera drawn
    uniformly from ``styles`` (CamStyle / HHL with colour statistics; module docstring).

    ``images``: uint8 (B, 3, H, W); ``exclude``: optional (B,) camera ids of the images:
    an image is never moved into its own camera's style (CamStyle restyles an image into
    the *other* cameras). Two uniform numbers per image are drawn from ``generator`` (on
    its own device) whatever ``p``, so the result depends only on the generator's state.
    Returns a new uint8 tensor on the images' device; the images left alone are unchanged.
    """
    p, own = _check_restyle(images, styles, generator, p, exclude)
    coin, slot = _draw_styles(len(images), styles, generator, own)
    chosen = (coin < p).nonzero().flatten()
    out = images.clone()
    if len(chosen):
        rows = chosen.to(images.device)
        mean = styles.mean[slot[chosen]].to(images.device)
        std = styles.std[slot[chosen]].to(images.device)
        out[rows] = _to_style(images[rows], mean, std)
    return out


class CamStyle(Method):
    """Any method of the course trained on camera-restyled batches (module docstring).

    ``method``: the wrapped :class:`~reidlib.training.method.Method`; everything
    :func:`~reidlib.training.loop.fit` asks of a method (models, parameters, features,
    labels, batches, memory updates, state) is the wrapped method's, and so is any other
    attribute (``method.cluster``, ``method.memory``...). Only :meth:`loss` differs: the
    batch's images are first restyled (:func:`restyle` with probability ``p``, the
    generator of the batch) and the wrapped method's loss sees the restyled batch.
    ``styles``: the camera styles to draw from (the target's for HHL's source training,
    the training set's own for CamStyle); ``exclude_own_camera``: never draw an image's
    own camera (CamStyle, when ``styles`` are the cameras of the training images).
    """

    def __init__(self, method: Method, styles: CameraStyles, p: float = 0.5,
                 exclude_own_camera: bool = False):
        if not isinstance(method, Method):
            raise ValueError(f"method must be a reidlib Method, got {type(method).__name__}")
        if not isinstance(styles, CameraStyles) or len(styles) == 0:
            raise ValueError(f"styles must be a non-empty CameraStyles (camera_styles(...)), "
                             f"got {type(styles).__name__}")
        if exclude_own_camera and len(styles) < 2:
            raise ValueError("exclude_own_camera needs at least two camera styles")
        self.method = method
        self.styles = styles
        self.p = real_in_range(p, "p", 0.0, 1.0)
        self.exclude_own_camera = bool(exclude_own_camera)

    def __getattr__(self, name: str):
        # only reached for attributes the wrapper lacks: the wrapped method's
        if name == "method":  # not set yet (copy / unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.method, name)

    @property
    def name(self) -> str:
        return f"{self.method.name} + CamStyle"

    @property
    def recipe(self) -> dict:
        return self.method.recipe

    def set_sampler(self, sampler: str, other_cameras: bool) -> None:
        self.method.set_sampler(sampler, other_cameras)

    def parameters(self):
        return self.method.parameters()

    def models(self):
        return self.method.models()

    def feature_model(self):
        return self.method.feature_model()

    def cluster_features(self):
        return self.method.cluster_features()

    def new_labels(self, features, labels, train) -> None:
        self.method.new_labels(features, labels, train)

    def start_epoch(self, epoch: int) -> None:
        self.method.start_epoch(epoch)

    def batches(self, labels, camids, *, p, k, iters, seed, epoch):
        return self.method.batches(labels, camids, p=p, k=k, iters=iters, seed=seed,
                                   epoch=epoch)

    def restyled(self, batch):
        """``batch`` with its images restyled (what the wrapped loss sees)."""
        exclude = batch.camids if self.exclude_own_camera else None
        images = restyle(batch.images, self.styles, batch.generator, self.p, exclude=exclude)
        return dataclasses.replace(batch, images=images)

    def loss(self, batch):
        return self.method.loss(self.restyled(batch))

    def after_step(self, batch) -> None:
        self.method.after_step(batch)

    def config(self) -> dict:
        return {**self.method.config(), "camstyle_p": self.p,
                "camstyle_styles": len(self.styles),
                "camstyle_exclude_own_camera": self.exclude_own_camera}

    def state_dict(self) -> dict:
        return self.method.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.method.load_state_dict(state)
