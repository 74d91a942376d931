"""Public checks of q1, average precision of one query (students run grader.check("q1"))."""

import numbers

from otter.test_files import test_case

OK_FORMAT = False
name = "q1"

HINT = (
    "Hint: walk down the list; at every match (a 1) take the precision so far "
    "(matches seen / images seen), then average those precisions over the matches."
)


def _ap(function, matches):
    """The student's AP of ``matches``, checked to be a plain number."""
    assert callable(function), "define a function called average_precision (run its cell first)"
    got = function(matches)
    assert isinstance(got, numbers.Real) and not isinstance(got, bool), (
        f"average_precision({matches}) should return a number, but returned {got!r}"
    )
    return float(got)


def _expect(function, matches, expected, why):
    got = _ap(function, matches)
    assert abs(got - expected) < 1e-9, (
        f"average_precision({matches}) returned {got:.4f}, expected {expected:.4f} ({why})"
    )


@test_case(name="q1 - worked example", failure_message=HINT)
def worked_example(average_precision):
    _expect(average_precision, [1, 0, 1, 0], (1 / 1 + 2 / 3) / 2, "precision 1/1 and 2/3")


@test_case(name="q1 - first match at rank 2", failure_message=HINT)
def late_match(average_precision):
    _expect(average_precision, [0, 1], 1 / 2, "one match, precision 1/2 at rank 2")


@test_case(name="q1 - misses after the last match", failure_message=HINT)
def trailing_misses(average_precision):
    why = "both matches come first; the images after the last match do not lower AP"
    _expect(average_precision, [1, 1, 0, 0, 0], 1.0, why)
