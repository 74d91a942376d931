"""Hidden checks of q3 (instructors; exercises/grade.py): the rule against reidlib.evaluation."""

import numpy as np
from otter.test_files import test_case
from sklearn.metrics import average_precision_score

from reidlib.evaluation import evaluate

OK_FORMAT = False
name = "q3_hidden"


def _mask(function, query_pid, query_cam, pids, cams):
    assert callable(function), "define a function called valid_gallery_mask"
    got = function(query_pid, query_cam, pids, cams)
    assert got is not None, "valid_gallery_mask returned None"
    got = np.asarray(got)
    assert got.dtype == bool and got.shape == (len(pids),), (
        f"expected a boolean array of {len(pids)} values, got {got!r}"
    )
    return got


@test_case(name="q3_hidden - other people in the query's camera count", hidden=True)
def same_camera_others(valid_gallery_mask):
    got = _mask(valid_gallery_mask, 4, 2, [4, 9, 0, 4], [2, 2, 2, 3])
    assert got.tolist() == [False, True, True, True], (
        f"valid_gallery_mask(4, 2, pids=[4, 9, 0, 4], camids=[2, 2, 2, 3]) returned "
        f"{got.tolist()}, expected [False, True, True, True]: only the query's own person is "
        "removed from its camera; other people (and distractors, pid 0) stay as wrong answers"
    )


@test_case(name="q3_hidden - brute force and reidlib's mAP on random galleries", hidden=True)
def against_reidlib(valid_gallery_mask):
    rng = np.random.default_rng(2)
    for _ in range(20):
        pids = rng.integers(-1, 4, size=40)
        cams = rng.integers(0, 3, size=40)
        query_pid, query_cam = int(rng.integers(1, 4)), int(rng.integers(0, 3))
        pids[0], cams[0] = query_pid, (query_cam + 1) % 3  # at least one true match
        expected = [
            not (p == -1 or (p == query_pid and c == query_cam))
            for p, c in zip(pids.tolist(), cams.tolist(), strict=True)
        ]
        got = _mask(valid_gallery_mask, query_pid, query_cam, pids, cams)
        wrong = [i for i in range(40) if got[i] != expected[i]]
        assert not wrong, (
            f"valid_gallery_mask({query_pid}, {query_cam}, pids={pids.tolist()}, "
            f"camids={cams.tolist()}) is wrong at images {wrong}; the first, image {wrong[0]} "
            f"(pid {pids[wrong[0]]}, camera {cams[wrong[0]]}), should be {expected[wrong[0]]}"
        )
        # The AP of a ranked list restricted to the mask is reidlib's Market-1501 AP.
        dist = rng.random(40)
        reference = evaluate(dist[None], [query_pid], pids, [query_cam], cams)["AP"][0]
        ap = average_precision_score(pids[got] == query_pid, -dist[got])
        assert abs(ap - reference) < 1e-9, f"AP with this mask {ap:.4f} != {reference:.4f}"
