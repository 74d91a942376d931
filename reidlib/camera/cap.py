"""CAP (Wang, Lai, Huang, Gong, Hua, "Camera-aware Proxies for Unsupervised Person
Re-Identification", AAAI 2021; survey §3.3, the look-up table of Eq. 6-10 with proxies).

A cluster mixes images of one person from several cameras, and within a camera they look
alike while across cameras they do not: one centroid per cluster has to sit between
sub-clusters that the network finds hard to merge. CAP splits every cluster into one
*camera-aware proxy* per (cluster, camera) pair: the mean of that cluster's images in that
camera. With a memory of proxies A (L2-normalised) and x the L2-normalised embedding:

- intra-camera loss: each sample against the proxies of *its own camera* only (Eq. 8 with
  proxies as entries): -log softmax(A_c . x / tau)[its proxy]. Within a camera, the
  proxies of different people differ by the person, not by the camera;
- inter-camera loss: each sample's positives are the proxies of its cluster in *every*
  camera, P, its negatives the k proxies of other clusters most similar to it, Q
  (hard negatives), and
      -1/|P| sum_{p in P} log exp(A_p . x / tau) / sum_{u in P u Q} exp(A_u . x / tau),
  which pulls the images of a person in one camera towards its proxies in the others;
- loss = intra + lambda inter; after each step each sample's proxy moves towards it,
  A <- mu A + (1 - mu) x, then is re-normalised (our ClusterMemory's convention);
- proxy-balanced sampling: a batch is P proxies x K images of each, so a proxy with few
  images (a person seen briefly by one camera) is drawn as often as a large one.

As CAP's code (``reid/loss/CamAwareMemory.py``, ``train_cap.py``) does it: tau = 0.07 for
both losses, mu = 0.2, k = 50 hard negatives chosen on detached similarities, lambda =
0.5, and the inter loss only from epoch 5 on (``crosscam_epoch``). Both losses are summed
over the cameras present in the batch of each camera's mean over its samples, not a mean
over the batch. The proxies are rebuilt at each clustering from the features clustered
(mean of the L2-normalised features, re-normalised), ordered by camera then cluster.
Batches: 8 proxies x 4 images (batch 32), a proxy with fewer than 4 images drawn from 4
copies of its list; an epoch is (clustered images // 32) batches, cut from consecutive
passes over the proxies in random order (``ClassUniformlySampler``).

The published recipe (``CAP.recipe``): ResNet-50 (BNNeck, average pooling), 256x128,
Adam 3.5e-4, weight decay 5e-4, 50 epochs, learning rate / 10 at epochs 20 and 40, a
10-epoch warmup; DBSCAN (eps 0.5, min_samples 4) on the Jaccard distance (k1 = 20, k2 =
6), re-clustered every epoch, outliers left out of training.

Deliberate differences: our warmup starts at lr / 10 where CAP's starts at lr / 100. When
fewer than k negative proxies exist (tiny data only), CAP's code fills the k slots with
positives again; we take the negatives there are.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from reidlib.checks import labels_1d
from reidlib.feature_learning.contrast import MemoryMethod
from reidlib.feature_learning.memory import (
    _check_features,
    _class_means,
    _Memory,
    momentum_update,
)
from reidlib.pseudo_labels.labels import OUTLIER, contiguous
from reidlib.training.features import autocast_for

__all__ = ["CAP", "CameraProxyMemory", "camera_proxies", "cut_passes", "hard_negatives",
           "inter_camera_loss", "intra_camera_loss", "per_camera_sum_of_means",
           "proxy_balanced_batches", "proxy_labels"]


# --- proxies -----------------------------------------------------------------------------

def proxy_labels(labels, camids) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split clusters into camera-aware proxies: (row_proxy, proxy_cluster, proxy_camera).

    ``labels``: (N,) cluster ids (-1 = outlier); ``camids``: (N,) camera ids. Proxies are
    the distinct (camera, cluster) pairs of the clustered rows, ordered by camera then
    cluster as CAP's memory is; ``row_proxy`` (N,) gives each row's proxy (-1 for
    outliers), ``proxy_cluster`` each proxy's cluster as 0..C-1 (sorted ids) and
    ``proxy_camera`` its camera id.
    """
    labels = labels_1d(labels, len(labels), name="labels")
    camids = labels_1d(camids, len(labels), name="camids (one per label)", allow_outliers=False)
    clusters, num_clusters = contiguous(labels)
    keep = clusters != OUTLIER
    cameras, cam_index = np.unique(camids, return_inverse=True)
    keys, inverse = np.unique(cam_index[keep] * num_clusters + clusters[keep],
                              return_inverse=True)
    row_proxy = np.full(len(labels), OUTLIER, dtype=np.int64)
    row_proxy[keep] = inverse
    return row_proxy, keys % max(num_clusters, 1), cameras[keys // max(num_clusters, 1)]


def camera_proxies(features: torch.Tensor, labels, camids) -> tuple[torch.Tensor, ...]:
    """CAP's proxies: (proxies (P, D), row_proxy (N,), proxy_cluster (P,), proxy_camera (P,)).

    Each proxy is the L2-normalised mean of the L2-normalised features of its (cluster,
    camera) pair (:func:`proxy_labels`); the index tensors are int64 on the features'
    device.
    """
    features = _check_features(features)
    row_proxy, proxy_cluster, proxy_camera = (
        torch.as_tensor(a, device=features.device) for a in proxy_labels(labels, camids))
    keep = row_proxy >= 0
    means = _class_means(features[keep], row_proxy[keep], len(proxy_cluster))
    return F.normalize(means, dim=1), row_proxy, proxy_cluster, proxy_camera


# --- losses ------------------------------------------------------------------------------

def per_camera_sum_of_means(values: torch.Tensor, camids: torch.Tensor) -> torch.Tensor:
    """sum over the cameras c in the batch of mean_{i of camera c} values_i (CAP's reduction)."""
    same = camids[:, None] == camids[None, :]
    return (values / same.sum(dim=1)).sum()


def intra_camera_loss(x: torch.Tensor, proxies: torch.Tensor, proxy_camera: torch.Tensor,
                      targets: torch.Tensor, camids: torch.Tensor,
                      temperature: float = 0.07) -> torch.Tensor:
    """CAP's intra-camera loss: each sample against its own camera's proxies (Eq. 8).

    ``x``: (B, D) L2-normalised embeddings; ``proxies``: (P, D); ``proxy_camera``: (P,);
    ``targets``: (B,) each sample's proxy; ``camids``: (B,) its camera. Cross-entropy of
    ``x . proxies / temperature`` over the proxies of the sample's camera, reduced by
    :func:`per_camera_sum_of_means`.
    """
    logits = (x @ proxies.T / temperature).masked_fill(
        camids[:, None] != proxy_camera[None, :], float("-inf"))
    return per_camera_sum_of_means(F.cross_entropy(logits, targets, reduction="none"), camids)


def hard_negatives(similarities: torch.Tensor, positives: torch.Tensor, k: int) -> torch.Tensor:
    """(B, P) bool: for each row, the ``k`` most similar entries that are not positives
    (all of them when fewer than ``k`` exist). ``similarities`` are detached first."""
    sims = similarities.detach().masked_fill(positives, float("-inf"))
    top = sims.topk(min(k, sims.shape[1]), dim=1)
    chosen = torch.zeros_like(positives).scatter_(1, top.indices, True)
    return chosen & ~positives


def inter_camera_loss(x: torch.Tensor, proxies: torch.Tensor, proxy_cluster: torch.Tensor,
                      clusters: torch.Tensor, camids: torch.Tensor, temperature: float = 0.07,
                      k: int = 50) -> torch.Tensor:
    """CAP's inter-camera loss: the sample's cluster proxies in all cameras against its ``k``
    hardest negative proxies (module docstring), reduced by :func:`per_camera_sum_of_means`.

    ``clusters``: (B,) each sample's cluster (0..C-1, as ``proxy_cluster``). Unweighted:
    CAP multiplies it by 0.5.
    """
    logits = x @ proxies.T / temperature
    positives = clusters[:, None] == proxy_cluster[None, :]
    chosen = positives | hard_negatives(logits, positives, k)
    log_norm = torch.logsumexp(logits.masked_fill(~chosen, float("-inf")), dim=1)
    mean_positive = (logits * positives).sum(dim=1) / positives.sum(dim=1)
    return per_camera_sum_of_means(log_norm - mean_positive, camids)


# --- memory ------------------------------------------------------------------------------

class CameraProxyMemory(_Memory):
    """CAP's proxy memory: one L2-normalised proxy per (cluster, camera) pair.

    ``memory(x, rows)`` returns (intra, inter) for embeddings ``x`` (B, D) of training-set
    ``rows`` (B,): :func:`intra_camera_loss` and :func:`inter_camera_loss` with the memory's
    ``temperature`` and ``k`` hard negatives; ``memory.update(x, rows)`` moves each
    sample's proxy towards it, in batch order (``momentum``: the weight the old proxy
    keeps). Outlier rows (label -1) have no proxy and are rejected in a batch.
    """

    def __init__(self, features: torch.Tensor, labels, camids, momentum: float = 0.2,
                 temperature: float = 0.07, k: int = 50):
        features = _check_features(features)
        labels = labels_1d(labels, len(features), name="labels (one pseudo-label per feature "
                           "row)")
        if (labels == OUTLIER).all():
            raise ValueError("CameraProxyMemory needs at least one cluster: every label is -1")
        camids = labels_1d(camids, len(features), name="camids (one camera id per feature "
                           "row)", allow_outliers=False)
        _check_k(k)
        proxies, row_proxy, proxy_cluster, proxy_camera = camera_proxies(features, labels,
                                                                         camids)
        super().__init__(proxies, momentum, temperature)
        self.k = int(k)
        self.register_buffer("labels", row_proxy)  # each row's proxy: what a batch indexes
        self.register_buffer("proxy_cluster", proxy_cluster)
        self.register_buffer("proxy_camera", proxy_camera)
        self.register_buffer("row_cluster", torch.as_tensor(contiguous(labels)[0],
                                                            device=features.device))
        self.register_buffer("camids", torch.as_tensor(camids, device=features.device))

    @property
    def proxies(self) -> torch.Tensor:
        """(P, D) the proxy bank (the same tensor as ``features``)."""
        return self.features

    @property
    def num_proxies(self) -> int:
        return len(self.features)

    def intra_loss(self, embeddings: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        return self(embeddings, indices)[0]

    def inter_loss(self, embeddings: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        indices = self._check_batch(embeddings, indices)
        with torch.autocast(device_type=embeddings.device.type, enabled=False):
            return self._inter(self._normalized(embeddings), indices)

    def _inter(self, x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        return inter_camera_loss(x, self.features, self.proxy_cluster, self.row_cluster[rows],
                                 self.camids[rows], self.temperature, self.k)

    def _loss(self, x: torch.Tensor, indices: torch.Tensor):
        _check_k(self.k)
        intra = intra_camera_loss(x, self.features, self.proxy_camera, self.labels[indices],
                                  self.camids[indices], self.temperature)
        return intra, self._inter(x, indices)

    def _update(self, x: torch.Tensor, indices: torch.Tensor) -> None:
        momentum_update(self.features, self.labels[indices], x, self.momentum)

    def settings(self) -> dict:
        return {**super().settings(), "k": self.k}

    def extra_repr(self) -> str:
        clusters = len(torch.unique(self.proxy_cluster))
        return (f"proxies={self.num_proxies}, clusters={clusters}, dim={self.dim}, "
                f"k={self.k}, momentum={self.momentum}, temperature={self.temperature}")


def _check_k(k) -> None:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k (hard negative proxies per sample) must be an int >= 1, got {k!r}")


# --- proxy-balanced sampling -------------------------------------------------------------

def _proxy_pass(members: list[np.ndarray], k: int, rng: np.random.Generator) -> np.ndarray:
    """Every proxy once in random order, ``k`` of its rows each: without replacement, or
    from ``k`` copies of its rows when it has fewer (CAP's ``ClassUniformlySampler``)."""
    out = []
    for p in rng.permutation(len(members)):
        rows = members[p]
        pool = rows if len(rows) >= k else np.tile(rows, k)
        out.append(rng.permutation(pool)[:k])
    return np.concatenate(out)


def cut_passes(one_pass, size: int, wanted: int | None, what: str) -> list[np.ndarray]:
    """Batches of ``size`` rows cut from consecutive sampler passes (``one_pass()``), each
    pass's tail dropped (a DataLoader with ``drop_last``): ``wanted`` batches, or one
    pass's when None."""
    batches: list[np.ndarray] = []
    while not batches or (wanted is not None and len(batches) < wanted):
        stream = one_pass()
        if len(stream) < size:
            raise ValueError(f"one pass over {what} holds {len(stream)} images, fewer than "
                             f"a batch of p * k = {size}: lower p")
        batches.extend(stream[:len(stream) // size * size].reshape(-1, size))
    return batches if wanted is None else batches[:wanted]


def proxy_balanced_batches(labels, camids, p: int, k: int, seed: int, epoch: int,
                           iters: int | None = None) -> list[np.ndarray]:
    """CAP's proxy-balanced batches: ``p`` camera-aware proxies x ``k`` rows each.

    ``labels``: (N,) cluster ids (-1 = not trained on); ``camids``: (N,) cameras. Batches
    are cut (the tail dropped) from consecutive passes of :func:`_proxy_pass`; there are
    ``iters`` of them, or, as CAP's epoch, (clustered rows) // (p * k). Depends only on
    ``(seed, epoch)``.
    """
    if p < 1 or k < 1 or (iters is not None and iters < 1):
        raise ValueError(f"p, k and iters must be >= 1, got {p}, {k}, {iters}")
    row_proxy = proxy_labels(labels, camids)[0]
    keep = np.flatnonzero(row_proxy >= 0)
    if len(keep) == 0:
        raise ValueError("proxy-balanced sampling needs clustered rows: every label is -1")
    order = keep[np.argsort(row_proxy[keep], kind="stable")]
    members = np.split(order, np.flatnonzero(np.diff(row_proxy[order])) + 1)
    wanted = iters if iters is not None else max(1, len(keep) // (p * k))
    rng = np.random.default_rng([seed, epoch])
    return cut_passes(lambda: _proxy_pass(members, k, rng), p * k, wanted,
                      f"the {len(members)} proxies")


# --- the method --------------------------------------------------------------------------

class CAP(MemoryMethod):
    """CAP: camera-aware proxies, intra- and inter-camera losses (module docstring).

    ``momentum``, ``temperature``, ``k`` (hard negative proxies), ``inter_weight``
    (lambda) and ``inter_epoch`` (first epoch of the inter loss) default to CAP's code.
    ``proxy_balanced=False`` replaces CAP's sampler by the ``sampler`` / ``other_cameras``
    of :class:`~reidlib.training.Method` (the paper's sampling ablation).
    """

    name = "CAP (camera-aware proxies)"
    memory_class = CameraProxyMemory
    recipe = {"epochs": 50, "lr": 3.5e-4, "weight_decay": 5e-4, "decay": "all",
              "schedule": "step", "milestones": (20, 40), "warmup_epochs": 10, "p": 8, "k": 4}

    def __init__(self, model, momentum: float = 0.2, temperature: float = 0.07, k: int = 50,
                 inter_weight: float = 0.5, inter_epoch: int = 5, proxy_balanced: bool = True,
                 sampler: str = "pk", other_cameras: bool = False):
        super().__init__(model, momentum, temperature, sampler=sampler,
                         other_cameras=other_cameras)  # the proxy memory replaces the classifier
        _check_k(k)
        if inter_weight < 0 or inter_epoch < 0:
            raise ValueError(f"inter_weight and inter_epoch must be >= 0, got {inter_weight}, "
                             f"{inter_epoch}")
        self.k = int(k)
        self.inter_weight, self.inter_epoch = float(inter_weight), int(inter_epoch)
        self.proxy_balanced = bool(proxy_balanced)
        self.epoch = 0

    def new_labels(self, features, labels, train) -> None:
        self.memory = CameraProxyMemory(features, labels, train.camids, self.momentum,
                                        self.temperature, self.k)

    def start_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def batches(self, labels, camids, *, p, k, iters, seed, epoch):
        if not self.proxy_balanced:
            return super().batches(labels, camids, p=p, k=k, iters=iters, seed=seed,
                                   epoch=epoch)
        return proxy_balanced_batches(labels, camids, p, k, seed, epoch, iters)

    def loss(self, batch):
        with autocast_for(batch.images.device):
            out = self.model(batch.augmented())
        intra, inter = self.memory(out.embeddings, batch.indices)
        self._last = (out.embeddings.detach(), batch.indices)
        if self.epoch < self.inter_epoch:
            return intra, {"intra": intra}
        return intra + self.inter_weight * inter, {"intra": intra, "inter": inter}

    def config(self) -> dict:
        return {**super().config(), "k": self.k, "inter_weight": self.inter_weight,
                "inter_epoch": self.inter_epoch, "proxy_balanced": self.proxy_balanced}
