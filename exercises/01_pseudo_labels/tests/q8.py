"""Public checks of q8, eps at the knee of the k-distance curve (grader.check("q8"))."""

import numbers

import numpy as np
from otter.test_files import test_case

OK_FORMAT = False
name = "q8"

HINT = (
    "Hint: put np.inf on the diagonal (np.where(np.eye(N, dtype=bool), np.inf, dist)), sort "
    "each row, and take column min_samples - 2: the (min_samples - 1)-th nearest OTHER image. "
    "Sort those N values (y), scale x = t / (N - 1) and y to [0, 1], and return y at "
    "np.argmax(x - y_scaled)."
)

POSITIONS = np.array([0.0, 1.0, 2.0, 3.0, 10.0, 30.0])
LINE = np.abs(POSITIONS[:, None] - POSITIONS[None, :])


def _eps(function, dist, min_samples, what):
    assert callable(function), "define a function called knee_eps (run its cell first)"
    got = function(dist.copy(), min_samples)
    assert got is not None, "knee_eps returned None: did you forget the return?"
    assert isinstance(got, numbers.Real) and not isinstance(got, bool), (
        f"knee_eps({what}, min_samples={min_samples}) should return a number, got {got!r}"
    )
    return float(got)


@test_case(name="q8 - worked example", failure_message=HINT)
def worked_example(knee_eps):
    got = _eps(knee_eps, LINE, 2, "images at 0, 1, 2, 3, 10, 30")
    assert abs(got - 1.0) < 1e-9, (
        f"knee_eps(images at 0, 1, 2, 3, 10, 30, min_samples=2) returned {got}, expected 1.0: "
        "the nearest-other distances sorted are [1, 1, 1, 1, 7, 20], x - y_scaled = "
        "[0, 0.2, 0.4, 0.6, 0.48, 0], so the knee is t = 3"
    )


@test_case(name="q8 - min_samples counts the image itself", failure_message=HINT)
def second_neighbour(knee_eps):
    got = _eps(knee_eps, LINE, 3, "images at 0, 1, 2, 3, 10, 30")
    assert abs(got - 2.0) < 1e-9, (
        f"knee_eps(images at 0, 1, 2, 3, 10, 30, min_samples=3) returned {got}, expected 2.0: "
        "k = min_samples - 1 = 2, the 2nd nearest other images are at 2, 1, 1, 2, 8, 27; "
        "sorted [1, 1, 2, 2, 8, 27], the knee is t = 3"
    )


@test_case(name="q8 - a flat curve", failure_message=HINT)
def flat(knee_eps):
    dist = np.ones((5, 5)) - np.eye(5)
    got = _eps(knee_eps, dist, 2, "five images all at distance 1")
    assert abs(got - 1.0) < 1e-9, (
        f"knee_eps(five images all at distance 1) returned {got}, expected 1.0 (all "
        "k-distances equal: return that value)"
    )
