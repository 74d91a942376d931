"""Hidden checks of q4 (instructors; exercises/grade.py): random images against numpy."""

import numpy as np
from matplotlib.colors import rgb_to_hsv
from otter.test_files import test_case

OK_FORMAT = False
name = "q4_hidden"


def _histogram(function, image, bins):
    assert callable(function), "define a function called hue_histogram"
    got = function(image, bins)
    assert got is not None, "hue_histogram returned None"
    got = np.asarray(got, dtype=float)
    assert got.shape == (bins,), f"expected {bins} numbers, got shape {got.shape}"
    return got


@test_case(name="q4_hidden - random images against np.histogram", hidden=True)
def random_images(hue_histogram):
    rng = np.random.default_rng(3)
    for bins in (1, 6, 10, 16):
        image = rng.integers(0, 256, size=(16, 8, 3), dtype=np.uint8)
        hue = rgb_to_hsv(image / 255.0)[..., 0]
        counts, _ = np.histogram(hue, bins=bins, range=(0.0, 1.0))
        expected = counts / hue.size
        got = _histogram(hue_histogram, image.copy(), bins)
        # A hue exactly on a bin edge may fall either side in floating point: one pixel of slack.
        assert np.abs(got - expected).max() <= 1 / hue.size + 1e-12, (
            f"hue_histogram(random 16x8 image, bins={bins}) returned "
            f"{np.round(got, 4).tolist()}, expected {np.round(expected, 4).tolist()}"
        )


@test_case(name="q4_hidden - grey pixels have hue 0", hidden=True)
def grey(hue_histogram):
    image = np.full((3, 5, 3), 128, np.uint8)
    image[:, :2] = (0, 0, 255)
    got = _histogram(hue_histogram, image, 2)
    assert np.allclose(got, [0.6, 0.4]), (
        f"hue_histogram(3 grey columns and 2 blue ones, bins=2) returned "
        f"{np.round(got, 4).tolist()}, expected [0.6, 0.4]: matplotlib gives grey hue 0"
    )


@test_case(name="q4_hidden - image left unchanged", hidden=True)
def image_unchanged(hue_histogram):
    image = np.random.default_rng(4).integers(0, 256, size=(4, 4, 3), dtype=np.uint8)
    before = image.copy()
    _histogram(hue_histogram, image, 4)
    assert image.dtype == np.uint8 and np.array_equal(image, before), (
        "hue_histogram changed the image it was given"
    )
