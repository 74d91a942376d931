"""Global + upper/lower part features (survey §3.2, SSG / PAST): shapes, which rows feed which
part, agreement with extract_features, errors."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from reidlib.feature_learning.parts import (
    PartOutput,
    PartReidModel,
    extract_part_features,
    split_halves,
)
from reidlib.models import ReidModel, ReidOutput, build_model
from reidlib.training.features import extract_features


class RowwiseBackbone(nn.Module):
    """A 1x1 convolution + ReLU: map row r depends on input row r only, so we know which input
    rows each part sees (H x W input -> H x W map)."""

    out_dim = 6

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, self.out_dim, 1)

    def forward(self, x):
        return torch.relu(self.conv(x)) + 0.01  # positive, as GeM expects


def rowwise_model(pooling="avg", num_classes=0):
    torch.manual_seed(0)
    return PartReidModel(ReidModel(RowwiseBackbone(), pooling=pooling, num_classes=num_classes))


def test_train_mode_output():
    torch.manual_seed(0)
    model = PartReidModel(build_model("small", num_classes=5))
    out = model(torch.randn(3, 3, 64, 32))
    assert isinstance(out, PartOutput) and isinstance(out, ReidOutput)
    assert out.features.shape == out.embeddings.shape == (3, 256)
    assert out.logits.shape == (3, 5)
    for part in ("upper", "lower"):
        assert out[part].features.shape == out[part].embeddings.shape == (3, 256)
        assert out[part].logits is None
    branches = out.branches()
    assert list(branches) == ["global", "upper", "lower"]
    assert branches["global"].logits is out.logits and branches["lower"] is out.lower


def test_parts_pool_top_and_bottom_rows():
    """Hand-computed: with average pooling and fresh BNNecks in eval mode (running mean 0,
    var 1), each part is the mean of its half of the map, divided by sqrt(1 + eps)."""
    model = rowwise_model("avg").eval()
    x = torch.randn(2, 3, 8, 4)
    fmap = model.base.backbone(x)
    scale = (1 + model.part_necks["upper"].eps) ** -0.5
    model.output = "upper"
    torch.testing.assert_close(model(x), fmap[:, :, :4].mean((2, 3)) * scale)
    model.output = "lower"
    torch.testing.assert_close(model(x), fmap[:, :, 4:].mean((2, 3)) * scale)


def test_changing_bottom_rows_changes_only_lower_part():
    model = rowwise_model("gem").eval()
    x = torch.randn(2, 3, 8, 4)
    y = x.clone()
    y[:, :, 4:] = 0.0  # zero the bottom half of the input (= of the map, row for row)
    out = {}
    for name in ("global", "upper", "lower"):
        model.output = name
        out[name] = (model(x), model(y))
    torch.testing.assert_close(out["upper"][0], out["upper"][1])
    assert not torch.allclose(out["lower"][0], out["lower"][1])
    assert not torch.allclose(out["global"][0], out["global"][1])
    z = x.clone()
    z[:, :, :4] = 0.0  # and the top half changes only the upper part
    model.output = "lower"
    torch.testing.assert_close(model(x), model(z))


def test_odd_rows_match_adaptive_pooling():
    """With an odd number of rows the middle row goes to both halves, as adaptive pooling."""
    fmap = torch.rand(2, 3, 5, 4)
    upper, lower = split_halves(fmap)
    assert upper.shape[2] == lower.shape[2] == 3
    reference = F.adaptive_avg_pool2d(fmap, (2, 1))[..., 0]  # (B, C, 2)
    torch.testing.assert_close(upper.mean((2, 3)), reference[:, :, 0])
    torch.testing.assert_close(lower.mean((2, 3)), reference[:, :, 1])


def test_eval_concat_and_global_branch():
    torch.manual_seed(0)
    base = build_model("small")
    model = PartReidModel(base).eval()
    x = torch.randn(4, 3, 64, 32)
    concat = model(x)
    assert concat.shape == (4, 3 * 256) and model.feature_dim == 768
    blocks = concat.split(256, dim=1)
    for block in blocks:
        torch.testing.assert_close(block.norm(dim=1), torch.ones(4))
    for name, block in zip(("global", "upper", "lower"), blocks, strict=True):
        model.output = name
        torch.testing.assert_close(block, F.normalize(model(x), dim=1))
    assert model.feature_dim == 256
    model.output = "global"  # the global branch is the wrapped ReidModel, unchanged
    torch.testing.assert_close(model(x), base.eval()(x))


def test_extract_part_features_matches_per_branch_extraction():
    torch.manual_seed(0)
    model = PartReidModel(build_model("small"))
    model.train()
    images = torch.randint(0, 256, (5, 3, 64, 32), dtype=torch.uint8)
    parts = extract_part_features(model, images, batch_size=2, progress=False)
    assert set(parts) == {"global", "upper", "lower"}
    assert model.training and model.output == "concat"  # both restored
    for name, feats in parts.items():
        assert feats.shape == (5, 256) and feats.device.type == "cpu"
        model.output = name
        torch.testing.assert_close(feats, extract_features(model, images, progress=False))
    torch.testing.assert_close(parts["global"], extract_features(model.base, images,
                                                                 progress=False))
    again = extract_part_features(model, images, batch_size=3, progress=False)
    for name in parts:  # deterministic in eval mode, whatever the batching
        torch.testing.assert_close(again[name], parts[name])
    empty = extract_part_features(model, images[:0], progress=False)
    assert all(v.shape == (0, 256) for v in empty.values())


def test_gradients_reach_only_the_branches_used():
    model = rowwise_model("gem", num_classes=3).train()
    out = model(torch.randn(4, 3, 8, 4))
    out.lower.features.sum().backward()
    assert model.part_pools["lower"].p.grad is not None
    assert model.base.backbone.conv.weight.grad is not None
    assert model.part_pools["upper"].p.grad is None and model.base.pool.p.grad is None


def test_part_modules_follow_base_device():
    base = build_model("small").to("meta")
    model = PartReidModel(base)
    assert {p.device.type for p in model.parameters()} == {"meta"}
    assert {b.device.type for b in model.buffers()} == {"meta"}


def test_classifier_is_the_base_one():
    model = PartReidModel(build_model("small", num_classes=2))
    model.reset_classifier(9)
    assert model.num_classes == 9 and model.classifier is model.base.classifier


def test_errors():
    with pytest.raises(TypeError, match="ReidModel"):
        PartReidModel(nn.Linear(2, 2))
    model = PartReidModel(build_model("small"))
    with pytest.raises(ValueError, match="output must be one of"):
        model.output = "middle"
    with pytest.raises(ValueError, match="output must be one of"):
        PartReidModel(build_model("small"), output="parts")
    with pytest.raises(ValueError, match=r"normalised float images \(B, 3, H, W\)"):
        model(torch.zeros(1, 3, 64, 32, dtype=torch.uint8))
    with pytest.raises(ValueError, match="1 row"):
        model(torch.randn(1, 3, 8, 32))  # the small CNN's stride 8: a one-row map
    with pytest.raises(ValueError, match=r"\(B, C, h, w\)"):
        split_halves(torch.zeros(2, 3, 4))
    with pytest.raises(TypeError, match="PartReidModel"):
        extract_part_features(build_model("small"), torch.zeros(1, 3, 64, 32, dtype=torch.uint8))
