"""Hidden checks of q2 (instructors; exercises/grade.py): the share of the gap closed against
reidlib.domain_adaptation.compare.gap_recovered on many triples, shares outside [0, 1], and the
ValueError when supervised does not beat direct transfer (equal included)."""

import numpy as np
from otter.test_files import test_case

from reidlib.domain_adaptation.compare import gap_recovered

OK_FORMAT = False
name = "q2_hidden"


def _share(function, *args):
    assert callable(function), "define a function called gap_closed"
    got = function(*args)
    if hasattr(got, "item"):
        got = got.item()
    assert isinstance(got, float | int) and not isinstance(got, bool), (
        f"expected one number, got {got!r}"
    )
    return float(got)


@test_case(name="q2_hidden - random triples against reidlib's gap_recovered", hidden=True)
def against_reidlib(gap_closed):
    gen = np.random.default_rng(161)
    for _ in range(50):
        direct, supervised = sorted(gen.uniform(0, 100, 2))
        adapted = gen.uniform(0, 100)
        got = _share(gap_closed, adapted, direct, supervised)
        expected = gap_recovered(adapted, direct, supervised)
        assert abs(got - expected) < 1e-12 * max(1.0, abs(expected)), (
            f"gap_closed(adapted={adapted:.6f}, direct={direct:.6f}, "
            f"supervised={supervised:.6f}) returned {got!r}, but reidlib's gap_recovered "
            f"gives {expected!r} (no rounding: round only when printing)"
        )


@test_case(name="q2_hidden - shares below 0 and above 1 are kept", hidden=True)
def outside_unit_range(gap_closed):
    got = _share(gap_closed, 40.0, 50.0, 70.0)
    assert abs(got + 0.5) < 1e-12, (
        f"gap_closed(adapted=40, direct=50, supervised=70) returned {got!r}, expected -0.5: a "
        "method worse than direct transfer has a negative share (do not clip it to 0)"
    )
    got = _share(gap_closed, 80.0, 50.0, 70.0)
    assert abs(got - 1.5) < 1e-12, (
        f"gap_closed(adapted=80, direct=50, supervised=70) returned {got!r}, expected 1.5: a "
        "method can beat the supervised reference (do not clip it to 1)"
    )
    assert _share(gap_closed, 3, 1, 5) == 0.5, "gap_closed(3, 1, 5) should be 0.5"


@test_case(name="q2_hidden - supervised equal to direct: ValueError", hidden=True)
def equal_is_no_gap(gap_closed):
    assert callable(gap_closed), "define a function called gap_closed"
    for args in ((60.0, 55.0, 55.0), (1.0, 0.0, 0.0), (10.0, 30.0, 20.0)):
        try:
            got = gap_closed(*args)
        except ValueError:
            continue
        except ZeroDivisionError:
            raise AssertionError(
                f"gap_closed{args} raised ZeroDivisionError, expected a ValueError: "
                "supervised equal to direct transfer leaves no gap either (test "
                "'not supervised > direct', not 'supervised < direct')"
            ) from None
        raise AssertionError(f"gap_closed{args} returned {got!r}, expected a ValueError")
