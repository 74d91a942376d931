"""Reference solutions of exercises/04_domain_adaptation (instructors only, never in the notebook).

Each function replaces the stub of the same name in ``04_domain_adaptation.py``; ``grade.py
--solutions`` and tests/test_exercises_04.py paste them into the notebook and check that every
public and hidden check passes. Keep each function self-contained apart from the imports below:
they are pasted into the notebook one cell at a time, with these imports above them.
"""

import numpy as np
import torch
import torch.nn.functional as F


def mmd_squared(x, y, bandwidths):
    """The biased squared MMD (Gretton et al. 2012) with the kernel sum_h exp(-|a - b|^2 / h):
    the mean kernel within x, plus within y, minus twice the mean across."""
    def kernel(a, b):
        d2 = (a[:, None, :] - b[None, :, :]).square().sum(dim=2)
        return sum(torch.exp(-d2 / h) for h in bandwidths)

    return kernel(x, x).mean() + kernel(y, y).mean() - 2 * kernel(x, y).mean()


def dan_bandwidths(x, y):
    """DAN's five bandwidths: the mean squared distance between distinct rows of the pooled
    sample, times 2^-2 .. 2^2, computed without gradient."""
    with torch.no_grad():
        pooled = torch.cat([x, y])
        n = len(pooled)
        d2 = (pooled[:, None, :] - pooled[None, :, :]).square().sum(dim=2)
        base = d2.sum() / (n * n - n)  # the diagonal is 0: the mean over distinct pairs
        return base * 2.0 ** torch.arange(-2, 3, dtype=pooled.dtype, device=pooled.device)


def adaptive_instance_norm(content, style, eps=1e-5):
    """AdaIN (Huang & Belongie, ICCV 2017, Eq. 8): each image's channels take the style's mean
    and standard deviation over H x W (unbiased variance, eps added before the root)."""
    def mean_std(x):
        flat = x.flatten(2)
        mean = flat.mean(dim=2)[:, :, None, None]
        std = (flat.var(dim=2, unbiased=True) + eps).sqrt()[:, :, None, None]
        return mean, std

    c_mean, c_std = mean_std(content)
    s_mean, s_std = mean_std(style)
    return (content - c_mean) / c_std * s_std + s_mean


def source_hybrid_loss(embeddings, rows, features, labels, is_source, temperature=0.05):
    """SpCL's UDA memory loss: one softmax over the source class centroids (re-normalised
    means), the target cluster centroids (plain means) and the un-clustered target instances;
    each row's positive is its class, its cluster or its own instance; the batch mean."""
    f = F.normalize(features, dim=1)
    labels = torch.as_tensor(np.asarray(labels), device=f.device)
    is_source = torch.as_tensor(np.asarray(is_source), dtype=torch.bool, device=f.device)
    owner = torch.empty(len(f), dtype=torch.long, device=f.device)  # each row's positive
    targets = []
    for y in torch.unique(labels[is_source]):
        members = is_source & (labels == y)
        owner[members] = len(targets)
        targets.append(F.normalize(f[members].mean(dim=0), dim=0))
    clustered = ~is_source & (labels >= 0)
    for y in torch.unique(labels[clustered]):
        members = clustered & (labels == y)
        owner[members] = len(targets)
        targets.append(f[members].mean(dim=0))  # not re-normalised (SpCL's code)
    for row in torch.nonzero(~is_source & (labels < 0)).flatten():
        owner[row] = len(targets)
        targets.append(f[row])
    logits = F.normalize(embeddings, dim=1) @ torch.stack(targets).T / temperature
    return F.cross_entropy(logits, owner[torch.as_tensor(rows, device=f.device)])
