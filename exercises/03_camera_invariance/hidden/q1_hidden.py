"""Hidden checks of q1 (instructors; exercises/grade.py): CAP's proxies against
reidlib.camera.cap.camera_proxies and against a loop over the (camera, cluster) pairs."""

import numpy as np
import torch
from otter.test_files import test_case

from reidlib.camera.cap import camera_proxies as reference

OK_FORMAT = False
name = "q1_hidden"


def _proxies(function, features, labels, camids):
    assert callable(function), "define a function called camera_proxies"
    got = function(features, labels, camids)
    assert isinstance(got, tuple | list) and len(got) == 3, (
        f"expected a tuple (proxies, clusters, cameras), got {got!r}"
    )
    proxies, clusters, cameras = got
    assert isinstance(proxies, torch.Tensor) and proxies.ndim == 2, (
        f"expected a (P, D) tensor of proxies, got {proxies!r}"
    )
    clusters, cameras = (torch.as_tensor(v).cpu() for v in (clusters, cameras))
    assert clusters.shape == cameras.shape == (len(proxies),), (
        f"expected one cluster id and one camera id per proxy ({len(proxies)}), got "
        f"{clusters!r}, {cameras!r}"
    )
    return proxies.detach().double().cpu(), clusters.tolist(), cameras.tolist()


def _loop(features, labels, camids):
    """One proxy per sorted (camera, cluster) pair: the unit mean of its unit features."""
    x = np.asarray(features, dtype=float)
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    pairs = sorted({(int(c), int(y)) for c, y in zip(camids, labels, strict=True) if y >= 0})
    proxies = []
    for c, y in pairs:
        rows = [i for i in range(len(x)) if labels[i] == y and camids[i] == c]
        mean = unit[rows].mean(axis=0)
        proxies.append(mean / np.linalg.norm(mean))
    return np.array(proxies), [y for _, y in pairs], [c for c, _ in pairs]


def _random_case(rng):
    n, d = int(rng.integers(1, 40)), int(rng.integers(2, 7))
    cameras = rng.choice([3, 5, 9, 12], size=int(rng.integers(1, 5)), replace=False)
    ids = rng.choice(np.arange(-1, 60), size=int(rng.integers(1, 8)), replace=False)
    labels = rng.choice(ids, size=n)
    labels[0] = abs(int(ids.max())) + 1  # at least one clustered image
    camids = rng.choice(cameras, size=n)
    features = rng.normal(size=(n, d)) * rng.uniform(0.1, 20, size=(n, 1))
    return features, labels, camids


@test_case(name="q1_hidden - random sets against a loop", hidden=True)
def against_loop(camera_proxies):
    rng = np.random.default_rng(60)
    for _ in range(30):
        features, labels, camids = _random_case(rng)
        proxies, clusters, cameras = _proxies(camera_proxies, torch.as_tensor(features),
                                              labels.copy(), camids.copy())
        want, want_clusters, want_cameras = _loop(features, labels, camids)
        assert (cameras, clusters) == (want_cameras, want_clusters), (
            f"camera_proxies(labels={labels.tolist()}, camids={camids.tolist()}) returned "
            f"cameras {cameras} and clusters {clusters}, expected {want_cameras} and "
            f"{want_clusters} (camera ids and cluster ids as given, sorted by camera then "
            "cluster)"
        )
        assert np.allclose(proxies.numpy(), want, atol=1e-6), (
            f"camera_proxies({len(labels)} random features) returned proxies that differ from "
            f"the unit means of the unit features by up to "
            f"{np.abs(proxies.numpy() - want).max():.2g}"
        )


@test_case(name="q1_hidden - the proxies of reidlib's CAP", hidden=True)
def against_reidlib(camera_proxies):
    gen = torch.Generator().manual_seed(61)
    for n, clusters_n, cams in ((50, 6, 3), (200, 20, 6), (9, 2, 5)):
        features = torch.randn(n, 16, generator=gen)
        labels = (torch.randint(-1, clusters_n, (n,), generator=gen) * 7).numpy()
        labels[labels < 0] = -1
        labels[0] = 70
        camids = torch.randint(0, cams, (n,), generator=gen).numpy() * 2 + 1
        want, _, want_cluster, want_camera = reference(features, labels, camids)
        ids = np.unique(labels[labels >= 0])  # reidlib numbers the clusters 0..C-1
        proxies, clusters, cameras = _proxies(camera_proxies, features.clone(), labels, camids)
        assert (clusters, cameras) == (ids[want_cluster.numpy()].tolist(), want_camera.tolist()), (
            f"camera_proxies({n} random features, {len(ids)} clusters, cameras "
            f"{sorted(set(camids.tolist()))}) returned other (cluster, camera) pairs than "
            "reidlib's CAP memory, or another order"
        )
        assert torch.allclose(proxies, want.double(), atol=1e-5), (
            f"camera_proxies({n} random features) differs from reidlib's proxies by up to "
            f"{(proxies - want.double()).abs().max():.2g}"
        )


@test_case(name="q1_hidden - float32 features, numpy ids", hidden=True)
def dtypes(camera_proxies):
    features = torch.tensor([[3.0, 4.0], [6.0, 8.0], [0.0, 1.0]])
    proxies, clusters, cameras = _proxies(camera_proxies, features, np.array([5, 5, -1]),
                                          np.array([2, 2, 2]))
    assert (clusters, cameras) == ([5], [2]) and torch.allclose(
        proxies, torch.tensor([[0.6, 0.8]], dtype=torch.float64), atol=1e-6), (
        f"camera_proxies((3, 4) and (6, 8) in cluster 5, camera 2, an outlier) returned "
        f"{proxies.tolist()}, {clusters}, {cameras}, expected [[0.6, 0.8]], [5], [2]"
    )


@test_case(name="q1_hidden - inputs left unchanged", hidden=True)
def inputs_unchanged(camera_proxies):
    features = torch.tensor([[3.0, 4.0], [0.0, 2.0], [5.0, 0.0]])
    labels, camids = np.array([1, 1, -1]), np.array([4, 4, 0])
    _proxies(camera_proxies, features, labels, camids)
    assert torch.equal(features, torch.tensor([[3.0, 4.0], [0.0, 2.0], [5.0, 0.0]])) and \
        labels.tolist() == [1, 1, -1] and camids.tolist() == [4, 4, 0], (
            "camera_proxies changed the features, labels or camids it was given (normalise "
            "into a new tensor, not in place)"
        )
