"""Public checks of q6, per-camera feature normalisation (students run grader.check("q6"))."""

import numpy as np
from otter.test_files import test_case

OK_FORMAT = False
name = "q6"

HINT = (
    "Hint: loop over np.unique(camids); for the rows of one camera subtract their mean "
    "(axis=0) and divide by their standard deviation (np.std, axis=0) + 1e-6. At the end "
    "divide every row by its length (np.linalg.norm(..., axis=1, keepdims=True))."
)

# Two cameras, two images each, two dimensions: camera 0 sees everything shifted by +10.
FEATURES = np.array([[11.0, 10.0], [9.0, 12.0], [1.0, 0.0], [-1.0, 2.0]])
CAMIDS = np.array([0, 0, 1, 1])


def _normalised(function, features, camids, what):
    assert callable(function), "define a function called camera_normalise (run its cell first)"
    got = function(features.copy(), camids.copy())
    assert got is not None, "camera_normalise returned None: did you forget the return?"
    got = np.asarray(got, dtype=float)
    assert got.shape == features.shape, (
        f"camera_normalise({what}) should return an array of shape {features.shape} (one row "
        f"per image), got shape {got.shape}"
    )
    return got


@test_case(name="q6 - two cameras, the same people", failure_message=HINT)
def worked_example(camera_normalise):
    # Within each camera: centred rows (1, -1) and (-1, 1), std 1 per dimension, then length 1.
    r = 1 / np.sqrt(2)
    expected = np.array([[r, -r], [-r, r], [r, -r], [-r, r]])
    got = _normalised(camera_normalise, FEATURES, CAMIDS, "the 4 example rows")
    assert np.allclose(got, expected, atol=1e-5), (
        f"camera_normalise(the 4 example rows) returned {np.round(got, 4).tolist()}, expected "
        f"{np.round(expected, 4).tolist()}: after removing each camera's own mean and scale, "
        "the camera shift of +10 is gone and both cameras give the same rows"
    )


@test_case(name="q6 - each camera's own statistics", failure_message=HINT)
def own_statistics(camera_normalise):
    rng = np.random.default_rng(6)
    features = rng.normal(size=(12, 3)) * [1.0, 5.0, 0.2] + [3.0, -2.0, 7.0]
    camids = np.array([2, 5] * 6)
    got = _normalised(camera_normalise, features, camids, "12 random rows, cameras 2 and 5")
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-6), (
        "every row should have length 1 at the end (L2-normalise after standardising)"
    )
    for camera in (2, 5):
        rows = features[camids == camera]
        centred = (rows - rows.mean(0)) / (rows.std(0) + 1e-6)
        expected = centred / np.linalg.norm(centred, axis=1, keepdims=True)
        assert np.allclose(got[camids == camera], expected, atol=1e-6), (
            f"the rows of camera {camera} are not their camera's standardised rows (mean and "
            "population std of THAT camera's rows, np.std with its default ddof=0), "
            "L2-normalised"
        )
