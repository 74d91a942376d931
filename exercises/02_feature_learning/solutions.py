"""Reference solutions of exercises/02_feature_learning (instructors only, never in the notebook).

Each function replaces the stub of the same name in ``02_feature_learning.py``; ``grade.py
--solutions`` and tests/test_exercises_02.py paste them into the notebook and check that every
public and hidden check passes. Keep each function self-contained apart from the imports below:
they are pasted into the notebook one cell at a time, with these imports above them.
"""

import numpy as np
import torch
import torch.nn.functional as F


def batch_hard_mining(dist, labels):
    """Survey Eq. 5: per anchor, the farthest other positive (-1 if none) and closest negative."""
    dist = np.asarray(dist, dtype=float)
    labels = np.asarray(labels)
    same = labels[:, None] == labels[None, :]
    others = ~np.eye(len(labels), dtype=bool)
    # Masked-out entries can never win: -inf for a max, +inf for a min. argmax / argmin return
    # the first extreme index, which is the lower-index tie rule.
    positive_dist = np.where(same & others, dist, -np.inf)
    negative_dist = np.where(~same, dist, np.inf)
    positives = np.argmax(positive_dist, axis=1)
    positives[~(same & others).any(axis=1)] = -1  # no other image of the anchor's identity
    negatives = np.argmin(negative_dist, axis=1)
    return positives, negatives


def cluster_contrast_loss(embedding, centroids, target, temperature):
    """Survey Eq. 6-7 on a centroid memory: mean of -log softmax(c . x / tau)[target]."""
    x = F.normalize(torch.atleast_2d(embedding), dim=1)
    targets = torch.as_tensor(target).reshape(-1).to(x.device)
    logits = x @ centroids.T / temperature
    return F.cross_entropy(logits, targets)


def momentum_update(memory, index, feature, momentum):
    """A copy of ``memory`` with each (index, feature) pair applied in order, rows re-normalised."""
    memory = memory.clone()
    rows = torch.as_tensor(index).reshape(-1).tolist()
    features = feature.reshape(len(rows), -1)
    # One pair after the other: a row that occurs twice must see its first update.
    for row, f in zip(rows, features, strict=True):
        memory[row] = F.normalize(momentum * memory[row] + (1 - momentum) * f, dim=0)
    return memory


def ema_update(teacher, student, alpha):
    """MMT's mean teacher: a new dict, alpha * teacher + (1 - alpha) * student per name."""
    if set(teacher) != set(student):
        raise ValueError(
            f"teacher and student must hold the same names; only in the teacher: "
            f"{sorted(set(teacher) - set(student))}, only in the student: "
            f"{sorted(set(student) - set(teacher))}"
        )
    return {name: alpha * teacher[name] + (1 - alpha) * student[name] for name in teacher}
