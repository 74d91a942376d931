"""Camera-aware batch norm (Zhuang et al., ECCV 2020) against plain BatchNorm and loops.

The references are what the paper's code does with PyTorch's own BatchNorm: forward each
camera's sub-batch on its own (training), reset the statistics and forward a camera's
images in training mode with momentum=None (test-time re-estimation); and the batch-norm
formula written out per camera.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from fakes import colour_identity_set, randomised_bn
from torch import nn

from reidlib.camera.camera_bn import (
    CameraBatchNorm,
    CameraBNContrast,
    cameras,
    convert_camera_bn,
    evaluate_camera_bn,
    extract_camera_features,
    reestimate_camera_bn,
    shared_camera_rows,
)
from reidlib.data.augment import eval_transform
from reidlib.models import build_model
from reidlib.training import fit
from reidlib.training.loop import score_features
from reidlib.training.method import load_model_state


def _pair(kind="2d", channels=4):
    """(plain BN, converted copy) sharing the same initial weights and statistics."""
    bn = randomised_bn(nn.BatchNorm2d(channels) if kind == "2d" else nn.BatchNorm1d(channels))
    plain = nn.Sequential(copy.deepcopy(bn))
    return plain, convert_camera_bn(nn.Sequential(bn), 3)


def _input(kind, n=8, channels=4, seed=0):
    shape = (n, channels, 3, 5) if kind == "2d" else (n, channels)
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)) * 2 + 1


def _formula(x, mean, var, weight, bias, eps=1e-5):
    """(x - mean) / sqrt(var + eps) * weight + bias, per channel (dim 1)."""
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return ((x - mean.view(shape)) / torch.sqrt(var.view(shape) + eps) * weight.view(shape)
            + bias.view(shape))


def _batch_stats(x):
    dims = [0] + list(range(2, x.ndim))
    return x.mean(dims), x.var(dims, unbiased=False), x.var(dims, unbiased=True)


# ------------------------------------------------------------------ the layer


@pytest.mark.parametrize("kind", ["1d", "2d"])
@pytest.mark.parametrize("camids", [1, "all-one"])
def test_one_camera_equals_plain_batch_norm(kind, camids):
    plain, camera = _pair(kind)
    x = _input(kind)
    ids = torch.ones(len(x), dtype=torch.long) if camids == "all-one" else camids
    for mode in ("train", "eval", "train"):
        plain.train(mode == "train")
        camera.train(mode == "train")
        with cameras(camera, ids):
            torch.testing.assert_close(camera(x), plain(x))
    layer, bn = camera[0], plain[0]
    torch.testing.assert_close(layer.running_mean[1], bn.running_mean)
    torch.testing.assert_close(layer.running_var[1], bn.running_var)
    assert layer.num_batches_tracked.tolist() == [0, 2, 0]
    # the cameras that saw no batch keep the statistics they started from
    torch.testing.assert_close(layer.running_mean[0], layer.running_mean[2])
    assert layer.weight is camera[0].weight and layer.bias is camera[0].bias


@pytest.mark.parametrize("kind", ["1d", "2d"])
def test_two_cameras_each_row_uses_its_own_cameras_statistics(kind):
    _, camera = _pair(kind)
    layer = camera[0]
    x = _input(kind, n=9)
    camids = torch.tensor([2, 0, 0, 2, 2, 0, 0, 2, 0])
    start_mean, start_var = layer.running_mean.clone(), layer.running_var.clone()
    camera.train()
    with cameras(camera, camids):
        y = camera(x)
    for c in (0, 2):
        rows = camids == c
        mean, biased, unbiased = _batch_stats(x[rows])
        expected = _formula(x[rows], mean, biased, layer.weight, layer.bias)
        torch.testing.assert_close(y[rows], expected)
        torch.testing.assert_close(layer.running_mean[c], 0.9 * start_mean[c] + 0.1 * mean)
        torch.testing.assert_close(layer.running_var[c], 0.9 * start_var[c] + 0.1 * unbiased)
    torch.testing.assert_close(layer.running_mean[1], start_mean[1])  # camera 1: no rows
    camera.eval()
    with cameras(camera, camids), torch.no_grad():
        y = camera(x)
    for i, c in enumerate(camids.tolist()):
        expected = _formula(x[i:i + 1], layer.running_mean[c], layer.running_var[c],
                            layer.weight, layer.bias)
        torch.testing.assert_close(y[i:i + 1], expected)


def test_mixed_batch_equals_separate_single_camera_forwards_with_gradients():
    """The reference forwards each camera's sub-batch alone through plain BN."""
    plain, camera = _pair("2d")
    x = _input("2d", n=10)
    camids = torch.tensor([0, 1, 1, 0, 2, 2, 1, 0, 2, 1])
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    target = torch.randn_like(x)
    with cameras(camera, camids):
        (camera(x1) * target).sum().backward()
    outputs = {}
    for c in (0, 1, 2):
        rows = (camids == c).nonzero().flatten()
        outputs[c] = (rows, plain(x2[rows]))
    sum((out * target[rows]).sum() for rows, out in outputs.values()).backward()
    torch.testing.assert_close(x1.grad, x2.grad)
    torch.testing.assert_close(camera[0].weight.grad, plain[0].weight.grad)
    torch.testing.assert_close(camera[0].bias.grad, plain[0].bias.grad)


