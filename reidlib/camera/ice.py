"""ICE (Chen, Lagadec, Bremond, "ICE: Inter-instance Contrastive Encoding for Unsupervised
Person Re-identification", ICCV 2021; survey §3.3): CAP's camera-aware proxies plus two
contrastive terms between the *instances* of a batch.

Why ICE among CAP's successors: O2CAP adds offline and online association stages around
CAP's proxies, PPLR adds part features and their own camera proxies (a new backbone
head); ICE keeps one network and adds two losses over the batch, computed in a few lines
from a mean teacher's embeddings. Its core is the smallest on top of CAP's pieces and it
runs unchanged in our one loop, so it is the one we implement.

The student f and its mean teacher (temporal average of the student's weights, momentum
alpha = 0.999, clustering and evaluation on the teacher) see two strong random views of
each image and the plain image (the "weak" view). With labels y from clustering:

- proxy loss: label-smoothed (epsilon 0.1) cross-entropy of f(view 1) against the cluster
  centroids, temperature 0.5;
- camera-aware proxy loss: CAP's inter-camera loss
  (:func:`reidlib.camera.cap.inter_camera_loss`) of the L2-normalised f(view 1) against
  the (cluster, camera) proxies, temperature 0.07, 50 hard negatives, weight 0.5;
- hard instance contrast (:func:`hard_instance_loss`): each student embedding against the
  teacher's embeddings of the batch's other view; its positive is the *least* similar
  teacher embedding of its own cluster (its own image's other view included), its
  negatives all other clusters' embeddings, temperature 0.1. Mining the hardest positive
  pulls in the images the centroid loss leaves far out, and so shrinks intra-cluster spread;
- soft instance consistency (:func:`soft_instance_consistency`): the student's
  similarity distribution over the batch (view 1 against the teacher's view 2) should
  match the teacher's distribution on the plain images, KL divergence, temperature 0.4,
  weight 10: augmentation should not change who resembles whom.

    loss = proxy + 0.5 camera + hard instance + 10 soft instance.

As ICE's code (``ice/trainers.py``, ``examples/unsupervised_train.py``) does it, which in
places differs from the paper, we follow the code:

- the intra-camera loss of CAP is not used (it is commented out) and the proxies are not
  momentum-updated: centroids and proxies are built once per clustering from the
  teacher's features and stay fixed through the epoch; centroids are plain means of the
  L2-normalised features (not re-normalised), proxies re-normalised as CAP's;
- the centroid logits take the student's embedding *as is* (the post-BN feature, not
  L2-normalised), divided by 0.5; the other three terms L2-normalise it;
- the teacher runs in train mode (its BatchNorm keeps its own statistics), with a fixed
  averaging weight 0.999 and parameters only averaged;
- batches: 8 clusters x 4 images, the 4 chosen to cover as many of the cluster's cameras
  as possible (``MoreCameraSampler``, :func:`more_camera_batches`), 400 per epoch;
- recipe (``ICE.recipe``): Adam 3.5e-4, weight decay 5e-4, 40 epochs at a constant rate
  after a 10-epoch warmup from lr / 10; DBSCAN (eps 0.55, min_samples 4) on the Jaccard
  distance (k1 = 30, k2 = 6) of the teacher's features, re-clustered every epoch.

Deliberate differences: the code also forwards the student on view 2 and the teacher on
view 1 without using either output; we skip both passes (they only move BatchNorm running
statistics). Our strong views are the course's augmentation (flip, pad-crop, erasing, colour
gain), without ICE's Gaussian blur; ICE's ShuffleBN has no effect on one device.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from reidlib.camera.cap import CameraProxyMemory, _check_k, cut_passes
from reidlib.checks import labels_1d
from reidlib.data.augment import eval_transform
from reidlib.feature_learning.mean_teacher import ema_update, make_teacher
from reidlib.feature_learning.memory import _check_features, _class_means
from reidlib.models.heads import ReidModel, ReidOutput
from reidlib.pseudo_labels.labels import OUTLIER, class_count, contiguous
from reidlib.training.classification import check_reid_model
from reidlib.training.features import autocast_for, model_device
from reidlib.training.losses import cross_entropy_label_smooth
from reidlib.training.method import Method

__all__ = ["ICE", "cluster_centroids", "hard_instance_loss", "more_camera_batches",
           "soft_instance_consistency"]


# --- losses ------------------------------------------------------------------------------

def hard_instance_loss(query: torch.Tensor, keys: torch.Tensor, labels: torch.Tensor,
                       temperature: float = 0.1) -> torch.Tensor:
    """ICE's hard instance contrastive loss over a batch (mean over the batch).

    ``query``: (B, D) student embeddings (view 1); ``keys``: (B, D) teacher embeddings of
    the same images (view 2), both L2-normalised here; ``labels``: (B,) clusters. For row
    i: positive = the key of i's cluster least similar to query i (key i included),
    negatives = every key of another cluster; -log softmax over [positive, negatives].
    """
    sims = F.normalize(query.float(), dim=1) @ F.normalize(keys.float(), dim=1).T
    same = labels[:, None] == labels[None, :]
    positive = sims.masked_fill(~same, float("inf")).min(dim=1, keepdim=True).values
    others = (sims / temperature).masked_fill(same, float("-inf"))
    logits = torch.cat([positive / temperature, others], dim=1)
    return (torch.logsumexp(logits, dim=1) - logits[:, 0]).mean()


def soft_instance_consistency(query: torch.Tensor, keys: torch.Tensor, weak: torch.Tensor,
                              temperature: float = 0.4) -> torch.Tensor:
    """ICE's soft instance consistency: KL(P_weak || Q), summed over a row, batch mean.

    Q_i = softmax_j(q_i . k_j / T): the student's view-1 embeddings against the teacher's
    view-2 embeddings; P_i = softmax_j(w_i . w_j / T): the teacher's embeddings of the plain
    images among themselves (the target; no gradient). All embeddings L2-normalised here.
    """
    q, k, w = (F.normalize(t.float(), dim=1) for t in (query, keys, weak))
    log_q = F.log_softmax(q @ k.T / temperature, dim=1)
    target = F.softmax(w @ w.T / temperature, dim=1).detach()
    return F.kl_div(log_q, target, reduction="batchmean")


def cluster_centroids(features: torch.Tensor, labels) -> torch.Tensor:
    """(C, D) ICE's centroids: the plain mean of each cluster's L2-normalised features
    (clusters 0..C-1 in sorted id order, outliers left out; not re-normalised)."""
    features = _check_features(features)
    clusters = torch.as_tensor(contiguous(labels_1d(labels, len(features)))[0],
                               device=features.device)
    keep = clusters != OUTLIER
    return _class_means(features[keep], clusters[keep], class_count(labels))


# --- sampling ----------------------------------------------------------------------------

def _cameras_first(rows: np.ndarray, cams: np.ndarray, k: int,
                   rng: np.random.Generator) -> np.ndarray:
    """``k`` rows of one cluster: one random row per camera, then (with fewer than ``k``
    cameras) others of the cluster, drawn without replacement while there are enough."""
    chosen = np.array([rng.choice(rows[cams == c]) for c in np.unique(cams)])
    if len(chosen) >= k:
        return rng.choice(chosen, k, replace=False)
    rest = np.setdiff1d(rows, chosen)
    if len(rest) == 0:
        return rng.choice(chosen, k, replace=True)
    extra = rng.choice(rest, k - len(chosen), replace=len(rest) < k - len(chosen))
    return np.concatenate([chosen, extra])


def more_camera_batches(labels, camids, p: int, k: int, seed: int, epoch: int,
                        iters: int | None = None) -> list[np.ndarray]:
    """ICE's ``MoreCameraSampler``: ``p`` clusters x ``k`` rows, the rows spread over as
    many cameras of their cluster as possible (:func:`_cameras_first`).

    ``labels``: (N,) clusters (-1 = not trained on); ``camids``: (N,). Each pass visits
    every cluster once in random order; batches are cut from consecutive passes (tails
    dropped): ``iters`` of them, or one pass's. Depends only on ``(seed, epoch)``.
    """
    if p < 1 or k < 1 or (iters is not None and iters < 1):
        raise ValueError(f"p, k and iters must be >= 1, got {p}, {k}, {iters}")
    labels = labels_1d(labels, len(labels), name="labels")
    camids = labels_1d(camids, len(labels), name="camids (one per label)", allow_outliers=False)
    keep = np.flatnonzero(labels != OUTLIER)
    if len(keep) == 0:
        raise ValueError("ICE's sampler needs clustered rows: every label is -1")
    order = keep[np.argsort(labels[keep], kind="stable")]
    members = np.split(order, np.flatnonzero(np.diff(labels[order])) + 1)
    rng = np.random.default_rng([seed, epoch])

    def one_pass() -> np.ndarray:
        return np.concatenate([_cameras_first(members[c], camids[members[c]], k, rng)
                               for c in rng.permutation(len(members))])

    return cut_passes(one_pass, p * k, iters, f"the {len(members)} clusters")


# --- the method --------------------------------------------------------------------------

def _embeddings(net: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    out = net(x)
    return out.embeddings if isinstance(out, ReidOutput) else out


class ICE(Method):
    """ICE: CAP's inter-camera proxy loss, cluster centroids and inter-instance contrast
    with a mean teacher (module docstring). Defaults are ICE's code's.

    ``method.model`` is the mean teacher (what ICE clusters and evaluates);
    ``method.student`` is trained. ``more_cameras=False`` replaces ICE's sampler by the
    ``sampler`` / ``other_cameras`` of :class:`~reidlib.training.Method`.
    """

    name = "ICE (inter-instance contrast)"
    recipe = {"epochs": 40, "iters": 400, "lr": 3.5e-4, "weight_decay": 5e-4, "decay": "all",
              "schedule": "constant", "warmup_epochs": 10, "p": 8, "k": 4}

    def __init__(self, model: ReidModel, alpha: float = 0.999,
                 proxy_temperature: float = 0.5, epsilon: float = 0.1,
                 camera_temperature: float = 0.07, k: int = 50, camera_weight: float = 0.5,
                 instance_temperature: float = 0.1, soft_temperature: float = 0.4,
                 soft_weight: float = 10.0, more_cameras: bool = True, sampler: str = "pk",
                 other_cameras: bool = False):
        self.student = check_reid_model(model)
        self.set_sampler(sampler, other_cameras)
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha (the teacher's averaging weight) must lie in [0, 1], "
                             f"got {alpha}")
        _check_k(k)
        temperatures = (proxy_temperature, camera_temperature, instance_temperature,
                        soft_temperature)
        if min(temperatures) <= 0:
            raise ValueError(f"temperatures must be > 0, got {temperatures}")
        self.alpha, self.epsilon, self.k = float(alpha), float(epsilon), int(k)
        self.proxy_temperature, self.camera_temperature = proxy_temperature, camera_temperature
        self.instance_temperature, self.soft_temperature = instance_temperature, soft_temperature
        self.camera_weight, self.soft_weight = float(camera_weight), float(soft_weight)
        self.more_cameras = bool(more_cameras)
        self.student.reset_classifier(0)  # centroids and proxies replace the classifier
        self.teacher = make_teacher(self.student)
        self.memory: CameraProxyMemory | None = None
        self.centroids: torch.Tensor | None = None

    @property
    def model(self) -> ReidModel:
        """The network ICE clusters and evaluates: the mean teacher."""
        return self.teacher

    def parameters(self):
        return list(self.student.parameters())

    def models(self):
        return [self.student, self.teacher]

    def new_labels(self, features, labels, train) -> None:
        self.centroids = cluster_centroids(features, labels)
        self.memory = CameraProxyMemory(features, labels, train.camids,
                                        temperature=self.camera_temperature, k=self.k)

    def batches(self, labels, camids, *, p, k, iters, seed, epoch):
        if not self.more_cameras:
            return super().batches(labels, camids, p=p, k=k, iters=iters, seed=seed,
                                   epoch=epoch)
        return more_camera_batches(labels, camids, p, k, seed, epoch, iters)

    def _views(self, batch):
        """(view 1, view 2, the plain images) as the models take them."""
        weak = eval_transform(batch.images)
        if batch.channels_last:
            weak = weak.contiguous(memory_format=torch.channels_last)
        return batch.augmented(), batch.augmented(), weak

    def loss(self, batch):
        view1, view2, weak = self._views(batch)
        with autocast_for(batch.images.device):
            f = _embeddings(self.student, view1)
            with torch.no_grad():
                keys = _embeddings(self.teacher, view2)
                plain = _embeddings(self.teacher, weak)
        f = f.float()
        parts = {
            "proxy": cross_entropy_label_smooth(f @ self.centroids.T / self.proxy_temperature,
                                                batch.labels, self.epsilon),
            "camera": self.memory.inter_loss(f, batch.indices),
            "hard_instance": hard_instance_loss(f, keys, batch.labels,
                                                self.instance_temperature),
            "soft_instance": soft_instance_consistency(f, keys, plain, self.soft_temperature),
        }
        loss = (parts["proxy"] + self.camera_weight * parts["camera"] + parts["hard_instance"]
                + self.soft_weight * parts["soft_instance"])
        return loss, parts

    def after_step(self, batch) -> None:
        ema_update(self.teacher, self.student, self.alpha, buffers="keep")

    def config(self) -> dict:
        return {**super().config(), "alpha": self.alpha, "epsilon": self.epsilon, "k": self.k,
                "proxy_temperature": self.proxy_temperature,
                "camera_temperature": self.camera_temperature,
                "instance_temperature": self.instance_temperature,
                "soft_temperature": self.soft_temperature, "camera_weight": self.camera_weight,
                "soft_weight": self.soft_weight, "more_cameras": self.more_cameras}

    def state_dict(self) -> dict:
        memory = None if self.memory is None else {"buffers": self.memory.state_dict(),
                                                   "settings": self.memory.settings()}
        return {**super().state_dict(), "memory": memory, "centroids": self.centroids}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        device = model_device(self.student)
        saved = state["memory"]
        self.memory = None if saved is None else CameraProxyMemory.from_state(
            saved["buffers"], **saved["settings"]).to(device)
        centroids = state["centroids"]
        self.centroids = None if centroids is None else centroids.to(device)
