"""Public checks of q4, TFusion's Bayesian fusion of appearance and space-time (students run
grader.check("q4"))."""

import numpy as np
from otter.test_files import test_case

OK_FORMAT = False
name = "q4"

HINT = (
    "Hint: one line, element by element on the (Q, G) arrays: visual_prob * st_prob / "
    "np.maximum(random_prob, 2e-5) (the floor replaces a random probability below 2e-5, it is "
    "not added to it)."
)

# The notebook's example: two queries, three gallery tracklets.
VISUAL = np.array([[0.6, 0.3, 0.1], [0.2, 0.7, 0.1]])
ST = np.array([[0.5, 0.25, 0.0], [0.1, 0.3, 0.4]])
RANDOM = np.array([[0.25, 0.5, 0.1], [1e-5, 0.6, 0.2]])


def _fuse(function, visual, st, random, what):
    assert callable(function), "define a function called bayesian_fusion (run its cell first)"
    got = function(visual, st, random)
    assert got is not None, "bayesian_fusion returned None: did you forget the return?"
    got = np.asarray(got, dtype=np.float64)
    assert got.shape == np.shape(visual), (
        f"bayesian_fusion({what}) should return a {np.shape(visual)} array (one score per "
        f"query-gallery pair), got shape {got.shape}"
    )
    return got


def _rounded(x):
    return [[round(v, 4) for v in row] for row in x.tolist()]


@test_case(name="q4 - the notebook's example", failure_message=HINT)
def worked_example(bayesian_fusion):
    got = _fuse(bayesian_fusion, VISUAL.copy(), ST.copy(), RANDOM.copy(),
                "the notebook's 2 x 3 example")
    expected = np.array([[1.2, 0.15, 0.0], [1000.0, 0.35, 0.2]])
    assert np.allclose(got, expected, rtol=1e-6, atol=1e-12), (
        f"bayesian_fusion(the notebook's example) returned {_rounded(got)}, expected "
        f"{_rounded(expected)}: 0.6 * 0.5 / 0.25 = 1.2, 0.3 * 0.25 / 0.5 = 0.15, 0.1 * 0 / 0.1 "
        "= 0 (a transit never seen among the matches vetoes the pair); in the second row the "
        "random probability 1e-5 is below the floor, so 0.2 * 0.1 / 2e-5 = 1000"
    )


@test_case(name="q4 - a product over a ratio, pair by pair", failure_message=HINT)
def pair_by_pair(bayesian_fusion):
    gen = np.random.default_rng(51)
    visual = gen.dirichlet(np.ones(5), size=4)
    st = gen.uniform(0.0, 0.3, size=(4, 5))
    random = gen.uniform(0.05, 0.2, size=(4, 5))
    got = _fuse(bayesian_fusion, visual.copy(), st.copy(), random.copy(),
                "4 queries x 5 gallery tracklets")
    expected = visual * st / random
    assert np.allclose(got, expected, rtol=1e-6, atol=1e-12), (
        "bayesian_fusion(4 x 5 random probabilities, none below the floor) differs from "
        "visual_prob * st_prob / random_prob: each pair's score is its own product and ratio "
        "(no normalisation per query, no sum of the two evidences)"
    )
