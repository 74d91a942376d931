"""Public checks of q1, temporal average pooling of frame features per tracklet (students run
grader.check("q1"))."""

import math

import numpy as np
import torch
from otter.test_files import test_case

OK_FORMAT = False
name = "q1"

HINT = (
    "Hint: ids, inverse = np.unique(tracklets, return_inverse=True) gives the sorted ids and "
    "each row's position among them; unit = F.normalize(features, dim=1); add the unit rows "
    "of each tracklet with unit.new_zeros(len(ids), D).index_add(0, torch.as_tensor(inverse), "
    "unit) (or a loop over the ids with unit[tracklets == t].mean(dim=0)), then F.normalize "
    "the result again, dim=1."
)

# The notebook's example: five frames of tracklets 7 and 2, rows interleaved.
FEATURES = torch.tensor([[3.0, 4.0], [2.0, 0.0], [0.0, 2.0], [0.0, -3.0], [5.0, 0.0]],
                        dtype=torch.float64)
TRACKLETS = np.array([7, 2, 7, 2, 2])


def _rounded(t):
    return [[round(v, 4) for v in row] for row in t.tolist()]


def _pool(function, features, tracklets, what):
    assert callable(function), (
        "define a function called temporal_average_pool (run its cell first)"
    )
    got = function(features, tracklets)
    assert got is not None, "temporal_average_pool returned None: did you forget the return?"
    expected = (len(np.unique(tracklets)), features.shape[1])
    assert isinstance(got, torch.Tensor) and tuple(got.shape) == expected, (
        f"temporal_average_pool({what}) should return a torch tensor of shape {expected} "
        f"(one row per tracklet), got {getattr(got, 'shape', got)!r}"
    )
    return got.detach().double().cpu()


def _expected(features, tracklets):
    """The normalised mean of the unit rows of each tracklet, with plain Python lists."""
    rows = []
    for t in sorted(set(tracklets.tolist())):
        unit = [[v / math.sqrt(sum(x * x for x in row)) for v in row]
                for row, owner in zip(features.tolist(), tracklets.tolist(), strict=True)
                if owner == t]
        mean = [sum(col) / len(unit) for col in zip(*unit, strict=True)]
        norm = math.sqrt(sum(v * v for v in mean))
        rows.append([v / norm for v in mean])
    return torch.tensor(rows, dtype=torch.float64)


@test_case(name="q1 - the notebook's example", failure_message=HINT)
def worked_example(temporal_average_pool):
    got = _pool(temporal_average_pool, FEATURES.clone(), TRACKLETS.copy(),
                "the notebook's five frames of tracklets [7, 2, 7, 2, 2]")
    expected = _expected(FEATURES, TRACKLETS)
    assert torch.allclose(got, expected, atol=1e-6), (
        f"temporal_average_pool(the notebook's example) returned {_rounded(got)}, expected "
        f"{_rounded(expected)}: row 0 is tracklet 2 (sorted ids), the normalised mean of the "
        "unit vectors (1, 0), (0, -1), (1, 0), i.e. (2, -1) / sqrt(5); row 1 is tracklet 7, "
        "the normalised mean of (0.6, 0.8) and (0, 1). Normalise each frame before the mean "
        "(a frame with a large norm must not dominate) and the mean after it"
    )


@test_case(name="q1 - many tracklets, rows in any order", failure_message=HINT)
def shuffled_rows(temporal_average_pool):
    gen = torch.Generator().manual_seed(50)
    features = torch.randn(12, 4, generator=gen, dtype=torch.float64) * \
        torch.linspace(0.5, 6.0, 12, dtype=torch.float64)[:, None]
    tracklets = np.array([40, 3, 17, 3, 40, 8, 17, 17, 3, 8, 40, 25])
    got = _pool(temporal_average_pool, features.clone(), tracklets.copy(),
                "12 frames of tracklets 3, 8, 17, 25, 40, shuffled")
    expected = _expected(features, tracklets)
    assert torch.allclose(got, expected, atol=1e-6), (
        "temporal_average_pool(12 frames of five tracklets, rows shuffled, frames of unequal "
        "norms) differs from the normalised mean of each tracklet's unit frames: row i must "
        "be the i-th smallest tracklet id (3, 8, 17, 25, 40), whatever the order of the rows"
    )
    norms = got.norm(dim=1)
    assert torch.allclose(norms, torch.ones_like(norms), atol=1e-6), (
        f"temporal_average_pool's rows have lengths {[round(v, 4) for v in norms.tolist()]}: "
        "normalise the mean again, so that cosine and Euclidean distances rank alike"
    )
