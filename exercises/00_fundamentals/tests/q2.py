"""Public checks of q2, the CMC curve (students run grader.check("q2"))."""

import numpy as np
from otter.test_files import test_case

OK_FORMAT = False
name = "q2"

HINT = (
    "Hint: for each k = 1, ..., max_rank, count the queries whose first match has rank <= k "
    "and divide by the number of queries. Ranks start at 1 (the top image)."
)


def _curve(function, ranks, max_rank):
    """The student's CMC as a float array of length ``max_rank``."""
    assert callable(function), "define a function called cmc_curve (run its cell first)"
    got = function(ranks, max_rank)
    assert got is not None, "cmc_curve returned None: did you forget the return?"
    got = np.asarray(got, dtype=float)
    assert got.shape == (max_rank,), (
        f"cmc_curve({ranks}, max_rank={max_rank}) should return {max_rank} numbers "
        f"(one per rank k = 1..{max_rank}), got shape {got.shape}"
    )
    return got


def _expect(function, ranks, max_rank, expected):
    got = _curve(function, ranks, max_rank)
    assert np.allclose(got, expected), (
        f"cmc_curve({ranks}, max_rank={max_rank}) returned {np.round(got, 4).tolist()}, "
        f"expected {expected}"
    )


@test_case(name="q2 - worked example", failure_message=HINT)
def worked_example(cmc_curve):
    # Two of four queries are right at rank 1, one more by rank 2, the last by rank 3.
    _expect(cmc_curve, [1, 3, 2, 1], 4, [0.5, 0.75, 1.0, 1.0])


@test_case(name="q2 - one query", failure_message=HINT)
def one_query(cmc_curve):
    _expect(cmc_curve, [2], 3, [0.0, 1.0, 1.0])


@test_case(name="q2 - a curve never goes down", failure_message=HINT)
def non_decreasing(cmc_curve):
    got = _curve(cmc_curve, [5, 1, 4, 2, 2, 3], 5)
    assert np.all(np.diff(got) >= 0) and 0 <= got[0] and got[-1] <= 1, (
        f"a CMC curve rises from rank 1 to rank max_rank and stays in [0, 1]; "
        f"got {np.round(got, 4).tolist()}"
    )
