"""Public checks of q4, a hue histogram (students run grader.check("q4"))."""

import numpy as np
from otter.test_files import test_case

OK_FORMAT = False
name = "q4"

HINT = (
    "Hint: hue = rgb_to_hsv(image / 255)[..., 0]; a pixel's bin is floor(hue * bins), at most "
    "bins - 1; np.bincount(..., minlength=bins) counts the pixels per bin; divide by their number."
)


def _image(*colours, width=4, height=4):
    """An (height, width * len(colours), 3) uint8 image of side-by-side colour blocks."""
    blocks = [np.broadcast_to(np.array(c, np.uint8), (height, width, 3)) for c in colours]
    return np.concatenate(blocks, axis=1).copy()


def _histogram(function, image, bins, what):
    assert callable(function), "define a function called hue_histogram (run its cell first)"
    got = function(image, bins)
    assert got is not None, "hue_histogram returned None: did you forget the return?"
    got = np.asarray(got, dtype=float)
    assert got.shape == (bins,), (
        f"hue_histogram({what}, bins={bins}) should return {bins} numbers, got shape {got.shape}"
    )
    return got


def _expect(function, image, bins, what, expected):
    got = _histogram(function, image, bins, what)
    assert np.allclose(got, expected), (
        f"hue_histogram({what}, bins={bins}) returned {np.round(got, 4).tolist()}, "
        f"expected {expected}"
    )


@test_case(name="q4 - a red image", failure_message=HINT)
def red(hue_histogram):
    _expect(hue_histogram, _image((255, 0, 0)), 4, "a red image", [1.0, 0.0, 0.0, 0.0])


@test_case(name="q4 - half red, half blue", failure_message=HINT)
def red_blue(hue_histogram):
    # Blue has hue 2/3, which falls in the last of three bins.
    image = _image((255, 0, 0), (0, 0, 255))
    _expect(hue_histogram, image, 3, "half red, half blue", [0.5, 0.0, 0.5])


@test_case(name="q4 - shares of pixels", failure_message=HINT)
def sums_to_one(hue_histogram):
    image = _image((255, 0, 0), (0, 255, 0), (0, 255, 0), (200, 180, 20), width=3)
    got = _histogram(hue_histogram, image, 5, "a four-colour image")
    assert np.all(got >= 0) and abs(got.sum() - 1) < 1e-9, (
        f"a normalised histogram holds shares of pixels, >= 0 and summing to 1; got "
        f"{np.round(got, 4).tolist()} (sum {got.sum():.4f})"
    )
