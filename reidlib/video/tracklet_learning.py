"""Tracklets as free positives: TAUDL, UTAL and BUC on tracklets (survey §3.2-3.3).

A tracker gives, without any label, groups of frames that show one person: the tracklets.
Within one camera two tracklets seen at the same time are two people, so per camera the
tracklet ids are (nearly) identity labels; across cameras nothing is known. TAUDL [97] and
UTAL [98] (survey §3.2, and §3.3 for the camera-invariance they buy) learn from both facts:

- Per-Camera Tracklet Discrimination (PCTD): one softmax per camera over that camera's
  tracklets, with one shared network; each frame should be classified as its own tracklet
  among the tracklets *of its camera* (:func:`per_camera_tracklet_loss`). Tracklets of
  other cameras are never negatives, since one of them may be the same person.
- Cross-Camera Tracklet Association (CCTA): for each tracklet, the most similar tracklets
  of *other* cameras are probably the same person and are pulled closer with a
  multi-positive softmax (TAUDL: in the batch, :func:`batch_association_loss`; UTAL: in a
  memory of every tracklet, re-associated as training goes,
  :func:`cross_camera_associations` and :func:`cross_camera_association_loss`).

    loss = (1 - lambda) L_pctd + lambda L_ccta,   lambda = 0.7 (TAUDL's paper and code).

BUC (Lin et al., "A Bottom-up Clustering Approach to Unsupervised Person
Re-identification", AAAI 2019), the survey's video baseline, starts each tracklet as one
cluster: :func:`tracklet_buc`; :func:`tracklet_cluster` does the same for any clustering
(Cluster Contrast "on tracklets"): frames of one tracklet always share a label.

References: [97] M. Li, X. Zhu, S. Gong, "Unsupervised Person Re-identification by Deep
Learning Tracklet Association", ECCV 2018 (official code:
github.com/liminxian/Tracklet-Association-Unsupervised-Deep-Learning); [98] M. Li, X. Zhu,
S. Gong, "Unsupervised Tracklet Person Re-Identification", IEEE TPAMI 2019 (published
2020). Class docstrings list where we differ from them and why.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F

from reidlib.checks import as_numpy, features_2d, int_in_range, labels_1d, real_in_range
from reidlib.feature_learning.contrast import MemoryMethod
from reidlib.feature_learning.memory import ClusterMemory, _check_features
from reidlib.pseudo_labels.hierarchical import buc_labels
from reidlib.pseudo_labels.labels import OUTLIER
from reidlib.training.features import autocast_for
from reidlib.video.pooling import temporal_average, tracklet_index, tracklet_labels

__all__ = ["TAUDL", "UTAL", "TrackletMemory", "association_precision",
           "batch_association_loss", "cross_camera_association_loss",
           "cross_camera_associations", "per_camera_tracklet_loss", "tracklet_buc",
           "tracklet_classes", "tracklet_cluster"]


# --- tracklet bookkeeping ------------------------------------------------------------------

# The frames' tracklet index, each tracklet's camera and its mean frame feature come from
# reidlib.video.pooling (tracklet_index, tracklet_labels, temporal_average): one place for
# the video chapter's tracklet bookkeeping.

def tracklet_classes(train) -> np.ndarray:
    """(N,) the training frames' tracklet ids renumbered 0..T-1 (sorted ids, the order of
    :func:`reidlib.video.pooling.tracklet_index`): ``fit(..., labels=)`` for :class:`UTAL` /
    :class:`TAUDL`. Checked: every frame has a tracklet (no -1) and every tracklet stays in
    one camera (a tracklet is one pass of one person past one camera)."""
    _, index = tracklet_index(train.tracklets, n=len(train), name="train.tracklets")
    tracklet_labels(train.camids, train.tracklets, name="train.camids")
    return index


# --- BUC and any clustering on tracklets ---------------------------------------------------

def tracklet_cluster(cluster: Callable[[np.ndarray], np.ndarray],
                     tracklets) -> Callable[[np.ndarray], np.ndarray]:
    """A frame-level clustering ``cluster`` ((N, D) features -> (N,) labels, e.g.
    ``jaccard_dbscan(...)``) made to run on tracklets, usable as ``fit``'s ``cluster=``.

    The returned function averages the frames of each tracklet
    (:func:`reidlib.video.pooling.temporal_average`), clusters the T tracklet features with
    ``cluster`` and gives every frame its tracklet's label (-1 stays -1): frames of one
    tracklet never get different labels. ``tracklets``: (N,) the training frames' tracklet
    ids, no -1. Counts in ``cluster`` now count tracklets: a person has only a few (2-4 in
    our synthetic worlds), so DBSCAN's ``min_samples = 4`` of the image recipes would leave
    most people as outliers; use 2.
    """
    ids, index = tracklet_index(tracklets)

    def cluster_tracklets(features) -> np.ndarray:
        x = features_2d(features)
        if len(x) != len(index):
            raise ValueError(f"features have {len(x)} rows but the tracklet ids {len(index)}: "
                             "build tracklet_cluster with the training set's tracklets")
        means = temporal_average(x, index)[0].cpu().numpy()  # float32, as x
        labels = labels_1d(cluster(means), len(ids), name="cluster(tracklet features)")
        return labels[index]

    return cluster_tracklets


def tracklet_buc(features, tracklets, n_clusters: int, diversity: float = 0.005,
                 merge_fraction: float | None = None, max_n: int = 5000) -> np.ndarray:
    """BUC on tracklets (survey §3.1 Eq. 2 and §3.2; Lin et al., AAAI 2019): (N,) labels.

    Each tracklet starts as one cluster (its frames averaged,
    :func:`reidlib.video.pooling.temporal_average`), then
    :func:`reidlib.pseudo_labels.buc_labels` merges the T tracklets into ``n_clusters``
    with BUC's criterion; every frame takes its tracklet's cluster. As in BUC's code on
    MARS / DukeMTMC-VideoReID, where each training sample *is* a tracklet (pooled over its
    frames), the diversity term counts tracklets, not frames, so every tracklet starts
    with size 1 (``buc_labels`` takes no initial sizes, and needs none for this).
    ``diversity``, ``merge_fraction``, ``max_n``: as in ``buc_labels`` (``max_n`` bounds T).
    """
    cluster = partial(buc_labels, n_clusters=n_clusters, diversity=diversity,
                      merge_fraction=merge_fraction, max_n=max_n)
    return tracklet_cluster(cluster, tracklets)(features)


# --- the two losses ------------------------------------------------------------------------

def per_camera_tracklet_loss(similarities: torch.Tensor, targets: torch.Tensor,
                             entry_camids: torch.Tensor, temperature: float) -> torch.Tensor:
    """PCTD (TAUDL / UTAL): batch mean of -log softmax_{j in cam(y_i)}(s_ij / tau)[y_i].

    ``similarities``: (B, T) cosines of the batch's embeddings to the T tracklet entries;
    ``targets``: (B,) each frame's tracklet; ``entry_camids``: (T,) each tracklet's camera.
    One softmax per camera: only the tracklets of the frame's own camera compete.
    """
    same = entry_camids[targets][:, None] == entry_camids[None, :]
    logits = (similarities / temperature).masked_fill(~same, float("-inf"))
    return F.cross_entropy(logits, targets)


def cross_camera_association_loss(similarities: torch.Tensor, targets: torch.Tensor,
                                  partners: torch.Tensor, temperature: float) -> torch.Tensor:
    """UTAL's CCTA on a memory: -log sum_{j in A(y_i)} p(j | x_i), mean over the frames
    whose tracklet has associates (0 when none has).

    p is the softmax of ``similarities / temperature`` over every entry but the frame's
    own tracklet (B, T); ``partners``: (B, T) bool, A(y_i), the tracklets associated with
    each frame's tracklet (other cameras). Summing the positives inside the log (TAUDL's
    Eq. 3 form) lets a frame lean towards whichever associate it resembles most.
    """
    has = partners.any(dim=1)
    if not bool(has.any()):
        return similarities.new_zeros(())
    own = torch.zeros_like(partners).scatter_(1, targets[:, None], True)
    logits = (similarities[has] / temperature).masked_fill(own[has], float("-inf"))
    log_p = F.log_softmax(logits, dim=1).masked_fill(~partners[has], float("-inf"))
    return -torch.logsumexp(log_p, dim=1).mean()


def batch_association_loss(embeddings: torch.Tensor, tracklets: torch.Tensor,
                           camids: torch.Tensor, temperature: float = 0.05,
                           k: int | None = None) -> torch.Tensor:
    """TAUDL's CCTA (its Eq. 3) within a batch.

    The frames of each tracklet in the batch are averaged (L2-normalised embeddings, mean,
    re-normalised: s_i, :func:`reidlib.video.pooling.temporal_average`; ``tracklets`` (B,)
    ids >= 0, ``camids`` (B,) constant within a tracklet); for each s_i its ``k`` most
    similar batch tracklets of other cameras are N_i (TAUDL's code: k = (number of cameras
    in the batch) // 2, at least 1, when ``k`` is None), and

        L = mean_i -log( sum_{j in N_i} e(i, j) / sum_{j in batch} e(i, j) ),
        e(i, j) = exp(s_i . s_j / tau)

    with the denominator over every batch tracklet, i itself included, as in TAUDL's code.
    Tracklets with no other-camera tracklet in the batch are left out (0 if all are).
    """
    means, _ = temporal_average(embeddings.float(), tracklets)
    cams = torch.as_tensor(tracklet_labels(camids, tracklets, name="camids"),
                           device=means.device)
    other = cams[:, None] != cams[None, :]
    if k is None:
        k = max(1, len(torch.unique(cams)) // 2)
    sims = means @ means.T
    top = sims.detach().masked_fill(~other, float("-inf")).topk(min(k, len(means)), dim=1)
    near = torch.zeros_like(other).scatter_(1, top.indices, torch.isfinite(top.values))
    has = near.any(dim=1)
    if not bool(has.any()):
        return sims.new_zeros(())
    log_p = F.log_softmax(sims[has] / temperature, dim=1)
    return -torch.logsumexp(log_p.masked_fill(~near[has], float("-inf")), dim=1).mean()


# --- the association -----------------------------------------------------------------------

def _associate(x: torch.Tensor, cams: torch.Tensor, k: int, reciprocal: bool,
               min_similarity: float | None) -> torch.Tensor:
    """(P, 2) int64 pairs i < j on ``x``'s device (see :func:`cross_camera_associations`)."""
    x = F.normalize(x.float(), dim=1)
    sims = (x @ x.T).masked_fill(cams[:, None] == cams[None, :], float("-inf"))
    top = sims.topk(min(k, len(x)), dim=1)
    knn = torch.zeros_like(sims, dtype=torch.bool)
    knn.scatter_(1, top.indices, torch.isfinite(top.values))
    if min_similarity is not None:
        knn &= sims >= min_similarity
    linked = knn & knn.T if reciprocal else knn | knn.T
    pairs = linked.nonzero()  # row-major: sorted by i, then j
    return pairs[pairs[:, 0] < pairs[:, 1]]


