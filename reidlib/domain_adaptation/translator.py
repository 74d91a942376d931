"""A small CycleGAN with SPGAN's identity-preserving terms (survey §3.4.2, Figure 6).

PTGAN and SPGAN "directly use CycleGAN to reduce the domain gap": they render the source
images in the target's style, keep the source labels, train a Re-ID model on the
translated images and apply it to the target (direct transfer). Papers and code:

- CycleGAN: Zhu, Park, Isola, Efros, "Unpaired Image-to-Image Translation using
  Cycle-Consistent Adversarial Networks", ICCV 2017 (junyanz/pytorch-CycleGAN-and-pix2pix);
- SPGAN: Deng, Zheng, Ye, Kang, Yang, Jiao, "Image-Image Domain Adaptation with Preserved
  Self-Similarity and Domain-Dissimilarity for Person Re-identification", CVPR 2018
  (Simon4Yan/Learning-via-Translation; PyTorch: Simon4Yan/eSPGAN);
- PTGAN: Wei, Zhang, Gao, Tian, "Person Transfer GAN to Bridge Domain Gap for Person
  Re-Identification", CVPR 2018 (adds a person-mask identity term; not done here).

Two generators, ``g_st`` (source -> target) and ``g_ts`` (target -> source), and two
discriminators, ``d_t`` (real target vs ``g_st(x_s)``) and ``d_s``, trained with
(:func:`generator_losses`, :func:`discriminator_loss`)

    L_G = L_adv(g_st, d_t) + L_adv(g_ts, d_s)                       LSGAN: mean (D(G(x)) - 1)^2
        + 10 (|g_ts(g_st(x_s)) - x_s|_1 + |g_st(g_ts(x_t)) - x_t|_1)  cycle consistency
        + 5 (|g_st(x_t) - x_t|_1 + |g_ts(x_s) - x_s|_1)              identity mapping
        [+ 2 L_sia]                                                  SPGAN, optional
    L_D = 1/2 (mean (D(real) - 1)^2 + mean D(fake)^2)   per discriminator

(the identity weight 5 is CycleGAN's 0.5 x lambda, which SPGAN keeps as its "target domain
identity constraint"). SPGAN's similarity-preserving term (``siamese=True``,
:func:`siamese_losses`) is a contrastive loss (Hadsell et al. 2006) on the L2-normalised
embeddings of a small siamese network M, margin 2: for the generators, positives
(x_s, g_st(x_s)) and (x_t, g_ts(x_t)) are pulled together and negatives (g_st(x_s), x_t),
(g_ts(x_t), x_s) pushed apart at half weight, ``(pos + pos' + (neg + neg') / 2) / 4``;
M itself learns on the detached translations with the real pair (x_s, x_t) as negative,
``(pos + pos' + 2 neg) / 3``. As in SPGAN's code, M starts learning after 5% of the steps
(SPGAN: after epoch 1 of 20) and its term enters L_G after 10% (after epoch 2).

Networks (CycleGAN's): the ResNet generator (7x7 conv, two stride-2 3x3 convs, ``blocks``
residual blocks, two stride-2 transposed convs, 7x7 conv, tanh; InstanceNorm without
affine, reflection padding; CycleGAN uses width 64 and 9 blocks at 256 x 256), a PatchGAN
discriminator, weights drawn N(0, 0.02). Adam (lr 2e-4, betas (0.5, 0.999)) for both
generators together and both discriminators together; the learning rate is constant for
the first half of the steps and decays linearly to zero over the second (CycleGAN's 100 +
100 epochs); each discriminator sees the current fake or, half the time once full, one from
a history of 50 (CycleGAN's image pool). Images are in [-1, 1] (x / 127.5 - 1), not the
Re-ID normalisation.

Deliberate differences from the papers, sized for a CPU (64 x 32 images, 2 cores, a few
minutes) and scalable to 256 x 128 on a GPU:

- small defaults (``width`` 16, 2 residual blocks) and a 4-layer PatchGAN (two stride-2
  and two stride-1 4x4 convs, receptive field 34 x 34; CycleGAN's 5-layer one sees 70 x 70,
  more than half of a 64 x 32 image) of width ``width``;
- a fixed number of steps of random batches (with replacement) instead of epochs over
  shuffled sets; random horizontal flips only (SPGAN also resizes to 286 x 144 and crops);
- both generators update at every step (SPGAN's code updates them every other step);
- SPGAN's siamese network has a flattened 2048-d layer (256 x 128 inputs only) and dropout;
  ours ends with global average pooling (any image size) and has no dropout, so that a
  resumed run repeats an uninterrupted one exactly.

Usage (SPGAN's pipeline: translate, then supervised training, then direct transfer)::

    translator = train_translator(source, target, steps=300, checkpoint="spgan.pt")
    translated = translate_set(translator, source)          # target-styled, source labels
    train_supervised(model, translated, ...)                # then evaluate on the target
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from reidlib.checks import int_in_range, real_in_range
from reidlib.data.augment import random_flip
from reidlib.data.imageset import ImageSet
from reidlib.training.checkpoint import FORMAT, read_checkpoint
from reidlib.utils import atomic_torch_save, default_device, progress_enabled

__all__ = ["Discriminator", "Generator", "SiameseNet", "Translator", "contrastive_loss",
           "discriminator_loss", "generator_losses", "lsgan_loss", "siamese_losses",
           "train_translator", "translate_set"]

CYCLE_WEIGHT = 10.0  # CycleGAN's lambda
IDENTITY_WEIGHT = 5.0  # CycleGAN's 0.5 x lambda; SPGAN's target domain identity constraint
SIAMESE_WEIGHT = 2.0  # SPGAN's lambda for the contrastive term
MARGIN = 2.0  # SPGAN's contrastive margin (on unit embeddings: distances lie in [0, 2])
DIRECTIONS = ("source_to_target", "target_to_source")


# ----------------------------------------------------------------------------- networks


def _norm_act(channels: int, act: nn.Module | None = None) -> list[nn.Module]:
    return [nn.InstanceNorm2d(channels), act if act is not None else nn.ReLU(True)]


class ResidualBlock(nn.Module):
    """x + IN(conv3(ReLU(IN(conv3(x))))), reflection padding (CycleGAN's ResnetBlock)."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), *_norm_act(channels),
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), nn.InstanceNorm2d(channels))

    def forward(self, x):
        return x + self.body(x)


