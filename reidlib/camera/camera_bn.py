"""Camera-aware batch normalisation (survey §3.3, camera-aware invariance learning).

Zhuang et al., "Rethinking the distribution gap of person re-identification with
camera-based batch normalization" (ECCV 2020; code: automan000/Camera-based-Person-ReID).
Each camera gets its own BatchNorm statistics, so that every camera's features are
normalised to zero mean and unit variance *within that camera*: the colour cast, light and
background a camera adds to all its images are removed at every layer, and all cameras
(training and test, seen and unseen) share one aligned feature distribution. The survey's
UCDA [65] (Qi et al., ICCV 2019) aligns camera distributions with adversarial losses; camera
BN is the simplest way to the same end and needs no loss at all.

What the reference does and how we match it:

- **training**: it splits every batch by camera, drops the cameras with a single image, and
  forwards each camera's sub-batch on its own through plain BatchNorm, so each sub-batch is
  normalised with its own batch statistics; the affine weights are shared by all cameras.
  :class:`CameraBatchNorm` normalises each camera's rows of a mixed batch with that
  camera's batch statistics: every other layer works per sample, so this equals the
  reference's separate forwards (tests/test_camera_bn.py checks it). The rows of cameras
  seen once are dropped by :func:`shared_camera_rows`, as the reference drops them.
- **test time**: for each camera, its BN statistics are reset and re-estimated from up to
  50 batches of 64 of that camera's (unlabelled) images, forwarded in training mode with
  ``momentum=None`` (the cumulative average over batches) and with their mirror images;
  then that camera's images are extracted in eval mode. Query and gallery are treated
  separately. :func:`reestimate_camera_bn` and :func:`extract_camera_features` do this.
  The reference keeps one set of statistics and overwrites it per camera; we keep one set
  per camera (``num_cameras`` slots), so a model can hold every camera's statistics at
  once and be saved with them.

Usage::

    convert_camera_bn(model, num_cameras)          # in place: every BatchNorm1d/2d
    with cameras(model, batch.camids):             # training: per-camera batch statistics
        out = model(x)
    reestimate_camera_bn(model, gallery)           # test: each camera's own statistics
    features = extract_camera_features(model, gallery)
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from reidlib.checks import as_numpy, int_in_range, labels_1d
from reidlib.data.augment import eval_transform
from reidlib.data.imageset import ImageSet
from reidlib.feature_learning.cluster_contrast import ClusterContrast
from reidlib.training.classification import check_reid_model
from reidlib.training.features import (
    _check_images,
    autocast_for,
    extract_features,
    model_device,
)
from reidlib.training.loop import score_features

__all__ = ["CameraBNContrast", "CameraBatchNorm", "cameras", "camera_bn_layers",
           "convert_camera_bn", "evaluate_camera_bn", "extract_camera_features",
           "reestimate_camera_bn", "shared_camera_rows"]

# reference code: 50 batches of 64 images of each camera for its BN statistics
ESTIMATION_BATCH, ESTIMATION_IMAGES = 64, 50 * 64


@dataclass
class _Route:
    """Which rows of the next batches belong to which camera (set by :func:`cameras`).

    ``groups``: (camera, rows) pairs, rows None = the whole batch; ``batch``: the expected
    batch size (None: any); ``inverse``: puts the concatenated groups back in batch order.
    """

    groups: list[tuple[int, torch.Tensor | None]]
    batch: int | None = None
    inverse: torch.Tensor | None = None


class CameraBatchNorm(nn.Module):
    """A BatchNorm1d / 2d with one set of running statistics per camera (Zhuang et al.).

    Built from an existing BatchNorm by :func:`convert_camera_bn`: it shares that layer's
    affine ``weight`` and ``bias`` (the same Parameters, so one set for all cameras, as in
    the paper) and starts every camera's statistics from that layer's running statistics.
    ``running_mean`` / ``running_var``: (num_cameras, C); ``num_batches_tracked``:
    (num_cameras,). The camera of each row comes from :func:`cameras`; in training each
    camera's rows are normalised with their own batch statistics and update that camera's
    running statistics (``momentum``; None = cumulative average), in eval mode with that
    camera's running statistics.
    """

    def __init__(self, bn: nn.BatchNorm1d | nn.BatchNorm2d, num_cameras: int):
        super().__init__()
        self.num_features, self.eps, self.momentum = bn.num_features, bn.eps, bn.momentum
        self.num_cameras = num_cameras
        self.input_dims = (4,) if isinstance(bn, nn.BatchNorm2d) else (2, 3)
        self.weight, self.bias = bn.weight, bn.bias
        for name in ("running_mean", "running_var"):
            stats = getattr(bn, name).detach()
            self.register_buffer(name, stats.expand(num_cameras, -1).clone())
        self.register_buffer("num_batches_tracked", torch.zeros(
            num_cameras, dtype=torch.long, device=bn.running_mean.device))
        self._route: _Route | None = None

    def reset_camera(self, camera: int) -> None:
        """Statistics of ``camera`` back to mean 0, variance 1, no batch seen."""
        self.running_mean[camera].zero_()
        self.running_var[camera].fill_(1.0)
        self.num_batches_tracked[camera].zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        route = self._route
        if route is None:
            raise RuntimeError("a camera-aware BN layer needs the camera of each image: call "
                               "the model inside `with cameras(model, camids):`")
        if x.ndim not in self.input_dims or x.shape[1] != self.num_features:
            raise ValueError(f"CameraBatchNorm expects {self.input_dims[0]}-D input with "
                             f"{self.num_features} channels, got {tuple(x.shape)}")
        if route.batch is not None and len(x) != route.batch:
            raise ValueError(f"cameras(model, camids) gave {route.batch} camera ids, the "
                             f"batch has {len(x)} rows")
        if route.inverse is None:
            return self._normalise(x, route.groups[0][0])
        parts = [self._normalise(x[rows], camera) for camera, rows in route.groups]
        return torch.cat(parts)[route.inverse]

    def _normalise(self, x: torch.Tensor, camera: int) -> torch.Tensor:
        """Plain batch norm of ``x`` with camera ``camera``'s statistics (views of rows)."""
        factor = 0.0
        if self.training:
            if x.numel() // x.shape[1] < 2:
                raise ValueError(f"camera {camera} has a single value per channel in this "
                                 "training batch: batch statistics need 2; drop the rows of "
                                 "cameras seen once (shared_camera_rows)")
            self.num_batches_tracked[camera] += 1
            factor = self.momentum
            if factor is None:  # cumulative average, as nn.BatchNorm with momentum=None
                factor = 1.0 / float(self.num_batches_tracked[camera])
        return F.batch_norm(x, self.running_mean[camera], self.running_var[camera],
                            self.weight, self.bias, self.training, factor, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.num_features}, cameras={self.num_cameras}, eps={self.eps}, "
                f"momentum={self.momentum}")


