"""Public checks of q4, the mean teacher's average (students run grader.check("q4"))."""

import numpy as np
import torch
from otter.test_files import test_case

OK_FORMAT = False
name = "q4"

HINT = (
    "Hint: first compare set(teacher) with set(student) and raise ValueError(...) if they "
    "differ; then build {name: alpha * teacher[name] + (1 - alpha) * student[name] for name in "
    "teacher}: the arithmetic makes new tensors, so the inputs stay as they were. alpha is the "
    "weight of the OLD (teacher) value."
)


def _dicts():
    teacher = {"w": torch.tensor([1.0, 2.0]), "b": torch.tensor(0.0)}
    student = {"w": torch.tensor([3.0, 6.0]), "b": torch.tensor(1.0)}
    return teacher, student


def _average(function, teacher, student, alpha, what):
    assert callable(function), "define a function called ema_update (run its cell first)"
    got = function(teacher, student, alpha)
    assert got is not None, "ema_update returned None: did you forget the return?"
    assert isinstance(got, dict) and set(got) == set(teacher), (
        f"ema_update({what}) should return a dict with the names {sorted(teacher)}, got {got!r}"
    )
    return {name: np.asarray(value, dtype=float).tolist() for name, value in got.items()}


def _expect(function, alpha, expected, why):
    teacher, student = _dicts()
    what = f"teacher {{w: [1, 2], b: 0}}, student {{w: [3, 6], b: 1}}, alpha={alpha}"
    got = _average(function, teacher, student, alpha, what)
    assert all(np.allclose(got[n], expected[n]) for n in expected), (
        f"ema_update({what}) returned {got}, expected {expected} ({why})"
    )


@test_case(name="q4 - worked example", failure_message=HINT)
def worked_example(ema_update):
    _expect(ema_update, 0.75, {"w": [1.5, 3.0], "b": 0.25},
            "0.75 of the teacher plus 0.25 of the student")


@test_case(name="q4 - alpha 1 keeps the teacher, alpha 0 copies the student", failure_message=HINT)
def extreme_alpha(ema_update):
    _expect(ema_update, 1.0, {"w": [1.0, 2.0], "b": 0.0}, "alpha 1: the teacher does not move")
    _expect(ema_update, 0.0, {"w": [3.0, 6.0], "b": 1.0},
            "alpha 0: the teacher becomes the student")


@test_case(name="q4 - inputs left unchanged", failure_message=HINT)
def inputs_unchanged(ema_update):
    teacher, student = _dicts()
    _average(ema_update, teacher, student, 0.5, "teacher, student, alpha=0.5")
    fresh = _dicts()
    for given, original, who in ((teacher, fresh[0], "teacher"), (student, fresh[1], "student")):
        same = set(given) == set(original) and all(torch.equal(given[n], original[n])
                                                    for n in original)
        assert same, (
            f"ema_update changed the {who} dict it was given: return a new dict of new values "
            "(no in-place ops such as mul_ or +=)"
        )


@test_case(name="q4 - different names: a ValueError", failure_message=HINT)
def different_names(ema_update):
    assert callable(ema_update), "define a function called ema_update (run its cell first)"
    teacher, student = _dicts()
    teacher["classifier"] = torch.zeros(3)
    try:
        ema_update(teacher, student, 0.9)
    except ValueError as err:
        assert "classifier" in str(err), (
            f"the ValueError should name what differs ('classifier'), it says: {err}"
        )
    except Exception as err:
        raise AssertionError(
            f"ema_update(teacher with an extra 'classifier', student, 0.9) raised "
            f"{type(err).__name__}: {err}; expected a ValueError naming 'classifier', the name "
            "only one of the dicts holds"
        ) from None
    else:
        raise AssertionError(
            "ema_update(teacher with an extra 'classifier', student, 0.9) did not raise: "
            "expected a ValueError naming 'classifier', the name only one of the dicts holds"
        )