@pytest.mark.parametrize("momentum", [0.1, 0.3, None])
def test_running_statistics_per_camera_follow_a_loop(momentum):
    bn = nn.BatchNorm1d(3, momentum=momentum)
    camera = convert_camera_bn(nn.Sequential(bn), 3)
    camera.train()
    mean, var, seen = torch.zeros(3, 3), torch.ones(3, 3), [0, 0, 0]
    rng = np.random.default_rng(0)
    for step in range(6):
        camids = rng.permutation(np.repeat(rng.choice(3, size=2, replace=False), [3, 4]))
        x = _input("1d", n=7, channels=3, seed=step)
        with cameras(camera, camids):
            camera(x)
        for c in np.unique(camids):
            seen[c] += 1
            m = 1.0 / seen[c] if momentum is None else momentum
            batch_mean, _, batch_var = _batch_stats(x[torch.from_numpy(camids == c)])
            mean[c] = (1 - m) * mean[c] + m * batch_mean
            var[c] = (1 - m) * var[c] + m * batch_var
    torch.testing.assert_close(camera[0].running_mean, mean)
    torch.testing.assert_close(camera[0].running_var, var)
    assert camera[0].num_batches_tracked.tolist() == seen


def test_cameras_blocks_nest_and_restore():
    _, camera = _pair("1d")
    layer = camera[0]
    with cameras(camera, 0):
        with cameras(camera, torch.tensor([1, 2])):
            assert layer._route.batch == 2
        assert layer._route.groups[0][0] == 0 and layer._route.batch is None
    assert layer._route is None


def test_shared_camera_rows_against_a_loop():
    camids = torch.tensor([3, 1, 3, 0, 2, 2, 3, 5])
    expected = [sum(int(d == c) for d in camids) >= 2 for c in camids]
    assert shared_camera_rows(camids).tolist() == expected


# ------------------------------------------------------------------ errors


def test_argument_checks():
    plain, camera = _pair("1d")
    x = _input("1d", n=4)
    with pytest.raises(RuntimeError, match="with cameras"):
        camera(x)
    with pytest.raises(ValueError, match=r"0\.\.2"):
        with cameras(camera, torch.tensor([0, 3, 1, 1])):
            pass
    with pytest.raises(ValueError, match=">= 0"):
        with cameras(camera, -1):
            pass
    with pytest.raises(ValueError, match="3 camera ids, the batch has 4"):
        with cameras(camera, torch.tensor([0, 1, 1])):
            camera(x)
    with pytest.raises(ValueError, match="single value per channel"):
        with cameras(camera, torch.tensor([0, 1, 1, 1])):
            camera(x)
    with pytest.raises(ValueError, match="4 channels"):
        with cameras(camera, 0):
            camera(torch.randn(4, 5))
    with pytest.raises(ValueError, match="already"):
        convert_camera_bn(camera, 3)
    with pytest.raises(ValueError, match="no BatchNorm"):
        convert_camera_bn(nn.Sequential(nn.Linear(2, 2)), 3)
    with pytest.raises(ValueError, match="track_running_stats"):
        convert_camera_bn(nn.Sequential(nn.BatchNorm1d(2, track_running_stats=False)), 3)
    with pytest.raises(ValueError, match="num_cameras"):
        convert_camera_bn(plain, 0)
    with pytest.raises(ValueError, match="convert it"):
        with cameras(plain, 0):
            pass