def cross_camera_associations(features, camids, k: int = 1, reciprocal: bool = True,
                              min_similarity: float | None = None) -> np.ndarray:
    """(P, 2) int64 tracklet pairs (i < j) of different cameras associated as one person.

    ``features``: (T, D) tracklet features (a memory's slots, averaged frames); ``camids``:
    (T,) their cameras. j is a candidate of i when j is among the ``k`` tracklets of other
    cameras most similar (cosine) to i; with ``reciprocal`` a pair needs both directions
    (i a candidate of j too: mutual neighbours rarely pair two people who each have a
    better match elsewhere), without it either direction suffices. ``min_similarity``:
    pairs below this cosine are dropped. Dense (T, T) similarities: T of a few thousand.
    """
    if isinstance(features, torch.Tensor):
        x = _check_features(features)
    else:
        x = torch.from_numpy(features_2d(features))
    cams = labels_1d(camids, len(x), name="camids (one camera per tracklet)",
                     allow_outliers=False)
    k = int_in_range(k, "k", 1)
    min_similarity = real_in_range(min_similarity, "min_similarity", -1.0, 1.0,
                                   allow_none=True)
    cams = torch.as_tensor(cams, device=x.device)
    return _associate(x, cams, k, bool(reciprocal), min_similarity).cpu().numpy()


