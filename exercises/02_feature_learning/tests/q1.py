"""Public checks of q1, batch-hard mining (students run grader.check("q1"))."""

import numpy as np
from otter.test_files import test_case

OK_FORMAT = False
name = "q1"

HINT = (
    "Hint: same = labels[:, None] == labels[None, :] marks the pairs of one identity; leave the "
    "diagonal out of the positives (np.eye). np.where(mask, dist, -np.inf).argmax(axis=1) gives "
    "the farthest entry of each row within a mask, np.where(mask, dist, np.inf).argmin(axis=1) "
    "the closest; set the positive to -1 where a row's mask is empty."
)

# Five images on a line (the notebook's example); dist[p, q] = |position p - position q|.
POSITIONS = np.array([0.0, 2.0, 3.0, 5.0, 6.5])
LABELS = np.array([1, 1, 2, 1, 5])


def _line(positions):
    positions = np.asarray(positions, dtype=float)
    return np.abs(positions[:, None] - positions[None, :])


def _mine(function, dist, labels, what):
    """The student's (positives, negatives), checked to be two integer arrays of length B."""
    assert callable(function), "define a function called batch_hard_mining (run its cell first)"
    got = function(dist, labels)
    assert got is not None, "batch_hard_mining returned None: did you forget the return?"
    ok = isinstance(got, tuple | list) and len(got) == 2
    assert ok, (
        f"batch_hard_mining({what}) should return a tuple (positives, negatives), got {got!r}"
    )
    out = []
    for part, array in zip(("positives", "negatives"), got, strict=True):
        array = np.asarray(array)
        assert array.shape == (len(labels),) and np.issubdtype(array.dtype, np.integer), (
            f"batch_hard_mining({what}): {part} should be an integer numpy array of length "
            f"{len(labels)} (one index per anchor), got {array!r}"
        )
        out.append(array.tolist())
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


def _expect(function, dist, labels, what, expected, why=""):
    positives, negatives = _mine(function, dist, labels, what)
    for part, got, want in (("positives", positives, expected[0]),
                            ("negatives", negatives, expected[1])):
        wrong = [a for a in range(len(labels)) if got[a] != want[a]]
        assert not wrong, (
            f"batch_hard_mining({what}) returned {part} {got}, expected {want} (first wrong "
            f"anchor: {wrong[0]}){why}"
        )


@test_case(name="q1 - five images on a line", failure_message=HINT)
def worked_example(batch_hard_mining):
    _expect(
        batch_hard_mining, _line(POSITIONS), LABELS, "the five images on a line",
        ([3, 3, -1, 0, -1], [2, 2, 1, 4, 3]),
        ". Anchor 2 (label 2) and anchor 4 (label 5) have no other image of their identity, so "
        "their positive is -1; an anchor is never its own positive",
    )


@test_case(name="q1 - ties go to the lower index", failure_message=HINT)
def ties(batch_hard_mining):
    # Anchor 0 at 0 has positives at +1 and -1 (images 1 and 2) and negatives at +2 and -2
    # (images 3 and 4): both ties go to the lower index, 1 and 3.
    _expect(
        batch_hard_mining, _line([0.0, 1.0, -1.0, 2.0, -2.0]), np.array([0, 0, 0, 1, 1]),
        "images at 0, 1, -1, 2, -2 with labels 0, 0, 0, 1, 1",
        ([1, 2, 1, 4, 3], [3, 3, 4, 1, 2]),
        ". Anchor 0's positives 1 and 2 are both at distance 1 and its negatives 3 and 4 both "
        "at distance 2: on ties the lower index wins",
    )


@test_case(name="q1 - random batch against a loop", failure_message=HINT)
def random_batch(batch_hard_mining):
    rng = np.random.default_rng(30)
    points = rng.normal(size=(12, 4))
    dist = np.linalg.norm(points[:, None] - points[None, :], axis=-1)
    labels = np.repeat([4, 0, 9, 2], 3)  # P = 4 identities x K = 3 images
    _expect(batch_hard_mining, dist, labels, "a random 4 x 3 batch", _brute_force(dist, labels))


@test_case(name="q1 - inputs left unchanged", failure_message=HINT)
def inputs_unchanged(batch_hard_mining):
    dist, labels = _line(POSITIONS), LABELS.copy()
    _mine(batch_hard_mining, dist, labels, "the five images on a line")
    assert np.array_equal(dist, _line(POSITIONS)) and np.array_equal(labels, LABELS), (
        "batch_hard_mining changed the dist or labels it was given (e.g. np.fill_diagonal on "
        "dist): work on a copy or with masks"
    )
