"""Hard pseudo-labels from clustering (survey §3.1).

Two clustering flavours of §3.1: K-means, which needs the number of identities k up front
(PUL [55]; "very sensitive to the k value"), and DBSCAN, which finds the number itself and
leaves low-density images out as outliers (label -1), as in DSCE [80], SSG [56], SpCL [119]
and Cluster Contrast, usually on the k-reciprocal Jaccard distance
(:func:`reidlib.pseudo_labels.jaccard_distance`). Both wrap well-kept libraries:
scikit-learn's DBSCAN and faiss's K-means.
"""

from __future__ import annotations

import numpy as np
from sklearn.cluster import DBSCAN

from reidlib._faiss import faiss
from reidlib.checks import distance_matrix, features_2d, int_in_range, real_in_range
from reidlib.pseudo_labels.jaccard import jaccard_distance


def dbscan_labels(dist, eps: float = 0.6, min_samples: int = 4) -> np.ndarray:
    """DBSCAN pseudo-labels on a precomputed (N, N) distance (survey §3.1).

    Args:
        dist: dense (N, N) array, or a scipy.sparse matrix whose absent entries mean "not a
            neighbour" (the form :func:`jaccard_distance` returns).
        eps: neighbourhood radius (0.6 on the Jaccard distance in SpCL / Cluster Contrast).
        min_samples: neighbours (the point itself included) that make a core point.

    Returns:
        (N,) int64 cluster ids 0..C-1, and -1 for outliers.
    """
    dist = distance_matrix(dist)
    eps = real_in_range(eps, "eps", lo=0.0, lo_open=True)
    min_samples = int_in_range(min_samples, "min_samples", 1)
    model = DBSCAN(eps=eps, min_samples=min_samples, metric="precomputed")
    return model.fit_predict(dist).astype(np.int64)


def kmeans_labels(
    features, k: int, seed: int = 0, niter: int = 20, nredo: int = 1, init=None
) -> np.ndarray:
    """K-means pseudo-labels with faiss (survey §3.1, PUL [55]): every sample gets the id of
    its nearest of ``k`` centroids, so there are no outliers.

    Args:
        features: (N, D) float array or tensor (copied to the CPU as float32).
        k: number of clusters, 1 <= k <= N. faiss subsamples to 256 points per centroid
            when N > 256 k, for speed.
        seed: random seed of the centroid initialisation (same seed, same labels).
        niter: K-means iterations.
        nredo: independent runs, the one with the lowest within-cluster error is kept
            (K-means often stops in a local optimum that splits one identity and merges two).
        init: optional (k, D) starting centroids instead of faiss's random pick of k rows
            (then ``seed`` and ``nredo`` play no part). Each of the ``niter`` Lloyd steps
            assigns every row to its nearest centroid (squared Euclidean distance) and moves
            each centroid to the mean of its rows; faiss re-seeds a centroid that lost all
            its rows by splitting a large cluster.

    Returns:
        (N,) int64 cluster ids in 0..k-1.
    """
    x = features_2d(features, dtype=np.float32)
    k = int_in_range(k, "k", 1, len(x), hi_name="N")
    niter = int_in_range(niter, "niter", 1)
    nredo = int_in_range(nredo, "nredo", 1)
    # min_points_per_centroid=1: re-id has few images per identity (k near N / 10), which
    # faiss would otherwise report with a warning on every call; it changes nothing else
    km = faiss.Kmeans(
        x.shape[1], k, niter=niter, nredo=nredo, seed=int(seed), verbose=False,
        min_points_per_centroid=1,
    )
    if init is None:
        km.train(x)
    else:
        start = features_2d(init, dtype=np.float32)
        if start.shape != (k, x.shape[1]):
            raise ValueError(f"init must be (k, D) = ({k}, {x.shape[1]}) centroids, got "
                             f"{start.shape}")
        km.train(x, init_centroids=start)
    _, labels = km.index.search(x, 1)
    return labels.ravel().astype(np.int64)


def jaccard_dbscan(k1: int = 30, k2: int = 6, eps: float = 0.6, min_samples: int = 4,
                   search: str = "faiss"):
    """``features -> labels``: DBSCAN on the k-reciprocal Jaccard distance (survey §3.1).

    The clustering step of SSG / SpCL / Cluster Contrast as one callable, for the training
    loops (:func:`reidlib.pseudo_labels.pseudo_label_rounds`,
    :func:`reidlib.training.fit`). Defaults: Cluster Contrast's
    Market-1501 recipe (k1 = 30, k2 = 6, eps = 0.6, min_samples = 4); k1 and k2 mean what
    they mean there (the image itself counted, see :func:`jaccard_distance`). Only the pairs
    within eps are kept from the distance: DBSCAN reads no others, so the clusters are the
    same and the matrix is ~100x smaller.
    """
    def cluster(features) -> np.ndarray:
        dist = jaccard_distance(features, k1=k1, k2=k2, search=search, progress=False,
                                max_distance=eps)
        return dbscan_labels(dist, eps=eps, min_samples=min_samples)

    cluster.__name__ = cluster.__qualname__ = (
        f"jaccard_dbscan(k1={k1}, k2={k2}, eps={eps}, min_samples={min_samples})")
    return cluster