class Generator(nn.Module):
    """CycleGAN's ResNet generator (module docstring): (B, 3, H, W) in [-1, 1] -> same
    shape in [-1, 1]; H and W must be multiples of 4 (two stride-2 stages)."""

    def __init__(self, width: int = 16, blocks: int = 2):
        super().__init__()
        w = width
        layers = [nn.ReflectionPad2d(3), nn.Conv2d(3, w, 7), *_norm_act(w)]
        for mult in (1, 2):
            layers += [nn.Conv2d(w * mult, w * mult * 2, 3, stride=2, padding=1),
                       *_norm_act(w * mult * 2)]
        layers += [ResidualBlock(4 * w) for _ in range(blocks)]
        for mult in (4, 2):
            layers += [nn.ConvTranspose2d(w * mult, w * mult // 2, 3, stride=2, padding=1,
                                          output_padding=1), *_norm_act(w * mult // 2)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(w, 3, 7), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


class Discriminator(nn.Module):
    """A 4-layer PatchGAN (module docstring): (B, 3, H, W) -> (B, 1, H/4 - 2, W/4 - 2) real
    / fake scores of overlapping 34 x 34 patches (LSGAN: no sigmoid)."""

    def __init__(self, width: int = 16):
        super().__init__()
        act = nn.LeakyReLU(0.2, True)
        self.net = nn.Sequential(
            nn.Conv2d(3, width, 4, 2, 1), nn.LeakyReLU(0.2, True),
            nn.Conv2d(width, 2 * width, 4, 2, 1), *_norm_act(2 * width, act),
            nn.Conv2d(2 * width, 4 * width, 4, 1, 1), *_norm_act(4 * width, act),
            nn.Conv2d(4 * width, 1, 4, 1, 1))

    def forward(self, x):
        return self.net(x)


class SiameseNet(nn.Module):
    """SPGAN's metric network M, small (module docstring): (B, 3, H, W) -> (B, width) unit
    embeddings."""

    def __init__(self, width: int = 16):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, width, 4, 2, 1), nn.LeakyReLU(0.2), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 4, 2, 1), nn.LeakyReLU(0.2), nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Sequential(nn.Linear(2 * width, 2 * width, bias=False),
                                  nn.LeakyReLU(0.2), nn.Linear(2 * width, width, bias=False))

    def forward(self, x):
        return F.normalize(self.head(self.features(x)), dim=1)


