"""Public checks of q5, SpCL's hybrid targets (students run grader.check("q5"))."""

import torch
from otter.test_files import test_case

OK_FORMAT = False
name = "q5"

HINT = (
    "Hint: clusters = torch.unique(labels[labels >= 0]) lists the cluster ids in increasing "
    "order; stack features[labels == c].mean(dim=0) for each, then features[labels < 0] (the "
    "outliers, in row order). classes[labels == c] = the cluster's position; the outliers get "
    "C, C + 1, ... in row order."
)

FEATURES = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]], dtype=torch.float64)


def _targets(function, features, labels, what):
    assert callable(function), "define a function called hybrid_targets (run its cell first)"
    got = function(features.clone(), labels)
    assert got is not None, "hybrid_targets returned None: did you forget the return?"
    assert isinstance(got, tuple) and len(got) == 2, (
        f"hybrid_targets({what}) should return a tuple (targets, classes), got {type(got)}"
    )
    targets, classes = got
    assert isinstance(targets, torch.Tensor) and isinstance(classes, torch.Tensor), (
        f"hybrid_targets({what}) should return two torch tensors, got {type(targets)} and "
        f"{type(classes)}"
    )
    return targets, classes


@test_case(name="q5 - worked example", failure_message=HINT)
def worked_example(hybrid_targets):
    targets, classes = _targets(hybrid_targets, FEATURES, [7, -1, 7], "the 3-image example")
    expected = torch.tensor([[0.8, 0.4], [0.0, 1.0]], dtype=torch.float64)
    assert targets.shape == (2, 2) and torch.allclose(targets.double(), expected), (
        f"hybrid_targets(the 3-image example) returned targets {targets.tolist()}, expected "
        "[[0.8, 0.4], [0.0, 1.0]]: cluster 7's mean (not re-normalised), then outlier 1's own "
        "feature"
    )
    assert classes.tolist() == [0, 1, 0], (
        f"hybrid_targets(the 3-image example) returned classes {classes.tolist()}, expected "
        "[0, 1, 0]: both members of cluster 7 point at target 0, the outlier at target 1"
    )


@test_case(name="q5 - clusters in id order, outliers in row order", failure_message=HINT)
def order(hybrid_targets):
    features = torch.arange(12, dtype=torch.float64).reshape(6, 2)
    labels = torch.tensor([5, -1, 2, 5, -1, 2])
    targets, classes = _targets(hybrid_targets, features, labels, "ids 5, -1, 2, 5, -1, 2")
    expected = torch.tensor([[7.0, 8.0], [3.0, 4.0], [2.0, 3.0], [8.0, 9.0]],
                            dtype=torch.float64)
    assert targets.shape == (4, 2) and torch.allclose(targets.double(), expected), (
        f"returned targets {targets.tolist()}, expected {expected.tolist()}: cluster 2 (rows 2 "
        "and 5) comes before cluster 5 (rows 0 and 3), then outliers 1 and 4"
    )
    assert classes.tolist() == [1, 2, 0, 1, 3, 0], (
        f"returned classes {classes.tolist()}, expected [1, 2, 0, 1, 3, 0]"
    )