def association_precision(pairs, tracklet_pids) -> float:
    """The fraction of associated pairs whose two tracklets show the same person (NaN for
    no pairs). ``pairs``: (P, 2) tracklet indices; ``tracklet_pids``: (T,) the hidden ids,
    e.g. ``reidlib.video.pooling.tracklet_labels(train.pids, train.tracklets)``; only for
    diagnosis."""
    pids = as_numpy(tracklet_pids)
    pairs = as_numpy(pairs)
    if pairs.ndim != 2 or pairs.shape[1] != 2 or not np.issubdtype(pairs.dtype, np.integer):
        raise ValueError(f"pairs must be an integer (P, 2) array of tracklet indices, got "
                         f"{pairs.dtype} {pairs.shape}")
    if pids.ndim != 1:
        raise ValueError(f"tracklet_pids must be (T,), one id per tracklet, got {pids.shape}")
    if len(pairs) == 0:
        return float("nan")
    if pairs.min() < 0 or pairs.max() >= len(pids):
        raise ValueError(f"pairs must index tracklets in [0, {len(pids)}), got "
                         f"[{pairs.min()}, {pairs.max()}]")
    return float(np.mean(pids[pairs[:, 0]] == pids[pairs[:, 1]]))


# --- the memory ----------------------------------------------------------------------------

