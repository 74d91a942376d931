"""exercises/02_feature_learning: the otter checks, the student notebook and the instructor grader.

Shared tests: ExerciseChecks in tests/exercise_harness.py, given the wrong answers below.
Chapter 2's own: the failure messages, and the hand-made values of batch-hard mining, the
cluster contrast loss, the memory and the mean teacher checked against reidlib.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from exercise_harness import ExerciseChecks, check, load_exercise, load_module
from torch import nn

from reidlib.feature_learning.mean_teacher import ema_update as reference_ema
from reidlib.feature_learning.memory import ClusterMemory
from reidlib.feature_learning.memory import momentum_update as reference_momentum
from reidlib.training.losses import batch_hard_triplet_loss

QUESTIONS = {
    "q1": "batch_hard_mining",
    "q2": "cluster_contrast_loss",
    "q3": "momentum_update",
    "q4": "ema_update",
    "q5": "hybrid_targets",
    "q6": "soft_cross_entropy",
    "q7": "soft_triplet_loss",
}
EX = load_exercise("02_feature_learning", QUESTIONS, "ex02")
solutions = EX.solutions
public_q1 = load_module(EX.public("q1"), "exercises_02_public_q1")


# Plausible wrong answers. "sneaky" ones pass every public check: only hidden checks catch them.
def _masks(labels):
    labels = np.asarray(labels)
    same = labels[:, None] == labels[None, :]
    return same, ~np.eye(len(labels), dtype=bool)


def _mine_self_as_positive(dist, labels):
    same, _ = _masks(labels)  # the anchor is its own (distance 0) positive, as in the loss
    dist = np.asarray(dist, dtype=float)
    return (np.where(same, dist, -np.inf).argmax(axis=1),
            np.where(~same, dist, np.inf).argmin(axis=1))


def _mine_self_as_positive_but_minus_one(dist, labels):
    # Self included in the max, -1 for lone anchors: wrong only when another positive ties
    # with the anchor at distance 0 and has a higher index (a duplicate image).
    same, others = _masks(labels)
    positives, negatives = _mine_self_as_positive(dist, labels)
    positives[~(same & others).any(axis=1)] = -1
    return positives, negatives


def _mine_closest_positive(dist, labels):
    same, others = _masks(labels)
    dist = np.asarray(dist, dtype=float)
    positives = np.where(same & others, dist, np.inf).argmin(axis=1)
    positives[~(same & others).any(axis=1)] = -1
    return positives, np.where(~same, dist, np.inf).argmin(axis=1)


def _mine_negative_among_all(dist, labels):
    same, others = _masks(labels)
    positives, _ = solutions.batch_hard_mining(dist, labels)
    return positives, np.where(others, np.asarray(dist, dtype=float), np.inf).argmin(axis=1)


def _mine_zero_masking(dist, labels):
    same, others = _masks(labels)  # masked entries 0 instead of -inf: a lone anchor gets 0
    dist = np.asarray(dist, dtype=float)
    return (np.where(same & others, dist, 0.0).argmax(axis=1),
            np.where(~same, dist, np.inf).argmin(axis=1))


def _mine_fill_diagonal(dist, labels):
    same, others = _masks(labels)
    np.fill_diagonal(dist, -np.inf)  # changes the caller's array
    positives = np.where(same, dist, -np.inf).argmax(axis=1)
    positives[~(same & others).any(axis=1)] = -1
    return positives, np.where(~same, dist, np.inf).argmin(axis=1)


def _mine_ties_to_last(dist, labels):
    dist, labels = np.asarray(dist)[::-1, ::-1], np.asarray(labels)[::-1]
    positives, negatives = solutions.batch_hard_mining(dist, labels)
    last = len(labels) - 1
    return np.where(positives < 0, -1, last - positives)[::-1], (last - negatives)[::-1]


def _ccl_no_normalise(embedding, centroids, target, temperature):
    x = torch.atleast_2d(embedding)
    return F.cross_entropy(x @ centroids.T / temperature, torch.as_tensor(target).reshape(-1))


def _ccl_times_temperature(embedding, centroids, target, temperature):
    x = F.normalize(torch.atleast_2d(embedding), dim=1)
    return F.cross_entropy(x @ centroids.T * temperature, torch.as_tensor(target).reshape(-1))


def _ccl_sum(embedding, centroids, target, temperature):
    x = F.normalize(torch.atleast_2d(embedding), dim=1)
    return F.cross_entropy(x @ centroids.T / temperature, torch.as_tensor(target).reshape(-1),
                           reduction="sum")


def _ccl_positive_not_in_denominator(embedding, centroids, target, temperature):
    x = F.normalize(torch.atleast_2d(embedding), dim=1)
    logits = x @ centroids.T / temperature
    targets = torch.as_tensor(target).reshape(-1)
    own = F.one_hot(targets, logits.shape[1]).bool()
    others = logits.masked_fill(own, float("-inf")).logsumexp(dim=1)
    return (others - logits[own]).mean()


def _ccl_normalise_dim0(embedding, centroids, target, temperature):
    x = torch.atleast_2d(F.normalize(embedding, dim=0))  # right for one embedding only
    return F.cross_entropy(x @ centroids.T / temperature, torch.as_tensor(target).reshape(-1))


def _ccl_item(embedding, centroids, target, temperature):
    return torch.tensor(solutions.cluster_contrast_loss(embedding, centroids, target,
                                                        temperature).item())


def _ccl_normalise_in_place(embedding, centroids, target, temperature):
    x = torch.atleast_2d(embedding)
    x.div_(x.norm(dim=1, keepdim=True))  # changes the caller's tensor, breaks autograd
    return F.cross_entropy(x @ centroids.T / temperature, torch.as_tensor(target).reshape(-1))


def _rows(index, feature):
    rows = torch.as_tensor(index).reshape(-1).tolist()
    return rows, feature.reshape(len(rows), -1)


def _mu_no_normalise(memory, index, feature, momentum):
    memory = memory.clone()
    for row, f in zip(*_rows(index, feature), strict=True):
        memory[row] = momentum * memory[row] + (1 - momentum) * f
    return memory


def _mu_swapped(memory, index, feature, momentum):
    return solutions.momentum_update(memory, index, feature, 1 - momentum)


def _mu_vectorised(memory, index, feature, momentum):
    memory = memory.clone()
    rows, features = _rows(index, feature)  # a repeated row: the last write wins, from the old
    memory[rows] = F.normalize(momentum * memory[rows] + (1 - momentum) * features, dim=1)
    return memory


def _mu_in_place(memory, index, feature, momentum):
    for row, f in zip(*_rows(index, feature), strict=True):
        memory[row] = F.normalize(momentum * memory[row] + (1 - momentum) * f, dim=0)
    return memory


def _mu_normalise_at_end(memory, index, feature, momentum):
    rows, _ = _rows(index, feature)
    memory = _mu_no_normalise(memory, index, feature, momentum)
    memory[rows] = F.normalize(memory[rows], dim=1)
    return memory


def _mu_list_or_int_only(memory, index, feature, momentum):
    rows = index if isinstance(index, list) else [index]  # a tensor becomes one "row"
    memory = memory.clone()
    for row, f in zip(rows, feature.reshape(len(rows), -1), strict=True):
        memory[row] = F.normalize(momentum * memory[row] + (1 - momentum) * f, dim=-1)
    return memory


def _ema_swapped(teacher, student, alpha):
    return solutions.ema_update(teacher, student, 1 - alpha)


def _ema_in_place(teacher, student, alpha):
    for name in teacher:
        teacher[name] *= alpha
        teacher[name] += (1 - alpha) * student[name]
    return teacher


def _ema_teacher_names_only(teacher, student, alpha):
    return {n: alpha * teacher[n] + (1 - alpha) * student[n] for n in teacher}  # KeyError


def _ema_one_sided_check(teacher, student, alpha):
    missing = set(teacher) - set(student)
    if missing:
        raise ValueError(f"the student lacks {sorted(missing)}")
    return {n: alpha * teacher[n] + (1 - alpha) * student[n] for n in teacher}


def _ema_torch_only(teacher, student, alpha):
    if set(teacher) != set(student):
        raise ValueError(f"names differ: {sorted(set(teacher) ^ set(student))}")
    return {n: torch.lerp(teacher[n], student[n], 1 - alpha) for n in teacher}


def _hybrid_normalised(features, labels):
    targets, classes = solutions.hybrid_targets(features, labels)
    count = len(torch.unique(torch.as_tensor(np.asarray(labels))[torch.as_tensor(
        np.asarray(labels)) >= 0]))
    targets = targets.clone()
    targets[:count] = F.normalize(targets[:count], dim=1)  # Cluster Contrast's centroids
    return targets, classes


def _hybrid_drops_outliers(features, labels):
    targets, classes = solutions.hybrid_targets(features, labels)
    count = int((torch.as_tensor(np.asarray(labels)) < 0).sum())
    return targets[: len(targets) - count], torch.where(
        torch.as_tensor(np.asarray(labels)) < 0, -1, classes)


def _hybrid_first_seen_order(features, labels):
    labels = np.asarray(labels)
    _, first = np.unique(labels[labels >= 0], return_index=True)
    order = labels[labels >= 0][np.sort(first)]  # ids by first appearance, not sorted
    renamed = np.array([np.flatnonzero(order == x)[0] if x >= 0 else -1 for x in labels])
    return solutions.hybrid_targets(features, renamed)


def _hybrid_numpy_labels_only(features, labels):
    labels = torch.from_numpy(labels) if isinstance(labels, np.ndarray) else labels
    return solutions.hybrid_targets(features, labels.tolist())  # a list has no .tolist()


def _soft_ce_not_detached(logits, teacher_logits):
    return -(F.softmax(teacher_logits, dim=1) * F.log_softmax(logits, dim=1)).sum(1).mean()


def _soft_ce_swapped(logits, teacher_logits):
    return solutions.soft_cross_entropy(teacher_logits, logits)


def _soft_ce_log_of_softmax(logits, teacher_logits):
    q = F.softmax(teacher_logits.detach(), dim=1)
    return -(q * torch.log(F.softmax(logits, dim=1))).sum(1).mean()  # -inf when confident


def _soft_ce_kl(logits, teacher_logits):
    q = F.softmax(teacher_logits.detach(), dim=1)
    return F.kl_div(F.log_softmax(logits, dim=1), q, reduction="batchmean")  # minus H(q)


def _soft_tri_teacher_mines(features, labels, teacher_features):
    # The pairs mined with the teacher's distances instead of the student's.
    return _soft_tri_at(features, labels, teacher_features, teacher_features)


def _soft_tri_at(features, labels, teacher_features, mining):
    labels = torch.as_tensor(labels)
    same = labels[:, None] == labels[None, :]
    mined = torch.cdist(mining.detach(), mining.detach())
    pos = mined.masked_fill(~same, float("-inf")).argmax(dim=1, keepdim=True)
    neg = mined.masked_fill(same, float("inf")).argmin(dim=1, keepdim=True)
    dist = torch.cdist(features, features)
    log_p = F.log_softmax(torch.cat([dist.gather(1, pos), dist.gather(1, neg)], dim=1), dim=1)
    ref = torch.cdist(teacher_features, teacher_features).detach()
    q = F.softmax(torch.cat([ref.gather(1, pos), ref.gather(1, neg)], dim=1), dim=1)
    return -(q * log_p).sum(dim=1).mean()


def _soft_tri_hard_target(features, labels, teacher_features):
    return solutions.soft_triplet_loss(features, labels, features.detach() * 1e6)  # q = (0, 1)


def _soft_tri_swapped_pair(features, labels, teacher_features):
    labels = torch.as_tensor(labels)
    same = labels[:, None] == labels[None, :]
    dist = torch.cdist(features, features)
    pos = dist.detach().masked_fill(~same, float("-inf")).argmax(dim=1, keepdim=True)
    neg = dist.detach().masked_fill(same, float("inf")).argmin(dim=1, keepdim=True)
    log_p = F.log_softmax(torch.cat([dist.gather(1, neg), dist.gather(1, pos)], dim=1), dim=1)
    ref = torch.cdist(teacher_features, teacher_features).detach()
    q = F.softmax(torch.cat([ref.gather(1, pos), ref.gather(1, neg)], dim=1), dim=1)
    return -(q * log_p).sum(dim=1).mean()  # student's pair in the other order


def _soft_tri_self_excluded(features, labels, teacher_features):
    labels = torch.as_tensor(labels)
    same = labels[:, None] == labels[None, :]
    others = same & ~torch.eye(len(labels), dtype=torch.bool)
    dist = torch.cdist(features, features)
    # A lone anchor's "positive" becomes index 0 (every entry -inf): wrong only for lone anchors.
    pos = dist.detach().masked_fill(~others, float("-inf")).argmax(dim=1, keepdim=True)
    neg = dist.detach().masked_fill(same, float("inf")).argmin(dim=1, keepdim=True)
    log_p = F.log_softmax(torch.cat([dist.gather(1, pos), dist.gather(1, neg)], dim=1), dim=1)
    ref = torch.cdist(teacher_features, teacher_features).detach()
    q = F.softmax(torch.cat([ref.gather(1, pos), ref.gather(1, neg)], dim=1), dim=1)
    return -(q * log_p).sum(dim=1).mean()


WRONG = [
    ("q1", _mine_self_as_positive, False),
    ("q1", _mine_self_as_positive_but_minus_one, True),
    ("q1", _mine_closest_positive, False),
    ("q1", _mine_negative_among_all, False),
    ("q1", _mine_zero_masking, False),
    ("q1", _mine_fill_diagonal, False),
    ("q1", _mine_ties_to_last, False),
    ("q2", _ccl_no_normalise, False),
    ("q2", _ccl_times_temperature, False),
    ("q2", _ccl_sum, False),
    ("q2", _ccl_positive_not_in_denominator, False),
    ("q2", _ccl_normalise_dim0, False),
    ("q2", _ccl_item, True),
    ("q2", _ccl_normalise_in_place, True),
    ("q3", _mu_no_normalise, False),
    ("q3", _mu_swapped, False),
    ("q3", _mu_vectorised, False),
    ("q3", _mu_in_place, False),
    ("q3", _mu_normalise_at_end, False),
    ("q3", _mu_list_or_int_only, True),
    ("q4", _ema_swapped, False),
    ("q4", _ema_in_place, False),
    ("q4", _ema_teacher_names_only, False),
    ("q4", _ema_one_sided_check, True),
    ("q4", _ema_torch_only, True),
    ("q5", _hybrid_normalised, False),
    ("q5", _hybrid_drops_outliers, False),
    ("q5", _hybrid_first_seen_order, False),
    ("q5", _hybrid_numpy_labels_only, False),
    ("q6", _soft_ce_not_detached, False),
    ("q6", _soft_ce_swapped, False),
    ("q6", _soft_ce_log_of_softmax, True),
    ("q6", _soft_ce_kl, False),
    ("q7", _soft_tri_teacher_mines, False),
    ("q7", _soft_tri_hard_target, False),
    ("q7", _soft_tri_swapped_pair, False),
    ("q7", _soft_tri_self_excluded, False),
]


class TestFeatureLearning(ExerciseChecks):
    exercise = EX
    wrong_answers = WRONG
    solution_statements = 20


def test_failure_message_says_expected_got_and_hint():
    summary = check(EX.public("q1"), {"batch_hard_mining": _mine_self_as_positive}).summary()
    assert "returned positives [3, 3, 2, 0, 4], expected [3, 3, -1, 0, -1]" in summary
    assert "an anchor is never its own positive" in summary and "Hint: same = labels" in summary
    summary = check(EX.public("q1"), {"batch_hard_mining": _mine_fill_diagonal}).summary()
    assert "changed the dist or labels it was given" in summary
    summary = check(EX.public("q2"), {"cluster_contrast_loss": _ccl_no_normalise}).summary()
    assert "returned 10.0000, expected 2.1269" in summary and "(0.6, 0.8)" in summary
    summary = check(EX.hidden("q2"), {"cluster_contrast_loss": _ccl_item}).summary()
    assert "has no gradient" in summary
    summary = check(EX.public("q3"), {"momentum_update": _mu_vectorised}).summary()
    assert "expected [[0.3827, 0.9239], [0.7071, 0.7071]]" in summary
    assert "67.5 degrees" in summary and "weight of the OLD vector" in summary
    summary = check(EX.public("q4"), {"ema_update": _ema_teacher_names_only}).summary()
    assert "raised KeyError" in summary and "expected a ValueError naming 'classifier'" in summary
    summary = check(EX.public("q4"), {"ema_update": lambda *args: None}).summary()
    assert "did you forget the return?" in summary


# --------------------------------------------------------------------------- hand-made data


def test_q1_hand_made_answers_agree_with_a_loop_and_reidlib():
    dist = public_q1._line(public_q1.POSITIONS)
    expected = ([3, 3, -1, 0, -1], [2, 2, 1, 4, 3])
    assert public_q1._brute_force(dist, public_q1.LABELS) == expected
    # Where every identity has two images, reidlib's loss (anchor counted as its own
    # positive, at distance 0) is the loss of the mined triplets.
    positions = np.array([0.0, 2.0, 3.0, 5.0, 6.5, 9.0])
    labels = np.array([1, 1, 2, 1, 2, 2])
    dist = public_q1._line(positions)
    positives, negatives = solutions.batch_hard_mining(dist, labels)
    gap = dist[np.arange(6), positives] - dist[np.arange(6), negatives]
    loss = batch_hard_triplet_loss(torch.tensor(positions)[:, None], torch.as_tensor(labels))
    assert float(loss) == pytest.approx(np.maximum(0.3 + gap, 0).mean(), abs=1e-5)


def test_q2_hand_made_value_agrees_with_cluster_memory():
    # Features (1, 0) and (0, 1), one per cluster, make the centroids of the public example.
    memory = ClusterMemory(torch.eye(2), torch.tensor([0, 1]), temperature=0.1)
    loss = memory(torch.tensor([[3.0, 4.0], [3.0, 4.0]]), torch.tensor([0, 1]))
    assert float(loss) == pytest.approx((math.log(1 + math.e**2) + math.log(1 + math.e**-2)) / 2)


def test_q3_hand_made_value_agrees_with_reidlib():
    bank = torch.eye(2, dtype=torch.float64)
    features = torch.tensor([[0.0, 1.0], [0.0, 1.0], [1.0, 0.0]], dtype=torch.float64)
    reference_momentum(bank, torch.tensor([0, 0, 1]), features, 0.5)
    angle = math.radians(67.5)
    r = 1 / math.sqrt(2)
    expected = torch.tensor([[math.cos(angle), math.sin(angle)], [r, r]], dtype=torch.float64)
    assert torch.allclose(bank, expected)


def test_q4_hand_made_value_agrees_with_reidlib():
    teacher, student = nn.Linear(2, 1), nn.Linear(2, 1)
    with torch.no_grad():
        teacher.weight.copy_(torch.tensor([[1.0, 2.0]]))
        teacher.bias.fill_(0.0)
        student.weight.copy_(torch.tensor([[3.0, 6.0]]))
        student.bias.fill_(1.0)
    reference_ema(teacher, student, 0.75)
    assert teacher.weight.tolist() == [[1.5, 3.0]] and teacher.bias.tolist() == [0.25]
