"""Intra- then inter-camera association (survey §3.3, camera-aware invariance learning).

Within one camera, two images of a person look alike; across cameras, light, viewpoint and
background change, so a feature distance ranks many same-camera strangers before the same
person seen elsewhere. UGA (Wu et al., "Unsupervised Graph Association for Person
Re-identification", ICCV 2019) and IICS (Xuan & Zhang, "Intra-Inter Camera Similarity for
Unsupervised Person Re-Identification", CVPR 2021) therefore associate in two stages:

1. **intra-camera**: cluster each camera's images on their own (no cross-camera pair can
   be wrong there) and train one classifier per camera on those per-camera identities;
2. **inter-camera**: describe every image by what the per-camera classifiers predict for it,
   ``s_i`` = the softmax of each camera's classifier, concatenated over the cameras. Two
   images of one person get similar predictions from a camera's classifier whichever camera
   they come from, so the score similarity bridges the camera gap; cluster all images on it
   and train on the cross-camera pseudo-labels.

We follow IICS's official code (github.com/SY-Xuan/IICS, ``reid/cluster_utils/cluster.py``,
``reid/models/ft_net.py``, ``reid/trainers.py``, ``example/iics.py``):

- each camera's classifier is a BatchNorm1d (shift frozen at 0) and a bias-free linear layer
  on the pooled, pre-BN feature, initialised N(0, 0.001^2); the intra-camera loss is the sum
  over cameras of the plain cross-entropy of that camera's images, each batch holding the
  same number of images (8) of every camera (:func:`camera_batches`);
- the score similarity is the Jaccard similarity of the (non-negative) score vectors,
  ``J(s_i, s_j) = sum_k min(s_ik, s_jk) / sum_k max(s_ik, s_jk)`` (:func:`score_jaccard`);
- it is mixed into the cosine distance of cross-camera pairs only:
  ``d_ij = 1 - cos(f_i, f_j) - mu_r [cam_i != cam_j] J(s_i, s_j)`` (:func:`inter_camera_distance`),
  with ``mu_r = mu (1 - r / R) ** 0.6`` in round r of R (mu = 0.02; :func:`mix_weight`);
- that distance is re-ranked by k-reciprocal encoding before clustering, and the inter-camera
  stage trains a fresh classifier with plain cross-entropy plus the batch-hard triplet loss
  (margin 0.3) on the pooled feature, P x K = 16 x 4 batches.

Deliberate differences (the clustering is the library's, chapter 2's, not IICS's):

- IICS clusters with average-linkage agglomerative clustering into a fixed number of clusters
  (600 per camera, 800 in all on Market-1501; its "threshold" variant cuts at a quantile of
  the distances) on Zhong et al.'s re-ranked distance (lambda = 0.3). We run DBSCAN on the
  k-reciprocal Jaccard distance of SpCL / Cluster Contrast
  (:func:`reidlib.pseudo_labels.jaccard_distance`, lambda = 0), which needs no cluster count
  per dataset. Across cameras that Jaccard distance is computed from the mixed distance
  ``d_ij`` (:func:`inter_camera_jaccard`), so, as in IICS, the score term decides which
  images are k-reciprocal neighbours; with mu = 0 it equals ``jaccard_distance``.
- IICS clusters the L2-normalised pooled feature; we cluster the model's eval embedding
  (post-BNNeck, L2-normalised), as every method of the course does, without flip
  averaging. The inter-camera stage trains the model's own BNNeck + classifier (a fresh
  classifier each round; IICS also builds a fresh BatchNorm).
- The optimiser is the loop's Adam, not IICS's SGD (lr 0.005, backbone x 0.1).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from reidlib.checks import features_2d, int_in_range, labels_1d, real_in_range
from reidlib.models.heads import bnneck
from reidlib.pseudo_labels.generators import dbscan_labels
from reidlib.pseudo_labels.jaccard import (
    expand_sets,
    jaccard_distance,
    jaccard_from_weights,
    query_expansion,
    reciprocal_sets,
    self_first,
)
from reidlib.pseudo_labels.labels import OUTLIER, class_count
from reidlib.training.classification import check_reid_model
from reidlib.training.features import autocast_for, extract_features, model_device
from reidlib.training.losses import batch_hard_triplet_loss
from reidlib.training.method import Method

__all__ = ["IICS", "camera_batches", "camera_classifier", "camera_dbscan", "camera_scores",
           "inter_camera_distance", "inter_camera_jaccard", "inter_camera_labels",
           "intra_camera_labels", "mix_weight", "score_jaccard"]


# --- checks ---------------------------------------------------------------------------------

def _camids(camids, n: int) -> np.ndarray:
    return labels_1d(camids, n, name="camids (one camera id per feature row)",
                     allow_outliers=False)


def _as_tensor(x, name: str, device=None) -> torch.Tensor:
    """A checked float32 (N, D) tensor, on ``x``'s own device when it is a tensor."""
    if isinstance(x, torch.Tensor):
        device = x.device if device is None else device
        x = x.detach()
        if x.ndim != 2 or len(x) == 0 or not x.is_floating_point() or not x.isfinite().all():
            raise ValueError(f"{name} must be a finite float (N, D) tensor with N >= 1, got "
                             f"{x.dtype} {tuple(x.shape)}")
        return x.float().to(device)
    return torch.from_numpy(features_2d(x, name)).to(device)


