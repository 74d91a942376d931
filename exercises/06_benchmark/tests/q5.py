"""Public checks of q5, the average precision of one text query against an image gallery
(students run grader.check("q5"))."""

import math
import numbers

import numpy as np
from otter.test_files import test_case

OK_FORMAT = False
name = "q5"

HINT = (
    "Hint: relevant = similarities[gallery_pids == query_pid]; if there is none return "
    "float('nan'); for each relevant similarity s, precision = (number of relevant with "
    "similarity >= s) / (number of gallery images with similarity >= s); AP is their mean. "
    "Larger similarity ranks first; distractors and junk stay in the list as negatives."
)

# The notebook's example: six gallery images, the text describes person 4.
SIMILARITIES = np.array([0.9, 0.2, 0.7, 0.8, 0.1, 0.5])
PIDS = np.array([0, 4, 4, -1, 7, 4])


def _ap(function, similarities, query_pid, pids, what):
    assert callable(function), (
        "define a function called text_average_precision (run its cell first)"
    )
    got = function(similarities, query_pid, pids)
    assert got is not None, (
        "text_average_precision returned None: did you forget the return? (a text without a "
        "relevant image returns float('nan'))"
    )
    if hasattr(got, "item") and np.size(got) == 1:
        got = got.item()
    assert isinstance(got, numbers.Real) and not isinstance(got, bool), (
        f"text_average_precision({what}) should return one number, got {got!r}"
    )
    return float(got)


@test_case(name="q5 - the notebook's example", failure_message=HINT)
def worked_example(text_average_precision):
    got = _ap(text_average_precision, SIMILARITIES.copy(), 4, PIDS.copy(),
              "the notebook's example")
    expected = (1 / 3 + 2 / 4 + 3 / 5) / 3
    assert abs(got - expected) < 1e-9, (
        f"text_average_precision(the notebook's example: pid 4) returned {got:.4f}, expected "
        f"{expected:.4f}: ranked by decreasing similarity the gallery is a distractor (0.9), "
        "junk (0.8: no person, a negative like any other), person 4 at ranks 3, 4 and 5, then "
        "person 7; AP = (1/3 + 2/4 + 3/5) / 3. A text has no camera: nothing is left out"
    )


@test_case(name="q5 - no relevant image: NaN", failure_message=HINT)
def no_relevant(text_average_precision):
    got = _ap(text_average_precision, np.array([0.3, 0.9, 0.1]), 5, np.array([2, 0, -1]),
              "pid 5, gallery pids [2, 0, -1]")
    assert math.isnan(got), (
        f"text_average_precision(pid 5 against gallery pids [2, 0, -1]) returned {got!r}, "
        "expected float('nan'): the text has no relevant image, so no AP (the mAP skips it; "
        "it is not an AP of 0)"
    )