# ------------------------------------------------------------------ building and routing


def convert_camera_bn(model: nn.Module, num_cameras: int) -> nn.Module:
    """Replace every ``nn.BatchNorm1d`` / ``nn.BatchNorm2d`` of ``model`` (in place) by a
    :class:`CameraBatchNorm` with ``num_cameras`` sets of statistics; returns ``model``.

    Camera ids must then lie in 0..num_cameras-1 (the course's camids are 0-based); give
    enough slots for every camera the model will see, test cameras included.
    """
    num_cameras = int_in_range(num_cameras, "num_cameras", 1)
    if camera_bn_layers(model, required=False):
        raise ValueError("model already has camera-aware BN layers")
    if not _convert(model, num_cameras):
        raise ValueError(f"{type(model).__name__} has no BatchNorm1d / BatchNorm2d to convert")
    return model


def _convert(module: nn.Module, num_slots: int, layer_class=None, what: str = "camera") -> int:
    """Replace each BatchNorm below ``module`` by ``layer_class(bn, num_slots)`` (default
    :class:`CameraBatchNorm`; DSBN passes its domain layer); returns how many."""
    layer_class = layer_class or CameraBatchNorm
    count = 0
    for name, child in module.named_children():
        if isinstance(child, (nn.BatchNorm1d, nn.BatchNorm2d)):
            if not child.track_running_stats:
                raise ValueError(f"BatchNorm {name!r} keeps no running statistics "
                                 f"(track_running_stats=False): nothing per {what} to keep")
            setattr(module, name, layer_class(child, num_slots))
            count += 1
        else:
            count += _convert(child, num_slots, layer_class, what)
    return count


def camera_bn_layers(model: nn.Module, required: bool = True) -> list[CameraBatchNorm]:
    """The model's :class:`CameraBatchNorm` layers (a clear error if none and ``required``)."""
    layers = [m for m in model.modules() if isinstance(m, CameraBatchNorm)]
    if required and not layers:
        raise ValueError(f"{type(model).__name__} has no camera-aware BN layers: convert it "
                         "first with convert_camera_bn(model, num_cameras)")
    return layers


