"""Models: shapes, BNNeck, GeM against hand formulas, weight loading and its errors."""

import os

import pytest
import torch
import torchvision

from reidlib.models import GeM, ReidOutput, build_backbone, build_model, register_weights
from reidlib.models import backbones as backbones_module


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.mark.parametrize("arch,dim", [("small", 256), ("resnet18", 512), ("resnet50", 2048)])
def test_train_and_eval_outputs(arch, dim):
    model = build_model(arch, num_classes=5)
    x = torch.randn(3, 3, 64, 32)
    out = model(x)
    assert isinstance(out, ReidOutput)
    assert out.features.shape == out.embeddings.shape == (3, dim)
    assert out.logits.shape == (3, 5) and out["logits"] is out.logits
    model.eval()
    emb = model(x)
    assert emb.shape == (3, dim)
    torch.testing.assert_close(emb, model.neck(model.pool(model.backbone(x))))


@pytest.mark.parametrize("arch,maps", [("small", ((8, 4), (4, 2))), ("resnet18", ((8, 4), (4, 2)))])
def test_last_stride(arch, maps):
    size = (64, 32) if arch == "small" else (128, 64)
    for stride, shape in zip((1, 2), maps, strict=True):
        backbone = build_backbone(arch, last_stride=stride)
        assert backbone(torch.randn(1, 3, *size)).shape[-2:] == shape
    with pytest.raises(ValueError, match="last_stride"):
        build_backbone(arch, last_stride=3)


def test_resnet_last_stride_one_matches_torchvision_weights_layout():
    ours = build_backbone("resnet50")
    ref = torchvision.models.resnet50(weights=None)
    ref_keys = {k for k in ref.state_dict() if not k.startswith("fc.")}
    assert set(ours.state_dict()) == ref_keys
    assert ours.layer4[0].conv2.stride == (1, 1) and ours.layer4[0].downsample[0].stride == (1, 1)


def test_gem_against_hand_formula():
    x = torch.rand(2, 3, 4, 5) + 0.1
    gem = GeM(p=3.0)
    ref = (x**3).mean(dim=(2, 3)) ** (1 / 3)
    torch.testing.assert_close(gem(x), ref)
    gem_avg = GeM(p=1.0)
    torch.testing.assert_close(gem_avg(x), x.mean(dim=(2, 3)))
    assert gem.p.requires_grad  # p is learnt


def test_avg_pooling_and_no_neck():
    model = build_model("small", pooling="avg", neck=False).eval()
    x = torch.randn(2, 3, 64, 32)
    torch.testing.assert_close(model(x), model.backbone(x).mean(dim=(2, 3)))


def test_bnneck_bias_frozen_and_classifier_without_bias():
    model = build_model("small", num_classes=4)
    assert not model.neck.bias.requires_grad
    assert model.classifier.bias is None
    out = model(torch.randn(8, 3, 64, 32))
    out.logits.sum().backward()
    assert model.neck.bias.grad is None and float(model.neck.bias.abs().sum()) == 0
    assert model.classifier.weight.grad is not None


def test_reset_classifier():
    model = build_model("small")
    assert model.num_classes == 0 and model(torch.randn(2, 3, 64, 32)).logits is None
    model.reset_classifier(7, generator=torch.Generator().manual_seed(1))
    w1 = model.classifier.weight.detach().clone()
    assert model.num_classes == 7
    model.reset_classifier(7, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(model.classifier.weight, w1)
    assert float(w1.std()) < 0.01  # N(0, 0.001^2) init
    with pytest.raises(ValueError, match="num_classes"):
        model.reset_classifier(-1)


def test_bad_inputs_and_names():
    with pytest.raises(ValueError, match="unknown arch 'vgg'"):
        build_model("vgg")
    with pytest.raises(ValueError, match="unknown pooling"):
        build_model("small", pooling="max")
    with pytest.raises(ValueError, match="unknown weights 'nonsense'"):
        build_model("small", weights="nonsense")
    model = build_model("small")
    with pytest.raises(ValueError, match="to_float"):
        model(torch.zeros(1, 3, 64, 32, dtype=torch.uint8))


def test_imagenet_weights_refused_without_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(RuntimeError, match="cannot be downloaded.*weights='synthetic'"):
        build_model("resnet18", weights="imagenet")
    with pytest.raises(ValueError, match="no ImageNet weights"):
        build_model("small", weights="imagenet")


def test_imagenet_weights_from_local_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    reference = torchvision.models.resnet18(weights=None)
    url = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url
    (tmp_path / "checkpoints").mkdir()
    torch.save(reference.state_dict(), tmp_path / "checkpoints" / os.path.basename(url))
    model = build_model("resnet18", weights="imagenet")
    torch.testing.assert_close(
        model.backbone.layer3[1].conv2.weight, reference.layer3[1].conv2.weight
    )


def test_backbone_weights_from_path_state_dict_and_reid_checkpoint(tmp_path):
    source = build_model("small", num_classes=3)
    path = tmp_path / "backbone.pt"
    torch.save(source.backbone.state_dict(), path)
    variants = [
        path,
        str(path),
        source.backbone.state_dict(),
        source.state_dict(),
        {"model": source.state_dict(), "epoch": 3},
    ]
    for weights in variants:
        model = build_model("small", weights=weights)
        for k, v in source.backbone.state_dict().items():
            torch.testing.assert_close(model.backbone.state_dict()[k], v)


def test_backbone_weights_mismatch_errors(tmp_path):
    small = build_model("small").backbone.state_dict()
    with pytest.raises(
        RuntimeError, match=r"missing keys: bn1\.bias(.|\n)*unexpected keys: stage1"
    ):
        build_model("resnet18", weights=small)
    bad = dict(small)
    bad["stage4.0.weight"] = torch.zeros(1, 1, 3, 3)
    with pytest.raises(RuntimeError, match=r"shape mismatches: stage4.0.weight: expected \(256"):
        build_model("small", weights=bad)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build_model("small", weights=tmp_path / "missing.pt")


def test_registered_weight_source(monkeypatch):
    reference = build_model("small")
    monkeypatch.setattr(backbones_module, "_WEIGHT_SOURCES", {})
    register_weights("unit-test", lambda arch: reference.backbone.state_dict())
    model = build_model("small", weights="unit-test")
    torch.testing.assert_close(model.backbone.stage1[0].weight, reference.backbone.stage1[0].weight)
    with pytest.raises(ValueError, match="built in"):
        register_weights("imagenet", lambda arch: {})
