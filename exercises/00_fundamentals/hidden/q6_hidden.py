"""Hidden checks of q6 (instructors; exercises/grade.py): against
reidlib.handcrafted.per_camera_normalise (the normalisation session.score applies)."""

import numpy as np
import torch
from otter.test_files import test_case

from reidlib.handcrafted import per_camera_normalise

OK_FORMAT = False
name = "q6_hidden"


def _normalised(function, features, camids):
    assert callable(function), "define a function called camera_normalise"
    got = function(features, camids)
    assert got is not None, "camera_normalise returned None"
    got = np.asarray(got, dtype=float)
    assert got.shape == np.shape(features), (
        f"expected shape {np.shape(features)}, got {got.shape}"
    )
    return got


@test_case(name="q6_hidden - random features against per_camera_normalise", hidden=True)
def against_reidlib(camera_normalise):
    rng = np.random.default_rng(60)
    for _ in range(20):
        n, d = int(rng.integers(6, 40)), int(rng.integers(1, 9))
        camids = rng.integers(0, 6, size=n) * 3 + 1
        features = rng.normal(size=(n, d)) * rng.uniform(0.1, 5, size=d) \
            + rng.normal(size=(6 * 3 + 2, d))[camids] * 4  # a shift per camera
        expected = per_camera_normalise(torch.from_numpy(features), camids).numpy()
        got = _normalised(camera_normalise, features.copy(), camids.copy())
        assert np.allclose(got, expected, atol=1e-6), (
            f"camera_normalise({n} random rows, cameras {sorted(set(camids.tolist()))}) differs "
            f"from reidlib's per_camera_normalise by up to {np.abs(got - expected).max():.3g}"
        )


@test_case(name="q6_hidden - a camera with one image, lists in", hidden=True)
def single_image_camera(camera_normalise):
    features = [[1.0, 2.0], [3.0, 5.0], [0.0, 1.0], [4.0, 4.0]]
    camids = [0, 0, 0, 9]  # camera 9 has one image: centred to zero, it stays zero
    expected = per_camera_normalise(torch.tensor(features, dtype=torch.float64),
                                    np.array(camids)).numpy()
    got = _normalised(camera_normalise, features, camids)
    assert np.all(np.isfinite(got)) and np.allclose(got, expected, atol=1e-6), (
        f"camera_normalise(lists, a camera with one image) returned {np.round(got, 4).tolist()}, "
        f"expected {np.round(expected, 4).tolist()} (a row of zeros stays zero, no NaN)"
    )


@test_case(name="q6_hidden - inputs left unchanged", hidden=True)
def inputs_unchanged(camera_normalise):
    rng = np.random.default_rng(61)
    features, camids = rng.normal(size=(10, 4)), np.arange(10) % 3
    before = features.copy()
    _normalised(camera_normalise, features, camids)
    assert np.array_equal(features, before), "camera_normalise changed the features it was given"
