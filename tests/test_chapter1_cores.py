"""Chapter 1a's cores, as the notebook writes them, agree with reidlib (survey §3.1).

Notebook ``notebooks/01a_pseudo_labels.py`` builds every method's core in a few lines of
numpy (the Jaccard distance step by step, K-means, BUC's Eq. 2, HCT's Eq. 3, SMP's filter)
and asserts it equals the library on real features. These tests take those very functions
out of the notebook's source (every top-level ``def`` whose name ends in ``_core``, and the
``first_seen`` helper) and run the same comparisons on small clustered data: a change to
either side that breaks the agreement fails here, without running the notebook.
"""

import ast
from pathlib import Path

import numpy as np
import pytest

from reidlib.pseudo_labels import (
    buc_labels,
    hct_labels,
    jaccard_distance,
    kmeans_labels,
    reciprocal_filter,
)
from reidlib.pseudo_labels.jaccard import (
    expand_sets,
    gaussian_weights,
    jaccard_from_weights,
    nearest_neighbours,
    query_expansion,
    reciprocal_sets,
)

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "01a_pseudo_labels.py"
CORES = ("neighbours_core", "reciprocal_core", "expansion_core", "weights_core",
         "query_expansion_core", "jaccard_core", "kmeans_core", "buc_core", "hct_core",
         "smp_core")


@pytest.fixture(scope="module")
def nb():
    """The notebook's core functions, compiled from its source with numpy as ``np``."""
    tree = ast.parse(NOTEBOOK.read_text())
    wanted = [node for node in tree.body if isinstance(node, ast.FunctionDef)
              and (node.name.endswith("_core") or node.name == "first_seen")]
    namespace = {"np": np}
    exec(compile(ast.Module(body=wanted, type_ignores=[]), str(NOTEBOOK), "exec"), namespace)
    missing = [name for name in CORES if name not in namespace]
    assert not missing, f"the notebook no longer defines {missing}"
    return namespace


def blobs(n_ids=25, per_id=6, dim=16, spread=0.35, seed=0):
    """Unit rows around n_ids random centres: (features float64, ids)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_ids, dim))
    ids = np.repeat(np.arange(n_ids), per_id)
    x = centres[ids] + spread * rng.normal(size=(len(ids), dim))
    return x / np.linalg.norm(x, axis=1, keepdims=True), ids


@pytest.mark.parametrize("k1,k2", [(10, 6), (7, 3), (6, 8)])
def test_jaccard_steps_match_reidlib(nb, k1, k2):
    x, _ = blobs()
    dist, rank = nb["neighbours_core"](x)
    lib_dist, lib_rank = nearest_neighbours(x.astype(np.float32), max(k1, k2), "cosine")
    np.testing.assert_array_equal(rank[:, :max(k1, k2)], lib_rank)

    recip = nb["reciprocal_core"](rank[:, :k1])
    lib_recip = reciprocal_sets(lib_rank[:, :k1])
    np.testing.assert_array_equal(recip, lib_recip.toarray())

    half = int(np.around(k1 / 2))
    expanded = nb["expansion_core"](recip, nb["reciprocal_core"](rank[:, :half + 1]))
    lib_expanded = expand_sets(lib_recip, reciprocal_sets(lib_rank[:, :half + 1]))
    np.testing.assert_array_equal(expanded, lib_expanded.toarray())
    assert (expanded.sum(1) > recip.sum(1)).any(), "the data should exercise the expansion"

    v = nb["weights_core"](dist, expanded)
    lib_v = gaussian_weights(x.astype(np.float32), lib_expanded, lib_rank, lib_dist)
    np.testing.assert_allclose(v, lib_v.toarray(), rtol=1e-5, atol=1e-7)

    v_qe = nb["query_expansion_core"](v, rank[:, :k2])
    lib_v_qe = query_expansion(lib_v, lib_rank[:, :k2])
    np.testing.assert_allclose(v_qe, lib_v_qe.toarray(), rtol=1e-5, atol=1e-7)

    d = nb["jaccard_core"](v_qe)
    stored = jaccard_from_weights(lib_v_qe).tocoo()
    np.testing.assert_allclose(d[stored.row, stored.col], stored.data, atol=1e-6)
    np.testing.assert_allclose(d, jaccard_distance(x, k1=k1, k2=k2, dense=True,
                                                   progress=False), atol=1e-6)


def test_kmeans_core_matches_faiss_from_the_same_start(nb):
    x, ids = blobs(n_ids=20, spread=0.5, seed=1)
    k = 20
    start = x[np.random.default_rng(0).choice(len(x), k, replace=False)]
    for iterations in (1, 5, 20):
        np.testing.assert_array_equal(nb["kmeans_core"](x, start, iterations),
                                      kmeans_labels(x, k, niter=iterations, init=start))


def test_kmeans_init_is_checked():
    x, _ = blobs()
    with pytest.raises(ValueError, match="init must be"):
        kmeans_labels(x, 5, init=x[:4])


@pytest.mark.parametrize("lam", [0.0, 0.005, 0.05])
def test_buc_core_matches_reidlib(nb, lam):
    x, ids = blobs(spread=0.5, seed=2)
    for n_clusters in (25, 10):
        np.testing.assert_array_equal(nb["buc_core"](x, n_clusters, lam),
                                      buc_labels(x, n_clusters=n_clusters, diversity=lam))


def test_hct_core_matches_reidlib(nb):
    x, _ = blobs(spread=0.5, seed=3)
    for n_clusters in (40, 25, 5):
        np.testing.assert_array_equal(nb["hct_core"](x, n_clusters),
                                      hct_labels(x, n_clusters=n_clusters))


@pytest.mark.parametrize("k", [1, 3, 5])
def test_smp_core_matches_reidlib(nb, k):
    x, ids = blobs(spread=0.6, seed=4)
    labels = hct_labels(x, n_clusters=25)
    labels[::17] = -1  # outliers confirm nobody
    expected = reciprocal_filter(x, labels, k=k)
    assert (expected == -1).sum() > (labels == -1).sum(), "the filter should drop something"
    np.testing.assert_array_equal(nb["smp_core"](x, labels, k), expected)


def test_first_seen_numbers_by_first_appearance(nb):
    np.testing.assert_array_equal(nb["first_seen"](np.array([7, 7, 3, 9, 3, 7])),
                                  [0, 0, 1, 2, 1, 0])
