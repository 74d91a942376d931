"""DBSCAN / K-means pseudo-labels (survey §3.1) on separable toy clusters."""

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.metrics import adjusted_rand_score, pairwise_distances

from reidlib.pseudo_labels import dbscan_labels, jaccard_dbscan, jaccard_distance, kmeans_labels


def blobs(per_blob=25, n_blobs=4, dim=8, seed=0):
    rng = np.random.default_rng(seed)
    centres = 20 * rng.normal(size=(n_blobs, dim))
    truth = np.repeat(np.arange(n_blobs), per_blob)
    return (centres[truth] + rng.normal(size=(len(truth), dim))).astype(np.float32), truth


def test_dbscan_on_euclidean_distance_finds_the_blobs_and_the_outlier():
    x, truth = blobs()
    x = np.vstack([x, 1000.0 * np.ones((1, x.shape[1]), dtype=np.float32)])  # a far stray
    labels = dbscan_labels(pairwise_distances(x), eps=5.0, min_samples=4)
    assert labels.dtype == np.int64 and labels.shape == (len(x),)
    assert labels[-1] == -1
    assert adjusted_rand_score(truth, labels[:-1]) == 1.0
    assert set(labels[:-1]) == {0, 1, 2, 3}


def test_dbscan_on_sparse_jaccard_matches_dense():
    x, truth = blobs(seed=1)
    sparse = jaccard_distance(x, k1=20, k2=6, progress=False)
    dense = jaccard_distance(x, k1=20, k2=6, dense=True, progress=False)
    a = dbscan_labels(sparse, eps=0.6, min_samples=4)
    b = dbscan_labels(dense, eps=0.6, min_samples=4)
    np.testing.assert_array_equal(a, b)  # absent sparse entries act as distance 1 > eps
    assert adjusted_rand_score(truth, a) == 1.0


def test_dbscan_min_samples_too_large_makes_everything_an_outlier():
    x, _ = blobs(per_blob=5)
    labels = dbscan_labels(pairwise_distances(x), eps=5.0, min_samples=6)
    np.testing.assert_array_equal(labels, -1)


def test_kmeans_finds_the_blobs_and_is_seeded():
    x, truth = blobs(seed=2)
    a = kmeans_labels(x, k=4, seed=3, nredo=10)
    assert a.dtype == np.int64 and a.shape == truth.shape and a.min() >= 0 and a.max() < 4
    assert adjusted_rand_score(truth, a) == 1.0
    np.testing.assert_array_equal(a, kmeans_labels(x, k=4, seed=3, nredo=10))


def test_kmeans_restarts_escape_a_local_optimum():
    x, truth = blobs(seed=4)  # with one run and seed 0, faiss splits a blob and merges two
    one_run = kmeans_labels(x, k=4, seed=0, nredo=1)
    assert adjusted_rand_score(truth, one_run) < 1.0
    assert adjusted_rand_score(truth, kmeans_labels(x, k=4, seed=0, nredo=10)) == 1.0


def test_kmeans_accepts_torch_tensors():
    torch = pytest.importorskip("torch")
    x, truth = blobs(seed=4)
    labels = kmeans_labels(torch.from_numpy(x), k=4, seed=0, nredo=10)
    assert adjusted_rand_score(truth, labels) == 1.0


@pytest.mark.parametrize(
    "dist, kwargs, match",
    [
        (np.zeros((3, 4)), {}, "square"),
        (np.zeros(4), {}, "square"),
        (-np.ones((3, 3)), {}, "non-negative"),
        (np.full((3, 3), np.nan), {}, "finite"),
        (np.zeros((3, 3)), {"eps": 0.0}, "eps"),
        (sp.csr_matrix((3, 3)), {"min_samples": 0}, "min_samples"),
    ],
)
def test_dbscan_rejects_bad_input(dist, kwargs, match):
    with pytest.raises(ValueError, match=match):
        dbscan_labels(dist, **kwargs)


@pytest.mark.parametrize(
    "x, k, match",
    [
        (np.zeros(5), 2, "2-D"),
        (np.zeros((5, 2)), 6, "k <= N"),
        (np.zeros((5, 2)), 0, "1 <= k"),
        (np.full((5, 2), np.inf), 2, "NaN or infinite"),
    ],
)
def test_kmeans_rejects_bad_input(x, k, match):
    with pytest.raises(ValueError, match=match):
        kmeans_labels(x, k)
    with pytest.raises(ValueError, match="nredo"):
        kmeans_labels(np.zeros((5, 2)), 2, nredo=0)


def test_jaccard_dbscan_is_dbscan_on_the_jaccard_distance():
    rng = np.random.default_rng(3)
    centres = rng.standard_normal((6, 16))
    x = (centres[np.repeat(np.arange(6), 8)] + 0.1 * rng.standard_normal((48, 16))).astype(
        np.float32)
    # k1 counts the image itself, as the reference code does: 6 = itself and 5 others
    cluster = jaccard_dbscan(k1=6, k2=2, eps=0.5, min_samples=3)
    expected = dbscan_labels(jaccard_distance(x, k1=6, k2=2, progress=False), eps=0.5,
                             min_samples=3)
    np.testing.assert_array_equal(cluster(x), expected)
    assert len(np.unique(expected[expected >= 0])) == 6
    assert "k1=6" in cluster.__name__
