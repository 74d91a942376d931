"""Hidden checks of q2 (instructors; exercises/grade.py): the AP of one query tracklet
against reidlib.evaluation.metrics.evaluate (a one-row distance matrix) and a loop, on long
galleries with junk, distractors and same-camera tracklets, and inputs left unchanged."""

import math

import numpy as np
from otter.test_files import test_case

from reidlib.evaluation.metrics import evaluate

OK_FORMAT = False
name = "q2_hidden"


def _ap(function, *args):
    assert callable(function), "define a function called tracklet_average_precision"
    got = function(*args)
    if hasattr(got, "item") and np.size(got) == 1:
        got = got.item()
    assert isinstance(got, float | int) and not isinstance(got, bool), (
        f"expected one number (or float('nan')), got {got!r}"
    )
    return float(got)


def _loop(distances, query_pid, query_cam, pids, cams):
    """Rank the valid gallery by distance, average the precision at each match."""
    ranked = sorted((d, p) for d, p, c in zip(distances, pids, cams, strict=True)
                    if p != -1 and not (p == query_pid and c == query_cam))
    precisions, found = [], 0
    for rank, (_, p) in enumerate(ranked, start=1):
        if p == query_pid:
            found += 1
            precisions.append(found / rank)
    return sum(precisions) / len(precisions) if precisions else float("nan")


def _gallery(gen, size, query_pid, num_cams=6):
    """A long gallery: the query's person in several cameras, other people, distractors
    (pid 0) and junk (-1); distinct distances."""
    pids = gen.choice([query_pid, query_pid, 0, -1, 11, 12, 13, 14, 15, 16], size=size)
    cams = gen.integers(0, num_cams, size=size)
    distances = gen.permutation(size) / size + gen.uniform(0, 1e-3)
    return distances, pids, cams


@test_case(name="q2_hidden - long galleries against reidlib's evaluate and a loop",
           hidden=True)
def against_reidlib(tracklet_average_precision):
    gen = np.random.default_rng(153)
    checked = 0
    for size in (20, 80, 200, 200, 500):
        distances, pids, cams = _gallery(gen, size, 7)
        query_cam = int(gen.integers(0, 6))
        expected = _loop(distances.tolist(), 7, query_cam, pids.tolist(), cams.tolist())
        got = _ap(tracklet_average_precision, distances.copy(), 7, query_cam, pids.copy(),
                  cams.copy())
        if math.isnan(expected):
            assert math.isnan(got), f"expected NaN (no valid match), got {got!r}"
            continue
        library = evaluate(distances[None, :], np.array([7]), pids, np.array([query_cam]),
                           cams)["AP"][0]
        assert abs(got - library) < 1e-9 and abs(got - expected) < 1e-9, (
            f"tracklet_average_precision(a gallery of {size} tracklets with junk, distractors "
            f"and the query's person in several cameras) returned {got:.6f}, but reidlib's "
            f"evaluate gives {library:.6f} (a loop: {expected:.6f}); rank the whole valid "
            "gallery, not only its first 50"
        )
        checked += 1
    assert checked >= 3


@test_case(name="q2_hidden - matches far down the list; one match", hidden=True)
def far_matches(tracklet_average_precision):
    size = 120
    distances = np.arange(size, dtype=np.float64) / size
    pids = np.full(size, 30)
    cams = np.zeros(size, dtype=int)
    pids[[5, 60, 110]] = 4
    cams[[5, 60, 110]] = [2, 3, 1]
    pids[[0, 1]] = 4  # the query's person in its own camera 0: left out
    got = _ap(tracklet_average_precision, distances, 4, 0, pids, cams)
    expected = (1 / 4 + 2 / 59 + 3 / 109) / 3
    assert abs(got - expected) < 1e-9, (
        f"tracklet_average_precision(matches at ranks 4, 59 and 109 of the valid list) "
        f"returned {got:.6f}, expected {expected:.6f}"
    )
    pids[[60, 110]] = 30
    got = _ap(tracklet_average_precision, distances, 4, 0, pids, cams)
    assert abs(got - 0.25) < 1e-9, (
        f"tracklet_average_precision(one match, at rank 4 of the valid list) returned "
        f"{got:.6f}, expected 0.25"
    )
    pids[5] = 30
    got = _ap(tracklet_average_precision, distances, 4, 0, pids, cams)
    assert math.isnan(got), (
        f"tracklet_average_precision(the query's person only in the query's own camera, 120 "
        f"gallery tracklets) returned {got!r}, expected float('nan'): no valid match"
    )


@test_case(name="q2_hidden - inputs left unchanged", hidden=True)
def inputs_unchanged(tracklet_average_precision):
    gen = np.random.default_rng(154)
    distances, pids, cams = _gallery(gen, 40, 3)
    copies = (distances.copy(), pids.copy(), cams.copy())
    _ap(tracklet_average_precision, distances, 3, 1, pids, cams)
    assert all(np.array_equal(a, b) for a, b in zip((distances, pids, cams), copies,
                                                     strict=True)), (
        "tracklet_average_precision changed the distances, pids or cameras it was given "
        "(filter into new arrays; do not mark junk or sort in place)"
    )