def _init_weights(module: nn.Module) -> None:
    """CycleGAN's ``init_type='normal'``: conv / linear weights N(0, 0.02), biases 0."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


class Translator(nn.Module):
    """Both generators and discriminators (and SPGAN's M when ``siamese``), the training
    ``history`` (one dict of losses per step) and :meth:`translate`."""

    def __init__(self, width: int = 16, blocks: int = 2, siamese: bool = False):
        super().__init__()
        self.g_st, self.g_ts = Generator(width, blocks), Generator(width, blocks)
        self.d_s, self.d_t = Discriminator(width), Discriminator(width)
        self.siamese = SiameseNet(width) if siamese else None
        self.apply(_init_weights)
        self.history: list[dict] = []

    def generators(self) -> list[nn.Module]:
        return [self.g_st, self.g_ts]

    def discriminators(self) -> list[nn.Module]:
        return [self.d_s, self.d_t]

    @torch.no_grad()
    def translate(self, images, direction: str = "source_to_target",
                  batch_size: int = 64) -> torch.Tensor:
        """uint8 (B, 3, H, W) on the generator's device: ``images`` (a uint8 (B, 3, H, W)
        tensor or an ImageSet) rendered by ``g_st`` (``"source_to_target"``) or ``g_ts``
        (``"target_to_source"``), ``batch_size`` at a time, in eval mode."""
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
        x = _pixels(images, "images")
        batch_size = int_in_range(batch_size, "batch_size", 1)
        generator = self.g_st if direction == DIRECTIONS[0] else self.g_ts
        device = next(generator.parameters()).device
        was_training = generator.training
        generator.eval()
        out = [from_gan(generator(to_gan(x[i:i + batch_size].to(device))))
               for i in range(0, len(x), batch_size)]
        generator.train(was_training)
        return torch.cat(out) if out else torch.empty_like(x, device=device)


def translate_set(translator: Translator, images: ImageSet,
                  direction: str = "source_to_target", batch_size: int = 64) -> ImageSet:
    """``images`` with every image translated (same pids, camids and the rest): SPGAN's
    training set of target-styled source images with their source labels."""
    if not isinstance(translator, Translator):
        raise ValueError(f"translator must come from train_translator, got "
                         f"{type(translator).__name__}")
    if not isinstance(images, ImageSet):
        raise ValueError(f"images must be an ImageSet, got {type(images).__name__}")
    out = translator.translate(images, direction, batch_size)
    return dataclasses.replace(images, images=out.permute(0, 2, 3, 1).cpu().numpy().copy())


# ------------------------------------------------------------------------------- losses


def to_gan(x: torch.Tensor) -> torch.Tensor:
    """uint8 0..255 -> float32 in [-1, 1] (the GAN's range)."""
    return x.float() / 127.5 - 1.0


def from_gan(y: torch.Tensor) -> torch.Tensor:
    """float in [-1, 1] -> uint8 0..255 (rounded, clipped)."""
    return ((y.float() + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)


def lsgan_loss(prediction: torch.Tensor, real: bool) -> torch.Tensor:
    """LSGAN (Mao et al. 2017), CycleGAN's ``gan_mode='lsgan'``: mean (D - 1)^2 for "real",
    mean D^2 for "fake", over every patch score."""
    target = 1.0 if real else 0.0
    return ((prediction - target) ** 2).mean()


def contrastive_loss(a: torch.Tensor, b: torch.Tensor, positive: bool,
                     margin: float = MARGIN) -> torch.Tensor:
    """Hadsell et al.'s contrastive loss on row pairs: mean d^2 for positives, mean
    max(0, margin - d)^2 for negatives, d the Euclidean distance of (a_i, b_i)."""
    d = F.pairwise_distance(a, b)
    return (d ** 2).mean() if positive else (margin - d).clamp_min(0.0).pow(2).mean()


def generator_losses(t: Translator, x_s: torch.Tensor, x_t: torch.Tensor,
                     siamese: bool = False, cycle: float = CYCLE_WEIGHT,
                     identity: float = IDENTITY_WEIGHT, siamese_weight: float = SIAMESE_WEIGHT):
    """(L_G, its parts, (g_st(x_s), g_ts(x_t))) for float images in [-1, 1] (module
    docstring); ``siamese``: add SPGAN's contrastive term (needs ``t.siamese``)."""
    fake_t, fake_s = t.g_st(x_s), t.g_ts(x_t)
    parts = {
        "adv_st": lsgan_loss(t.d_t(fake_t), True),
        "adv_ts": lsgan_loss(t.d_s(fake_s), True),
        "cycle_s": F.l1_loss(t.g_ts(fake_t), x_s),
        "cycle_t": F.l1_loss(t.g_st(fake_s), x_t),
        "identity_t": F.l1_loss(t.g_st(x_t), x_t),
        "identity_s": F.l1_loss(t.g_ts(x_s), x_s),
    }
    total = (parts["adv_st"] + parts["adv_ts"] + cycle * (parts["cycle_s"] + parts["cycle_t"])
             + identity * (parts["identity_t"] + parts["identity_s"]))
    if siamese:
        m = t.siamese
        e_s, e_t, e_fake_t, e_fake_s = m(x_s), m(x_t), m(fake_t), m(fake_s)
        parts["siamese_g"] = (contrastive_loss(e_s, e_fake_t, True)
                              + contrastive_loss(e_t, e_fake_s, True)
                              + 0.5 * (contrastive_loss(e_fake_t, e_t, False)
                                       + contrastive_loss(e_fake_s, e_s, False))) / 4.0
        total = total + siamese_weight * parts["siamese_g"]
    return total, parts, (fake_t, fake_s)


def discriminator_loss(d: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """CycleGAN's D loss: (LSGAN(D(real), real) + LSGAN(D(fake), fake)) / 2; ``fake`` is
    detached (the generators are not trained by it)."""
    return 0.5 * (lsgan_loss(d(real), True) + lsgan_loss(d(fake.detach()), False))


def siamese_losses(m: nn.Module, x_s, x_t, fake_t, fake_s) -> torch.Tensor:
    """SPGAN's loss of the siamese network M: translations detached, positives (x_s,
    g_st(x_s)) and (x_t, g_ts(x_t)), the real pair (x_s, x_t) negative at double weight."""
    e_s, e_t = m(x_s), m(x_t)
    return (contrastive_loss(e_s, m(fake_t.detach()), True)
            + contrastive_loss(e_t, m(fake_s.detach()), True)
            + 2.0 * contrastive_loss(e_s, e_t, False)) / 3.0


# ------------------------------------------------------------------------------ training


def _pixels(images, name: str) -> torch.Tensor:
    """A uint8 (N, 3, H, W) tensor from an ImageSet or a checked tensor; H, W multiples of 4."""
    if isinstance(images, ImageSet):
        x = images.tensor()
    elif isinstance(images, torch.Tensor) and images.dtype == torch.uint8 and images.ndim == 4 \
            and images.shape[1] == 3:
        x = images
    else:
        desc = (f"{images.dtype} {tuple(images.shape)}" if isinstance(images, torch.Tensor)
                else type(images).__name__)
        raise ValueError(f"{name} must be an ImageSet or a uint8 (N, 3, H, W) tensor, got {desc}")
    if x.shape[2] % 4 or x.shape[3] % 4:
        raise ValueError(f"{name} must have a height and width that are multiples of 4 (the "
                         f"generator's two stride-2 stages), got {tuple(x.shape[2:])}")
    return x


def _check_training_images(source, target) -> tuple[torch.Tensor, torch.Tensor]:
    x_s, x_t = _pixels(source, "source"), _pixels(target, "target")
    for name, x in (("source", x_s), ("target", x_t)):
        if len(x) == 0 or min(x.shape[2:]) < 12:
            raise ValueError(f"{name} must hold images of at least 12 x 12 pixels (the "
                             f"discriminator's patches), got {tuple(x.shape)}")
    if x_s.shape[2:] != x_t.shape[2:]:
        raise ValueError(f"source and target images must have one size, got "
                         f"{tuple(x_s.shape[2:])} and {tuple(x_t.shape[2:])}")
    return x_s, x_t


def _fingerprint(x_s: torch.Tensor, x_t: torch.Tensor) -> str:
    h = hashlib.blake2b(digest_size=16)
    for x in (x_s, x_t):
        h.update(str(tuple(x.shape)).encode())
        h.update(np.ascontiguousarray(x.cpu().numpy()).data)
    return h.hexdigest()


def _pool_query(pool: torch.Tensor, fakes: torch.Tensor, size: int, generator):
    """CycleGAN's ImagePool: (new pool, images for D). While the pool has room a fake goes
    in and to D; once full, half the time (per image) D gets a random stored fake instead
    and the new one takes its slot. Two draws per image, always."""
    fakes = fakes.detach()
    if size == 0:
        return pool, fakes
    coin, pick = torch.rand(2, len(fakes), generator=generator)
    out = fakes.clone()
    for i in range(len(fakes)):
        if len(pool) < size:
            pool = torch.cat([pool, fakes[i:i + 1]])
        elif coin[i] < 0.5:
            j = int(pick[i] * size)
            out[i] = pool[j]
            pool[j] = fakes[i]
    return pool, out


def _lr_factor(step: int, steps: int) -> float:
    """CycleGAN's linear policy: 1 over the first half of the steps, then linearly to 0."""
    half = steps // 2
    return 1.0 if step < half else 1.0 - (step - half) / (steps - half + 1)


@dataclasses.dataclass
class _State:
    """Everything a resumed run needs besides the translator's weights."""

    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    opt_m: torch.optim.Optimizer | None
    rng: torch.Generator
    pools: list[torch.Tensor]
    step: int = 0


def _new_state(t: Translator, lr: float, seed: int, image_shape, device) -> _State:
    def adam(modules):
        return torch.optim.Adam([q for m in modules for q in m.parameters()], lr=lr,
                                betas=(0.5, 0.999))
    rng = torch.Generator().manual_seed(int(np.random.SeedSequence([seed, 1])
                                            .generate_state(1)[0]))
    empty = torch.zeros((0, *image_shape), device=device)
    return _State(adam(t.generators()), adam(t.discriminators()),
                  None if t.siamese is None else adam([t.siamese]), rng,
                  [empty, empty.clone()])


def _save(path, t: Translator, state: _State, config: dict) -> None:
    atomic_torch_save({
        "format": FORMAT, "kind": "translator", "config": config, "step": state.step,
        "translator": t.state_dict(), "opt_g": state.opt_g.state_dict(),
        "opt_d": state.opt_d.state_dict(),
        "opt_m": None if state.opt_m is None else state.opt_m.state_dict(),
        "rng": state.rng.get_state(), "pools": [p.cpu() for p in state.pools],
        "history": t.history}, path)


def _load(path, t: Translator, state: _State, config: dict) -> None:
    payload = read_checkpoint(path)
    if payload.get("kind") != "translator":
        raise RuntimeError(f"{path} is not a checkpoint of train_translator; delete it")
    if payload["config"] != config:
        diff = {k: (payload["config"].get(k), v) for k, v in config.items()
                if payload["config"].get(k) != v}
        raise ValueError(f"checkpoint {path} was written by a run with other settings "
                         f"(saved, now): {diff}; delete it to start over")
    t.load_state_dict(payload["translator"])
    state.opt_g.load_state_dict(payload["opt_g"])
    state.opt_d.load_state_dict(payload["opt_d"])
    if state.opt_m is not None:
        state.opt_m.load_state_dict(payload["opt_m"])
    state.rng.set_state(payload["rng"])
    device = state.pools[0].device
    state.pools = [p.to(device) for p in payload["pools"]]
    state.step = int(payload["step"])
    t.history = list(payload["history"])


def _requires_grad(modules, flag: bool) -> None:
    for m in modules:
        for q in m.parameters():
            q.requires_grad_(flag)


def _train_step(t: Translator, state: _State, x_s, x_t, siamese_g: bool, siamese_m: bool,
                pool_size: int) -> dict:
    """One CycleGAN / SPGAN step: generators, then M, then the discriminators."""
    frozen = t.discriminators() + ([t.siamese] if t.siamese is not None else [])
    _requires_grad(frozen, False)  # the G step trains the generators only
    loss_g, parts, (fake_t, fake_s) = generator_losses(t, x_s, x_t, siamese=siamese_g)
    state.opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    state.opt_g.step()
    _requires_grad(frozen, True)
    record = {"g": loss_g.item(), **{k: v.item() for k, v in parts.items()}}
    if siamese_m:
        loss_m = siamese_losses(t.siamese, x_s, x_t, fake_t, fake_s)
        state.opt_m.zero_grad(set_to_none=True)
        loss_m.backward()
        state.opt_m.step()
        record["siamese_m"] = loss_m.item()
    state.pools[0], pool_s = _pool_query(state.pools[0], fake_s, pool_size, state.rng)
    state.pools[1], pool_t = _pool_query(state.pools[1], fake_t, pool_size, state.rng)
    loss_d_s = discriminator_loss(t.d_s, x_s, pool_s)
    loss_d_t = discriminator_loss(t.d_t, x_t, pool_t)
    state.opt_d.zero_grad(set_to_none=True)
    (loss_d_s + loss_d_t).backward()
    state.opt_d.step()
    record.update(d_s=loss_d_s.item(), d_t=loss_d_t.item())
    return record


def _batch(pixels: torch.Tensor, size: int, rng: torch.Generator, device) -> torch.Tensor:
    """``size`` random images (with replacement), randomly flipped, in [-1, 1]."""
    rows = torch.randint(len(pixels), (size,), generator=rng)
    x = pixels[rows.to(pixels.device)].to(device)
    return to_gan(random_flip(x, 0.5, rng))


def train_translator(source, target, *, steps: int, batch: int = 16, lr: float = 2e-4,
                     seed: int = 0, width: int = 16, blocks: int = 2, siamese: bool = False,
                     pool_size: int = 50, device=None, progress: bool = True, checkpoint=None,
                     checkpoint_every: int = 100,
                     on_step: Callable[[int], None] | None = None) -> Translator:
    """Train a CycleGAN (SPGAN with ``siamese=True``) from ``source`` to ``target`` style.

    Args:
        source, target: ImageSets or uint8 (N, 3, H, W) tensors of one image size (H, W
            multiples of 4, at least 12); unpaired, labels unused.
        steps: optimisation steps, each on ``batch`` random source and target images.
        lr: Adam's learning rate (CycleGAN's 2e-4, betas (0.5, 0.999)), constant for half
            the steps, then decayed linearly to 0.
        seed: the weights, batches, flips and pool draws (the run is reproducible).
        width, blocks: generator width and residual blocks (CycleGAN: 64 and 9); the
            discriminators (and M) have width ``width``.
        siamese: add SPGAN's similarity-preserving term (module docstring).
        pool_size: CycleGAN's history of fakes for the discriminators (0: none).
        device: where to train (default: CUDA if present, else CPU).
        checkpoint: a path: saved atomically every ``checkpoint_every`` steps and at the
            end; an existing one of the same settings and data is resumed (and a finished
            one returned at once), ending with the weights an uninterrupted run gets.
        on_step: called with the step index before each step (tests stop a run with it).

    Returns the :class:`Translator` (eval mode), its ``history`` one dict of losses a step.
    """
    x_s, x_t = _check_training_images(source, target)
    steps = int_in_range(steps, "steps", 1)
    batch = int_in_range(batch, "batch", 1)
    lr = real_in_range(lr, "lr", 0.0, lo_open=True)
    width, blocks = int_in_range(width, "width", 1), int_in_range(blocks, "blocks", 0)
    pool_size = int_in_range(pool_size, "pool_size", 0)
    checkpoint_every = int_in_range(checkpoint_every, "checkpoint_every", 1)
    device = torch.device(device) if device is not None else default_device()
    config = {"steps": steps, "batch": batch, "lr": lr, "seed": seed, "width": width,
              "blocks": blocks, "siamese": bool(siamese), "pool_size": pool_size}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        t = Translator(width, blocks, siamese).to(device)
    state = _new_state(t, lr, seed, x_s.shape[1:], device)
    if checkpoint is not None:
        config["data"] = _fingerprint(x_s, x_t)
        if Path(checkpoint).exists():
            _load(checkpoint, t, state, config)
    x_s, x_t = x_s.to(device), x_t.to(device)
    t.train()
    bar = tqdm(range(state.step, steps), desc="translator", initial=state.step, total=steps,
               disable=not progress_enabled(progress))
    for step in bar:
        if on_step is not None:
            on_step(step)
        for opt in (state.opt_g, state.opt_d, state.opt_m):
            for group in [] if opt is None else opt.param_groups:
                group["lr"] = lr * _lr_factor(step, steps)
        xs, xt = _batch(x_s, batch, state.rng, device), _batch(x_t, batch, state.rng, device)
        record = _train_step(t, state, xs, xt, siamese and step >= steps // 10,
                             siamese and step >= steps // 20, pool_size)
        t.history.append(record)
        state.step = step + 1
        if step % 20 == 0:
            bar.set_postfix(g=f"{record['g']:.3f}", d=f"{record['d_s'] + record['d_t']:.3f}")
        if checkpoint is not None and (state.step % checkpoint_every == 0
                                       or state.step == steps):
            _save(checkpoint, t, state, config)
    return t.eval()
