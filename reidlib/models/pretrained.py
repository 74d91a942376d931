"""A generic pretrained backbone without identity labels: the course's stand-in for ImageNet.

The papers of the survey start from ImageNet weights (§4.2), which cannot be downloaded
on our machines. The honest analogue: pretrain on a *separate* synthetic world ``P``
(its own random palette and cameras; no person shared with the course worlds ``A`` and
``B``) on a task that is not identity - recognising clothing attributes (garment colour
family, pattern, lower-garment type, bag, hair length, sleeves, hat, coat). Like
ImageNet features, these know about colours, shapes and parts, but nothing about who is
who in the course worlds, so unsupervised methods still have everything to learn.

``build_model(arch, weights="synthetic")`` loads it (training it once and caching it
like a checkpoint when absent); ``weights="imagenet"`` uses real ImageNet weights only
where torchvision's local cache has them.
"""

from __future__ import annotations

import colorsys
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from reidlib.data.augment import eval_transform, train_augment
from reidlib.data.synthetic.spec import BAG_TYPES, LOWER_TYPES, UPPER_PATTERNS
from reidlib.data.synthetic.world import WORLD_VERSION, default_cache_dir, load_world
from reidlib.models.heads import build_model
from reidlib.utils import atomic_torch_save, default_device, progress_enabled

PRETRAIN_VERSION = 1
N_COLOUR_FAMILIES = 10  # 8 hues + dark + light


def colour_family(rgb: np.ndarray) -> np.ndarray:
    """Coarse colour name of each rgb row: 8 hue bins, or 8 = dark, 9 = light/grey."""
    out = np.empty(len(rgb), np.int64)
    for i, (r, g, b) in enumerate(rgb):
        h, s, v = colorsys.rgb_to_hsv(r, g, b)
        out[i] = 8 if v < 0.3 else 9 if s < 0.25 else int(h * 8) % 8
    return out


def attribute_targets(people: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The pretraining labels of each person: name -> integer class per person."""
    return {
        "upper_colour": colour_family(people["rgb_upper"]),
        "lower_colour": colour_family(people["rgb_lower"]),
        "upper_pattern": people["upper_pattern"],
        "lower_type": people["lower_type"],
        "bag": people["bag"],
        "hair_long": people["hair_long"],
        "long_sleeve": people["long_sleeve"],
        "hat": people["hat"],
        "coat": people["coat"],
        "scarf": people["scarf"],
    }


ATTRIBUTE_CLASSES = {
    "upper_colour": N_COLOUR_FAMILIES,
    "lower_colour": N_COLOUR_FAMILIES,
    "upper_pattern": len(UPPER_PATTERNS),
    "lower_type": len(LOWER_TYPES),
    "bag": len(BAG_TYPES),
    "hair_long": 2,
    "long_sleeve": 2,
    "hat": 2,
    "coat": 2,
    "scarf": 2,
}


def _pretraining_data(profile: str, cache_dir):
    """All images of real people in world P with their attribute labels."""
    world = load_world("P", profile, cache_dir=cache_dir)
    images, pids = [], []
    for split in (world.train, world.query, world.gallery):
        keep = split.pids > 0
        images.append(split.images[keep])
        pids.append(split.pids[keep])
    images, pids = np.concatenate(images), np.concatenate(pids)
    row = np.searchsorted(world.people_pid, pids)
    targets = {k: v[row] for k, v in attribute_targets(world.people).items()}
    return images, targets


def pretrain_backbone(
    arch: str,
    profile: str,
    epochs: int,
    batch_size: int = 128,
    lr: float = 1e-3,
    seed: int = 0,
    device=None,
    cache_dir=None,
    progress: bool = True,
) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    """Train ``arch`` to recognise attributes in world P; return (backbone state, accuracies).

    One linear head per attribute on the pooled feature; the sum of cross-entropies is
    minimised. Accuracies are measured on the last 10% of people (held out).
    """
    device = torch.device(device) if device is not None else default_device()
    gen = torch.Generator().manual_seed(seed)
    images, targets = _pretraining_data(profile, cache_dir)
    model = build_model(arch, num_classes=0).to(device)
    heads = nn.ModuleDict(
        {k: nn.Linear(model.feature_dim, c) for k, c in ATTRIBUTE_CLASSES.items()}
    ).to(device)
    params = list(model.parameters()) + list(heads.parameters())
    opt = torch.optim.Adam(params, lr=lr, weight_decay=5e-4)
    x_all = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous().to(device)
    y_all = {k: torch.from_numpy(v).to(device) for k, v in targets.items()}
    n_train = int(0.9 * len(x_all))
    steps = epochs * (n_train // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(steps, 1))
    model.train()
    bar = tqdm(total=steps, desc=f"pretrain {arch} on world P",
               disable=not progress_enabled(progress))
    for _ in range(epochs):
        order = torch.randperm(n_train, generator=gen).to(device)
        for i in range(n_train // batch_size):
            idx = order[i * batch_size : (i + 1) * batch_size]
            with torch.autocast(device.type, torch.bfloat16, enabled=device.type == "cuda"):
                feats = model(train_augment(x_all[idx], generator=gen)).features
                loss = sum(
                    nn.functional.cross_entropy(heads[k](feats), y_all[k][idx]) for k in heads
                )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            bar.update()
            if i % 20 == 0:  # .item() waits for the GPU: only now and then
                bar.set_postfix(loss=f"{loss.item():.3f}")
    bar.close()
    accuracy = _held_out_accuracy(model, heads, x_all[n_train:], y_all, n_train)
    return {k: v.cpu() for k, v in model.backbone.state_dict().items()}, accuracy


@torch.no_grad()
def _held_out_accuracy(model, heads, x, y_all, offset) -> dict[str, float]:
    model.eval()
    feats = torch.cat(
        [model.pool(model.backbone(eval_transform(x[i : i + 256]))) for i in range(0, len(x), 256)]
    )
    return {
        k: (heads[k](feats).argmax(1) == y_all[k][offset:]).float().mean().item() for k in heads
    }


# The recipe per architecture: small nets pretrain on the quick-size world on a CPU in
# about a minute; ResNets on the full-size world (a GPU job).
RECIPES = {
    "small": {"profile": "quick", "epochs": 8},
    "resnet18": {"profile": "full", "epochs": 6},
    "resnet50": {"profile": "full", "epochs": 6},
}


def synthetic_weights_path(arch: str, cache_dir=None) -> Path:
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    # keyed by the world's version too: a re-rendered world P means new pretraining
    return root / f"pretrained-{arch}-P{WORLD_VERSION}-v{PRETRAIN_VERSION}.pt"


def synthetic_backbone(
    arch: str, cache_dir: str | os.PathLike | None = None, progress: bool = True
) -> dict[str, torch.Tensor]:
    """The world-P attribute-pretrained backbone state for ``arch``: load, or train and cache."""
    if arch not in RECIPES:
        raise ValueError(
            f"no synthetic pretraining recipe for {arch!r}: expected one of {', '.join(RECIPES)}"
        )
    path = synthetic_weights_path(arch, cache_dir)
    if path.exists():
        try:
            return torch.load(path, map_location="cpu", weights_only=True)["backbone"]
        except Exception as err:  # a damaged file is retrained, never half-used
            print(f"pretrained backbone {path.name} is unreadable ({err}); retraining it")
    state, accuracy = pretrain_backbone(
        arch, cache_dir=cache_dir, progress=progress, **RECIPES[arch]
    )
    atomic_torch_save({"backbone": state, "accuracy": accuracy, "recipe": RECIPES[arch]}, path)
    return state
