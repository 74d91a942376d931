"""A self-supervised start when no pretrained weights exist (survey §5, open directions).

Every method of chapters 1-4 clusters the features of a network that already means
something: ImageNet weights in the papers, the world-P backbone in the course. The survey's
open directions ask what to do without them. Here the network first learns from the
target's own unlabelled training images by *instance discrimination*: SimCLR (Chen et al.,
"A Simple Framework for Contrastive Learning of Visual Representations", ICML 2020) makes
two strongly augmented views of every image and trains them to find each other among the
other views of the batch (:func:`nt_xent`), through a small projection head that is thrown
away afterwards. No identity, pseudo-label or camera id is used.

SimCLR fits the course's one loop (:func:`reidlib.training.fit`) as a :class:`SimCLR`
method: the fixed labels are the row numbers (every image its own class, which the loop
accepts as labels), the method's sampler gives batches of distinct images, and the loss
step draws both views itself with :func:`simclr_augment` from the epoch's generator, so
views, like batches, depend only on ``(seed, epoch)`` and a killed run resumes exactly.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from reidlib.data.augment import IMAGENET_MEAN, IMAGENET_STD
from reidlib.data.imageset import ImageSet
from reidlib.models.heads import ReidModel, build_model
from reidlib.training.classification import check_reid_model
from reidlib.training.features import autocast_for, model_device
from reidlib.training.loop import fit
from reidlib.training.method import Method

# ITU-R 601 luma: torchvision's rgb_to_grayscale weights
_LUMA = (0.299, 0.587, 0.114)
# RGB -> YIQ; hue is an angle in the IQ (chroma) plane
_YIQ = ((0.299, 0.587, 0.114), (0.596, -0.274, -0.322), (0.211, -0.523, 0.312))


# ------------------------------------------------------------------------- the loss


def _view_logits(z1: torch.Tensor, z2: torch.Tensor, temperature: float):
    """(2N, 2N) cosine similarities / temperature with the diagonal masked, and each
    anchor's positive column (the other view of its image)."""
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)
    logits = z @ z.T / temperature
    eye = torch.eye(len(z), dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(eye, float("-inf"))
    n = len(z1)
    positive = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
    return logits, positive


def _check_views(z1: torch.Tensor, z2: torch.Tensor) -> None:
    if z1.ndim != 2 or z1.shape != z2.shape or len(z1) < 2:
        raise ValueError(f"expected two (N, D) projections of the same shape with N >= 2 "
                         f"(the two views of N images), got {tuple(z1.shape)} and "
                         f"{tuple(z2.shape)}")


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """SimCLR's NT-Xent loss (Chen et al. 2020, Eq. 1; survey §5).

    ``z1[i]`` and ``z2[i]`` are the projections of two views of image ``i``. Over the 2N
    views, anchor ``a`` with positive ``p`` (its other view) costs
    ``-log exp(s(a, p) / t) / sum_{j != a} exp(s(a, j) / t)``, s the cosine similarity:
    the other 2N - 2 views are its negatives. The loss is the mean over all 2N anchors.
    """
    _check_views(z1, z2)
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    logits, positive = _view_logits(z1, z2, temperature)
    return F.cross_entropy(logits, positive)


def agreement(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """View agreement: the share of the 2N views whose most similar other view (cosine) is
    the other view of their own image; 1 / (2N - 1) by chance."""
    _check_views(z1, z2)
    logits, positive = _view_logits(z1, z2, 1.0)
    return (logits.argmax(dim=1) == positive).float().mean()


# ----------------------------------------------------------------- the augmentation


def _uniform(shape, generator: torch.Generator, device) -> torch.Tensor:
    """Uniform numbers drawn on the generator's device, then moved: same views on any device."""
    return torch.rand(shape, generator=generator, device=generator.device).to(device)


def random_resized_crop(x: torch.Tensor, u: torch.Tensor, scale=(0.25, 1.0),
                        ratio=(3 / 4, 4 / 3)) -> torch.Tensor:
    """Crop a random box of each image (area fraction ~ U(``scale``), aspect relative to the
    image's own log-uniform in ``ratio``), mirror it with probability 1/2, resize it back.

    One ``grid_sample`` for the whole batch; ``u``: (B, 5) uniforms. Unlike torchvision's
    ``RandomResizedCrop`` (10 tries, then a centre crop) a box too wide or too tall is
    clipped to the image, which keeps the batch vectorised.
    """
    area = scale[0] + (scale[1] - scale[0]) * u[:, 0]
    aspect = torch.exp(math.log(ratio[0]) + (math.log(ratio[1]) - math.log(ratio[0])) * u[:, 1])
    sx = torch.sqrt(area * aspect).clamp(max=1.0)  # box width / image width
    sy = torch.sqrt(area / aspect).clamp(max=1.0)
    tx = (1 - sx) * (2 * u[:, 2] - 1)  # box centre, in [-1, 1] image coordinates
    ty = (1 - sy) * (2 * u[:, 3] - 1)
    mirror = torch.where(u[:, 4] < 0.5, -1.0, 1.0)
    theta = torch.zeros(len(x), 2, 3, device=x.device)
    theta[:, 0, 0], theta[:, 0, 2] = sx * mirror, tx
    theta[:, 1, 1], theta[:, 1, 2] = sy, ty
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _grey(x: torch.Tensor) -> torch.Tensor:
    return torch.einsum("bchw,c->bhw", x, x.new_tensor(_LUMA)).unsqueeze(1)


def _hue_matrices(angle: torch.Tensor) -> torch.Tensor:
    """(B, 3, 3) RGB -> RGB maps turning the chroma (IQ) plane by ``angle`` radians."""
    yiq = angle.new_tensor(_YIQ)
    cos, sin = torch.cos(angle), torch.sin(angle)
    turn = torch.zeros(len(angle), 3, 3, device=angle.device)
    turn[:, 0, 0] = 1
    turn[:, 1, 1], turn[:, 1, 2], turn[:, 2, 1], turn[:, 2, 2] = cos, -sin, sin, cos
    return torch.linalg.inv(yiq) @ turn @ yiq


def colour_distortion(x: torch.Tensor, u: torch.Tensor, strength: float = 0.5,
                      p_jitter: float = 0.8, p_grey: float = 0.2) -> torch.Tensor:
    """SimCLR's colour distortion on float images in [0, 1]; ``u``: (B, 6) uniforms.

    With probability ``p_jitter``: brightness, contrast and saturation factors
    ~ U[1 - 0.8 s, 1 + 0.8 s] and a hue turn ~ U[-0.2 s, 0.2 s] of a full circle (s =
    ``strength``; SimCLR's values), then with probability ``p_grey`` grey. Differences,
    for a vectorised batch: the four jitters run in a fixed order (torchvision's shuffles
    it) and the hue turn rotates the YIQ chroma plane instead of HSV's hue.
    """
    jitter = (u[:, 0] < p_jitter).float()
    def factor(v):  # 1 where the image is not jittered
        return (1 + jitter * 0.8 * strength * (2 * v - 1)).view(-1, 1, 1, 1)
    x = (x * factor(u[:, 1])).clamp(0, 1)
    mean = _grey(x).mean(dim=(-2, -1), keepdim=True)
    x = (mean + (x - mean) * factor(u[:, 2])).clamp(0, 1)
    grey = _grey(x)
    x = (grey + (x - grey) * factor(u[:, 3])).clamp(0, 1)
    angle = jitter * 0.2 * strength * (2 * u[:, 4] - 1) * 2 * math.pi
    x = torch.einsum("bij,bjhw->bihw", _hue_matrices(angle), x).clamp(0, 1)
    to_grey = (u[:, 5] < p_grey).view(-1, 1, 1, 1)
    return torch.where(to_grey, _grey(x).expand_as(x), x)


def simclr_augment(images: torch.Tensor, generator: torch.Generator, strength: float = 0.5,
                   scale=(0.25, 1.0)) -> torch.Tensor:
    """One SimCLR view of a uint8 (B, 3, H, W) batch: a normalised float batch on its device.

    Random resized crop with a mirror (:func:`random_resized_crop`), then colour distortion
    (:func:`colour_distortion`), then ImageNet normalisation. Adapted to our 64x32 crops:
    the smallest box keeps a quarter of the image (SimCLR: 8%, on 224-pixel images) and, as
    in SimCLR's CIFAR-10 setting, there is no Gaussian blur and the colour strength is 0.5.
    """
    b = len(images)
    u = _uniform((b, 11), generator, images.device)
    x = random_resized_crop(images.float() / 255, u[:, :5], scale=scale)
    x = colour_distortion(x, u[:, 5:], strength)
    mean = x.new_tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = x.new_tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (x - mean) / std


# ------------------------------------------------------------------------ the method


def projection_head(in_dim: int, hidden: int = 256, out_dim: int = 128) -> nn.Sequential:
    """SimCLR's projection g: Linear -> BN -> ReLU -> Linear (2 layers; discarded after)."""
    return nn.Sequential(nn.Linear(in_dim, hidden, bias=False), nn.BatchNorm1d(hidden),
                         nn.ReLU(inplace=True), nn.Linear(hidden, out_dim))


class SimCLR(Method):
    """SimCLR instance discrimination in the one loop (module docstring; survey §5).

    The head projects the pooled features (SimCLR's representation h, before the BNNeck)
    and is trained with the network; :meth:`feature_model` is the network alone. Both
    views go through one forward pass, so BatchNorm sees the 2N views together. Run it with
    fixed labels ``np.arange(len(train))`` and ``p`` = the batch size, ``k = 1``
    (:func:`self_supervised_start` does).
    """

    name = "SimCLR"

    def __init__(self, model: ReidModel, temperature: float = 0.5, strength: float = 0.5,
                 hidden: int = 256, out_dim: int = 128):
        if not temperature > 0 or strength < 0:
            raise ValueError(f"temperature must be > 0 and strength >= 0, got {temperature} "
                             f"and {strength}")
        super().__init__(check_reid_model(model))
        self.model.reset_classifier(0)
        self.temperature, self.strength = float(temperature), float(strength)
        self.head = projection_head(model.feature_dim, hidden, out_dim).to(model_device(model))

    def parameters(self) -> list[nn.Parameter]:
        return [*self.model.parameters(), *self.head.parameters()]

    def models(self) -> list[nn.Module]:
        return [self.model, self.head]

    def feature_model(self) -> nn.Module:
        return self.model

    def batches(self, labels, camids, *, p, k, iters, seed, epoch) -> list[np.ndarray]:
        """A fresh permutation of the labelled rows cut into batches of ``p * k`` distinct
        images; the last, shorter batch is dropped (the permutation differs every epoch)."""
        if iters is not None:
            raise ValueError("SimCLR runs one pass over the images per epoch; leave iters=None")
        rows = np.flatnonzero(np.asarray(labels) >= 0)
        rows = np.random.default_rng([seed, epoch]).permutation(rows)
        size = min(p * k, len(rows))
        return [rows[i:i + size] for i in range(0, len(rows) - size + 1, size)]

    def loss(self, batch):
        views = torch.cat([simclr_augment(batch.images, batch.generator, self.strength)
                           for _ in range(2)])
        if batch.channels_last:
            views = views.contiguous(memory_format=torch.channels_last)
        with autocast_for(batch.images.device):
            z = self.head(self.model(views).features)
        z1, z2 = z.float().chunk(2)
        loss = nt_xent(z1, z2, self.temperature)
        return loss, {"nt_xent": loss, "agreement": agreement(z1.detach(), z2.detach())}

    def config(self) -> dict:
        head = [m.out_features for m in self.head if isinstance(m, nn.Linear)]
        return {**super().config(), "temperature": self.temperature,
                "strength": self.strength, "head": head}


def self_supervised_start(arch: str, train: ImageSet, *, epochs: int, lr: float,
                          batch_size: int, temperature: float, seed: int,
                          device: torch.device | str, checkpoint=None, progress: bool = True,
                          strength: float = 0.5, weight_decay: float = 1e-6) -> ReidModel:
    """A network trained from random init by SimCLR on ``train``'s images alone (survey §5).

    The loop's Adam with a cosine schedule and one warmup epoch when there are several
    (SimCLR: LARS with a 10-epoch warmup, cosine, weight decay 1e-6, for batches of 4096;
    Adam suits our small batches). ``checkpoint``: a path written atomically after every
    epoch; a run killed at any point resumes from it with the same result. Pids and camera
    ids of ``train`` are never used. Returns the model (without the head) in eval mode.
    """
    if epochs < 1 or lr <= 0:
        raise ValueError(f"epochs must be >= 1 and lr > 0, got {epochs} and {lr}")
    if not 2 <= batch_size <= len(train):
        raise ValueError(f"batch_size must be between 2 and the {len(train)} training images, "
                         f"got {batch_size}")
    torch.manual_seed(seed)  # the network's and the head's initial weights
    model = build_model(arch, weights=None).to(device)
    method = SimCLR(model, temperature=temperature, strength=strength)
    fit(method, train, labels=np.arange(len(train)), epochs=epochs, lr=lr, p=batch_size, k=1,
        weight_decay=weight_decay, schedule="cosine", warmup_epochs=min(1, epochs - 1),
        seed=seed, checkpoint=checkpoint, progress=progress)
    return model


@torch.no_grad()
def view_agreement(model: nn.Module, images: torch.Tensor, seed: int = 0,
                   strength: float = 0.5) -> float:
    """:func:`agreement` of a network's own eval-mode features (no head) on two SimCLR views
    of each of ``images`` (uint8 (N, 3, H, W), N >= 2; all 2N views compared, so keep N to
    a few thousand). Restores the model's training flag."""
    if images.dtype != torch.uint8 or images.ndim != 4 or len(images) < 2:
        raise ValueError(f"expected a uint8 (N, 3, H, W) batch with N >= 2, got "
                         f"{images.dtype} {tuple(images.shape)}")
    generator = torch.Generator().manual_seed(seed)
    images = images.to(model_device(model))
    was_training = model.training
    model.eval()
    try:
        z1, z2 = (torch.cat([model(simclr_augment(part, generator, strength)).float()
                             for part in images.split(256)]) for _ in range(2))
    finally:
        model.train(was_training)
    return float(agreement(z1, z2))