class TrackletMemory(ClusterMemory):
    """One L2-normalised slot per tracklet, with its camera (the look-up table of survey
    §3.3, Eq. 6-7, split by camera).

    Slots start as the normalised mean of each tracklet's normalised frame features and,
    after each step, every frame of the batch moves its tracklet's slot,
    m <- momentum m + (1 - momentum) x, m <- m / |m| (in batch order, as
    :class:`~reidlib.feature_learning.memory.ClusterMemory`, with tracklets as clusters).
    ``memory(x, rows)`` returns ``(pctd, ccta)``: :func:`per_camera_tracklet_loss` and
    :func:`cross_camera_association_loss` against the slots, the latter with the pairs of
    :meth:`associate` (none until it is called). ``tracklets``: (N,) the frames' tracklet
    ids (no -1); ``camids``: (N,) their cameras (one per tracklet).
    """

    def __init__(self, features: torch.Tensor, tracklets, camids, momentum: float = 0.5,
                 temperature: float = 0.05):
        features = _check_features(features)
        _, index = tracklet_index(tracklets, n=len(features),
                                  name="tracklets (one tracklet id per feature row)")
        cams = tracklet_labels(camids, tracklets, name="camids")
        super().__init__(features, index, momentum=momentum, temperature=temperature)
        device = self.features.device
        self.register_buffer("tracklet_camids", torch.as_tensor(cams, device=device))
        self.register_buffer("pairs", torch.empty(0, 2, dtype=torch.long, device=device))
        self._restored()

    def _restored(self) -> None:
        """The dense (T, T) partner mask, derived from ``pairs`` (not saved)."""
        t = len(self.features)
        partners = torch.zeros(t, t, dtype=torch.bool, device=self.features.device)
        partners[self.pairs[:, 0], self.pairs[:, 1]] = True
        partners[self.pairs[:, 1], self.pairs[:, 0]] = True
        self.register_buffer("partners", partners, persistent=False)

    def set_pairs(self, pairs: torch.Tensor) -> None:
        """Use ``pairs`` ((P, 2) tracklet indices) as the associations of the CCTA loss."""
        self.pairs = torch.as_tensor(pairs, dtype=torch.long, device=self.features.device)
        self._restored()

    def associate(self, k: int = 1, reciprocal: bool = True,
                  min_similarity: float | None = None) -> torch.Tensor:
        """Re-associate from the current slots (:func:`cross_camera_associations`)."""
        self.set_pairs(_associate(self.features, self.tracklet_camids, k, reciprocal,
                                  min_similarity))
        return self.pairs

    def _loss(self, x: torch.Tensor, indices: torch.Tensor):
        sims = x @ self.features.T
        y = self.labels[indices]
        return (per_camera_tracklet_loss(sims, y, self.tracklet_camids, self.temperature),
                cross_camera_association_loss(sims, y, self.partners[y], self.temperature))

    def extra_repr(self) -> str:
        cameras = len(torch.unique(self.tracklet_camids))
        return (f"tracklets={self.num_classes}, cameras={cameras}, pairs={len(self.pairs)}, "
                f"dim={self.dim}, momentum={self.momentum}, temperature={self.temperature}")


# --- the methods ---------------------------------------------------------------------------

