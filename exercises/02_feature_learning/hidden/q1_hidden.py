"""Hidden checks of q1 (instructors; exercises/grade.py): batch-hard mining against a loop over
every pair and against reidlib.training.losses.batch_hard_triplet_loss."""

import numpy as np
import torch
from otter.test_files import test_case

from reidlib.training.losses import batch_hard_triplet_loss

OK_FORMAT = False
name = "q1_hidden"


def _mine(function, dist, labels):
    assert callable(function), "define a function called batch_hard_mining"
    got = function(dist, labels)
    assert got is not None, "batch_hard_mining returned None"
    assert isinstance(got, tuple | list) and len(got) == 2, (
        f"expected a tuple (positives, negatives), got {got!r}"
    )
    out = []
    for array in got:
        array = np.asarray(array)
        assert array.shape == (len(labels),) and np.issubdtype(array.dtype, np.integer), (
            f"expected two integer arrays of length {len(labels)}, got {got!r}"
        )
        out.append(array)
    return out


def _brute_force(dist, labels):
    """Eq. 5's mining with Python loops: strict > and < keep the lower index on ties."""
    positives, negatives = [], []
    for a in range(len(labels)):
        best_p, best_n = -1, -1
        for j in range(len(labels)):
            if j != a and labels[j] == labels[a] and (best_p < 0 or dist[a, j] > dist[a, best_p]):
                best_p = j
            if labels[j] != labels[a] and (best_n < 0 or dist[a, j] < dist[a, best_n]):
                best_n = j
        positives.append(best_p)
        negatives.append(best_n)
    return positives, negatives


def _expect(function, dist, labels, what):
    expected = _brute_force(dist, labels)
    got = _mine(function, dist.copy(), labels.copy())
    for part, g, e in zip(("positives", "negatives"), got, expected, strict=True):
        assert g.tolist() == e, (
            f"batch_hard_mining({what}, labels={labels.tolist()}) returned {part} {g.tolist()}, "
            f"expected {e}"
        )


@test_case(name="q1_hidden - random batches against a loop", hidden=True)
def against_loop(batch_hard_mining):
    rng = np.random.default_rng(40)
    for _ in range(30):
        b = int(rng.integers(2, 20))
        labels = rng.integers(0, int(rng.integers(2, 6)), size=b)
        labels[:2] = [0, 1]  # at least two identities; some identities have one image only
        points = rng.normal(size=(b, int(rng.integers(1, 5))))
        dist = np.linalg.norm(points[:, None] - points[None, :], axis=-1)
        _expect(batch_hard_mining, dist, labels, f"{b} random points")


@test_case(name="q1_hidden - integer distances (many ties)", hidden=True)
def many_ties(batch_hard_mining):
    rng = np.random.default_rng(41)
    for _ in range(30):
        b = int(rng.integers(3, 15))
        labels = rng.integers(0, 3, size=b)
        labels[:2] = [0, 1]
        upper = rng.integers(0, 3, size=(b, b)).astype(float)
        dist = np.triu(upper, 1) + np.triu(upper, 1).T  # symmetric, zero diagonal, many ties
        _expect(batch_hard_mining, dist, labels, f"{b} images at integer distances 0-2")


@test_case(name="q1_hidden - duplicate images: the anchor is never its own positive", hidden=True)
def duplicates(batch_hard_mining):
    # Images 1 and 2 are the same picture (distance 0); image 1's only positive is image 2.
    dist = np.array([[0.0, 3.0, 3.0, 1.0],
                     [3.0, 0.0, 0.0, 2.0],
                     [3.0, 0.0, 0.0, 2.0],
                     [1.0, 2.0, 2.0, 0.0]])
    positives, _ = _mine(batch_hard_mining, dist.copy(), np.array([0, 1, 1, 0]))
    assert positives.tolist() == [3, 2, 1, 0], (
        f"batch_hard_mining(two identical images 1 and 2 of one identity) returned positives "
        f"{positives.tolist()}, expected [3, 2, 1, 0]: the anchor is left out of its positives "
        "even when another positive is at the same distance 0"
    )


@test_case(name="q1_hidden - the mined triplets give reidlib's batch-hard loss", hidden=True)
def against_reidlib(batch_hard_mining):
    rng = np.random.default_rng(42)
    for p, k in ((4, 2), (3, 4), (8, 3)):
        features = rng.normal(size=(p * k, 16))
        labels = rng.permutation(np.repeat(rng.choice(100, size=p, replace=False), k))
        dist = np.linalg.norm(features[:, None] - features[None, :], axis=-1)
        positives, negatives = _mine(batch_hard_mining, dist, labels)
        anchors = np.arange(p * k)
        gap = dist[anchors, positives] - dist[anchors, negatives]
        targets = torch.as_tensor(labels)
        for margin in (0.3, None):
            got = np.log1p(np.exp(gap)).mean() if margin is None else \
                np.maximum(margin + gap, 0).mean()
            expected = float(batch_hard_triplet_loss(torch.as_tensor(features), targets, margin))
            assert abs(got - expected) < 1e-4, (
                f"on a random {p} x {k} batch, the triplet loss of the mined triplets is "
                f"{got:.5f} (margin {margin}), but reidlib's batch_hard_triplet_loss gives "
                f"{expected:.5f}"
            )


@test_case(name="q1_hidden - inputs left unchanged", hidden=True)
def inputs(batch_hard_mining):
    dist = np.array([[0.0, 1.0, 4.0], [1.0, 0.0, 2.0], [4.0, 2.0, 0.0]])
    labels = np.array([3, 3, 8])
    positives, negatives = _mine(batch_hard_mining, dist, labels)
    assert np.array_equal(dist, [[0, 1, 4], [1, 0, 2], [4, 2, 0]]) and \
        labels.tolist() == [3, 3, 8], "batch_hard_mining changed the dist or labels it was given"
    assert positives.tolist() == [1, 0, -1] and negatives.tolist() == [2, 2, 1], (
        f"batch_hard_mining(3 images, labels [3, 3, 8]) returned {positives.tolist()}, "
        f"{negatives.tolist()}, expected [1, 0, -1], [2, 2, 1]"
    )
