"""Backbones: a feature map extractor for every architecture the course uses (chapter 0).

``resnet18`` / ``resnet50`` are torchvision's ResNets without the classification head and
with the last stride set to 1 (Luo et al., "Bag of tricks and a strong baseline for deep
person re-identification"): a 256x128 person crop then ends as a 16x8 map instead of 8x4,
which keeps more spatial detail for the pooled descriptor. ``small`` is a tiny CNN for the
``quick`` profile (64x32 inputs on a laptop CPU).

Weights: ``None`` (random init), ``"imagenet"`` (only from the local torch hub cache:
our machines cannot download), a registered name (see ``register_weights``), or a
backbone checkpoint (a path or a state dict).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
import torchvision
from torch import nn

ARCHS = ("small", "resnet18", "resnet50")

# Named weight sources besides "imagenet": name -> function(arch) -> backbone state dict.
# The synthetic-world pre-training registers itself here, so `weights="synthetic"` works
# without this module importing the training code.
_WEIGHT_SOURCES: dict[str, Callable[[str], Mapping[str, torch.Tensor]]] = {}
_WEIGHT_VERSIONS: dict[str, Callable[[str], str]] = {}


def register_weights(name: str, loader: Callable[[str], Mapping[str, torch.Tensor]],
                     version: Callable[[str], str] | None = None) -> None:
    """Make ``build_model(..., weights=name)`` load ``loader(arch)`` into the backbone.

    ``version(arch)`` names the weights' current version (e.g. their cache file), so that
    caches of models trained from them (``train_or_load``) go stale when they change.
    """
    if name == "imagenet":
        raise ValueError("'imagenet' is built in and cannot be re-registered")
    _WEIGHT_SOURCES[name] = loader
    if version is not None:
        _WEIGHT_VERSIONS[name] = version


def weights_identity(arch: str, weights) -> str | None:
    """A string that changes whenever ``weights`` would load different numbers for ``arch``."""
    if weights is None:
        return None
    name = str(weights)
    return f"{name}@{_WEIGHT_VERSIONS[name](arch)}" if name in _WEIGHT_VERSIONS else name


def _conv_bn_relu(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class _Residual(nn.Module):
    """relu(x + bn(conv(x))): one extra 3x3 layer that stays easy to optimise."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.bn(self.conv(x)))


class SmallCNN(nn.Sequential):
    """Four stages (32-64-128-256 channels), total stride 8 with ``last_stride=1``.

    Sized so that a 64x32 epoch of ~5000 images trains in a few seconds on 2 CPU cores
    (benchmarks/bench_throughput.py); its 8x4 output map feeds the same pooling / BNNeck
    head as the ResNets.
    """

    out_dim = 256

    def __init__(self, last_stride: int = 1, widths: tuple[int, ...] = (32, 64, 128, 256)):
        w1, w2, w3, w4 = widths
        super().__init__(
            OrderedDict(
                stage1=_conv_bn_relu(3, w1, 2),
                stage2=nn.Sequential(_conv_bn_relu(w1, w2, 2), _Residual(w2)),
                stage3=nn.Sequential(_conv_bn_relu(w2, w3, 2), _Residual(w3)),
                stage4=_conv_bn_relu(w3, w4, last_stride),
            )
        )
        self.out_dim = w4
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")


def _resnet(arch: str, last_stride: int) -> nn.Sequential:
    """torchvision ResNet trunk (no avgpool / fc) with a configurable last stride.

    The children keep torchvision's names (conv1, bn1, layer1, ...) so that torchvision
    state dicts load into it after dropping ``fc.*``.
    """
    net = getattr(torchvision.models, arch)(weights=None)
    block = net.layer4[0]
    # Bottleneck strides in conv2 (torchvision "ResNet v1.5"), BasicBlock in conv1.
    is_bottleneck = isinstance(block, torchvision.models.resnet.Bottleneck)
    strided = block.conv2 if is_bottleneck else block.conv1
    strided.stride = (last_stride, last_stride)
    block.downsample[0].stride = (last_stride, last_stride)
    names = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")
    trunk = nn.Sequential(OrderedDict((n, getattr(net, n)) for n in names))
    trunk.out_dim = net.fc.in_features
    return trunk


