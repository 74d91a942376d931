"""Re-ID networks: backbones (ResNet with last stride 1, a small CPU CNN) and the BNNeck head."""

from reidlib.models.backbones import (
    ARCHS,
    SmallCNN,
    build_backbone,
    imagenet_state_dict,
    load_state_dict_checked,
    register_weights,
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
]


def _synthetic_weights(arch: str):
    # imported lazily: pretraining needs the synthetic world and the training code
    from reidlib.models.pretrained import synthetic_backbone

    return synthetic_backbone(arch)


register_weights("synthetic", _synthetic_weights)
