"""Public checks of q2, the average precision of one query tracklet under the MARS rule
(students run grader.check("q2"))."""

import math
import numbers

import numpy as np
from otter.test_files import test_case

OK_FORMAT = False
name = "q2"

HINT = (
    "Hint: valid = (gallery_pids != -1) & ~((gallery_pids == query_pid) & (gallery_cams == "
    "query_cam)); order = np.argsort(distances[valid]); matches = gallery_pids[valid][order] "
    "== query_pid; if no match is left return float('nan'); else AP is the mean over the "
    "matches of (matches so far) / (rank in the valid list), ranks counted from 1."
)

# The notebook's example: six gallery tracklets, query pid 3 seen by camera 0.
DISTANCES = np.array([0.5, 0.1, 0.3, 0.2, 0.6, 0.4])
PIDS = np.array([0, 3, 5, -1, 3, 3])
CAMS = np.array([1, 0, 0, 1, 1, 2])


def _ap(function, distances, query_pid, query_cam, pids, cams, what):
    assert callable(function), (
        "define a function called tracklet_average_precision (run its cell first)"
    )
    got = function(distances, query_pid, query_cam, pids, cams)
    assert got is not None, (
        "tracklet_average_precision returned None: did you forget the return? (a query "
        "without a valid match returns float('nan'))"
    )
    if isinstance(got, np.ndarray) and got.size == 1:  # a 0-d array: one number
        got = got.item()
    if hasattr(got, "numel") and got.numel() == 1:  # a torch scalar
        got = got.item()
    assert isinstance(got, numbers.Real) and not isinstance(got, bool), (
        f"tracklet_average_precision({what}) should return one number, got {got!r}"
    )
    return float(got)


@test_case(name="q2 - the notebook's example", failure_message=HINT)
def worked_example(tracklet_average_precision):
    got = _ap(tracklet_average_precision, DISTANCES.copy(), 3, 0, PIDS.copy(), CAMS.copy(),
              "the notebook's example")
    assert abs(got - 0.5) < 1e-9, (
        f"tracklet_average_precision(the notebook's example: query pid 3, camera 0) returned "
        f"{got:.4f}, expected 0.5000: sorted by distance the gallery is pid 3 in camera 0 "
        "(the query's person in its own camera: left out), junk (left out), pid 5 in camera 0 "
        "(another person: a miss, even in the query's camera), pid 3 in camera 2 (a match at "
        "rank 2), pid 0 (a distractor: a miss), pid 3 in camera 1 (a match at rank 4): "
        "(1/2 + 2/4) / 2"
    )


@test_case(name="q2 - smaller distance first; every match counts", failure_message=HINT)
def ordering(tracklet_average_precision):
    distances = np.array([0.9, 0.05, 0.4, 0.7, 0.2])
    pids = np.array([8, 2, 8, 8, 4])
    cams = np.array([3, 1, 2, 3, 0])
    got = _ap(tracklet_average_precision, distances, 8, 1, pids, cams,
              "query pid 8, camera 1, distances [0.9, 0.05, 0.4, 0.7, 0.2]")
    expected = (1 / 3 + 2 / 4 + 3 / 5) / 3
    assert abs(got - expected) < 1e-9, (
        f"tracklet_average_precision(query pid 8 in camera 1, gallery pids [8, 2, 8, 8, 4] at "
        f"distances [0.9, 0.05, 0.4, 0.7, 0.2]) returned {got:.4f}, expected {expected:.4f}: "
        "ranked by increasing distance the matches are at ranks 3, 4 and 5, so AP = (1/3 + "
        "2/4 + 3/5) / 3 (a distance, not a similarity: the smallest comes first)"
    )


@test_case(name="q2 - no valid match: NaN", failure_message=HINT)
def no_match(tracklet_average_precision):
    for pids, cams, what in (([3, 5, -1], [0, 1, 1], "the query's person only in its own "
                              "camera"), ([4, 5, 0], [1, 1, 2], "the query's person absent")):
        got = _ap(tracklet_average_precision, np.array([0.3, 0.1, 0.2]), 3, 0,
                  np.array(pids), np.array(cams), what)
        assert math.isnan(got), (
            f"tracklet_average_precision(query pid 3 in camera 0, gallery pids {pids} in "
            f"cameras {cams}: {what}) returned {got!r}, expected float('nan'): no valid match "
            "is left, so the query has no AP (evaluate skips it; it is not an AP of 0)"
        )
