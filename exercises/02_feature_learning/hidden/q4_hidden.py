"""Hidden checks of q4 (instructors; exercises/grade.py): the average against
reidlib.feature_learning.mean_teacher.ema_update on a real network."""

import numpy as np
import torch
from otter.test_files import test_case
from torch import nn

from reidlib.feature_learning.mean_teacher import ema_update as reference_update
from reidlib.feature_learning.mean_teacher import make_teacher

OK_FORMAT = False
name = "q4_hidden"


def _average(function, teacher, student, alpha):
    assert callable(function), "define a function called ema_update"
    got = function(teacher, student, alpha)
    assert isinstance(got, dict) and set(got) == set(teacher), (
        f"expected a dict with the names {sorted(teacher)}, got {got!r}"
    )
    return got


def _params(model):
    return {name: p.detach().clone() for name, p in model.named_parameters()}


@test_case(name="q4_hidden - several steps on a network against reidlib", hidden=True)
def against_reidlib(ema_update):
    torch.manual_seed(70)
    student = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
    teacher = make_teacher(student)
    mine = _params(teacher)
    optimizer = torch.optim.SGD(student.parameters(), lr=0.5)
    for step in range(6):
        loss = student(torch.randn(8, 6)).square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        alpha = (0.9, 0.5, 0.99)[step % 3]
        reference_update(teacher, student, alpha)
        mine = _average(ema_update, mine, _params(student), alpha)
        for name, p in teacher.named_parameters():
            assert torch.allclose(torch.as_tensor(mine[name]), p, atol=1e-6), (
                f"after {step + 1} ema_update steps on a small network, parameter {name!r} "
                "differs from reidlib's mean teacher"
            )


@test_case(name="q4_hidden - numpy arrays", hidden=True)
def numpy_arrays(ema_update):
    rng = np.random.default_rng(71)
    teacher = {"a": rng.normal(size=(3, 2)), "b": rng.normal(size=4)}
    student = {"a": rng.normal(size=(3, 2)), "b": rng.normal(size=4)}
    copies = {n: v.copy() for n, v in teacher.items()}, {n: v.copy() for n, v in student.items()}
    got = _average(ema_update, teacher, student, 0.3)
    for name in teacher:
        expected = 0.3 * copies[0][name] + 0.7 * copies[1][name]
        assert np.allclose(np.asarray(got[name]), expected), (
            f"ema_update on numpy arrays, alpha=0.3: {name!r} is {np.asarray(got[name])}, "
            f"expected {expected}"
        )
        assert np.array_equal(teacher[name], copies[0][name]), "ema_update changed the teacher"
        assert np.array_equal(student[name], copies[1][name]), "ema_update changed the student"


@test_case(name="q4_hidden - a name only in the student: a ValueError", hidden=True)
def extra_student_name(ema_update):
    assert callable(ema_update), "define a function called ema_update"
    teacher = {"w": torch.ones(2)}
    student = {"w": torch.zeros(2), "head": torch.zeros(2)}
    try:
        ema_update(teacher, student, 0.9)
    except ValueError as err:
        assert "head" in str(err), f"the ValueError should name 'head', it says: {err}"
    else:
        raise AssertionError(
            "ema_update(teacher {w}, student {w, head}, 0.9) did not raise a ValueError: a name "
            "only the student has is a mismatch too"
        )
