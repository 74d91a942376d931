"""Re-ID networks: backbones (ResNet with last stride 1, a small CPU CNN) and the BNNeck head."""

from reidlib.models.backbones import (
    ARCHS,
    SmallCNN,
    build_backbone,
    imagenet_state_dict,
    load_state_dict_checked,
    register_weights,
    weights_identity,
)
from reidlib.models.heads import GeM, ReidModel, ReidOutput, bnneck, build_model

__all__ = [
    "ARCHS",
    "GeM",
    "ReidModel",
    "ReidOutput",
    "SmallCNN",
    "bnneck",
    "build_backbone",
    "build_model",
    "imagenet_state_dict",
    "load_state_dict_checked",
    "register_weights",
    "weights_identity",
]


def _synthetic_weights(arch: str):
    # imported lazily: pretraining needs the synthetic world and the training code
    from reidlib.models.pretrained import synthetic_backbone

    return synthetic_backbone(arch)


def _synthetic_version(arch: str) -> str:
    from reidlib.models.pretrained import synthetic_weights_path

    return synthetic_weights_path(arch).name  # names the world and pretraining versions


register_weights("synthetic", _synthetic_weights, _synthetic_version)