def _scores(scores, n: int, device) -> torch.Tensor:
    s = _as_tensor(scores, "scores (per-camera classifier probabilities)", device)
    if len(s) != n:
        raise ValueError(f"scores must have one row per feature row ({n}), got {len(s)}")
    if (s < 0).any():
        raise ValueError("scores must be non-negative (probabilities), got negative values")
    return s


# --- stage 1: intra-camera clustering -------------------------------------------------------

def camera_dbscan(eps: float = 0.6, min_samples: int = 4, k1: int = 30, k2: int = 6
                  ) -> Callable[[np.ndarray], np.ndarray]:
    """``features -> labels``: DBSCAN on the k-reciprocal Jaccard distance (chapter 2's
    clustering) with k1 and k2 capped at the number of images, so that it also runs on a
    camera that holds fewer than k1 images."""
    def cluster(features) -> np.ndarray:
        x = features_2d(features)
        dist = jaccard_distance(x, k1=min(k1, len(x)), k2=min(k2, len(x)), progress=False,
                                max_distance=eps)
        return dbscan_labels(dist, eps=eps, min_samples=min_samples)

    cluster.__name__ = f"camera_dbscan(eps={eps}, min_samples={min_samples}, k1={k1}, k2={k2})"
    return cluster


def intra_camera_labels(features, camids, cluster: Callable[[np.ndarray], np.ndarray]
                        ) -> np.ndarray:
    """Stage 1 (IICS / UGA): ``cluster`` each camera's rows on their own (survey §3.3).

    ``features``: (N, D); ``camids``: (N,) camera ids; ``cluster``: ``(n, D) features ->
    (n,) labels`` (-1 = outlier), e.g. :func:`camera_dbscan`. Returns (N,) int64 labels in
    which every cluster lies in one camera: camera c's clusters are numbered after those of
    the cameras before it (sorted ids), outliers stay -1.
    """
    x = features_2d(features)
    cams = _camids(camids, len(x))
    out = np.full(len(x), OUTLIER, dtype=np.int64)
    offset = 0
    for cam in np.unique(cams):
        rows = np.flatnonzero(cams == cam)
        own = labels_1d(cluster(x[rows]), len(rows), name=f"cluster(camera {cam} features)")
        kept = own != OUTLIER
        ids, local = np.unique(own[kept], return_inverse=True)
        out[rows[kept]] = offset + local
        offset += len(ids)
    return out


# --- stage 2: the inter-camera similarity -----------------------------------------------------

