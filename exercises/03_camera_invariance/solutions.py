"""Reference solutions of exercises/03_camera_invariance (instructors only, never in the notebook).

Each function replaces the stub of the same name in ``03_camera_invariance.py``; ``grade.py
--solutions`` and tests/test_exercises_03.py paste them into the notebook and check that every
public and hidden check passes. Keep each function self-contained apart from the imports below:
they are pasted into the notebook one cell at a time, with these imports above them.
"""

import copy

import numpy as np
import torch
import torch.nn.functional as F


def camera_proxies(features, labels, camids):
    """CAP's proxies: the re-normalised mean of each (cluster, camera) pair's unit features,
    ordered by camera then cluster, with each proxy's cluster id and camera id."""
    x = F.normalize(features, dim=1)
    labels = torch.as_tensor(np.asarray(labels), device=x.device)
    camids = torch.as_tensor(np.asarray(camids), device=x.device)
    rows = zip(camids.tolist(), labels.tolist(), strict=True)
    pairs = sorted({(c, y) for c, y in rows if y >= 0})  # (camera, cluster): CAP's order
    means = torch.stack([x[(labels == y) & (camids == c)].mean(dim=0) for c, y in pairs])
    clusters = torch.tensor([y for _, y in pairs], dtype=torch.long, device=x.device)
    cameras = torch.tensor([c for c, _ in pairs], dtype=torch.long, device=x.device)
    return F.normalize(means, dim=1), clusters, cameras


def intra_camera_loss(embeddings, proxies, proxy_camera, targets, camids, temperature):
    """CAP's intra-camera loss (survey Eq. 8 with proxies): each sample's softmax over the
    proxies of its own camera; per camera the mean, summed over the cameras."""
    x = F.normalize(embeddings, dim=1)
    camids = torch.as_tensor(camids, device=x.device)
    proxy_camera = torch.as_tensor(proxy_camera, device=x.device)
    other = camids[:, None] != proxy_camera[None, :]
    logits = (x @ proxies.T / temperature).masked_fill(other, float("-inf"))
    per_sample = F.cross_entropy(logits, torch.as_tensor(targets, device=x.device),
                                 reduction="none")
    return sum(per_sample[camids == c].mean() for c in torch.unique(camids))


def inter_camera_loss(embeddings, proxies, proxy_cluster, clusters, camids, temperature, k):
    """CAP's inter-camera loss: the mean -log softmax of the own cluster's proxies (every
    camera) over those positives and the k most similar other proxies; per camera the mean,
    summed over the cameras."""
    x = F.normalize(embeddings, dim=1)
    camids = torch.as_tensor(camids, device=x.device)
    logits = x @ proxies.T / temperature
    positive = torch.as_tensor(clusters, device=x.device)[:, None] == \
        torch.as_tensor(proxy_cluster, device=x.device)[None, :]
    # hard negatives: the k most similar non-positives, chosen without gradient
    ranked = logits.detach().masked_fill(positive, float("-inf"))
    hard = ranked.topk(min(k, ranked.shape[1]), dim=1).indices
    chosen = positive | torch.zeros_like(positive).scatter_(1, hard, True)
    log_norm = logits.masked_fill(~chosen, float("-inf")).logsumexp(dim=1)
    per_sample = log_norm - (logits * positive).sum(dim=1) / positive.sum(dim=1)
    return sum(per_sample[camids == c].mean() for c in torch.unique(camids))


def camera_bn_statistics(model, name, images, camids, batch_size):
    """Zhuang et al.'s test-time step on a copy of ``model``: per camera, BN layer ``name``'s
    statistics reset, then re-estimated in training mode over the camera's full batches
    (all its images when it has fewer than one batch) with the cumulative average."""
    model = copy.deepcopy(model).train()
    layer = dict(model.named_modules())[name]
    layer.momentum = None  # the cumulative average over the batches
    camids = torch.as_tensor(np.asarray(camids))
    stats = {}
    with torch.no_grad():
        for camera in torch.unique(camids).tolist():
            rows = torch.nonzero(camids == camera).flatten()
            full = len(rows) // batch_size * batch_size or len(rows)  # full batches only
            layer.reset_running_stats()
            for chunk in rows[:full].split(batch_size):
                model(images[chunk.to(images.device)])
            stats[camera] = (layer.running_mean.clone(), layer.running_var.clone())
    return stats


def iics_distance(features, scores, camids, mix):
    """IICS's inter-camera distance: 1 - cos(f_i, f_j) - mix [cam_i != cam_j] J(s_i, s_j),
    J the Jaccard similarity of the score vectors, sum_k min / sum_k max."""
    x = F.normalize(features, dim=1)
    camids = torch.as_tensor(np.asarray(camids), device=x.device)
    low = torch.minimum(scores[:, None, :], scores[None, :, :]).sum(dim=2)
    high = torch.maximum(scores[:, None, :], scores[None, :, :]).sum(dim=2)
    other = camids[:, None] != camids[None, :]
    return 1 - x @ x.T - mix * other * (low / high)
