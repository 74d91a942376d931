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


def hybrid_targets(features, labels):
    """SpCL's hybrid memory targets: cluster means (not re-normalised), then each outlier."""
    labels = torch.as_tensor(np.asarray(labels), device=features.device)
    clusters = torch.unique(labels[labels >= 0])  # sorted ids
    outliers = torch.nonzero(labels < 0).flatten()  # row order
    centroids = torch.stack([features[labels == c].mean(dim=0) for c in clusters]) \
        if len(clusters) else features.new_zeros(0, features.shape[1])
    targets = torch.cat([centroids, features[outliers]])
    classes = torch.empty(len(labels), dtype=torch.long, device=features.device)
    for index, cluster in enumerate(clusters):
        classes[labels == cluster] = index
    classes[outliers] = len(clusters) + torch.arange(len(outliers), device=features.device)
    return targets, classes


def soft_cross_entropy(logits, teacher_logits):
    """MMT's soft CE: mean over the batch of -sum_c softmax(teacher)_c log softmax(student)_c."""
    targets = F.softmax(teacher_logits.detach(), dim=1)
    return -(targets * F.log_softmax(logits, dim=1)).sum(dim=1).mean()


def soft_triplet_loss(features, labels, teacher_features):
    """MMT's soft softmax-triplet: BCE between the student's and the teacher's 2-way softmax
    over (hardest positive, hardest negative) distances, both at the student's mined pairs."""
    labels = torch.as_tensor(labels, device=features.device)
    same = labels[:, None] == labels[None, :]
    dist = torch.cdist(features, features)
    # Mined on the student's distances; the anchor is its own positive (distance 0).
    pos = dist.detach().masked_fill(~same, float("-inf")).argmax(dim=1, keepdim=True)
    neg = dist.detach().masked_fill(same, float("inf")).argmin(dim=1, keepdim=True)
    log_p = F.log_softmax(torch.cat([dist.gather(1, pos), dist.gather(1, neg)], dim=1), dim=1)
    with torch.no_grad():
        ref = torch.cdist(teacher_features, teacher_features)
        q = F.softmax(torch.cat([ref.gather(1, pos), ref.gather(1, neg)], dim=1), dim=1)
    return -(q * log_p).sum(dim=1).mean()