def build_backbone(arch: str, last_stride: int = 1) -> nn.Module:
    """A module mapping (B, 3, H, W) images to a (B, C, h, w) map; ``.out_dim`` is C."""
    if last_stride not in (1, 2):
        raise ValueError(f"last_stride must be 1 or 2, got {last_stride}")
    if arch == "small":
        return SmallCNN(last_stride=last_stride)
    if arch in ("resnet18", "resnet50"):
        return _resnet(arch, last_stride)
    raise ValueError(f"unknown arch {arch!r}: expected one of {', '.join(ARCHS)}")


def imagenet_state_dict(arch: str) -> dict[str, torch.Tensor]:
    """torchvision's ImageNet weights for ``arch``, read from the local torch hub cache only.

    Nothing is downloaded: the course machines have no internet, and a silent download
    attempt would hang or fail deep inside torchvision with a network error.
    """
    enums = {"resnet18": "ResNet18_Weights", "resnet50": "ResNet50_Weights"}
    if arch not in enums:
        raise ValueError(f"no ImageNet weights exist for arch {arch!r} (only {', '.join(enums)})")
    weight_enum = getattr(torchvision.models, enums[arch])
    cache = Path(torch.hub.get_dir()) / "checkpoints"
    for w in weight_enum:  # any cached ImageNet version will do (V1 or V2)
        file = cache / os.path.basename(w.url)
        if file.is_file():
            state = torch.load(file, map_location="cpu", weights_only=True)
            return {k: v for k, v in state.items() if not k.startswith("fc.")}
    wanted = ", ".join(os.path.basename(w.url) for w in weight_enum)
    raise RuntimeError(
        f"ImageNet weights for {arch} cannot be downloaded here (no internet) and none are in "
        f"the local torch hub cache {cache} (looked for {wanted}). Use weights='synthetic' for a "
        "backbone pre-trained on the synthetic world, or weights=None for random init."
    )


def backbone_state_dict(source: str | os.PathLike | Mapping) -> dict[str, torch.Tensor]:
    """A backbone state dict from a file or a mapping.

    Accepts a bare backbone state dict, a whole ``ReidModel`` state dict (keys
    ``backbone.*``) or a reidlib checkpoint (``{"model": state_dict, ...}``).
    """
    if not isinstance(source, Mapping):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"backbone checkpoint {path} does not exist")
        source = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(source.get("model"), Mapping):
        source = source["model"]
    if any(k.startswith("backbone.") for k in source):
        source = {k[len("backbone.") :]: v for k, v in source.items() if k.startswith("backbone.")}
    return dict(source)


def load_state_dict_checked(module: nn.Module, state: Mapping[str, torch.Tensor], what: str):
    """``module.load_state_dict(state)`` with an error that lists every key / shape mismatch."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [
        f"{k}: expected {tuple(own[k].shape)}, got {tuple(state[k].shape)}"
        for k in own
        if k in state and own[k].shape != state[k].shape
    ]
    if missing or unexpected or shapes:

        def head(items):
            return ", ".join(items[:5]) + (f" (+{len(items) - 5} more)" if len(items) > 5 else "")

        lines = [f"{what} does not match the model ({type(module).__name__}):"]
        if missing:
            lines.append(f"  missing keys: {head(missing)}")
        if unexpected:
            lines.append(f"  unexpected keys: {head(unexpected)}")
        if shapes:
            lines.append(f"  shape mismatches: {head(shapes)}")
        raise RuntimeError("\n".join(lines))
    module.load_state_dict(state)


def load_backbone_weights(backbone: nn.Module, arch: str, weights) -> None:
    """Fill ``backbone`` from ``weights`` (see the module docstring for accepted values)."""
    if weights is None:
        return
    if isinstance(weights, str) and weights == "imagenet":
        load_state_dict_checked(backbone, imagenet_state_dict(arch), f"ImageNet {arch} weights")
    elif isinstance(weights, str) and weights in _WEIGHT_SOURCES:
        state = backbone_state_dict(_WEIGHT_SOURCES[weights](arch))
        load_state_dict_checked(backbone, state, f"weights {weights!r}")
    elif isinstance(weights, Mapping) or Path(weights).suffix or Path(weights).exists():
        load_state_dict_checked(backbone, backbone_state_dict(weights), "backbone checkpoint")
    else:
        names = ", ".join(["'imagenet'", *map(repr, _WEIGHT_SOURCES)])
        raise ValueError(
            f"unknown weights {weights!r}: expected None, {names}, a checkpoint path or a "
            "state dict"
        )
