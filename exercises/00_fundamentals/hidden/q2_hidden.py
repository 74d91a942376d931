"""Hidden checks of q2 (instructors; exercises/grade.py): CMC against reidlib.evaluation."""

import numpy as np
from otter.test_files import test_case

from reidlib.evaluation import evaluate

OK_FORMAT = False
name = "q2_hidden"


def _curve(function, ranks, max_rank):
    assert callable(function), "define a function called cmc_curve"
    got = function(ranks, max_rank)
    assert got is not None, "cmc_curve returned None"
    got = np.asarray(got, dtype=float)
    assert got.shape == (max_rank,), f"expected {max_rank} numbers, got shape {got.shape}"
    return got


def _evaluate_cmc(ranks, max_rank):
    """reidlib's CMC for queries whose first match sits at the given ranks.

    Query i has pid i + 1 in camera 0; gallery column i is its only true match (camera 1),
    and a distance just below that of the (rank - 1)-th other column puts it at that rank.
    """
    num_q = len(ranks)
    num_g = num_q + max(ranks)  # distractors (pid 0) fill the list
    gallery_pids = np.concatenate([np.arange(1, num_q + 1), np.zeros(max(ranks), int)])
    distmat = np.zeros((num_q, num_g))
    for i, rank in enumerate(ranks):
        others = np.delete(np.arange(num_g), i)
        distmat[i, others] = np.arange(num_g - 1)
        distmat[i, i] = rank - 1.5
    result = evaluate(
        distmat, np.arange(1, num_q + 1), gallery_pids, np.zeros(num_q, int),
        np.ones(num_g, int), max_rank=max_rank,
    )
    assert result["first_match_rank"].tolist() == list(ranks)  # the construction is right
    return result["cmc"]


@test_case(name="q2_hidden - first matches beyond max_rank", hidden=True)
def beyond_max_rank(cmc_curve):
    got = _curve(cmc_curve, [1, 7, 2, 10], 3)
    assert np.allclose(got, [0.25, 0.5, 0.5]), (
        f"cmc_curve([1, 7, 2, 10], max_rank=3) returned {np.round(got, 4).tolist()}, expected "
        "[0.25, 0.5, 0.5]: a first match beyond max_rank is a miss at every rank shown"
    )


@test_case(name="q2_hidden - random ranks against reidlib.evaluation.evaluate", hidden=True)
def against_reidlib(cmc_curve):
    rng = np.random.default_rng(1)
    for max_rank in (1, 5, 20):
        ranks = rng.integers(1, 30, size=int(rng.integers(1, 40))).tolist()
        expected = _evaluate_cmc(ranks, max_rank)
        got = _curve(cmc_curve, ranks, max_rank)
        assert np.allclose(got, expected), (
            f"cmc_curve({ranks}, max_rank={max_rank}) returned {np.round(got, 4).tolist()}, "
            f"expected {np.round(expected, 4).tolist()}"
        )


@test_case(name="q2_hidden - numpy input", hidden=True)
def numpy_input(cmc_curve):
    got = _curve(cmc_curve, np.array([3, 1]), 3)
    assert np.allclose(got, [0.5, 0.5, 1.0]), (
        f"cmc_curve(np.array([3, 1]), 3) returned {np.round(got, 4).tolist()}, "
        "expected [0.5, 0.5, 1.0]"
    )