def _route(camids, num_cameras: int, device: torch.device, what: str = "camera") -> _Route:
    """The routing of :func:`cameras`: one host sync for the whole forward, not per layer.
    ``what`` names the slots in errors ("domain" for DSBN, which routes the same way)."""
    name = "camids" if what == "camera" else f"{what}_ids"
    if isinstance(camids, (int, np.integer)) and not isinstance(camids, bool):
        ids, batch = labels_1d(np.array([camids]), 1, name, allow_outliers=False), None
    else:
        array = as_numpy(camids)
        if array.ndim != 1 or len(array) == 0:
            raise ValueError(f"{name} must be one {what} id or a 1-D array with one id per "
                             f"image, got shape {array.shape}")
        ids, batch = labels_1d(array, len(array), name, allow_outliers=False), len(array)
    if ids.max() >= num_cameras:
        raise ValueError(f"{name} must lie in 0..{num_cameras - 1} (the model was converted "
                         f"with num_{what}s={num_cameras}), got {int(ids.max())}")
    present = np.unique(ids)
    if len(present) == 1:
        return _Route([(int(present[0]), None)], batch)
    rows = [torch.from_numpy(np.flatnonzero(ids == c)).to(device) for c in present]
    inverse = torch.argsort(torch.cat(rows))
    return _Route([(int(c), r) for c, r in zip(present, rows, strict=True)], batch, inverse)


@contextlib.contextmanager
def cameras(model: nn.Module, camids):
    """Inside the block, the model's camera-aware BN layers know each row's camera.

    ``camids``: one camera id (every image of every batch) or a (B,) array / tensor, one per
    row of the batches forwarded in the block. Blocks nest; the previous routing returns
    on exit.
    """
    with _routed(model, camera_bn_layers(model), camids, "camera"):
        yield model


@contextlib.contextmanager
def _routed(model: nn.Module, layers: list[CameraBatchNorm], ids, what: str):
    """Route ``layers`` by ``ids`` for the block (:func:`cameras`; DSBN's ``domains``)."""
    counts = {layer.num_cameras for layer in layers}
    if len(counts) > 1:
        raise ValueError(f"the {what} BN layers disagree on num_{what}s: {sorted(counts)}")
    route = _route(ids, counts.pop(), model_device(model), what)
    previous = [layer._route for layer in layers]
    for layer in layers:
        layer._route = route
    try:
        yield model
    finally:
        for layer, old in zip(layers, previous, strict=True):
            layer._route = old


def shared_camera_rows(camids: torch.Tensor) -> torch.Tensor:
    """(B,) bool: the rows whose camera occurs at least twice in the batch.

    The reference drops a camera's sub-batch when it holds a single image (it has no batch
    statistics); a method keeps only these rows.
    """
    _, inverse, counts = torch.unique(camids, return_inverse=True, return_counts=True)
    return counts[inverse] >= 2


# ------------------------------------------------------------------ test time


def _image_camids(images, camids) -> np.ndarray:
    """The images' checked (N,) camera ids (an ImageSet's own ones by default)."""
    n = _check_images(images)
    if camids is None:
        if not isinstance(images, ImageSet):
            raise ValueError("camids are needed with a tensor of images (one per image)")
        camids = images.camids
    return labels_1d(camids, n, "camids (one per image)", allow_outliers=False)


def _rows(images, rows: np.ndarray, device) -> torch.Tensor:
    """uint8 (B, 3, H, W) of ``rows`` on ``device``."""
    if isinstance(images, ImageSet):
        return torch.from_numpy(images.images[rows]).to(device).permute(0, 3, 1, 2)
    return images[torch.as_tensor(rows, device=images.device)].to(device)


