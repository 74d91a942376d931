"""Public checks of q5, IICS's cross-camera distance (students run grader.check("q5"))."""

import torch
from otter.test_files import test_case

OK_FORMAT = False
name = "q5"

HINT = (
    "Hint: x = F.normalize(features, dim=1) gives the cosines x @ x.T; "
    "torch.minimum(scores[:, None, :], scores[None, :, :]).sum(dim=2) is the (N, N) matrix of "
    "sum_k min(s_ik, s_jk) (torch.maximum for the max); cams[:, None] != cams[None, :] marks the "
    "cross-camera pairs (cams = torch.as_tensor(np.asarray(camids)))."
)

# The notebook's example.
FEATURES = torch.tensor([[1.0, 0.0], [3.0, 4.0], [0.0, 1.0]], dtype=torch.float64)
SCORES = torch.tensor([[0.5, 0.5, 0.0], [0.5, 0.3, 0.2], [0.0, 0.2, 0.8]], dtype=torch.float64)


def _distance(function, features, scores, camids, mix, what):
    assert callable(function), "define a function called iics_distance (run its cell first)"
    got = function(features, scores, camids, mix)
    assert got is not None, "iics_distance returned None: did you forget the return?"
    n = len(features)
    assert isinstance(got, torch.Tensor) and got.shape == (n, n), (
        f"iics_distance({what}) should return an ({n}, {n}) torch tensor, got {got!r}"
    )
    return got.detach().double()


def _show(matrix):
    return [[round(v, 4) for v in row] for row in matrix.tolist()]


@test_case(name="q5 - the notebook's example", failure_message=HINT)
def worked_example(iics_distance):
    what = "the notebook's three images of cameras [0, 1, 0], mix=0.5"
    got = _distance(iics_distance, FEATURES.clone(), SCORES.clone(), [0, 1, 0], 0.5, what)
    d01, d12 = 1 - 0.6 - 0.5 * 0.8 / 1.2, 1 - 0.8 - 0.5 * 0.4 / 1.6
    expected = torch.tensor([[0.0, d01, 1.0], [d01, 0.0, d12], [1.0, d12, 0.0]],
                            dtype=torch.float64)
    assert torch.allclose(got, expected, atol=1e-6), (
        f"iics_distance({what}) returned {_show(got)}, expected {_show(expected)}: "
        "d01 = 1 - cos 0.6 - 0.5 * J, J = (0.5 + 0.3 + 0) / (0.5 + 0.5 + 0.2); images 0 and 2 "
        "share camera 0, so their distance has no score term (1 - cos 0 = 1)"
    )


@test_case(name="q5 - mix=0 is the cosine distance", failure_message=HINT)
def no_mix(iics_distance):
    gen = torch.Generator().manual_seed(50)
    features = 3 * torch.randn(6, 4, generator=gen, dtype=torch.float64)
    scores = torch.rand(6, 5, generator=gen, dtype=torch.float64)
    camids = torch.tensor([0, 1, 2, 0, 1, 2])
    got = _distance(iics_distance, features, scores, camids, 0.0, "6 random images, mix=0")
    unit = features / features.norm(dim=1, keepdim=True)
    expected = 1 - unit @ unit.T
    assert torch.allclose(got, expected, atol=1e-6), (
        f"iics_distance(6 random images, mix=0) returned {_show(got)}, expected 1 - cos "
        f"{_show(expected)} (normalise the features first)"
    )
