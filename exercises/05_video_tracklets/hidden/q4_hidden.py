"""Hidden checks of q4 (instructors; exercises/grade.py): TFusion's fusion against
reidlib.video.spatiotemporal.bayesian_fusion (zero error rates) on grids where the floor bites
and where the random probability is exactly 0, a loop, float64 precision, and inputs left
unchanged."""

import numpy as np
from otter.test_files import test_case

from reidlib.video.spatiotemporal import bayesian_fusion as reference

OK_FORMAT = False
name = "q4_hidden"


def _fuse(function, visual, st, random):
    assert callable(function), "define a function called bayesian_fusion"
    got = np.asarray(function(visual, st, random))
    assert got.shape == visual.shape, (
        f"expected a {visual.shape} array, got shape {got.shape}"
    )
    return got


def _grids(gen, q, g):
    """A softmax-like visual probability; sparse histogram look-ups, as st_grid gives them:
    many zeros, some tiny random probabilities, some exactly 0."""
    visual = gen.dirichlet(np.full(g, 0.3), size=q)
    st = gen.uniform(0, 0.4, size=(q, g)) * (gen.random((q, g)) < 0.5)
    random = gen.uniform(0, 0.2, size=(q, g))
    random[gen.random((q, g)) < 0.2] = gen.uniform(0, 3e-5)
    random[gen.random((q, g)) < 0.1] = 0.0
    return visual, st, random


@test_case(name="q4_hidden - sparse grids against reidlib and a loop", hidden=True)
def against_reidlib(bayesian_fusion):
    gen = np.random.default_rng(157)
    for q, g in ((5, 40), (30, 7), (1, 1), (12, 12)):
        visual, st, random = _grids(gen, q, g)
        got = _fuse(bayesian_fusion, visual.copy(), st.copy(), random.copy())
        expected = reference(visual, st, random)
        loop = np.array([[v * s / max(r, 2e-5) for v, s, r in zip(*rows, strict=True)]
                         for rows in zip(visual, st, random, strict=True)])
        worst = np.abs(got - expected) / np.maximum(np.abs(expected), 1e-300)
        assert np.allclose(got, expected, rtol=1e-12, atol=0) and np.allclose(
            got, loop, rtol=1e-12, atol=0), (
            f"bayesian_fusion({q} x {g} grids with zeros and random probabilities below the "
            f"floor) differs from reidlib's bayesian_fusion by up to {np.nanmax(worst):.2e} "
            "(relative): every pair is visual * st / max(random, 2e-5), in float64"
        )


@test_case(name="q4_hidden - a random probability of exactly 0 is floored too", hidden=True)
def zero_random(bayesian_fusion):
    visual = np.array([[0.5, 0.25]])
    st = np.array([[0.2, 0.1]])
    random = np.array([[0.0, 0.1]])
    got = _fuse(bayesian_fusion, visual, st, random)
    assert np.allclose(got, [[5000.0, 0.25]], rtol=1e-12), (
        f"bayesian_fusion(visual [0.5, 0.25], st [0.2, 0.1], random [0, 0.1]) returned "
        f"{got.tolist()}, expected [5000, 0.25]: a gap that no random pair showed is floored "
        "like any other below 2e-5 (0.5 * 0.2 / 2e-5), it is not a score of 0 or inf"
    )


@test_case(name="q4_hidden - inputs left unchanged", hidden=True)
def inputs_unchanged(bayesian_fusion):
    gen = np.random.default_rng(158)
    visual, st, random = _grids(gen, 6, 9)
    copies = (visual.copy(), st.copy(), random.copy())
    _fuse(bayesian_fusion, visual, st, random)
    assert all(np.array_equal(a, b) for a, b in zip((visual, st, random), copies,
                                                     strict=True)), (
        "bayesian_fusion changed the probabilities it was given (clamp into a new array: "
        "np.maximum(random_prob, 2e-5), not np.maximum(..., out=random_prob))"
    )