def _estimation_batches(rows: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Full batches only (the reference's drop_last), or all rows when there are fewer."""
    full = len(rows) // batch_size
    if full == 0:
        return [rows]
    return [rows[i * batch_size:(i + 1) * batch_size] for i in range(full)]


def reestimate_camera_bn(model: nn.Module, images, camids=None, *,
                         batch_size: int = ESTIMATION_BATCH,
                         max_images: int = ESTIMATION_IMAGES, flip: bool = True,
                         seed: int = 0) -> None:
    """Re-estimate each camera's BN statistics from that camera's (unlabelled) images.

    For every camera in ``camids`` (default: the ImageSet's): its statistics are reset,
    then up to ``max_images`` of its images (``np.random.default_rng(seed).permutation``
    of its rows, cameras in increasing id order) are forwarded in
    training mode, in batches of ``batch_size`` (and mirrored when ``flip``), with the
    cumulative average (``momentum=None``) over batches: the reference's test-time step.
    Other cameras' statistics are untouched; the model's mode and momenta are restored.
    Differs on purpose: a camera with fewer than ``batch_size`` images gets one smaller
    batch, where the reference (drop_last) would leave it with no statistics.
    """
    layers = camera_bn_layers(model)
    camids = _image_camids(images, camids)
    batch_size = int_in_range(batch_size, "batch_size", 2)
    max_images = int_in_range(max_images, "max_images", 2)
    present, counts = np.unique(camids, return_counts=True)
    if present.max() >= layers[0].num_cameras or counts.min() < 2:
        raise ValueError(f"each camera needs >= 2 images and an id below num_cameras = "
                         f"{layers[0].num_cameras}; got cameras {present.tolist()} with "
                         f"{counts.tolist()} images")
    rng, device = np.random.default_rng(seed), model_device(model)
    was_training, momenta = model.training, [layer.momentum for layer in layers]
    try:
        model.train()
        for layer in layers:
            layer.momentum = None
        with torch.no_grad():
            for camera in present.tolist():
                rows = rng.permutation(np.flatnonzero(camids == camera))[:max_images]
                _estimate_camera(model, layers, images, camera, rows, batch_size, flip, device)
    finally:
        model.train(was_training)
        for layer, momentum in zip(layers, momenta, strict=True):
            layer.momentum = momentum


def _estimate_camera(model, layers, images, camera, rows, batch_size, flip, device) -> None:
    for layer in layers:
        layer.reset_camera(camera)
    with cameras(model, camera), autocast_for(device):
        for chunk in _estimation_batches(rows, batch_size):
            x = eval_transform(_rows(images, chunk, device))
            model(x)
            if flip:
                model(x.flip(-1))


def extract_camera_features(model: nn.Module, images, camids=None, **kwargs) -> torch.Tensor:
    """(N, D) features, each camera's images normalised with that camera's statistics.

    ``kwargs`` go to :func:`reidlib.training.features.extract_features` (``flip``,
    ``batch_size``, ``normalize``...). Rows come back in the order of ``images``.
    """
    camera_bn_layers(model)
    camids = _image_camids(images, camids)
    kwargs.setdefault("progress", False)
    out = None
    for camera in np.unique(camids).tolist():
        rows = np.flatnonzero(camids == camera)
        subset = images.subset(rows) if isinstance(images, ImageSet) else \
            images[torch.as_tensor(rows, device=images.device)]
        with cameras(model, camera):
            features = extract_features(model, subset, **kwargs)
        if out is None:
            out = features.new_empty(len(camids), features.shape[1])
        out[torch.from_numpy(rows)] = features
    return out


def evaluate_camera_bn(model: nn.Module, query: ImageSet, gallery: ImageSet,
                       camera_norm: bool = False, **kwargs) -> dict:
    """mAP / CMC / mINP with camera BN, as the reference tests: query and gallery each
    re-estimate their cameras' statistics from their own images, then are extracted.
    ``camera_norm``: then per-camera feature normalisation, as the course's scorer
    (:func:`reidlib.training.loop.score_features`)."""
    features = []
    for split in (query, gallery):
        reestimate_camera_bn(model, split)
        features.append(extract_camera_features(model, split, **kwargs))
    return score_features(*features, query, gallery, camera_norm=camera_norm)


# ------------------------------------------------------------------ a method


class CameraBNContrast(ClusterContrast):
    """Cluster Contrast with camera-aware BN (Zhuang et al. on top of Dai et al.).

    The model is converted in place (``num_cameras`` slots, default: the training set's
    largest camid + 1). Each step drops the rows of cameras seen once in the batch and
    normalises every camera's rows with their own batch statistics. Before each
    clustering the training cameras' statistics are re-estimated from the training images
    (the reference's test-time step, since the statistics kept during training are not
    used) and the features are extracted camera by camera. Train with ``fit(...,
    cluster=...)`` and evaluate with :func:`evaluate_camera_bn`: ``fit``'s ``val=`` and
    ``labels=`` extract features without cameras and so raise.
    """

    name = "Cluster Contrast + camera BN"

    def __init__(self, model, train: ImageSet, num_cameras: int | None = None, **settings):
        if not isinstance(train, ImageSet):
            raise ValueError(f"train must be the ImageSet that fit trains on, got "
                             f"{type(train).__name__}")
        if num_cameras is None:
            num_cameras = int(train.camids.max()) + 1
        check_reid_model(model)
        if not camera_bn_layers(model, required=False):
            convert_camera_bn(model, num_cameras)
        super().__init__(model, **settings)
        self.train_set = train
        self.num_cameras = camera_bn_layers(model)[0].num_cameras

    def cluster_features(self) -> torch.Tensor:
        reestimate_camera_bn(self.model, self.train_set)
        return extract_camera_features(self.model, self.train_set, flip=False)

    def loss(self, batch):
        keep = shared_camera_rows(batch.camids)
        if not bool(keep.all()):
            rows = keep.nonzero().flatten()
            if len(rows) == 0:
                raise ValueError("no camera holds two images of this batch: nothing to "
                                 "normalise per camera (use larger batches)")
        else:
            rows = slice(None)
        x, indices = batch.augmented()[rows], batch.indices[rows]
        with cameras(self.model, batch.camids[rows]), autocast_for(batch.images.device):
            out = self.model(x)
        loss = self.memory(out.embeddings, indices)
        self._last = (out.embeddings.detach(), indices)
        return loss, {"memory": loss}

    def config(self) -> dict:
        return {**super().config(), "num_cameras": self.num_cameras}
