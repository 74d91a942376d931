"""Public checks of q3, SpCL's memory loss over source classes and target clusters (students
run grader.check("q3"))."""

import math
import numbers

import numpy as np
import torch
from otter.test_files import test_case

OK_FORMAT = False
name = "q3"

HINT = (
    "Hint: f = F.normalize(features, dim=1); the entries are, for each source id y, "
    "F.normalize(f[is_source & (labels == y)].mean(dim=0), dim=0); for each target cluster y, "
    "f[~is_source & (labels == y)].mean(dim=0) (not normalised again); and f[i] for each target "
    "row i labelled -1. Remember which entry is each row's positive; logits = "
    "F.normalize(embeddings, dim=1) @ torch.stack(entries).T / temperature; "
    "F.cross_entropy(logits, positive[rows])."
)

# The notebook's example: source class 4 (rows 0, 1), target cluster 0 (rows 2, 3), two
# un-clustered target rows (4, 5).
FEATURES = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 4.0], [0.6, -0.8], [-1.0, 0.0],
                         [0.0, -5.0]], dtype=torch.float64)
LABELS = np.array([4, 4, 0, 0, -1, -1])
IS_SOURCE = np.array([True, True, False, False, False, False])
R = 1 / math.sqrt(2)
ENTRIES = [(R, R), (0.6, 0.0), (-1.0, 0.0), (0.0, -1.0)]


def _loss(function, embeddings, rows, temperature, what, **inputs):
    assert callable(function), "define a function called source_hybrid_loss (run its cell first)"
    args = {"features": FEATURES.clone(), "labels": LABELS.copy(), "is_source": IS_SOURCE.copy(),
            **inputs}
    extra = () if temperature is None else (temperature,)
    got = function(torch.tensor(embeddings, dtype=torch.float64), torch.tensor(rows),
                   args["features"], args["labels"], args["is_source"], *extra)
    assert got is not None, "source_hybrid_loss returned None: did you forget the return?"
    if isinstance(got, torch.Tensor):
        assert got.numel() == 1, (
            f"source_hybrid_loss({what}) should return one number (the batch's loss), got a "
            f"tensor of shape {tuple(got.shape)}"
        )
    else:
        assert isinstance(got, numbers.Real) and not isinstance(got, bool), (
            f"source_hybrid_loss({what}) should return a torch scalar, got {got!r}"
        )
    return float(got)


def _expected(embedding, positive, tau, entries=ENTRIES):
    norm = math.hypot(*embedding)
    logits = [(e[0] * embedding[0] + e[1] * embedding[1]) / norm / tau for e in entries]
    top = max(logits)
    return top + math.log(sum(math.exp(v - top) for v in logits)) - logits[positive]


@test_case(name="q3 - the notebook's example, one target image of a cluster",
           failure_message=HINT)
def worked_example(source_hybrid_loss):
    got = _loss(source_hybrid_loss, [[1.0, 0.0]], [2], 0.5, "embedding (1, 0) of row 2, tau=0.5")
    expected = _expected((1.0, 0.0), 1, 0.5)
    assert abs(got - expected) < 1e-6, (
        f"source_hybrid_loss(embedding (1, 0) of row 2, the notebook's memory, temperature=0.5) "
        f"returned {got:.4f}, expected {expected:.4f}: the entries are (0.707, 0.707) (source "
        "class 4, normalised again), (0.6, 0) (target cluster 0, the plain mean of its unit "
        "features), (-1, 0) and (0, -1) (the two un-clustered target images, each its own "
        "entry); logits 1.414, 1.2, -2, 0 and the positive is cluster 0's"
    )


@test_case(name="q3 - a batch of a source image, a clustered and an un-clustered target",
           failure_message=HINT)
def batch(source_hybrid_loss):
    embeddings, rows = [[1.0, 0.0], [0.0, 3.0], [-2.0, 0.0]], [2, 0, 4]
    parts = [_expected((1.0, 0.0), 1, 0.5), _expected((0.0, 3.0), 0, 0.5),
             _expected((-2.0, 0.0), 2, 0.5)]
    got = _loss(source_hybrid_loss, embeddings, rows, 0.5, "three embeddings of rows 2, 0, 4")
    expected = sum(parts) / 3
    assert abs(got - expected) < 1e-6, (
        f"source_hybrid_loss((1, 0), (0, 3), (-2, 0) of rows 2, 0, 4, temperature=0.5) returned "
        f"{got:.4f}, expected {expected:.4f}, the mean of {parts[0]:.4f} (row 2, target cluster "
        f"0), {parts[1]:.4f} (row 0, positive: source class 4's centroid) and {parts[2]:.4f} "
        "(row 4, un-clustered: its own entry is its positive)"
    )


@test_case(name="q3 - the temperature divides; 0.05 by default", failure_message=HINT)
def temperature(source_hybrid_loss):
    for tau in (0.05, None):
        got = _loss(source_hybrid_loss, [[1.0, 0.0]], [2], tau,
                    f"embedding (1, 0) of row 2, temperature={tau or 'default'}")
        expected = _expected((1.0, 0.0), 1, 0.05)
        assert abs(got - expected) < 1e-6 * max(1.0, expected), (
            f"source_hybrid_loss(embedding (1, 0) of row 2, "
            f"temperature={tau or 'not given'}) returned {got:.4f}, expected {expected:.4f}: "
            "the logits are the cosines divided by the temperature, 0.05 unless given"
        )
