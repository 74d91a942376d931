"""Public checks of q1, CAP's camera-aware proxies (students run grader.check("q1"))."""

import numpy as np
import torch
from otter.test_files import test_case

OK_FORMAT = False
name = "q1"

HINT = (
    "Hint: x = F.normalize(features, dim=1); the pairs are sorted({(c, y) for c, y in "
    "zip(camids, labels) if y >= 0}) (a tuple sorts by camera first); each proxy is "
    "F.normalize(x[(labels == y) & (camids == c)].mean(dim=0), dim=0), with labels and camids "
    "as tensors (torch.as_tensor(np.asarray(labels)))."
)

# The notebook's example: five images, one outlier.
FEATURES = torch.tensor([[3.0, 4.0], [0.0, 5.0], [2.0, 0.0], [1.0, 1.0], [-4.0, 3.0]],
                        dtype=torch.float64)
LABELS = np.array([7, 2, 7, -1, 7])
CAMIDS = np.array([0, 1, 0, 0, 1])


def _round(rows):
    return [[round(v, 4) for v in row] for row in rows]


def _proxies(function, features, labels, camids, what):
    """The student's (proxies, clusters, cameras) as lists, checked for types and shapes."""
    assert callable(function), "define a function called camera_proxies (run its cell first)"
    got = function(features, labels, camids)
    assert got is not None, "camera_proxies returned None: did you forget the return?"
    assert isinstance(got, tuple | list) and len(got) == 3, (
        f"camera_proxies({what}) should return a tuple (proxies, clusters, cameras), got {got!r}"
    )
    proxies, clusters, cameras = got
    assert isinstance(proxies, torch.Tensor) and proxies.ndim == 2 and \
        proxies.shape[1] == features.shape[1], (
            f"camera_proxies({what}): proxies should be a (P, {features.shape[1]}) torch "
            f"tensor, one row per (camera, cluster) pair, got {proxies!r}"
        )
    ids = []
    for part, values in (("clusters", clusters), ("cameras", cameras)):
        values = torch.as_tensor(values).cpu()
        assert values.shape == (len(proxies),) and not values.is_floating_point(), (
            f"camera_proxies({what}): {part} should be an integer tensor with one id per proxy "
            f"({len(proxies)}), got {values!r}"
        )
        ids.append(values.tolist())
    return proxies.detach().double().cpu().tolist(), ids[0], ids[1]


def _loop(features, labels, camids):
    """CAP's proxies with Python loops: (camera, cluster) pairs sorted, unit means of unit rows."""
    unit = [row / np.linalg.norm(row) for row in np.asarray(features, dtype=float)]
    labels, camids = np.asarray(labels).tolist(), np.asarray(camids).tolist()
    pairs = sorted({(c, y) for c, y in zip(camids, labels, strict=True) if y >= 0})
    proxies = []
    for c, y in pairs:
        mean = np.mean([u for u, yy, cc in zip(unit, labels, camids, strict=True)
                        if yy == y and cc == c], axis=0)
        proxies.append((mean / np.linalg.norm(mean)).tolist())
    return proxies, [int(y) for _, y in pairs], [int(c) for c, _ in pairs]


def _expect(function, features, labels, camids, what, why=""):
    proxies, clusters, cameras = _proxies(function, features, labels, camids, what)
    want_proxies, want_clusters, want_cameras = _loop(features, labels, camids)
    pairs = list(zip(cameras, clusters, strict=True))
    want_pairs = list(zip(want_cameras, want_clusters, strict=True))
    assert pairs == want_pairs, (
        f"camera_proxies({what}) returned the (camera, cluster) pairs {pairs}, expected "
        f"{want_pairs}: one proxy per pair holding a clustered image, ordered by camera, then "
        f"cluster, with the ids as given{why}"
    )
    close = np.allclose(proxies, want_proxies, atol=1e-6)
    assert close, (
        f"camera_proxies({what}) returned proxies {_round(proxies)}, expected "
        f"{_round(want_proxies)}: the mean of each pair's L2-normalised features, normalised "
        f"again{why}"
    )


@test_case(name="q1 - the notebook's example", failure_message=HINT)
def worked_example(camera_proxies):
    _expect(camera_proxies, FEATURES.clone(), LABELS.copy(), CAMIDS.copy(),
            "the notebook's five images",
            ". Expected proxies (0.894, 0.447) (camera 0, cluster 7: the mean of (0.6, 0.8) and "
            "(1, 0)), (0, 1) and (-0.8, 0.6); image 3 is an outlier")


@test_case(name="q1 - ids as given, sorted by camera then cluster", failure_message=HINT)
def order_and_ids(camera_proxies):
    # Camera 2 holds an outlier only; cluster 3 is seen by cameras 1 and 0, cluster 0 by 0.
    features = torch.tensor([[1.0, 2.0, 2.0], [2.0, 1.0, 0.0], [0.0, 0.0, 5.0],
                             [3.0, 0.0, 4.0], [0.0, 4.0, 3.0], [1.0, 1.0, 1.0]])
    labels = torch.tensor([3, 3, 3, 0, 0, -1])
    camids = [1, 1, 0, 0, 0, 2]
    _expect(camera_proxies, features, labels, camids,
            "labels [3, 3, 3, 0, 0, -1] (a tensor), cameras [1, 1, 0, 0, 0, 2] (a list)",
            ". Camera 0 holds clusters 0 and 3, camera 1 cluster 3, camera 2 nothing but an "
            "outlier: cameras [0, 0, 1], clusters [0, 3, 3]")


@test_case(name="q1 - proxies have length 1", failure_message=HINT)
def unit_length(camera_proxies):
    gen = torch.Generator().manual_seed(30)
    features = 10 * torch.randn(20, 6, generator=gen)  # long rows
    labels = np.arange(20) % 4
    camids = np.arange(20) % 3
    proxies, _, _ = _proxies(camera_proxies, features, labels, camids, "20 random features")
    norms = np.linalg.norm(proxies, axis=1)
    assert np.allclose(norms, 1.0, atol=1e-6), (
        f"camera_proxies(20 random features of length about 25) returned proxies of lengths "
        f"{np.round(norms, 3).tolist()}: normalise the features before the mean, and the mean "
        "again after it"
    )
