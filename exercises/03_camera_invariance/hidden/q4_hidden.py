"""Hidden checks of q4 (instructors; exercises/grade.py): per-camera BatchNorm statistics against
reidlib.camera.camera_bn.reestimate_camera_bn and against batch statistics computed by hand."""

import copy

import numpy as np
import torch
from otter.test_files import test_case
from torch import nn

from reidlib.camera.camera_bn import convert_camera_bn, reestimate_camera_bn
from reidlib.data.augment import eval_transform

OK_FORMAT = False
name = "q4_hidden"


def _stats(function, model, layer, images, camids, batch_size):
    assert callable(function), "define a function called camera_bn_statistics"
    got = function(model, layer, images, camids, batch_size)
    assert isinstance(got, dict), f"expected a dict {{camera: (mean, var)}}, got {got!r}"
    keys = sorted(set(np.asarray(camids).tolist()))
    assert sorted(got, key=repr) == sorted(keys, key=repr), (
        f"expected the cameras {keys} as keys, got {list(got)!r}"
    )
    return {c: tuple(torch.as_tensor(t).detach().double() for t in got[c]) for c in keys}


def _model(seed):
    """Three BatchNorm layers ('1', '4', '8') with running statistics far from 0 and 1."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                          nn.Conv2d(4, 5, 3, stride=2), nn.BatchNorm2d(5), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.BatchNorm1d(5))
    for bn in (model[1], model[4], model[8]):
        bn.running_mean.uniform_(-2, 2)
        bn.running_var.uniform_(0.5, 3)
        bn.weight.data.uniform_(0.5, 2)
        bn.bias.data.uniform_(-1, 1)
    return model.eval()


def _reidlib(model, images, camids, batch_size, seed):
    """reidlib's per-camera statistics, and the images reordered so that taking each camera's
    rows in order gives the order reidlib draws them in (its seeded permutation)."""
    converted = convert_camera_bn(copy.deepcopy(model), int(camids.max()) + 1)
    reestimate_camera_bn(converted, images, camids, batch_size=batch_size,
                         max_images=len(camids), flip=False, seed=seed)
    rng, reordered = np.random.default_rng(seed), images.clone()
    for camera in np.unique(camids):
        rows = np.flatnonzero(camids == camera)
        reordered[rows] = images[rng.permutation(rows)]
    return converted, eval_transform(reordered)


@test_case(name="q4_hidden - reidlib's re-estimated statistics, every layer", hidden=True)
def against_reidlib(camera_bn_statistics):
    gen = torch.Generator().manual_seed(90)
    for seed, n, cameras, batch_size in ((0, 40, 3, 4), (1, 30, 4, 16), (2, 25, 2, 3)):
        model = _model(seed)
        images = torch.randint(0, 256, (n, 3, 8, 6), generator=gen, dtype=torch.uint8)
        camids = np.random.default_rng(seed).integers(0, cameras, size=n)
        converted, inputs = _reidlib(model, images, camids, batch_size, seed)
        layers = dict(converted.named_modules())
        for name_ in ("1", "4", "8"):
            got = _stats(camera_bn_statistics, model, name_, inputs, camids.copy(), batch_size)
            for camera, (mean, var) in got.items():
                want_mean = layers[name_].running_mean[camera].double()
                want_var = layers[name_].running_var[camera].double()
                assert torch.allclose(mean, want_mean, atol=1e-4) and \
                    torch.allclose(var, want_var, atol=1e-4, rtol=1e-4), (
                        f"camera_bn_statistics({n} images of {cameras} cameras, layer "
                        f"{name_!r}, batch_size={batch_size}) gave camera {camera} statistics "
                        f"that differ from reidlib's reestimate_camera_bn by up to "
                        f"{max((mean - want_mean).abs().max(), (var - want_var).abs().max()):.2g}"
                    )


@test_case(name="q4_hidden - batch statistics by hand, a layer after a BatchNorm", hidden=True)
def by_hand(camera_bn_statistics):
    # Linear, BatchNorm1d, BatchNorm1d: the second layer sees the first one's output,
    # normalised with each batch's own statistics (training mode).
    torch.manual_seed(91)
    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2), nn.BatchNorm1d(2)).eval()
    model[1].weight.data = torch.tensor([2.0, 0.5])
    model[1].bias.data = torch.tensor([1.0, -1.0])
    inputs = torch.randn(23, 3, generator=torch.Generator().manual_seed(92))
    camids = np.array([4] * 11 + [1] * 5 + [4] * 7)
    for batch_size in (3, 5, 30):
        got = _stats(camera_bn_statistics, model, "2", inputs.clone(), camids, batch_size)
        for camera in (1, 4):
            rows = np.flatnonzero(camids == camera)
            full = len(rows) // batch_size * batch_size or len(rows)
            means, variances = [], []
            for start in range(0, full, batch_size):
                with torch.no_grad():
                    h = model[0](inputs[rows[start:start + batch_size]]).double()
                    h = (h - h.mean(0)) / torch.sqrt(h.var(0, unbiased=False) + model[1].eps)
                    h = h * model[1].weight.double() + model[1].bias.double()
                means.append(h.mean(0))
                variances.append(h.var(0))
            want = (torch.stack(means).mean(0), torch.stack(variances).mean(0))
            for part, g, w in zip(("mean", "var"), got[camera], want, strict=True):
                assert torch.allclose(g, w, atol=1e-4), (
                    f"camera_bn_statistics(Linear + two BatchNorm1d, layer '2', camera "
                    f"{camera} with {len(rows)} images, batch_size={batch_size}) gave running_"
                    f"{part} {g.tolist()}, expected {w.tolist()} (the average over its full "
                    "batches of each batch's statistics, in training mode)"
                )


@test_case(name="q4_hidden - the model comes back unchanged", hidden=True)
def model_unchanged(camera_bn_statistics):
    model = _model(93)
    before = copy.deepcopy(model.state_dict())
    norms = (nn.BatchNorm1d, nn.BatchNorm2d)
    momenta = [m.momentum for m in model.modules() if isinstance(m, norms)]
    images = torch.randn(12, 3, 8, 6, generator=torch.Generator().manual_seed(94))
    _stats(camera_bn_statistics, model, "4", images, [0] * 6 + [1] * 6, 4)
    after = model.state_dict()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert not changed and not model.training, (
        f"camera_bn_statistics changed the model it was given ({changed or 'its mode'}): work on "
        "copy.deepcopy(model), since a forward pass in training mode updates every BatchNorm"
    )
    assert momenta == [m.momentum for m in model.modules() if isinstance(m, norms)], (
        "camera_bn_statistics changed the momentum of the model's own BatchNorm layers: set "
        "momentum = None on the copy's layer"
    )
