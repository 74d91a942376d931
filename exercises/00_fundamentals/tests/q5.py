"""Public checks of q5, the inverse negative penalty of one query (grader.check("q5"))."""

import numbers

from otter.test_files import test_case

OK_FORMAT = False
name = "q5"

HINT = (
    "Hint: find the 1-based rank of the LAST match (the hardest one to find), then divide "
    "the number of matches by it. np.flatnonzero(matches) lists the 0-based match positions."
)


def _inp(function, matches):
    """The student's INP of ``matches``, checked to be a plain number."""
    assert callable(function), (
        "define a function called inverse_negative_penalty (run its cell first)"
    )
    got = function(matches)
    assert got is not None, "inverse_negative_penalty returned None: did you forget the return?"
    assert isinstance(got, numbers.Real) and not isinstance(got, bool), (
        f"inverse_negative_penalty({matches}) should return a number, but returned {got!r}"
    )
    return float(got)


def _expect(function, matches, expected, why):
    got = _inp(function, matches)
    assert abs(got - expected) < 1e-9, (
        f"inverse_negative_penalty({matches}) returned {got:.4f}, expected {expected:.4f} "
        f"({why})"
    )


@test_case(name="q5 - worked example", failure_message=HINT)
def worked_example(inverse_negative_penalty):
    _expect(inverse_negative_penalty, [1, 0, 1, 0], 2 / 3,
            "2 matches, the last at rank 3: 2 / 3")


@test_case(name="q5 - the last match decides, not the first", failure_message=HINT)
def last_match(inverse_negative_penalty):
    _expect(inverse_negative_penalty, [1, 0, 0, 0, 1], 2 / 5,
            "the first match is at rank 1 but the hardest at rank 5: 2 / 5")


@test_case(name="q5 - every match first", failure_message=HINT)
def all_first(inverse_negative_penalty):
    _expect(inverse_negative_penalty, [1, 1, 1, 0, 0], 1.0,
            "nothing wrong comes before the last match: INP = 1")
