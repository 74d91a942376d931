"""``jaccard_distance`` against a dense transcription of what the SpCL / Cluster Contrast
``compute_jaccard_distance`` computes (survey §3.1; Zhong et al. 2017, Eqs. 4-11), so that
k1 = 30, k2 = 6 here means what it means in those recipes.

The behaviour transcribed (read from the official code, re-written here as plain loops):

- the neighbour table is an exact search for k1 neighbours, the image itself included (so
  k1 - 1 others), nearest first;
- R(i, k1): the j among i's k1 table entries with i among j's k1 entries; the expansion sets
  use round(k1 / 2) + 1 entries (numpy's round: half to even), self included again;
- a candidate c of R(i, k1) adds R(c, .) when |R(c, .) & R(i, k1)| > 2/3 |R(c, .)|;
- weights softmax(-(2 - 2 cos)) over the expanded set (features L2-normalised);
- query expansion averages the rows of the first k2 table entries (self included; the table
  has only k1 columns, so at most k1 rows);
- d = 1 - s / (2 - s), s = sum_k min(V_ik, V_jk), negatives clipped to 0, dense N x N (a
  pair sharing nothing gets 1).
"""

import numpy as np
import pytest
import scipy.sparse as sp
from kreciprocal_reference import dense_kreciprocal_jaccard

from reidlib.pseudo_labels import jaccard_distance


def blobs(n, dim=12, n_clusters=5, spread=0.4, seed=0):
    """n points in a few Gaussian clusters, float32."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_clusters, dim))
    x = centres[rng.integers(0, n_clusters, n)] + spread * rng.normal(size=(n, dim))
    return x.astype(np.float32)


def cosine_sq_dist(x):
    """2 - 2 cos in float64, with an exact 0 on the diagonal (self is its own nearest)."""
    x = x.astype(np.float64)
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    d = 2.0 - 2.0 * x @ x.T
    np.fill_diagonal(d, 0.0)
    return d


def assert_no_near_ties(d, width, gap=1e-6):
    """The ranks that matter must not hinge on float32 rounding: on tied or nearly tied
    distances the reference and any exact search may order neighbours differently."""
    ordered = np.sort(d, axis=1)[:, : width + 1]
    assert np.diff(ordered, axis=1).min() > gap, "toy data has near-ties; pick another seed"


def reference_jaccard(x, k1, k2):
    """Dense reference, loop by loop (see the module docstring). Returns (N, N) float64."""
    return dense_kreciprocal_jaccard(cosine_sq_dist(x), k1, k2)


def as_dense(sparse_result):
    """Absent pairs of the sparse result are at distance 1."""
    full = np.ones(sparse_result.shape)
    coo = sparse_result.tocoo()
    full[coo.row, coo.col] = coo.data
    return full


CASES = [  # n, k1, k2, seed
    (160, 30, 6, 0),  # Cluster Contrast's Market-1501 recipe
    (120, 20, 6, 1),  # SpCL's defaults
    (90, 10, 1, 2),  # no query expansion
    (100, 25, 4, 3),  # odd k1: round(12.5) = 12 (half to even)
    (70, 7, 3, 4),  # odd k1: round(3.5) = 4
    (60, 60, 6, 5),  # k1 = N: the table holds every image
]


@pytest.mark.parametrize("search", ["faiss", "torch"])
@pytest.mark.parametrize("n, k1, k2, seed", CASES)
def test_matches_reference_code_behaviour(n, k1, k2, seed, search):
    x = blobs(n, seed=seed)
    assert_no_near_ties(cosine_sq_dist(x), k1)
    want = reference_jaccard(x, k1, k2)
    got = jaccard_distance(x, k1=k1, k2=k2, metric="cosine", progress=False, search=search)
    assert sp.issparse(got)
    assert np.abs(as_dense(got) - want).max() < 1e-5
    full = jaccard_distance(x, k1=k1, k2=k2, dense=True, progress=False, search=search)
    assert np.abs(full - want).max() < 1e-5


def test_k1_one_is_only_the_image_itself():
    """Under the reference meaning k1 = 1 leaves R(i) = {i}: V = identity, so every other
    pair is at distance 1 (the paper's k1 = 1 would also admit a mutual nearest neighbour)."""
    x = blobs(50, seed=6)
    got = jaccard_distance(x, k1=1, k2=1, dense=True, progress=False)
    np.testing.assert_allclose(got, 1.0 - np.eye(50), atol=1e-6)


def test_k1_counts_the_image_itself():
    """R(i, k1) never has more than k1 members, self included: with k2 = 1 and k1 = 2 each
    image shares V only with at most its one mutual nearest neighbour."""
    x = blobs(80, seed=7)
    d = cosine_sq_dist(x)
    nearest = np.argsort(d, axis=1, kind="stable")[:, 1]
    mutual = nearest[nearest] == np.arange(80)
    got = jaccard_distance(x, k1=2, k2=1, progress=False)
    partners = got.getnnz(axis=1) - 1  # stored entries besides the diagonal
    np.testing.assert_array_equal(partners, mutual.astype(int))
