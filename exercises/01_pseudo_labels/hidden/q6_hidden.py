"""Hidden checks of q6 (instructors; exercises/grade.py): against
reidlib.pseudo_labels.jaccard.query_expansion."""

import numpy as np
import scipy.sparse as sp
from otter.test_files import test_case

from reidlib.pseudo_labels.jaccard import query_expansion

OK_FORMAT = False
name = "q6_hidden"


def _expanded(function, v, neighbours):
    assert callable(function), "define a function called local_query_expansion"
    got = function(v, neighbours)
    assert got is not None, "local_query_expansion returned None"
    return np.asarray(got, dtype=float)


def _case(rng):
    n = int(rng.integers(2, 30))
    k2 = int(rng.integers(1, n + 1))
    v = rng.random((n, n)) * (rng.random((n, n)) < 0.3)
    others = np.argsort(rng.random((n, n)), axis=1)
    neighbours = np.array([[i, *[j for j in others[i] if j != i][: k2 - 1]] for i in range(n)])
    return v, neighbours


@test_case(name="q6_hidden - random vectors against query_expansion", hidden=True)
def against_reidlib(local_query_expansion):
    rng = np.random.default_rng(61)
    for _ in range(30):
        v, neighbours = _case(rng)
        expected = query_expansion(sp.csr_matrix(v), neighbours).toarray()
        got = _expanded(local_query_expansion, v, neighbours)
        assert got.shape == expected.shape and np.allclose(got, expected, atol=1e-12), (
            f"local_query_expansion({len(v)} random rows, k2 = {neighbours.shape[1]}) differs "
            "from reidlib's query_expansion"
        )


@test_case(name="q6_hidden - inputs left unchanged", hidden=True)
def inputs_unchanged(local_query_expansion):
    v, neighbours = _case(np.random.default_rng(62))
    before = v.copy(), neighbours.copy()
    _expanded(local_query_expansion, v, neighbours)
    assert np.array_equal(v, before[0]) and np.array_equal(neighbours, before[1]), (
        "local_query_expansion changed the v or neighbours it was given: build each new row "
        "from the OLD rows"
    )
