"""MetaCam (reidlib.camera.metacam): the look-ahead against a deep-copied model updated by
hand, the meta-gradient against finite differences, the camera split, the outlier
assignment against a loop, and two steps through fit."""

import copy
import functools

import numpy as np
import pytest
import torch
from fakes import colour_identity_set
from torch import nn

from reidlib.camera.metacam import (
    MetaCam,
    assign_outliers,
    forward_with,
    look_ahead,
    meta_batches,
    split_cameras,
)
from reidlib.feature_learning.memory import HybridMemory
from reidlib.models import build_model
from reidlib.training import fit


def tiny_net(seed=0):
    """Linear -> BatchNorm -> tanh -> Linear, float64: a BatchNorm with running statistics."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.Tanh(), nn.Linear(6, 3)).double()


def inputs(seed=1):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(8, 4, generator=g, dtype=torch.float64),
            torch.randn(7, 4, generator=g, dtype=torch.float64))


def train_loss(out):
    return (out ** 2).sum(1).mean() + out[:, 0].sin().sum()


def test_look_ahead_equals_a_copied_model_updated_by_hand():
    net = tiny_net()
    xa, xb = inputs()
    copied = copy.deepcopy(net)
    net.train(), copied.train()
    params = look_ahead(net, train_loss(net(xa)), lr=0.1)
    after_train_forward = {k: v.clone() for k, v in net.state_dict().items()}
    got = forward_with(net, params, xb)
    # brute force: the copy runs the same meta-train forward, steps by hand, then forwards
    grads = torch.autograd.grad(train_loss(copied(xa)), list(copied.parameters()))
    with torch.no_grad():
        for p, g in zip(copied.parameters(), grads, strict=True):
            p -= 0.1 * g
    torch.testing.assert_close(got, copied(xb))
    # the model itself: weights untouched, BatchNorm statistics not moved by the look-ahead
    for k, v in net.state_dict().items():
        torch.testing.assert_close(v, after_train_forward[k], rtol=0, atol=0)
    stepped_stats = copied.state_dict()["1.running_mean"]
    assert not torch.allclose(stepped_stats, net.state_dict()["1.running_mean"])


def meta_objective(net, lr, second_order, xa, xb):
    params = look_ahead(net, train_loss(net(xa)), lr, second_order)
    return train_loss(forward_with(net, params, xb))


def test_second_order_meta_gradient_matches_finite_differences():
    net = tiny_net()
    xa, xb = inputs()
    net.train()
    loss = meta_objective(net, 0.3, True, xa, xb)
    grads = torch.autograd.grad(loss, list(net.parameters()))
    g = torch.Generator().manual_seed(5)
    direction = [torch.randn(p.shape, generator=g, dtype=p.dtype) for p in net.parameters()]
    analytic = sum((gr * d).sum() for gr, d in zip(grads, direction, strict=True))

    def value_at(step):
        moved = copy.deepcopy(net)
        with torch.no_grad():
            for p, d in zip(moved.parameters(), direction, strict=True):
                p += step * d
        return meta_objective(moved, 0.3, True, xa, xb).item()

    h = 1e-5
    numeric = (value_at(h) - value_at(-h)) / (2 * h)
    assert analytic.item() == pytest.approx(numeric, rel=1e-6, abs=1e-8)


def test_first_order_meta_gradient_is_the_gradient_at_the_stepped_weights():
    net = tiny_net()
    xa, xb = inputs()
    net.train()
    params = look_ahead(net, train_loss(net(xa)), 0.3, second_order=False)
    stepped = {n: p.detach().clone().requires_grad_() for n, p in params.items()}
    want = torch.autograd.grad(train_loss(forward_with(net, stepped, xb)), list(stepped.values()))
    got = torch.autograd.grad(train_loss(forward_with(net, params, xb)), list(net.parameters()))
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b)
    full = torch.autograd.grad(meta_objective(net, 0.3, True, xa, xb), list(net.parameters()))
    assert not all(torch.allclose(a, b) for a, b in zip(got, full, strict=True))


def test_split_cameras_is_disjoint_and_covers_all():
    rng = np.random.default_rng(0)
    for cams in ([0, 1], [3, 5, 7], [0, 1, 2, 3, 4, 5]):
        for ratio in (0.1, 0.5, 0.9):
            train, test = split_cameras(np.repeat(cams, 2), ratio, rng)
            assert set(train).isdisjoint(test) and set(train) | set(test) == set(cams)
            assert len(train) == min(max(int(ratio * len(cams)), 1), len(cams) - 1)


@pytest.mark.parametrize("sampler, iters", [("multi_gallery", 6), ("pk", None)])
def test_meta_batches_are_meta_train_then_meta_test_cameras(sampler, iters):
    train = colour_identity_set(n_ids=8, per_id=8, cams=4, size=(8, 4))
    labels = train.pids - 100
    labels[::7] = -1
    out = meta_batches(labels, train.camids, p=2, k=2, iters=iters, seed=3, epoch=1,
                       sampler=sampler)
    assert len(out) > 0
    groups = set()
    for rows in out:
        assert len(rows) == 8 and (labels[rows] >= 0).all()
        first, second = set(train.camids[rows[:4]]), set(train.camids[rows[4:]])
        assert first.isdisjoint(second)  # meta-train and meta-test cameras never meet
        groups.add((frozenset(first), frozenset(second)))
    # one split per epoch: the groups' union covers every camera, each group on either side
    cams_first = set().union(*(f for f, _ in groups))
    cams_second = set().union(*(s for _, s in groups))
    assert cams_first | cams_second == set(range(4))
    again = meta_batches(labels, train.camids, p=2, k=2, iters=iters, seed=3, epoch=1,
                         sampler=sampler)
    assert all(np.array_equal(a, b) for a, b in zip(out, again, strict=True))


def test_assign_outliers_against_a_loop():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 5)).astype(np.float32)
    labels = rng.integers(0, 4, 30)
    labels[rng.choice(30, 10, replace=False)] = -1
    got = assign_outliers(x, labels)
    for i in range(30):
        if labels[i] >= 0:
            assert got[i] == labels[i]
        else:
            dists = [np.linalg.norm(x[i] - x[j]) if labels[j] >= 0 else np.inf
                     for j in range(30)]
            assert got[i] == labels[int(np.argmin(dists))]


@pytest.mark.parametrize("bf16", [False, True])
def test_two_metacam_steps_through_fit(bf16, monkeypatch):
    if bf16:  # the CUDA path (bf16 autocast around both forwards), run on the CPU
        import reidlib.camera.metacam as module
        monkeypatch.setattr(module, "autocast_for",
                            functools.partial(module.autocast_for, enabled=True))
    train = colour_identity_set(n_ids=6, per_id=8, cams=4, size=(32, 16))
    _, oracle = np.unique(train.pids, return_inverse=True)
    oracle[::5] = -1  # outliers, assigned to clusters by MetaCam

    torch.manual_seed(0)
    metacam = MetaCam(build_model("small"))
    before = {k: v.clone() for k, v in metacam.model.state_dict().items()}
    history = fit(metacam, train, cluster=lambda f: oracle, epochs=1, iters=2, p=2, k=2,
                  lr=1e-3, progress=False)
    losses = history[0].losses
    assert set(losses) == {"loss", "meta_train", "meta_test"}
    assert all(np.isfinite(v) for v in losses.values())
    assert history[0].images == 2 * 2 * 2 * 2  # two steps of 2 p k
    assert isinstance(metacam.memory, HybridMemory)
    assert (metacam.memory.labels.cpu().numpy() >= 0).all()  # no outlier left out
    assert metacam.memory.num_outliers == 0
    assert any(not torch.equal(before[k], v) for k, v in metacam.model.state_dict().items())


def test_argument_checks_are_clear():
    with pytest.raises(ValueError, match="2 cameras"):
        split_cameras([1, 1, 1], 0.5, np.random.default_rng(0))
    with pytest.raises(ValueError, match="ratio"):
        split_cameras([0, 1], 1.0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="ratio"):
        MetaCam(build_model("small"), ratio=0.0)
    with pytest.raises(ValueError, match="inner_lr"):
        MetaCam(build_model("small"), inner_lr=-1.0)
    with pytest.raises(ValueError, match="clustered"):
        assign_outliers(np.ones((3, 2)), [-1, -1, -1])
    with pytest.raises(ValueError, match="shape"):
        meta_batches([0, 1], [0], p=1, k=1, iters=1, seed=0, epoch=0)
    with pytest.raises(ValueError, match="sampler"):
        meta_batches([0, 0, 1, 1], [0, 1, 0, 1], p=1, k=1, iters=3, seed=0, epoch=0,
                     sampler="pk")
    net = tiny_net()
    with pytest.raises(ValueError, match="lr"):
        look_ahead(net, net(inputs()[0]).sum(), lr=-0.1)
