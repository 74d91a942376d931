"""Domain-specific BN (Chang et al., CVPR 2019) against what its code does: one plain
BatchNorm per domain, each a copy of the pretrained one, each domain's images forwarded
through its own BatchNorm."""

from __future__ import annotations

import copy

import pytest
import torch
from fakes import randomised_bn
from torch import nn

from reidlib.camera.camera_bn import convert_camera_bn
from reidlib.domain_adaptation.dsbn import (
    DomainBatchNorm,
    convert_domain_bn,
    domain_bn_layers,
    domains,
)


def randomised(bn):
    """A pretrained-looking BN that has also counted its batches (DSBN copies the count)."""
    return randomised_bn(bn, batches_tracked=7)


def _setup(kind="2d", num_domains=3, channels=4):
    """(one plain BN per domain, the converted layer in a Sequential), same start."""
    bn = randomised(nn.BatchNorm2d(channels) if kind == "2d" else nn.BatchNorm1d(channels))
    plain = [copy.deepcopy(bn) for _ in range(num_domains)]
    return plain, convert_domain_bn(nn.Sequential(bn), num_domains)


def _input(kind, n, channels=4, seed=0, grad=False):
    shape = (n, channels, 3, 5) if kind == "2d" else (n, channels)
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(seed)) * 2 + 1
    return x.requires_grad_(grad)


def _separate(plain, x, ids):
    """The reference: each domain's rows through that domain's own BatchNorm."""
    out = torch.empty_like(x)
    for d in ids.unique().tolist():
        rows = (ids == d).nonzero().flatten()
        out = out.index_put((rows,), plain[d](x[rows]))
    return out


@pytest.mark.parametrize("kind", ["1d", "2d"])
def test_mixed_batch_equals_one_plain_batch_norm_per_domain(kind):
    plain, model = _setup(kind)
    layer = model[0]
    # make the domains' affine parameters differ, in both
    with torch.no_grad():
        for d in range(3):
            plain[d].weight.mul_(1 + d)
            plain[d].bias.add_(d)
            layer.domain_weight[d].mul_(1 + d)
            layer.domain_bias[d].add_(d)
    ids = torch.tensor([2, 0, 0, 2, 2, 0, 0, 2, 0, 2])  # domain 1: no rows
    for step in range(3):  # training: batch statistics, running statistics per domain
        x1, x2 = _input(kind, 10, seed=step, grad=True), _input(kind, 10, seed=step, grad=True)
        target = torch.randn_like(x1)
        with domains(model, ids):
            y1 = model(x1)
        y2 = _separate(plain, x2, ids)
        torch.testing.assert_close(y1, y2)
        (y1 * target).sum().backward()
        (y2 * target).sum().backward()
        torch.testing.assert_close(x1.grad, x2.grad)
    for d in range(3):
        torch.testing.assert_close(layer.domain_weight.grad[d], plain[d].weight.grad
                                   if plain[d].weight.grad is not None
                                   else torch.zeros(4))
        torch.testing.assert_close(layer.domain_bias.grad[d], plain[d].bias.grad
                                   if plain[d].bias.grad is not None else torch.zeros(4))
        torch.testing.assert_close(layer.running_mean[d], plain[d].running_mean)
        torch.testing.assert_close(layer.running_var[d], plain[d].running_var)
        assert int(layer.num_batches_tracked[d]) == int(plain[d].num_batches_tracked)
    assert float(layer.domain_weight.grad[1].abs().sum()) == 0.0  # unseen domain untouched
    model.eval()
    for p in plain:
        p.eval()
    x = _input(kind, 10, seed=9)
    with domains(model, ids), torch.no_grad():
        torch.testing.assert_close(model(x), _separate(plain, x, ids))
    with domains(model, 1), torch.no_grad():  # test time: one domain for the whole batch
        torch.testing.assert_close(model(x), plain[1](x))