class _TrackletContrast(MemoryMethod):
    """PCTD against a :class:`TrackletMemory` plus a CCTA term (the subclass's)."""

    memory_class = TrackletMemory

    def __init__(self, model, lam: float, ccta_start: int, momentum: float,
                 temperature: float, sampler: str, other_cameras: bool):
        real_in_range(momentum, "momentum", 0.0, 1.0)
        real_in_range(temperature, "temperature", 0.0, lo_open=True)
        super().__init__(model, momentum, temperature, sampler=sampler,
                         other_cameras=other_cameras)
        self.lam = real_in_range(lam, "lam", 0.0, 1.0)
        self.ccta_start = int_in_range(ccta_start, "ccta_start", 0)
        self.ccta_on = self.ccta_start == 0

    def new_labels(self, features, labels, train) -> None:
        """``labels``: the frames' tracklets 0..T-1 (``fit(labels=tracklet_classes(train))``)."""
        if (np.asarray(labels) == OUTLIER).any():
            raise ValueError(f"{self.name} trains on tracklet ids and every frame needs one; "
                             f"got {(np.asarray(labels) == OUTLIER).sum()} rows labelled -1: "
                             "pass labels=tracklet_classes(train) on frames with tracklets")
        self.memory = TrackletMemory(features, labels, train.camids, self.momentum,
                                     self.temperature)

    def start_epoch(self, epoch: int) -> None:
        self.ccta_on = epoch >= self.ccta_start

    def loss(self, batch):
        with autocast_for(batch.images.device):
            out = self.model(batch.augmented())
        pctd, ccta = self._losses(out.embeddings, batch)
        self._last = (out.embeddings.detach(), batch.indices)
        return (1 - self.lam) * pctd + self.lam * ccta, {"pctd": pctd, "ccta": ccta}

    def _losses(self, embeddings, batch):
        raise NotImplementedError

    def config(self) -> dict:
        return {**super().config(), "lam": self.lam, "ccta_start": self.ccta_start}


class UTAL(_TrackletContrast):
    """UTAL (Li, Zhu, Gong, TPAMI 2019; survey §3.2): PCTD + CCTA against a memory of every
    tracklet, the cross-camera associations re-found from the memory at every epoch.

    Train with fixed labels, the frames' tracklets: ``fit(UTAL(model), train,
    labels=tracklet_classes(train), ...)``; the tracklets' cameras come from
    ``train.camids`` (a tracklet spanning two cameras, or a frame without tracklet, raises).
    At the start of each epoch from ``ccta_start`` on, each tracklet is associated with
    its ``k`` most similar tracklets of other cameras in the memory, kept when
    ``reciprocal`` (both ways) and at least ``min_similarity`` (cosine)
    (:func:`cross_camera_associations`); :meth:`associations` returns the pairs in use,
    to score with :func:`association_precision`. Every frame then pays
    ``(1 - lam) pctd + lam ccta`` (:class:`TrackletMemory`).

    Where we differ on purpose:

    - PCTD: TAUDL's paper and code (and, as far as we know, UTAL) train one linear softmax
      classifier per camera on the shared features; we keep one memory slot per tracklet
      instead (cosine / temperature, momentum update, as the repository's memories). The
      slots exist from the first step (a fresh classifier of thousands of tracklets starts
      from random weights, a real cost in a 3-epoch run), cost no parameters, and are the tracklet
      representations CCTA associates, so one table serves both terms.
    - CCTA: associates are found in that memory as nearest other-camera neighbours
      (mutual by default, optional threshold), and pulled with TAUDL's multi-positive
      softmax (positives summed inside the log) over all slots but the frame's own.
      TAUDL's Gaussian kernel exp(-|a - b|^2 / 2 sigma^2) on L2-normalised features is
      exp(cos(a, b) / sigma^2) up to a constant, so the temperature plays sigma^2.
    - Not implemented: UTAL's handling of trajectory fragmentation (one person cut into
      several tracklets of one camera, which PCTD would push apart). Our synthetic world
      has one tracklet per person and camera, so it would change nothing there.
    - lambda = 0.7 is TAUDL's (paper and code); UTAL's paper text and any official UTAL
      code were not reachable from the course's sources, so UTAL's own weight, schedule
      and association details could not be checked (``ccta_start`` switches CCTA on
      late if the first features are too poor to associate).
    """

    name = "UTAL (tracklets)"

    def __init__(self, model, lam: float = 0.7, k: int = 1, reciprocal: bool = True,
                 min_similarity: float | None = None, ccta_start: int = 0,
                 momentum: float = 0.5, temperature: float = 0.05, sampler: str = "pk",
                 other_cameras: bool = False):
        super().__init__(model, lam, ccta_start, momentum, temperature, sampler,
                         other_cameras)
        self.k = int_in_range(k, "k", 1)
        self.reciprocal = bool(reciprocal)
        self.min_similarity = real_in_range(min_similarity, "min_similarity", -1.0, 1.0,
                                            allow_none=True)

    def start_epoch(self, epoch: int) -> None:
        super().start_epoch(epoch)
        if self.ccta_on:
            self.memory.associate(self.k, self.reciprocal, self.min_similarity)
        else:
            self.memory.set_pairs(torch.empty(0, 2, dtype=torch.long))

    def _losses(self, embeddings, batch):
        return self.memory(embeddings, batch.indices)

    def associations(self) -> np.ndarray:
        """(P, 2) the tracklet pairs (indices 0..T-1, i < j) the CCTA loss uses now."""
        if self.memory is None:
            raise ValueError("no tracklet memory yet: train with fit(..., labels=...) first")
        return self.memory.pairs.cpu().numpy()

    def config(self) -> dict:
        return {**super().config(), "k": self.k, "reciprocal": self.reciprocal,
                "min_similarity": self.min_similarity}


