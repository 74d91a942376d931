"""Public checks of q3, the transit-time histograms of matched pairs (students run
grader.check("q3"))."""

import numpy as np
from otter.test_files import test_case

OK_FORMAT = False
name = "q3"

HINT = (
    "Hint: with a = first_cams, b = second_cams: forward = gaps >= 0; src = np.where(forward, "
    "a, b), dst = np.where(forward, b, a); size = np.abs(gaps); B = ceil(max_seconds / "
    "bin_seconds); keep = size < max_seconds; np.add.at(counts, (src[keep], dst[keep], "
    "np.floor(size[keep] / bin_seconds).astype(int)), 1) on a (C, C, B) array of zeros; "
    "divide each [a, b] row by its sum; a row without any pair is 1 / B everywhere."
)

# The notebook's example: 3 cameras, 10 s bins up to 30 s.
FIRST = np.array([0, 0, 1, 0, 2, 2])
SECOND = np.array([1, 1, 0, 1, 1, 1])
GAPS = np.array([12.0, 15.0, -25.0, 3.0, 40.0, 5.0])


def _rounded(h):
    return [round(v, 3) for v in h.tolist()]


def _hist(function, first, second, gaps, num_cams, bin_seconds, max_seconds, what):
    assert callable(function), "define a function called transit_histogram (run its cell first)"
    got = function(first, second, gaps, num_cams, bin_seconds, max_seconds)
    assert got is not None, "transit_histogram returned None: did you forget the return?"
    got = np.asarray(got, dtype=np.float64)
    bins = int(np.ceil(max_seconds / bin_seconds))
    assert got.shape == (num_cams, num_cams, bins), (
        f"transit_histogram({what}) should return a (C, C, B) = ({num_cams}, {num_cams}, "
        f"{bins}) array, got shape {got.shape}"
    )
    return got


def _uniform_except(num_cams, bins, rows):
    out = np.full((num_cams, num_cams, bins), 1.0 / bins)
    for (a, b), row in rows.items():
        out[a, b] = row
    return out


@test_case(name="q3 - the notebook's example", failure_message=HINT)
def worked_example(transit_histogram):
    got = _hist(transit_histogram, FIRST.copy(), SECOND.copy(), GAPS.copy(), 3, 10.0, 30.0,
                "the notebook's six pairs, 3 cameras, 10 s bins up to 30 s")
    expected = _uniform_except(3, 3, {(0, 1): [0.25, 0.5, 0.25], (2, 1): [1.0, 0.0, 0.0]})
    for a in range(3):
        for b in range(3):
            assert np.allclose(got[a, b], expected[a, b], atol=1e-9), (
                f"transit_histogram(the notebook's example)[{a}, {b}] is {_rounded(got[a, b])}, "
                f"expected {_rounded(expected[a, b])}. Camera 0 -> 1 gets the gaps 12 and 15 "
                "(bin 1), 3 (bin 0) and the pair (1, 0, -25): camera 0 saw that person 25 s "
                "before camera 1, so it counts as 0 -> 1, bin 2; 2 -> 1 gets 5 s (bin 0), the "
                "40 s gap is beyond max_seconds and dropped; every camera pair without a pair "
                "(1 -> 0 included) is uniform, 1/3 per bin"
            )


@test_case(name="q3 - the camera seen first leads, whatever the pair's order",
           failure_message=HINT)
def direction(transit_histogram):
    got = _hist(transit_histogram, np.array([2, 0]), np.array([0, 2]),
                np.array([-7.0, -41.0]), 3, 20.0, 60.0,
                "pairs (2, 0, gap -7 s) and (0, 2, gap -41 s), 20 s bins up to 60 s")
    expected = _uniform_except(3, 3, {(0, 2): [1.0, 0.0, 0.0], (2, 0): [0.0, 0.0, 1.0]})
    assert np.allclose(got, expected, atol=1e-9), (
        f"transit_histogram(pairs (2, 0, -7) and (0, 2, -41)) has [0, 2] = "
        f"{_rounded(got[0, 2])} and [2, 0] = {_rounded(got[2, 0])}, expected [1, 0, 0] and "
        "[0, 0, 1]: a negative gap means the second camera saw the person first, so (2, 0, "
        "-7) is 0 -> 2 after 7 s and (0, 2, -41) is 2 -> 0 after 41 s (histograms are "
        "directed: [a, b] is 'seen in a, then in b', not pooled with [b, a])"
    )


@test_case(name="q3 - one distribution per camera pair; long gaps dropped",
           failure_message=HINT)
def normalised(transit_histogram):
    first = np.array([0, 0, 0, 1, 1, 1, 1])
    second = np.array([1, 1, 1, 0, 0, 0, 0])
    gaps = np.array([5.0, 9.0, 59.5, 21.0, 22.0, 23.0, 60.5])
    got = _hist(transit_histogram, first, second, gaps, 2, 20.0, 60.0,
                "seven pairs between two cameras, 20 s bins up to 60 s")
    expected = _uniform_except(2, 3, {(0, 1): [2 / 3, 0.0, 1 / 3], (1, 0): [0.0, 1.0, 0.0]})
    assert np.allclose(got, expected, atol=1e-9), (
        f"transit_histogram(seven pairs, 20 s bins up to 60 s) has [0, 1] = "
        f"{_rounded(got[0, 1])} and [1, 0] = {_rounded(got[1, 0])}, expected "
        f"{_rounded(expected[0, 1])} and {_rounded(expected[1, 0])}: each camera pair's row "
        "is divided by its own number of pairs (not by all pairs), bin k holds gaps in [20 k, "
        "20 (k + 1)) (round down), 59.5 s is the last bin and 60.5 s is beyond max_seconds "
        "(dropped, and not counted in the row's total); the diagonal, without pairs, is 1/3"
    )