def test_conversion_copies_the_pretrained_batch_norm_into_every_domain():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(),
                        nn.Sequential(nn.Conv2d(4, 2, 1), nn.BatchNorm2d(2)),
                        nn.Flatten(), nn.BatchNorm1d(18))
    for m in net.modules():
        if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d):
            randomised(m)
    originals = [copy.deepcopy(m) for m in net.modules()
                 if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d)]
    convert_domain_bn(net, 2)
    layers = domain_bn_layers(net)
    assert len(layers) == 3 and all(isinstance(m, DomainBatchNorm) for m in layers)
    for layer, bn in zip(layers, originals, strict=True):
        for d in range(2):
            torch.testing.assert_close(layer.domain_weight[d], bn.weight.detach())
            torch.testing.assert_close(layer.domain_bias[d], bn.bias.detach())
            torch.testing.assert_close(layer.running_mean[d], bn.running_mean)
            torch.testing.assert_close(layer.running_var[d], bn.running_var)
        assert layer.num_batches_tracked.tolist() == [7, 7]
        assert layer.weight is None and layer.bias is None
    # per-domain affine parameters are separate Parameters, in the state dict
    keys = set(net.state_dict())
    assert {"1.domain_weight", "1.domain_bias", "1.running_mean", "5.domain_weight"} <= keys
    assert "1.weight" not in keys
    clone = convert_domain_bn(nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(),
                                            nn.Sequential(nn.Conv2d(4, 2, 1),
                                                          nn.BatchNorm2d(2)),
                                            nn.Flatten(), nn.BatchNorm1d(18)), 2)
    clone.load_state_dict(net.state_dict())
    x = torch.randn(4, 3, 5, 5)
    net.eval()
    clone.eval()
    with domains(net, torch.tensor([0, 1, 1, 0])), domains(clone, torch.tensor([0, 1, 1, 0])):
        torch.testing.assert_close(net(x), clone(x))


def test_frozen_and_non_affine_batch_norms():
    linear = nn.Linear(3, 3)  # a model has parameters; the BN here has none
    model = convert_domain_bn(nn.Sequential(linear, nn.BatchNorm1d(3, affine=False)), 2)
    assert model[1].domain_weight is None and len(list(model.parameters())) == 2
    x, ids = _input("1d", 6, channels=3), torch.tensor([0, 0, 0, 1, 1, 1])
    ref = [nn.BatchNorm1d(3, affine=False) for _ in range(2)]
    with domains(model, ids):
        torch.testing.assert_close(model(x), _separate(ref, linear(x), ids))
    frozen = nn.BatchNorm1d(3)
    frozen.weight.requires_grad_(False)
    layer = convert_domain_bn(nn.Sequential(frozen), 2)[0]
    assert not layer.domain_weight.requires_grad and layer.domain_bias.requires_grad


# ------------------------------------------------------------------ argument checks


def test_errors():
    _, model = _setup("1d", num_domains=2)
    x = _input("1d", 4)
    with pytest.raises(RuntimeError, match="domains\\(model, domain_ids\\)"):
        model(x)
    with pytest.raises(ValueError, match=r"0\.\.1"):
        with domains(model, torch.tensor([0, 2, 1, 0])):
            pass
    with pytest.raises(ValueError, match="domain_ids"):
        with domains(model, torch.tensor([[0, 1]])):
            pass
    with pytest.raises(ValueError, match="domain_ids"):
        with domains(model, torch.tensor([0.0, 1.0])):
            pass
    with pytest.raises(ValueError, match="4 channels"):
        with domains(model, 0):
            model(_input("1d", 4, channels=3))
    with pytest.raises(ValueError, match="already"):
        convert_domain_bn(model, 2)
    with pytest.raises(ValueError, match="num_domains"):
        convert_domain_bn(nn.Sequential(nn.BatchNorm1d(2)), 0)
    with pytest.raises(ValueError, match="no BatchNorm"):
        convert_domain_bn(nn.Sequential(nn.Linear(2, 2)), 2)
    with pytest.raises(ValueError, match="running statistics"):
        convert_domain_bn(nn.Sequential(nn.BatchNorm1d(2, track_running_stats=False)), 2)
    with pytest.raises(ValueError, match="convert_domain_bn"):
        with domains(nn.Sequential(nn.BatchNorm1d(2)), 0):
            pass
    camera = convert_camera_bn(nn.Sequential(nn.BatchNorm1d(2)), 2)
    with pytest.raises(ValueError, match="already"):
        convert_domain_bn(camera, 2)
    with pytest.raises(ValueError, match="convert_domain_bn"):  # camera BN is not DSBN
        with domains(camera, 0):
            pass
