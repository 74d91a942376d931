"""Public checks of q3, CAP's inter-camera loss (students run grader.check("q3"))."""

import math
import numbers

import torch
from otter.test_files import test_case

OK_FORMAT = False
name = "q3"

HINT = (
    "Hint: logits = F.normalize(embeddings, dim=1) @ proxies.T / temperature; positive = "
    "clusters[:, None] == proxy_cluster[None, :]; the hard negatives are the top-k entries of "
    "logits.detach().masked_fill(positive, -inf) (topk(min(k, P)).indices, scattered into a "
    "mask; the -inf ones are positives anyway); each sample's loss is logsumexp over positives "
    "and hard negatives minus the mean logit of its positives; then the mean per camera, "
    "summed over the cameras."
)

# The notebook's example: proxies of clusters 0, 0, 1, 2, 1.
PROXIES = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0], [0.8, -0.6], [-1.0, 0.0]],
                       dtype=torch.float64)
PROXY_CLUSTER = torch.tensor([0, 0, 1, 2, 1])


def _lse(values):
    top = max(values)
    return top + math.log(sum(math.exp(v - top) for v in values))


def _loss(function, args, what):
    """The student's loss as a float, checked to be a scalar."""
    assert callable(function), "define a function called inter_camera_loss (run its cell first)"
    got = function(*args)
    assert got is not None, "inter_camera_loss returned None: did you forget the return?"
    if isinstance(got, torch.Tensor):
        assert got.numel() == 1, (
            f"inter_camera_loss({what}) should return one number (the batch's loss), got a "
            f"tensor of shape {tuple(got.shape)}"
        )
        return float(got.detach())
    assert isinstance(got, numbers.Real) and not isinstance(got, bool), (
        f"inter_camera_loss({what}) should return a torch scalar, got {got!r}"
    )
    return float(got)


def _expect(function, embeddings, clusters, camids, temperature, k, what, expected, why):
    args = (embeddings, PROXIES.clone(), PROXY_CLUSTER.clone(), torch.tensor(clusters),
            torch.tensor(camids), temperature, k)
    got = _loss(function, args, what)
    assert abs(got - expected) < 1e-6, (
        f"inter_camera_loss({what}) returned {got:.4f}, expected {expected:.4f} ({why})"
    )


@test_case(name="q3 - one embedding: positives and k hard negatives", failure_message=HINT)
def worked_example(inter_camera_loss):
    x = torch.tensor([[0.6, 0.8]], dtype=torch.float64)
    what = "(0.6, 0.8) of cluster 0, camera 0, the notebook's five proxies, temperature=0.5"
    _expect(inter_camera_loss, x, [0], [0], 0.5, 1, what + ", k=1",
            _lse([1.2, 2.0, 1.6]) - 1.6,
            "logits 1.2 and 2 for the positives (1, 0) and (0.6, 0.8), 1.6 for the hardest "
            "negative (0, 1): log(e^1.2 + e^2 + e^1.6) - (1.2 + 2) / 2")
    _expect(inter_camera_loss, x, [0], [0], 0.5, 2, what + ", k=2",
            _lse([1.2, 2.0, 1.6, 0.0]) - 1.6,
            "with k = 2 the negative (0.8, -0.6), logit 0, joins the softmax; (-1, 0) does not")
    _expect(inter_camera_loss, 5 * x, [0], [0], 0.5, 50, what + " (times 5), k=50",
            _lse([1.2, 2.0, 1.6, 0.0, -1.2]) - 1.6,
            "the embedding normalised first; fewer than k negatives: all three of them")


@test_case(name="q3 - a batch: the mean per camera, summed over cameras", failure_message=HINT)
def batch(inter_camera_loss):
    x = torch.tensor([[0.6, 0.8], [0.0, 2.0], [1.0, 0.0]], dtype=torch.float64)
    first = _lse([1.2, 2.0, 1.6]) - 1.6  # cluster 0, as in the first case
    second = _lse([2.0, 0.0, 1.6]) - 1.0  # (0, 1) of cluster 1: positives (0, 1) and (-1, 0)
    third = _lse([2.0, 1.2, 1.6]) - 1.6  # (1, 0) of cluster 0: hardest negative (0.8, -0.6)
    _expect(inter_camera_loss, x, [0, 1, 0], [0, 0, 3], 0.5, 1,
            "(0.6, 0.8) and (0, 2) of camera 0 in clusters 0 and 1, (1, 0) of camera 3 in "
            "cluster 0, temperature=0.5, k=1", (first + second) / 2 + third,
            f"camera 0's mean ({first:.4f} + {second:.4f}) / 2 plus camera 3's {third:.4f}; "
            "(0, 2)'s positives are (0, 1) and (-1, 0) (logits 2 and 0), its hardest negative "
            "(0.6, 0.8) (logit 1.6)")