# ------------------------------------------------------------------ test time


def _tiny_net(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), randomised_bn(nn.BatchNorm2d(4)),
                         nn.ReLU(), nn.Conv2d(4, 5, 3, stride=2), nn.BatchNorm2d(5),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.BatchNorm1d(5))


def _camera_images(seed=0):
    """uint8 (N, 3, 8, 6) images of 3 cameras with their own colour casts."""
    g = torch.Generator().manual_seed(seed)
    camids = torch.tensor([0] * 6 + [1] * 9 + [2] * 5)
    cast = torch.tensor([[40.0, 0, -30], [-20, 50, 10], [0, -40, 60]])[camids]
    x = 120 + cast[:, :, None, None] + 30 * torch.randn(len(camids), 3, 8, 6, generator=g)
    return x.clamp(0, 255).to(torch.uint8), camids.numpy()


def _reference_stats(net, images, flip=True):
    """The paper's code: plain BN, statistics reset, momentum=None, train-mode forwards of
    each batch (and its mirror); returns each BN's (running_mean, running_var)."""
    net = copy.deepcopy(net)
    bns = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None
    net.train()
    with torch.no_grad():
        for batch in images:
            x = eval_transform(batch)
            net(x)
            if flip:
                net(x.flip(-1))
    return [(bn.running_mean.clone(), bn.running_var.clone()) for bn in bns], net


@pytest.mark.parametrize("flip", [True, False])
def test_reestimation_gives_each_camera_its_own_statistics(flip):
    plain = _tiny_net()
    net = convert_camera_bn(copy.deepcopy(plain), 3)
    images, camids = _camera_images()
    net.eval()  # handed back in the mode it came in
    reestimate_camera_bn(net, images, camids, batch_size=64, flip=flip)
    layers = [m for m in net.modules() if isinstance(m, CameraBatchNorm)]
    assert not net.training and all(layer.momentum == 0.1 for layer in layers)
    features = extract_camera_features(net, images, camids, flip=False, normalize=False)
    for c in (0, 1, 2):
        rows = np.flatnonzero(camids == c)
        stats, reference = _reference_stats(plain, [images[rows]], flip=flip)
        for layer, (mean, var) in zip(layers, stats, strict=True):
            torch.testing.assert_close(layer.running_mean[c], mean)
            torch.testing.assert_close(layer.running_var[c], var)
        reference.eval()
        with torch.no_grad():
            torch.testing.assert_close(features[rows], reference(eval_transform(images[rows])))
    means = layers[0].running_mean
    assert not torch.allclose(means[0], means[1]) and not torch.allclose(means[1], means[2])


def test_reestimation_in_batches_is_the_cumulative_average():
    """Camera 1 (9 images, batches of 4): two full batches of a seeded permutation, the last
    image dropped (drop_last); camera 2 (5 images) is estimated from its own statistics only
    in a second call, which leaves camera 1 untouched."""
    plain = _tiny_net(seed=1)
    net = convert_camera_bn(copy.deepcopy(plain), 3)
    images, camids = _camera_images(seed=1)
    keep = camids != 2
    reestimate_camera_bn(net, images[torch.from_numpy(keep)], camids[keep], batch_size=4,
                         seed=5)
    rng = np.random.default_rng(5)
    rng.permutation(np.flatnonzero(camids[keep] == 0))  # camera 0 is drawn first
    order = rng.permutation(np.flatnonzero(camids[keep] == 1))
    stats, _ = _reference_stats(plain, [images[keep][order[:4]], images[keep][order[4:8]]])
    layer = next(m for m in net.modules() if isinstance(m, CameraBatchNorm))
    torch.testing.assert_close(layer.running_mean[1], stats[0][0])
    torch.testing.assert_close(layer.running_var[1], stats[0][1])
    before = layer.running_mean.clone()
    reestimate_camera_bn(net, images[torch.from_numpy(~keep)], camids[~keep])
    torch.testing.assert_close(layer.running_mean[:2], before[:2])
    assert not torch.equal(layer.running_mean[2], before[2])


