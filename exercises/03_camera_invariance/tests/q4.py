"""Public checks of q4, per-camera BatchNorm statistics (students run grader.check("q4"))."""

import torch
from otter.test_files import test_case
from torch import nn

OK_FORMAT = False
name = "q4"

HINT = (
    "Hint: model = copy.deepcopy(model).train(); layer = dict(model.named_modules())[name]; "
    "layer.momentum = None. Then, under torch.no_grad(), for each camera (sorted): "
    "layer.reset_running_stats(), forward its full batches (rows[i:i + batch_size] for i in "
    "range(0, len(rows) // batch_size * batch_size, batch_size), or all rows when there are "
    "fewer than batch_size), and keep layer.running_mean.clone(), layer.running_var.clone()."
)

# The notebook's example: inputs 1, 3 (camera 0) and 2, 4, 6, 8 (camera 1).
INPUTS = torch.tensor([[1.0], [3.0], [2.0], [4.0], [6.0], [8.0]])
CAMIDS = [0, 0, 1, 1, 1, 1]


def _one_layer():
    return nn.Sequential(nn.BatchNorm1d(1)).eval()


def _stats(function, model, layer, images, camids, batch_size, what):
    """The student's {camera: (mean, var)} as lists of floats, checked for types and shapes."""
    assert callable(function), (
        "define a function called camera_bn_statistics (run its cell first)"
    )
    got = function(model, layer, images, camids, batch_size)
    assert got is not None, "camera_bn_statistics returned None: did you forget the return?"
    assert isinstance(got, dict), (
        f"camera_bn_statistics({what}) should return a dict {{camera: (running_mean, "
        f"running_var)}}, got {got!r}"
    )
    keys = sorted(set(torch.as_tensor(camids).tolist()))
    assert sorted(got, key=repr) == sorted(keys, key=repr) and \
        all(type(key) is int for key in got), (
            f"camera_bn_statistics({what}) should have the camera ids {keys} as keys (Python "
            f"ints: camera.item() or .tolist()), got {list(got)!r}"
        )
    size = dict(model.named_modules())[layer].num_features
    out = {}
    for camera, pair in got.items():
        ok = isinstance(pair, tuple | list) and len(pair) == 2 and all(
            isinstance(t, torch.Tensor) and t.shape == (size,) for t in pair)
        assert ok, (
            f"camera_bn_statistics({what})[{camera}] should be a tuple (running_mean, "
            f"running_var) of two tensors of shape ({size},), got {pair!r}"
        )
        out[camera] = tuple([float(v) for v in t] for t in pair)
    return out


def _close(got, want):
    return all(abs(g - w) < 1e-4 for a, b in zip(got, want, strict=True)
               for g, w in zip(a, b, strict=True))


def _rounded(pair):
    return tuple([round(v, 4) for v in values] for values in pair)


def _expect(function, batch_size, expected, why):
    what = (f"the one-layer model, inputs 1, 3 | 2, 4, 6, 8 of cameras 0 | 1, "
            f"batch_size={batch_size}")
    got = _stats(function, _one_layer(), "0", INPUTS.clone(), list(CAMIDS), batch_size, what)
    for camera, (mean, var) in expected.items():
        assert _close(got[camera], ([mean], [var])), (
            f"camera_bn_statistics({what}) gave camera {camera} the statistics (mean "
            f"{got[camera][0][0]:.4g}, variance {got[camera][1][0]:.4g}), expected (mean "
            f"{mean:g}, variance {var:g}){why}"
        )


@test_case(name="q4 - the notebook's example", failure_message=HINT)
def worked_example(camera_bn_statistics):
    _expect(camera_bn_statistics, 2, {0: (2.0, 2.0), 1: (5.0, 2.0)},
            ". Camera 1's batches (2, 4) and (6, 8) have means 3 and 7 and unbiased variances 2 "
            "and 2: their cumulative average (momentum = None, statistics reset first) is "
            "(5, 2), not the statistics of all four inputs at once (5, 6.67)")


@test_case(name="q4 - full batches only", failure_message=HINT)
def full_batches(camera_bn_statistics):
    _expect(camera_bn_statistics, 3, {0: (2.0, 2.0), 1: (4.0, 4.0)},
            ". With batch_size=3 camera 1 has one full batch (2, 4, 6), the 8 is dropped; "
            "camera 0 has fewer images than a batch and is forwarded as one batch of two")


@test_case(name="q4 - any camera ids, a BatchNorm2d", failure_message=HINT)
def camera_ids(camera_bn_statistics):
    model = nn.Sequential(nn.Conv2d(3, 2, 1), nn.BatchNorm2d(2)).eval()
    images = torch.randn(10, 3, 4, 4, generator=torch.Generator().manual_seed(40))
    camids = torch.tensor([7, 7, 7, 7, 2, 2, 2, 7, 7, 7])
    what = "a Conv2d + BatchNorm2d model (layer '1'), cameras 7 and 2 (a tensor), batch_size=4"
    got = _stats(camera_bn_statistics, model, "1", images, camids, 4, what)
    with torch.no_grad():  # camera 2: one batch of its three images, camera 7: rows 0-3
        for camera, rows in ((2, [4, 5, 6]), (7, [0, 1, 2, 3])):
            out = model[0](images[rows]).transpose(0, 1).reshape(2, -1)
            want = (out.mean(dim=1).tolist(), out.var(dim=1).tolist())
            assert _close(got[camera], want), (
                f"camera_bn_statistics({what}) gave camera {camera} {_rounded(got[camera])}, "
                f"expected {_rounded(want)}: the statistics of the layer's input over images "
                f"{rows} (camera {camera}'s first full batch, or all its images)"
            )