def camera_scores(heads: nn.ModuleList, pooled: torch.Tensor) -> torch.Tensor:
    """(N, sum_c C_c): each camera's classifier's softmax over its own classes, concatenated
    over the cameras in ``heads`` order (IICS's ``extract_features_cross_cam``). ``heads``
    are used in eval mode (running BatchNorm statistics); ``pooled``: (N, D) pooled
    features."""
    if len(heads) == 0:
        raise ValueError("camera_scores needs at least one per-camera classifier")
    was = [h.training for h in heads]
    heads.eval()
    try:
        with torch.no_grad():
            return torch.cat([F.softmax(h(pooled.float()).float(), dim=1) for h in heads], 1)
    finally:
        for h, mode in zip(heads, was, strict=True):
            h.train(mode)


def score_jaccard(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(n, m) Jaccard similarity of non-negative score vectors (IICS's
    ``jaccard_sim_cross_cam``): ``sum_k min(a_ik, b_jk) / sum_k max(a_ik, b_jk)``.

    With min = (x + y - |x - y|) / 2 and max = (x + y + |x - y|) / 2 both sums come from the
    row sums and the L1 distance, so no (n, m, C) tensor is built.
    """
    l1 = torch.cdist(a.float(), b.float(), p=1)
    total = a.float().sum(1)[:, None] + b.float().sum(1)[None, :]
    return (total - l1) / (total + l1).clamp(min=1e-12)


def _mixed_block(x, s, cams, rows, mix: float) -> torch.Tensor:
    """Rows ``rows`` of the mixed distance against every row (internal, checked inputs)."""
    d = 1.0 - x[rows] @ x.T
    if mix > 0:
        other = cams[rows][:, None] != cams[None, :]
        d = d - mix * other * score_jaccard(s[rows], s)
    return d


def inter_camera_distance(features, scores, camids, mix: float) -> torch.Tensor:
    """(N, N) IICS's inter-camera distance, ``1 - cos(f_i, f_j) - mix [cam_i != cam_j]
    J(s_i, s_j)`` (module docstring; ``cluster_cross_cam`` in the official code).

    ``features``: (N, D) (L2-normalised here); ``scores``: (N, C) non-negative per-camera
    classifier scores (:func:`camera_scores`); ``camids``: (N,); ``mix`` >= 0. Computed on
    ``features``' device when it is a tensor. Dense: for teaching and small N; clustering
    uses :func:`inter_camera_jaccard`, which never holds all N x N at once.
    """
    x, s, cams, mix = _check_inter(features, scores, camids, mix)
    return _mixed_block(x, s, cams, slice(None), mix)


def _check_inter(features, scores, camids, mix):
    x = F.normalize(_as_tensor(features, "features"), dim=1)
    s = _scores(scores, len(x), x.device)
    cams = torch.from_numpy(_camids(camids, len(x))).to(x.device)
    return x, s, cams, real_in_range(mix, "mix", lo=0.0)


def mix_weight(mu: float, round_index: int, rounds: int, power: float = 0.6) -> float:
    """IICS's decaying weight of the score term: ``mu (1 - r / R) ** power`` in round r of R
    (``get_mix_rate``; mu = 0.02, power 0.6); 0 from round R on."""
    mu = real_in_range(mu, "mu", lo=0.0)
    rounds = int_in_range(rounds, "rounds", 1)
    round_index = int_in_range(round_index, "round_index", 0)
    return mu * max(0.0, 1.0 - round_index / rounds) ** power


def _knn(x, s, cams, mix: float, k: int, block_cells: int = 1 << 24):
    """(N, k) doubled mixed distances and indices of each row's k nearest rows, self first."""
    n = len(x)
    step = max(1, block_cells // n)
    dists, ranks = [], []
    for start in range(0, n, step):
        d = 2.0 * _mixed_block(x, s, cams, slice(start, start + step), mix)
        top = torch.topk(d, k, dim=1, largest=False, sorted=True)
        dists.append(top.values.cpu())
        ranks.append(top.indices.cpu())
    dist = torch.cat(dists).double().numpy()
    return self_first(dist, torch.cat(ranks).numpy().astype(np.int64))


def _pair_distances(x, s, cams, mix: float, rows, cols, cells: int = 1 << 24) -> np.ndarray:
    """Doubled mixed distance of the listed pairs (float64), about ``cells`` score entries
    gathered at a time."""
    out = np.empty(len(rows), dtype=np.float64)
    chunk = max(1, cells // s.shape[1])
    for a in range(0, len(rows), chunk):
        r = torch.as_tensor(rows[a:a + chunk], device=x.device)
        c = torch.as_tensor(cols[a:a + chunk], device=x.device)
        d = 1.0 - (x[r] * x[c]).sum(1)
        if mix > 0:
            sr, sc = s[r], s[c]
            jac = torch.minimum(sr, sc).sum(1) / torch.maximum(sr, sc).sum(1).clamp(min=1e-12)
            d = d - mix * (cams[r] != cams[c]) * jac
        out[a:a + chunk] = 2.0 * d.double().cpu().numpy()
    return out


def _set_weights(sets: sp.csr_matrix, dist: np.ndarray) -> sp.csr_matrix:
    """V (Zhong et al. Eq. 7): softmax of -dist over each row's set (``dist`` aligned with
    the stored entries); the row minimum is subtracted first, which cancels."""
    n = sets.shape[0]
    rows = np.repeat(np.arange(n), np.diff(sets.indptr))
    starts = sets.indptr[:-1]
    weight = np.exp(-(dist - np.minimum.reduceat(dist, starts)[rows]))
    weight /= np.add.reduceat(weight, starts)[rows]
    return sp.csr_matrix((weight, sets.indices, sets.indptr), shape=(n, n))


def inter_camera_jaccard(features, scores, camids, mix: float, k1: int = 30, k2: int = 6,
                         max_distance: float | None = None) -> sp.csr_matrix:
    """k-reciprocal Jaccard distance (survey §3.1) on IICS's mixed distance (module docstring).

    The steps of :func:`reidlib.pseudo_labels.jaccard_distance`, whose k1 / k2 they share,
    with the doubled mixed distance ``2 d_ij`` in place of the squared Euclidean distance
    ``2 - 2 cos``: nearest neighbours, reciprocal and expanded sets, Gaussian weights, query
    expansion, then d_J. The cross-camera score term thus changes who is whose k-reciprocal
    neighbour, as IICS's re-ranking of its mixed distance does; ``mix=0`` gives exactly
    ``jaccard_distance(features)``. Neighbours are searched a block of rows at a time on
    ``features``' device. Returns a symmetric sparse (N, N) matrix, absent pairs at 1.
    """
    x, s, cams, mix = _check_inter(features, scores, camids, mix)
    n = len(x)
    k1 = int_in_range(k1, "k1", 1, n, hi_name="N")
    k2 = int_in_range(k2, "k2", 1, n, hi_name="N")
    max_distance = real_in_range(max_distance, "max_distance", lo=0.0, allow_none=True)
    dist, rank = _knn(x, s, cams, mix, max(k1, k2))
    half = int(np.around(k1 / 2.0))
    sets = expand_sets(reciprocal_sets(rank[:, :k1]), reciprocal_sets(rank[:, :half + 1]))
    rows = np.repeat(np.arange(n), np.diff(sets.indptr))
    v = _set_weights(sets, _pair_distances(x, s, cams, mix, rows, sets.indices))
    if k2 != 1:
        v = query_expansion(v, rank[:, :k2])
    return jaccard_from_weights(v, max_distance=max_distance)


def inter_camera_labels(features, scores, camids, mix: float, eps: float = 0.6,
                        min_samples: int = 4, k1: int = 30, k2: int = 6) -> np.ndarray:
    """Stage 2: cross-camera pseudo-labels, DBSCAN on :func:`inter_camera_jaccard` (the
    pairs beyond eps are never kept). (N,) int64, -1 = outlier."""
    eps = real_in_range(eps, "eps", lo=0.0, lo_open=True)
    dist = inter_camera_jaccard(features, scores, camids, mix, k1, k2, max_distance=eps)
    return dbscan_labels(dist, eps=eps, min_samples=min_samples)


# --- stage 1 training: batches and per-camera classifiers -------------------------------------

def camera_batches(labels, camids, per_camera: int, seed: int, epoch: int) -> list[np.ndarray]:
    """IICS's intra-camera batches: each holds ``per_camera`` labelled images of every camera
    (one shuffled, ``drop_last`` loader per camera, zipped: the epoch ends with the camera
    that runs out first). A camera with fewer labelled images than one batch's share is
    topped up with its own images drawn again. Rows labelled -1 are never drawn. Depends only
    on (seed, epoch)."""
    labels, cams = np.asarray(labels), np.asarray(camids)
    if labels.shape != cams.shape or labels.ndim != 1:
        raise ValueError(f"labels and camids must be (N,) arrays of one shape, got "
                         f"{labels.shape} and {cams.shape}")
    per_camera = int_in_range(per_camera, "per_camera", 1)
    kept = labels >= 0
    groups = [np.flatnonzero(kept & (cams == c)) for c in np.unique(cams[kept])]
    if not groups:
        raise ValueError("camera_batches needs labelled rows (label >= 0), got none")
    rng = np.random.default_rng([seed, epoch])
    steps = max(1, min(len(g) // per_camera for g in groups))
    need = steps * per_camera
    chunks = []
    for g in groups:
        order = rng.permutation(g)
        if len(order) < need:
            order = np.concatenate([order, rng.choice(g, need - len(order))])
        chunks.append(order[:need].reshape(steps, per_camera))
    return [np.concatenate([c[s] for c in chunks]).astype(np.int64) for s in range(steps)]


def camera_classifier(dim: int, num_classes: int, generator=None) -> nn.Sequential:
    """One camera's classifier (IICS's ``ft_net_intra``): BatchNorm1d with its shift frozen
    at 0, then a bias-free linear layer initialised N(0, 0.001^2)."""
    layer = nn.Linear(dim, num_classes, bias=False)
    nn.init.normal_(layer.weight, std=0.001, generator=generator)
    return nn.Sequential(bnneck(dim), layer)


class IICS(Method):
    """IICS: alternate intra-camera and inter-camera training (module docstring).

    Train it with its own clustering, one stage per ``recluster_every`` epochs (IICS: 2 and
    2, 40 rounds)::

        iics = IICS(model, train)
        fit(iics, train, cluster=iics.cluster, recluster_every=2, epochs=4 * 40, ...)

    Stages alternate at every clustering, starting with the intra-camera one:

    - intra: :meth:`cluster` returns :func:`intra_camera_labels`; :meth:`new_labels` builds
      one classifier per camera (:func:`camera_classifier`) and removes the model's own; each
      batch holds ``per_camera`` images of every camera (:func:`camera_batches`); the loss is
      the sum over cameras of the cross-entropy of that camera's images;
    - inter: the method extracts the pooled features itself (:meth:`cluster_features`: one
      pass gives the embeddings to cluster and the per-camera scores,
      :func:`camera_scores`), :meth:`cluster` returns :func:`inter_camera_labels` with
      weight ``mix_weight(mu, round, rounds)``; then the model gets a fresh classifier and
      the per-camera ones are dropped; P x K batches; loss = cross-entropy + batch-hard
      triplet on the pooled features.

    ``train``: the training set ``fit`` gets (its camera ids and images are needed by the
    clustering, before ``fit`` hands the set to :meth:`new_labels`). ``rounds``: the number
    of intra + inter rounds the run will do (the decay of mu). ``eps``, ``min_samples``,
    ``k1``, ``k2``: the inter-camera DBSCAN on the Jaccard distance; ``intra_eps``,
    ``intra_min_samples``: the per-camera one (a camera sees a person a few times only).
    """

    name = "IICS (intra- / inter-camera)"
    recipe = {"epochs": 160, "recluster_every": 2, "lr": 3.5e-4, "weight_decay": 5e-4,
              "schedule": "constant", "p": 16, "k": 4}

    def __init__(self, model, train, rounds: int = 40, per_camera: int = 8, mu: float = 0.02,
                 power: float = 0.6, eps: float = 0.6, min_samples: int = 4,
                 intra_eps: float = 0.6, intra_min_samples: int = 2, k1: int = 30, k2: int = 6,
                 margin: float = 0.3, seed: int = 0, sampler: str = "pk",
                 other_cameras: bool = False):
        super().__init__(check_reid_model(model), sampler=sampler, other_cameras=other_cameras)
        if not hasattr(train, "camids") or not hasattr(train, "images"):
            raise ValueError(f"train must be the ImageSet given to fit, got {type(train).__name__}")
        self.train_set = train
        self.camids = _camids(train.camids, len(train))
        self.rounds = int_in_range(rounds, "rounds", 1)
        self.per_camera = int_in_range(per_camera, "per_camera", 2)  # BatchNorm needs 2 rows
        self.mu = real_in_range(mu, "mu", lo=0.0)
        self.power = real_in_range(power, "power", lo=0.0)
        self.eps, self.min_samples = eps, min_samples
        self.intra_eps, self.intra_min_samples = intra_eps, intra_min_samples
        self.k1, self.k2, self.margin, self.seed = k1, k2, margin, seed
        self.stage: str | None = None  # the stage of the current labels
        self.round = 0  # inter-camera clusterings done
        self.heads = nn.ModuleList()
        self._head_of_class = self._local_class = None
        self._scores: torch.Tensor | None = None
        self.model.reset_classifier(0)

    # --- what the loop trains
    def models(self) -> list[nn.Module]:
        return [self.model, self.heads]

    def parameters(self) -> list[nn.Parameter]:
        return list(self.model.parameters()) + list(self.heads.parameters())

    def next_stage(self) -> str:
        """The stage the next clustering starts: intra first, then alternating."""
        return "inter" if self.stage == "intra" else "intra"

    def current_mix(self) -> float:
        return mix_weight(self.mu, self.round, self.rounds, self.power)

    # --- clustering
    def cluster_features(self):
        """Before an inter-camera clustering: one pass over the training set gives the
        pooled features, hence the per-camera scores (kept) and the embeddings to cluster."""
        if self.next_stage() != "inter":
            return None
        trunk = nn.Sequential(self.model.backbone, self.model.pool)
        pooled = extract_features(trunk, self.train_set, flip=False, normalize=False,
                                  progress=False).to(model_device(self.model))
        was = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode():
                embeddings = self.model.neck(pooled)
        finally:
            self.model.train(was)
        self._scores = camera_scores(self.heads, pooled)
        return F.normalize(embeddings.float(), dim=1)

    def cluster(self, features) -> np.ndarray:
        """``fit``'s ``cluster=``: intra- or inter-camera labels, by :meth:`next_stage`."""
        if self.next_stage() == "intra":
            return intra_camera_labels(features, self.camids, camera_dbscan(
                self.intra_eps, self.intra_min_samples, self.k1, self.k2))
        if self._scores is None:
            raise RuntimeError("the inter-camera clustering needs the per-camera scores of "
                               "cluster_features(); train IICS through fit")
        x = torch.as_tensor(np.asarray(features), device=self._scores.device)
        k = min(self.k1, len(x)), min(self.k2, len(x))
        return inter_camera_labels(x, self._scores, self.camids, self.current_mix(),
                                   self.eps, self.min_samples, *k)

    def new_labels(self, features, labels, train) -> None:
        if len(train) != len(self.camids) or not np.array_equal(train.camids, self.camids):
            raise ValueError("IICS was built for another training set than the one fit "
                             "trains on: pass the same ImageSet to both")
        stage = self.next_stage()
        if stage == "intra":
            self._build_heads(np.asarray(labels))
        else:
            gen = torch.Generator().manual_seed(self.seed + self.round)
            self.model.reset_classifier(class_count(labels), generator=gen)
            self.heads = nn.ModuleList()
            self._scores = None
            self.round += 1
        self.stage = stage

    def _build_heads(self, labels: np.ndarray) -> None:
        """One classifier per camera over its own classes; class -> (head, local class)."""
        kept = labels >= 0
        num_classes = int(labels.max()) + 1 if kept.any() else 0
        pairs = np.unique(np.stack([labels[kept], self.camids[kept]]), axis=1)
        per_class = np.bincount(pairs[0], minlength=num_classes)
        if (per_class != 1).any():
            bad = int(np.flatnonzero(per_class != 1)[0])
            raise ValueError(f"intra-camera labels must be 0..C-1, each class in one camera; "
                             f"class {bad} lies in {per_class[bad]} cameras")
        cam_of = pairs[1][np.argsort(pairs[0])]
        head_cams, head = np.unique(cam_of, return_inverse=True)
        order = np.argsort(head, kind="stable")
        local = np.empty(num_classes, np.int64)
        sizes = np.bincount(head, minlength=len(head_cams))
        local[order] = np.concatenate([np.arange(n) for n in sizes]) if num_classes else []
        device = model_device(self.model)
        gen = torch.Generator().manual_seed(self.seed)
        self.heads = nn.ModuleList(camera_classifier(self.model.feature_dim, int(n), gen)
                                   for n in sizes).to(device)
        self._head_of_class = torch.as_tensor(head, device=device)
        self._local_class = torch.as_tensor(local, device=device)
        self.model.reset_classifier(0)

    # --- batches and loss
    def batches(self, labels, camids, *, p, k, iters, seed, epoch):
        if self.stage == "intra":
            return camera_batches(labels, camids, self.per_camera, seed, epoch)
        return super().batches(labels, camids, p=p, k=k, iters=iters, seed=seed, epoch=epoch)

    def loss(self, batch):
        with autocast_for(batch.images.device):
            out = self.model(batch.augmented())
        features = out.features.float()
        if self.stage == "intra":
            loss = self._intra_loss(features, batch.labels)
            return loss, {"intra_ce": loss}
        ce = F.cross_entropy(out.logits.float(), batch.labels)
        triplet = batch_hard_triplet_loss(features, batch.labels, self.margin)
        return ce + triplet, {"ce": ce, "triplet": triplet}

    def _intra_loss(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Sum over the cameras in the batch of the CE of their images (IICS sums them)."""
        head, local = self._head_of_class[labels], self._local_class[labels]
        total = features.new_zeros(())
        for h in torch.unique(head).tolist():  # one host sync a step
            rows = head == h
            total = total + F.cross_entropy(self.heads[h](features[rows]), local[rows])
        return total

    # --- checkpoints
    def config(self) -> dict:
        return {**super().config(), "rounds": self.rounds, "per_camera": self.per_camera,
                "mu": self.mu, "power": self.power, "eps": self.eps,
                "min_samples": self.min_samples, "intra_eps": self.intra_eps,
                "intra_min_samples": self.intra_min_samples, "k1": self.k1, "k2": self.k2,
                "margin": self.margin, "seed": self.seed}

    def state_dict(self) -> dict:
        sizes = [int(h[1].out_features) for h in self.heads]
        return {**super().state_dict(), "stage": self.stage, "round": self.round,
                "head_sizes": sizes, "head_of_class": self._head_of_class,
                "local_class": self._local_class}

    def load_state_dict(self, state: dict) -> None:
        device = model_device(self.model)
        self.heads = nn.ModuleList(camera_classifier(self.model.feature_dim, size)
                                   for size in state["head_sizes"]).to(device)
        super().load_state_dict(state)
        self.stage, self.round = state["stage"], state["round"]
        moved = [None if t is None else t.to(device)
                 for t in (state["head_of_class"], state["local_class"])]
        self._head_of_class, self._local_class = moved
        self._scores = None
