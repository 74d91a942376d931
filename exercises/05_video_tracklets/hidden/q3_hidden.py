"""Hidden checks of q3 (instructors; exercises/grade.py): transit-time histograms against
reidlib.video.spatiotemporal.transit_histograms without smoothing (pairs of rows with times)
and a loop, at the edges: a gap of exactly max_seconds, a gap of 0, a partial last bin; and
inputs left unchanged."""

import math

import numpy as np
from otter.test_files import test_case

from reidlib.video.spatiotemporal import transit_histograms

OK_FORMAT = False
name = "q3_hidden"


def _hist(function, first, second, gaps, num_cams, bin_seconds, max_seconds):
    assert callable(function), "define a function called transit_histogram"
    got = np.asarray(function(first, second, gaps, num_cams, bin_seconds, max_seconds),
                     dtype=np.float64)
    bins = math.ceil(max_seconds / bin_seconds)
    assert got.shape == (num_cams, num_cams, bins), (
        f"expected a ({num_cams}, {num_cams}, {bins}) array (B = ceil(max_seconds / "
        f"bin_seconds) = ceil({max_seconds} / {bin_seconds})), got shape {got.shape}"
    )
    return got


def _library(first, second, gaps, num_cams, bin_seconds, max_seconds):
    """reidlib's histograms of the pairs (2p, 2p + 1) of rows seen at 1000 s and 1000 s + gap
    (gaps are multiples of 1/4 s: the subtraction is exact)."""
    cams = np.stack([first, second], axis=1).ravel()
    times = np.stack([np.full(len(gaps), 1000.0), 1000.0 + gaps], axis=1).ravel()
    rows = np.arange(len(gaps))
    return transit_histograms(2 * rows, 2 * rows + 1, cams, times, num_cams,
                              bin_seconds=bin_seconds, max_seconds=max_seconds,
                              smooth_sigma=None)


def _loop(first, second, gaps, num_cams, bin_seconds, max_seconds):
    bins = math.ceil(max_seconds / bin_seconds)
    counts = [[[0] * bins for _ in range(num_cams)] for _ in range(num_cams)]
    for a, b, gap in zip(first.tolist(), second.tolist(), gaps.tolist(), strict=True):
        if gap < 0:
            a, b, gap = b, a, -gap
        if gap < max_seconds:
            counts[a][b][int(gap // bin_seconds)] += 1
    return np.array([[[c / sum(row) for c in row] if sum(row) else [1 / bins] * bins
                      for row in per_a] for per_a in counts])


def _case(gen, pairs, num_cams, max_seconds):
    first = gen.integers(0, num_cams, size=pairs)
    second = (first + gen.integers(1, num_cams, size=pairs)) % num_cams
    gaps = np.round(gen.uniform(-1.2, 1.2, size=pairs) * max_seconds * 4) / 4
    return first, second, gaps


@test_case(name="q3_hidden - random pairs against reidlib and a loop", hidden=True)
def against_reidlib(transit_histogram):
    gen = np.random.default_rng(155)
    for pairs, num_cams, bin_seconds, max_seconds in ((200, 4, 10.0, 100.0),
                                                      (40, 6, 7.0, 70.0),
                                                      (500, 3, 2.5, 30.0),
                                                      (15, 5, 60.0, 600.0)):
        first, second, gaps = _case(gen, pairs, num_cams, max_seconds)
        got = _hist(transit_histogram, first.copy(), second.copy(), gaps.copy(), num_cams,
                    bin_seconds, max_seconds)
        expected = _library(first, second, gaps, num_cams, bin_seconds, max_seconds)
        assert np.allclose(got, expected, rtol=0, atol=1e-12), (
            f"transit_histogram({pairs} random pairs of {num_cams} cameras, bins of "
            f"{bin_seconds} s up to {max_seconds} s) differs from reidlib's transit_histograms "
            f"(smooth_sigma=None) by up to {np.abs(got - expected).max():.3g}"
        )
        assert np.allclose(got, _loop(first, second, gaps, num_cams, bin_seconds,
                                      max_seconds), atol=1e-12)


@test_case(name="q3_hidden - a gap of exactly max_seconds is dropped; 0 goes first -> second",
           hidden=True)
def edges(transit_histogram):
    first, second = np.array([0, 1, 2, 2]), np.array([1, 0, 1, 0])
    gaps = np.array([30.0, 29.75, 0.0, -0.0])
    got = _hist(transit_histogram, first, second, gaps, 3, 10.0, 30.0)
    assert np.allclose(got, _library(first, second, gaps, 3, 10.0, 30.0), atol=1e-12), (
        "transit_histogram(pairs (0, 1, 30 s), (1, 0, 29.75 s), (2, 1, 0 s), (2, 0, -0 s); "
        "10 s bins up to 30 s) differs from reidlib's: a gap of exactly max_seconds is "
        "dropped (gaps < max_seconds only: [0, 1] stays uniform), 29.75 s is bin 2 of 1 -> 0, "
        f"and a gap of 0 counts as first -> second (bin 0 of 2 -> 1 and of 2 -> 0); got [0, 1] "
        f"= {got[0, 1].round(3).tolist()}, [2, 1] = {got[2, 1].round(3).tolist()}, [1, 2] = "
        f"{got[1, 2].round(3).tolist()}"
    )


@test_case(name="q3_hidden - a partial last bin: B = ceil(max / bin)", hidden=True)
def partial_bin(transit_histogram):
    first, second = np.array([0, 0, 0, 1]), np.array([1, 1, 1, 0])
    gaps = np.array([5.0, 34.5, 36.0, 12.0])
    got = _hist(transit_histogram, first, second, gaps, 2, 10.0, 35.0)
    expected = _library(first, second, gaps, 2, 10.0, 35.0)
    assert np.allclose(got, expected, atol=1e-12), (
        f"transit_histogram(10 s bins up to 35 s: B = 4, the last bin [30, 35) half as wide) "
        f"returned [0, 1] = {got[0, 1].round(3).tolist()}, expected "
        f"{expected[0, 1].round(3).tolist()}: 5 s falls in bin 0, 34.5 s in bin 3, 36 s is "
        "beyond max_seconds and dropped even though its bin index 3 exists"
    )


@test_case(name="q3_hidden - inputs left unchanged", hidden=True)
def inputs_unchanged(transit_histogram):
    gen = np.random.default_rng(156)
    first, second, gaps = _case(gen, 30, 4, 50.0)
    copies = (first.copy(), second.copy(), gaps.copy())
    _hist(transit_histogram, first, second, gaps, 4, 10.0, 50.0)
    assert all(np.array_equal(a, b) for a, b in zip((first, second, gaps), copies,
                                                     strict=True)), (
        "transit_histogram changed the cameras or gaps it was given (swap the cameras of "
        "negative gaps into new arrays, not in place)"
    )
