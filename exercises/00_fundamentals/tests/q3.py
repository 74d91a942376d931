"""Public checks of q3, the Market-1501 rule (students run grader.check("q3"))."""

import numpy as np
from otter.test_files import test_case

OK_FORMAT = False
name = "q3"

HINT = (
    "Hint: numpy comparisons such as np.asarray(gallery_pids) == -1 give boolean arrays, "
    "one value per image; combine them with & (and), | (or) and ~ (not)."
)


def _rule(pid, cam, query_pid, query_cam):
    """Why a gallery item counts or not, in words (for the failure message)."""
    if pid == -1:
        return "junk (pid -1) never counts"
    if pid == query_pid and cam == query_cam:
        return "the query's person in the query's camera is left out"
    if pid == query_pid:
        return "the query's person in another camera is the match we look for: it counts"
    return "another person counts, as a wrong answer"


def _expect(function, query_pid, query_cam, pids, cams, expected):
    assert callable(function), "define a function called valid_gallery_mask (run its cell first)"
    got = function(query_pid, query_cam, pids, cams)
    assert got is not None, "valid_gallery_mask returned None: did you forget the return?"
    got = np.asarray(got)
    shown = f"pids={np.asarray(pids).tolist()}, camids={np.asarray(cams).tolist()}"
    call = f"valid_gallery_mask({query_pid}, {query_cam}, {shown})"
    assert got.dtype == bool and got.shape == (len(pids),), (
        f"{call} should return a boolean array of {len(pids)} values (one per gallery image), "
        f"got {got!r}"
    )
    wrong = [i for i in range(len(pids)) if got[i] != expected[i]]
    assert not wrong, f"{call} returned {got.tolist()}, expected {expected}. " + "; ".join(
        f"image {i} (pid {pids[i]}, camera {cams[i]}) should be {expected[i]}: "
        + _rule(pids[i], cams[i], query_pid, query_cam)
        for i in wrong
    )


@test_case(name="q3 - worked example", failure_message=HINT)
def worked_example(valid_gallery_mask):
    pids, cams = [5, 5, 5, 7, -1], [1, 2, 3, 2, 2]
    _expect(valid_gallery_mask, 5, 1, pids, cams, [False, True, True, True, False])


@test_case(name="q3 - numpy arrays", failure_message=HINT)
def numpy_arrays(valid_gallery_mask):
    pids, cams = np.array([2, 3, 2, -1]), np.array([0, 1, 1, 0])
    _expect(valid_gallery_mask, 2, 0, pids, cams, [False, True, True, False])