def test_reestimation_argument_checks():
    net = convert_camera_bn(_tiny_net(), 2)
    images, camids = _camera_images()
    with pytest.raises(ValueError, match="below num_cameras = 2"):
        reestimate_camera_bn(net, images, camids)
    with pytest.raises(ValueError, match=">= 2 images"):
        reestimate_camera_bn(net, images[:7], camids[:7])
    with pytest.raises(ValueError, match="camids are needed"):
        reestimate_camera_bn(net, images)
    with pytest.raises(ValueError, match="one per image"):
        reestimate_camera_bn(net, images, camids[:3])
    with pytest.raises(ValueError, match="uint8"):
        reestimate_camera_bn(net, images.float(), camids)


# ------------------------------------------------------------------ the course's model


def test_small_model_forward_on_cpu_equals_per_camera_forwards():
    torch.manual_seed(0)
    plain = build_model("small")
    model = convert_camera_bn(copy.deepcopy(plain), 4)
    x = torch.randn(8, 3, 64, 32)
    camids = torch.tensor([0, 3, 3, 0, 1, 1, 0, 3])
    model.train()
    plain.train()
    with cameras(model, camids):
        out = model(x)
    assert out.embeddings.shape == (8, plain.feature_dim)
    for c in (0, 1, 3):
        rows = (camids == c).nonzero().flatten()
        torch.testing.assert_close(out.embeddings[rows], plain(x[rows]).embeddings)
    model.eval()
    with cameras(model, camids), torch.no_grad():
        assert model(x).shape == (8, plain.feature_dim)
    fresh = convert_camera_bn(build_model("small"), 4)
    load_model_state(fresh, model.state_dict())  # the per-camera statistics are saved
    for key, value in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value)


def test_camera_bn_contrast_trains_two_steps_through_fit():
    train = colour_identity_set(n_ids=6, per_id=6, cams=3, size=(32, 16))
    _, labels = np.unique(train.pids, return_inverse=True)
    torch.manual_seed(0)
    method = CameraBNContrast(build_model("small"), train)
    before = {k: v.clone() for k, v in method.model.state_dict().items()}
    history = fit(method, train, cluster=lambda f: labels.astype(np.int64), epochs=1,
                  iters=2, p=3, k=4, lr=1e-3, progress=False)
    assert np.isfinite(history[0].losses["memory"])
    assert history[0].quality["ari"] == pytest.approx(1.0)
    state = method.model.state_dict()
    assert not torch.equal(state["backbone.stage1.0.weight"], before["backbone.stage1.0.weight"])
    stats = state["backbone.stage1.1.running_mean"]
    assert stats.shape[0] == 3 and not torch.allclose(stats[0], stats[1])
    assert method.config()["num_cameras"] == 3
    with pytest.raises(ValueError, match="ImageSet"):
        CameraBNContrast(build_model("small"), train.images)


def test_evaluate_camera_bn_estimates_query_and_gallery_separately():
    data = colour_identity_set(n_ids=4, per_id=4, cams=2, size=(32, 16), seed=3)
    query, gallery = data.subset(np.arange(0, 16, 4)), data.subset(np.arange(16) % 4 != 0)
    torch.manual_seed(0)
    model = convert_camera_bn(build_model("small"), 2)
    scores = evaluate_camera_bn(model, query, gallery)
    reestimate_camera_bn(model, query)  # by hand: each split from its own images
    query_features = extract_camera_features(model, query)
    reestimate_camera_bn(model, gallery)
    expected = score_features(query_features, extract_camera_features(model, gallery),
                              query, gallery)
    assert scores["mAP"] == pytest.approx(expected["mAP"])
    np.testing.assert_allclose(scores["cmc"], expected["cmc"])
    # with the gallery's statistics of camera 0 the query's features would differ
    assert not torch.allclose(query_features, extract_camera_features(model, query))
