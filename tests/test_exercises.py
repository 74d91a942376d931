"""exercises/00_fundamentals: the otter checks, the student notebook and the instructor grader.

What every exercise is tested for (checks on the solutions, the stubs and the wrong answers
below; layout; no leaked solutions; the executed notebook and grade.py) is ExerciseChecks in
tests/exercise_harness.py. Here: chapter 0's own cases, and grade.py's argument handling.
"""

from __future__ import annotations

import numpy as np
import pytest
from exercise_harness import ExerciseChecks, check, grade, load_exercise
from matplotlib.colors import rgb_to_hsv

QUESTIONS = {
    "q1": "average_precision",
    "q2": "cmc_curve",
    "q3": "valid_gallery_mask",
    "q4": "hue_histogram",
    "q5": "inverse_negative_penalty",
    "q6": "camera_normalise",
}
EX = load_exercise("00_fundamentals", QUESTIONS, "ex00")
solutions = EX.solutions


# Plausible wrong answers. "sneaky" ones pass every public check: only hidden checks catch them.
def _ap_precision_at_k(matches):
    return sum(matches) / len(matches)  # the precision at the end of the list, not AP


def _ap_list_only(matches):
    hits, total = 0, 0.0
    for k, match in enumerate(matches, start=1):
        if match == 1:
            hits += 1
            total += hits / k
    return total / matches.count(1)  # numpy arrays have no .count


def _cmc_clipped(ranks, max_rank):
    ranks = np.minimum(np.asarray(ranks), max_rank)  # a late first match becomes a hit at max_rank
    return np.array([(ranks <= k).mean() for k in range(1, max_rank + 1)])


def _cmc_off_by_one(ranks, max_rank):
    ranks = np.asarray(ranks)
    return np.array([(ranks < k).mean() for k in range(1, max_rank + 1)])


def _mask_drop_whole_camera(query_pid, query_camid, gallery_pids, gallery_camids):
    pids, cams = np.asarray(gallery_pids), np.asarray(gallery_camids)
    return ~((pids == -1) | (cams == query_camid))  # also drops other people in that camera


def _mask_distractors_as_junk(query_pid, query_camid, gallery_pids, gallery_camids):
    pids, cams = np.asarray(gallery_pids), np.asarray(gallery_camids)
    return ~((pids <= 0) | ((pids == query_pid) & (cams == query_camid)))


def _hue_by_max(image, bins):
    counts = solutions.hue_histogram(image, bins)
    return counts / counts.max()  # normalised by the largest bin, not the pixel count


def _hue_dominant_channel(image, bins):
    # "The hue is the strongest channel": right for pure colours only.
    hue = np.argmax(np.asarray(image), axis=-1).ravel() / 3
    which = np.minimum((hue * bins).astype(int), bins - 1)
    return np.bincount(which, minlength=bins) / hue.size


def _inp_first_match(matches):
    matches = np.asarray(matches, dtype=bool)
    return float(matches.sum() / (np.argmax(matches) + 1))  # the easiest match, not the hardest


def _inp_one_over_last(matches):
    return float(1 / (np.flatnonzero(np.asarray(matches))[-1] + 1))  # forgets the M matches


def _inp_list_only(matches):
    last = len(matches) - matches[::-1].index(1)  # tuples work, numpy arrays have no .index
    return sum(matches) / last


def _norm_global(features, camids):
    features = np.asarray(features, dtype=float)  # one mean for all cameras: no camera removed
    centred = (features - features.mean(0)) / (features.std(0) + 1e-6)
    return centred / np.linalg.norm(centred, axis=1, keepdims=True)


def _norm_centre_only(features, camids):
    features, camids = np.asarray(features, dtype=float), np.asarray(camids)
    out = features.copy()
    for camera in np.unique(camids):
        out[camids == camera] -= features[camids == camera].mean(0)  # no division by the std
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def _norm_no_epsilon(features, camids):
    features, camids = np.asarray(features, dtype=float), np.asarray(camids)
    out = np.empty_like(features)
    for camera in np.unique(camids):
        rows = features[camids == camera]
        out[camids == camera] = (rows - rows.mean(0)) / rows.std(0)  # one image: 0 / 0 = NaN
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def _norm_in_place(features, camids):
    features, camids = np.asarray(features, dtype=float), np.asarray(camids)
    for camera in np.unique(camids):
        rows = camids == camera
        features[rows] -= features[rows].mean(0)  # changes the caller's array
        features[rows] /= features[rows].std(0) + 1e-6
    features /= np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
    return features


WRONG = [
    ("q1", _ap_precision_at_k, False),
    ("q1", _ap_list_only, True),
    ("q2", _cmc_clipped, True),
    ("q2", _cmc_off_by_one, False),
    ("q3", _mask_drop_whole_camera, True),
    ("q3", _mask_distractors_as_junk, True),
    ("q4", _hue_by_max, False),
    ("q4", _hue_dominant_channel, True),
    ("q5", _inp_first_match, False),
    ("q5", _inp_one_over_last, False),
    ("q5", _inp_list_only, True),
    ("q6", _norm_global, False),
    ("q6", _norm_centre_only, False),
    ("q6", _norm_no_epsilon, True),
    ("q6", _norm_in_place, True),
]


class TestFundamentals(ExerciseChecks):
    exercise = EX
    wrong_answers = WRONG
    solution_statements = 16


def test_failure_message_says_expected_got_and_hint():
    summary = check(EX.public("q1"), {"average_precision": _ap_precision_at_k}).summary()
    assert "average_precision([1, 0, 1, 0]) returned 0.5000, expected 0.8333" in summary
    assert "Hint: walk down the list" in summary
    summary = check(EX.hidden("q3"), {"valid_gallery_mask": _mask_drop_whole_camera}).summary()
    assert "other people (and distractors, pid 0) stay" in summary
    summary = check(EX.public("q3"), {"valid_gallery_mask": _mask_distractors_as_junk}).summary()
    assert "All test cases passed" in summary  # public data has no distractor (see WRONG)
    summary = check(EX.public("q2"), {"cmc_curve": lambda ranks, max_rank: None}).summary()
    assert "did you forget the return?" in summary


def test_q4_reference_agrees_with_hand_computed_hues():
    # The hidden check's reference convention: matplotlib's hue, bins equal on [0, 1].
    colours = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [128, 128, 128]]], np.uint8)
    assert np.allclose(rgb_to_hsv(colours / 255.0)[0, :, 0], [0, 1 / 3, 2 / 3, 0])
    assert np.allclose(solutions.hue_histogram(colours, 3), [0.5, 0.25, 0.25])


# --------------------------------------------------------------------------- grade.py, fast


def test_grade_rejects_bad_arguments(capsys, tmp_path):
    assert grade.main(["99_nothing", "x.ipynb"]) == 2
    assert "expected one of: 00_fundamentals" in capsys.readouterr().err
    assert grade.main(["00_fundamentals"]) == 2
    assert "either a submission notebook or --solutions" in capsys.readouterr().err
    assert grade.main(["00_fundamentals", str(tmp_path / "absent.ipynb")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_collect_checks_refuses_a_clash(tmp_path):
    # That it merges each exercise's checks: ExerciseChecks.test_grade_lists_this_exercise.
    folder = tmp_path / "clash"
    for sub in ("tests", "hidden"):
        (folder / sub).mkdir(parents=True)
        (folder / sub / "q1.py").write_text('name = "q1"\n')
    with pytest.raises(ValueError, match="both have q1.py"):
        grade.collect_checks(folder, tmp_path / "out")
