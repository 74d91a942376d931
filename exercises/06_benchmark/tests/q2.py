"""Public checks of q2, the share of the direct-transfer gap a method closes (students run
grader.check("q2"))."""

import numbers

from otter.test_files import test_case

OK_FORMAT = False
name = "q2"

HINT = (
    "Hint: if not supervised > direct: raise ValueError(...); else return (adapted - "
    "direct) / (supervised - direct), a fraction (1.0 = as good as supervised), not a "
    "percentage."
)


def _share(function, adapted, direct, supervised):
    assert callable(function), "define a function called gap_closed (run its cell first)"
    got = function(adapted, direct, supervised)
    assert got is not None, "gap_closed returned None: did you forget the return?"
    if hasattr(got, "item"):
        got = got.item()
    assert isinstance(got, numbers.Real) and not isinstance(got, bool), (
        f"gap_closed({adapted}, {direct}, {supervised}) should return one number, got {got!r}"
    )
    return float(got)


@test_case(name="q2 - the notebook's example", failure_message=HINT)
def worked_example(gap_closed):
    got = _share(gap_closed, 66.1, 44.2, 83.0)
    expected = (66.1 - 44.2) / (83.0 - 44.2)
    assert abs(got - expected) < 1e-9, (
        f"gap_closed(adapted=66.1, direct=44.2, supervised=83.0) returned {got:.4f}, expected "
        f"{expected:.4f}: the gap is supervised - direct = 38.8 points, the method gained "
        "adapted - direct = 21.9 of them (adapted / supervised = 0.796 is the share of the "
        "upper bound, another number)"
    )
    got = _share(gap_closed, 0.5, 0.4, 0.8)
    assert abs(got - 0.25) < 1e-9, (
        f"gap_closed(0.5, 0.4, 0.8) returned {got}, expected 0.25 (mAPs as fractions give "
        "the same share as in percent)"
    )


@test_case(name="q2 - no gap: ValueError", failure_message=HINT)
def no_gap(gap_closed):
    assert callable(gap_closed), "define a function called gap_closed (run its cell first)"
    try:
        got = gap_closed(50.0, 60.0, 55.0)
    except ValueError:
        return
    raise AssertionError(
        f"gap_closed(adapted=50.0, direct=60.0, supervised=55.0) returned {got!r}, expected a "
        "ValueError: when the supervised model does not beat direct transfer there is no gap "
        "to close, and a share would be meaningless"
    )