class TAUDL(_TrackletContrast):
    """TAUDL (Li, Zhu, Gong, ECCV 2018; survey §3.2-3.3): UTAL's predecessor, PCTD plus a
    CCTA computed *within each batch* (:func:`batch_association_loss`).

    As TAUDL's official code: the batch's frames are averaged per tracklet, each
    tracklet's ``k`` nearest other-camera batch tracklets (default: cameras in the
    batch // 2) are its positives, the denominator runs over every batch tracklet, and
    ``loss = (1 - lam) pctd + lam ccta`` with lam = 0.7. Trained like :class:`UTAL`
    (``labels=tracklet_classes(train)``).

    Where we differ on purpose: PCTD uses UTAL's tracklet memory rather than one linear
    classifier per camera (see :class:`UTAL`; it also keeps both methods on one table,
    so the comparison isolates the association); PCTD is the batch mean (TAUDL's Eq. 2)
    where the code sums the per-camera means; the batches are the loop's P x K tracklet
    batches, not the code's camera-by-camera round robin. The association kernel is
    exp(cos / ``association_temperature``) on normalised features (the Gaussian of TAUDL's
    Eq. 3 on the unit sphere) where the code uses exp(-|a - b| / 2 sigma), sigma = 4, on
    its unnormalised 128-d ReLU features (BatchNorm outputs, so distances of a few units:
    by our estimate that kernel spans roughly e^-1.5 to 1): a soft pull of the batch's
    camera distributions towards each other rather than a sharp match (the batch's
    tracklets are nearly always other people). Temperature 1 (a span of e^-2 to e^2)
    keeps that softness; the memory's sharp ``temperature`` would turn the term into a
    strong pull between unrelated people.
    """

    name = "TAUDL (tracklets)"

    def __init__(self, model, lam: float = 0.7, k: int | None = None, ccta_start: int = 0,
                 association_temperature: float = 1.0, momentum: float = 0.5,
                 temperature: float = 0.05, sampler: str = "pk", other_cameras: bool = False):
        super().__init__(model, lam, ccta_start, momentum, temperature, sampler,
                         other_cameras)
        self.k = None if k is None else int_in_range(k, "k", 1)
        self.association_temperature = real_in_range(
            association_temperature, "association_temperature", 0.0, lo_open=True)

    def _losses(self, embeddings, batch):
        pctd, _ = self.memory(embeddings, batch.indices)  # no memory pairs: 0
        if not self.ccta_on:
            return pctd, pctd.new_zeros(())
        return pctd, batch_association_loss(embeddings, batch.labels, batch.camids,
                                            self.association_temperature, self.k)

    def config(self) -> dict:
        return {**super().config(), "k": self.k,
                "association_temperature": self.association_temperature}
