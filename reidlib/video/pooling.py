"""Tracklet features and tracklet-level evaluation (survey §3.2, video-based unsupervised
Re-ID; §4.1 MARS; §4.2 metrics).

A tracklet is one pass of one person past one camera: consecutive frames that a tracker
links. Video Re-ID describes it by one vector pooled from its frame features and ranks
tracklets, not images. Two poolings:

- **temporal average pooling** (:func:`temporal_average`): the mean of the frame features.
  Gao & Nevatia ("Revisiting Temporal Modeling for Video-based Person ReID", BMVC 2018,
  github.com/jiyanggao/Video-Person-ReID) found it as good as RNNs on MARS. Their test code
  averages raw (un-normalised) clip features and ranks by squared Euclidean distance;
  deep-person-reid averages raw frame features and normalises after pooling only on request.
  Our frame features come L2-normalised from :func:`reidlib.training.features.extract_features`,
  so by default (``normalise=True``) we average unit frame vectors (a frame with a large norm
  cannot dominate) and re-normalise the mean, so that cosine and Euclidean distances rank
  alike; ``normalise=False`` is the plain mean of the rows as given.
- **temporal attention** (:class:`TemporalAttention`, Gao & Nevatia's "TA" model): a score
  per frame, a softmax over the frames of each tracklet, the weighted sum.

Rows of one tracklet need not be contiguous or ordered: every per-tracklet reduction is a
scatter over the index ``inverse`` of :func:`tracklet_index` (no Python loop over tracklets).

Evaluation (:func:`evaluate_tracklets`) follows MARS (Zheng et al., "MARS: A Video Benchmark
for Large-Scale Person Re-identification", ECCV 2016): the Market-1501 protocol of
:func:`reidlib.evaluation.metrics.evaluate` applied to query and gallery *tracklets* (same
pid and same camera ignored, pid -1 junk ignored, pid 0 distractors kept as negatives).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from reidlib.checks import InputTypeError, as_numpy, int_in_range, real_in_range
from reidlib.data.imageset import ImageSet
from reidlib.evaluation.distance import METRICS, as_2d_float, pairwise_distance
from reidlib.evaluation.metrics import evaluate
from reidlib.feature_learning.memory import ClusterMemory
from reidlib.training.features import extract_features

__all__ = [
    "TemporalAttention",
    "evaluate_tracklets",
    "evaluate_video",
    "fit_temporal_attention",
    "segment_softmax",
    "temporal_average",
    "tracklet_index",
    "tracklet_labels",
    "tracklet_times",
]

FPS = 25  # frame numbers of MARS and of the synthetic world count video frames at this rate


# --- tracklet bookkeeping ---------------------------------------------------------------------

def _column(values, name: str, n: int | None = None, per: str = "frame") -> np.ndarray:
    """A checked (N,) int64 numpy column (array, list or tensor), one value per ``per``."""
    x = as_numpy(values)
    if x.ndim != 1 or (n is not None and len(x) != n):
        want = "(N,)" if n is None else f"(N,) = ({n},), one per {per}"
        raise ValueError(f"{name} must have shape {want}, got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.integer):
        raise InputTypeError(f"{name} must hold integers, got dtype {x.dtype}")
    return x.astype(np.int64)


def tracklet_index(tracklets, *, n: int | None = None, name: str = "tracklets"
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(ids, inverse): the tracklet ids in **sorted** order and each row's position in them.

    ``tracklets``: (N,) integer tracklet id of each frame (array, list or tensor);
    ``ids[inverse]`` gives it back, so ``inverse`` is also each frame's tracklet renumbered
    0..T-1. Sorted order (``np.unique``) makes the result independent of how the rows are
    ordered. Every frame needs a tracklet: id -1 (a source without tracklets, see
    :class:`reidlib.data.imageset.ImageSet`) raises a ValueError. ``n``: the number of rows
    expected (None: any); ``name``: the column's name in error messages.
    """
    tracklets = _column(tracklets, name, n)
    if len(tracklets) == 0:
        raise ValueError(f"{name} is empty: need at least one frame")
    missing = np.flatnonzero(tracklets < 0)
    if len(missing):
        raise ValueError(f"{name}: {len(missing)} images without tracklets (id < 0, e.g. -1), "
                         f"first at row {missing[0]}; every image needs a tracklet id >= 0: "
                         "drop the others first, e.g. images.subset(images.tracklets >= 0)")
    ids, inverse = np.unique(tracklets, return_inverse=True)
    return ids, inverse.reshape(-1)


def tracklet_labels(values, tracklets, majority: bool = False, name: str = "values"
                    ) -> np.ndarray:
    """(T,) value of a per-frame integer column (pid, camid) for each tracklet, in the order
    of :func:`tracklet_index` (sorted ids).

    The column must be constant within each tracklet (else a ValueError that names the column
    ``name`` and a tracklet), unless ``majority=True``: then each tracklet takes its most
    frequent value (ties: the smallest), as noisy tracklets mix identities. -1 counts as a
    value like any other.
    """
    ids, inverse = tracklet_index(tracklets)
    values = _column(values, name, len(inverse))
    if majority:
        # Count every (tracklet, value) pair, then keep each tracklet's most frequent pair.
        pairs, counts = np.unique(np.stack([inverse, values], 1), axis=0, return_counts=True)
        order = np.lexsort((pairs[:, 1], -counts, pairs[:, 0]))
        first = np.unique(pairs[order, 0], return_index=True)[1]
        return pairs[order[first], 1]
    out = values[np.unique(inverse, return_index=True)[1]]  # each tracklet's first row
    mixed = np.flatnonzero(values != out[inverse])
    if len(mixed):
        t = inverse[mixed[0]]
        seen = np.unique(values[inverse == t])
        raise ValueError(f"{name} differ within {len(np.unique(inverse[mixed]))} tracklet(s), "
                         f"e.g. tracklet {ids[t]} (values {seen.tolist()}): a tracklet is one "
                         "pass of one person past one camera; for noisy tracklets, "
                         "tracklet_labels(..., majority=True) takes each tracklet's most "
                         "frequent value")
    return out


def tracklet_times(tracklets, timestamps=None, frames=None, fps: float = FPS) -> np.ndarray:
    """(T,) float64 start time of each tracklet in seconds, in :func:`tracklet_index` order.

    The start is the tracklet's earliest frame (rows need not be ordered): ``min(frames) /
    fps`` when ``frames`` (video frame numbers) are given, which keeps sub-second precision,
    else ``min(timestamps)`` (integer seconds). Both are per-frame (N,) integer columns; -1
    (none) is rejected. The start time is what camera-to-camera transit times are measured
    between (JVTC, TFusion; :mod:`reidlib.data.synthetic` walks).
    """
    ids, inverse = tracklet_index(tracklets)
    fps = real_in_range(fps, "fps", lo=0, lo_open=True)
    use_frames = frames is not None
    if not use_frames and timestamps is None:
        raise ValueError("tracklet_times needs frames (video frame numbers) or timestamps "
                         "(seconds), got neither")
    name = "frames" if use_frames else "timestamps"
    column = _column(frames if use_frames else timestamps, name, len(inverse))
    if column.min() < 0:
        raise ValueError(f"{name} must be >= 0 for every frame (-1 = unknown), got a minimum "
                         f"of {int(column.min())}")
    start = np.full(len(ids), np.iinfo(np.int64).max)
    np.minimum.at(start, inverse, column)
    return start / fps if use_frames else start.astype(np.float64)


# --- pooling ----------------------------------------------------------------------------------

def _segment_sum(x: torch.Tensor, inverse: torch.Tensor, num_segments: int) -> torch.Tensor:
    """(T, D) sum of the rows of ``x`` in each segment."""
    return x.new_zeros(num_segments, x.shape[1]).index_add_(0, inverse, x)


def segment_softmax(scores: torch.Tensor, inverse: torch.Tensor,
                    num_segments: int) -> torch.Tensor:
    """(N,) softmax of ``scores`` (N,) within each segment ``inverse`` (N,) in [0, T).

    Stable: each segment's maximum is subtracted before ``exp`` (a scatter ``amax``), so
    scores of 1e4 do not overflow. The maximum is detached: a softmax does not depend on a
    shift, so its gradient is unchanged. Empty segments are allowed (they get no rows).
    """
    top = scores.new_full((num_segments,), float("-inf"))
    top = top.scatter_reduce(0, inverse, scores.detach(), reduce="amax")
    e = torch.exp(scores - top[inverse])
    total = scores.new_zeros(num_segments).index_add_(0, inverse, e)
    return e / total[inverse]


def _average(x: torch.Tensor, inverse: torch.Tensor, num_segments: int) -> torch.Tensor:
    """(T, D) mean of the rows of ``x`` in each (non-empty) segment."""
    counts = _segment_sum(x.new_ones(len(x), 1), inverse, num_segments)
    return _segment_sum(x, inverse, num_segments) / counts


def _check_frames(features, tracklets) -> tuple[torch.Tensor, np.ndarray, torch.Tensor]:
    """(N, D) float features, the tracklet ids, and ``inverse`` on the features' device."""
    features = as_2d_float(features, "features", "(num_frames, dim)")
    ids, inverse = tracklet_index(tracklets)
    if len(inverse) != len(features):
        raise ValueError(f"tracklets must have one id per feature row: {len(features)} rows, "
                         f"got {len(inverse)} tracklet ids")
    return features, ids, torch.from_numpy(inverse).to(features.device)


def temporal_average(features, tracklets, normalise: bool = True
                     ) -> tuple[torch.Tensor, np.ndarray]:
    """(pooled (T, D), ids): temporal average pooling of frame features per tracklet.

    ``features``: (N, D) frame features (tensor on any device, or numpy);
    ``tracklets``: (N,) tracklet id per row. ``pooled[i]`` belongs to tracklet ``ids[i]``
    (sorted ids, :func:`tracklet_index`) and lies on the features' device.
    ``normalise=True``: mean of the L2-normalised frames, L2-normalised (see the module
    docstring for why); ``False``: the plain mean.
    """
    return _pool_tracklets(_average, features, tracklets, normalise)


def _pool_tracklets(reduce, features, tracklets, normalise: bool, dtype=None
                    ) -> tuple[torch.Tensor, np.ndarray]:
    """(pooled (T, D), ids): ``reduce(frames, inverse, T)`` on the checked frames (cast to
    ``dtype`` if given; L2-normalised before and after when ``normalise``)."""
    features, ids, inverse = _check_frames(features, tracklets)
    if dtype is not None:
        features = features.to(dtype)
    if normalise:
        features = F.normalize(features, dim=1)
    pooled = reduce(features, inverse, len(ids))
    return (F.normalize(pooled, dim=1) if normalise else pooled), ids


class TemporalAttention(nn.Module):
    """Temporal attention pooling (Gao & Nevatia, BMVC 2018, the "TA" model).

    score_t = w . relu(W f_t + b),  a = softmax of the scores over each tracklet's frames,
    pooled = sum_t a_t f_t.

    Their network scores each frame from its *spatial* feature map (a conv as large as the
    map, 2048 -> 256 channels, ReLU), then mixes neighbouring frames with a temporal conv
    (kernel 3, 256 -> 1, ReLU) and normalises with a softmax (their default; sigmoid + L1 is
    the alternative). Deliberate differences, as we pool already pooled frame vectors:

    - the full-map conv becomes ``Linear(dim, hidden)`` (the same map on a 1 x 1 map);
    - no temporal conv: rows of a tracklet are not necessarily ordered or consecutive here,
      so each frame is scored on its own (a kernel-1 temporal conv);
    - no ReLU on the score, and ``w`` starts at zero: all scores start at 0, the attention
      at exact average pooling. With their final ReLU a zero score would get no gradient.

    ``forward(features (N, D), inverse (N,), num_tracklets=None) -> (T, D)``, ``inverse``
    as from :func:`tracklet_index` (tensor or array); T defaults to ``max(inverse) + 1``.
    """

    def __init__(self, dim: int, hidden: int = 256):
        super().__init__()
        dim = int_in_range(dim, "dim", 1)
        hidden = int_in_range(hidden, "hidden", 1)
        self.hidden = nn.Linear(dim, hidden)
        self.score = nn.Linear(hidden, 1, bias=False)  # a shared bias cancels in the softmax
        nn.init.zeros_(self.score.weight)

    def weights(self, features: torch.Tensor, inverse: torch.Tensor,
                num_tracklets: int) -> torch.Tensor:
        """(N,) attention weight of each frame within its tracklet (they sum to 1)."""
        scores = self.score(F.relu(self.hidden(features))).squeeze(1)
        return segment_softmax(scores, inverse, num_tracklets)

    def forward(self, features: torch.Tensor, inverse, num_tracklets: int | None = None
                ) -> torch.Tensor:
        dim = self.hidden.in_features
        if not isinstance(features, torch.Tensor) or features.ndim != 2 \
                or features.shape[1] != dim:
            got = tuple(features.shape) if hasattr(features, "shape") else type(features)
            raise ValueError(f"features must be a (N, {dim}) tensor, got {got}")
        if not isinstance(inverse, torch.Tensor):
            inverse = torch.from_numpy(np.asarray(inverse, dtype=np.int64))
        inverse = inverse.to(features.device, torch.long)
        if inverse.shape != (len(features),):
            raise ValueError(f"inverse must have shape (N,) = ({len(features)},), one tracklet "
                             f"position per row, got {tuple(inverse.shape)}")
        if num_tracklets is None:
            num_tracklets = int(inverse.max()) + 1 if len(inverse) else 0
        a = self.weights(features, inverse, num_tracklets)
        return _segment_sum(a[:, None] * features, inverse, num_tracklets)

    def pool(self, features, tracklets, normalise: bool = True
             ) -> tuple[torch.Tensor, np.ndarray]:
        """(pooled (T, D), ids) as :func:`temporal_average`, with attention weights."""
        return _pool_tracklets(self, features, tracklets, normalise, self.hidden.weight.dtype)


def fit_temporal_attention(features, tracklets, labels, *, epochs: int = 20, lr: float = 1e-3,
                           seed: int = 0, batch: int = 64, temperature: float = 0.05,
                           hidden: int = 256, momentum: float = 0.1) -> TemporalAttention:
    """A :class:`TemporalAttention` trained on FROZEN frame features, in eval mode.

    ``features``: (N, D) frame features; ``tracklets``: (N,) tracklet id per frame;
    ``labels``: (T,) class of each tracklet in :func:`tracklet_index` order (sorted ids),
    e.g. pseudo-labels or per-camera tracklet ids; -1 = unlabelled, left out.

    The loss is Cluster Contrast's (Dai et al., 2021; survey Eq. 6-7): the InfoNCE of each
    attention-pooled, L2-normalised tracklet against a non-parametric memory of class
    centroids (cosine similarity / ``temperature``, 0.05 as Cluster Contrast), the centroids
    starting as the class means of the average-pooled tracklets and moving towards each
    batch with ``momentum`` (:class:`reidlib.feature_learning.memory.ClusterMemory`).
    Gao & Nevatia train TA end to end with cross-entropy and a triplet loss on identity
    labels; with frozen frames and no identities, the memory loss is the course's
    unsupervised stand-in. Adam, ``batch`` tracklets a step, every labelled tracklet once an
    epoch; seeded (initialisation and batch order) and deterministic on the CPU.
    """
    features, ids, inverse = _check_frames(features, tracklets)
    labels = _column(labels, "labels (one class per tracklet, in sorted tracklet id order)",
                     len(ids), per="tracklet")
    if labels.min() < -1:
        raise ValueError(f"labels must be class ids >= 0 or -1 (unlabelled), got a minimum of "
                         f"{int(labels.min())}")
    labelled = np.flatnonzero(labels >= 0)
    if len(labelled) == 0:
        raise ValueError("labels: every tracklet is unlabelled (-1); nothing to train on")
    epochs = int_in_range(epochs, "epochs", 1)
    batch = int_in_range(batch, "batch", 1)
    lr = real_in_range(lr, "lr", lo=0, lo_open=True)
    device, frames = features.device, F.normalize(features.detach().float(), dim=1)
    average = _average(frames, inverse, len(ids))  # ClusterMemory normalises its rows
    memory = ClusterMemory(average, labels, momentum=momentum, temperature=temperature)
    with torch.random.fork_rng(devices=[]):  # seeded initialisation, global RNG untouched
        torch.manual_seed(seed)
        module = TemporalAttention(frames.shape[1], hidden)
    module = module.to(device).train()
    optimizer = torch.optim.Adam(module.parameters(), lr=lr)
    rng = np.random.default_rng(seed)
    for _ in range(epochs):
        for chunk in np.array_split(rng.permutation(labelled), -(-len(labelled) // batch)):
            rows, local = _batch_rows(inverse, chunk, len(ids))
            pooled = module(frames[rows], local, len(chunk))
            index = torch.from_numpy(chunk).to(device)
            loss = memory(pooled, index)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            memory.update(pooled, index)
    return module.eval()


def _batch_rows(inverse: torch.Tensor, chunk: np.ndarray, num_tracklets: int):
    """Frame rows of the tracklets ``chunk`` and each row's position within ``chunk``."""
    position = torch.full((num_tracklets,), -1, dtype=torch.long, device=inverse.device)
    position[torch.from_numpy(chunk).to(inverse.device)] = torch.arange(
        len(chunk), device=inverse.device)
    local = position[inverse]
    rows = torch.nonzero(local >= 0).flatten()
    return rows, local[rows]


# --- tracklet-level evaluation ----------------------------------------------------------------

def _pool_with(pool, features, tracklets) -> tuple[torch.Tensor, np.ndarray]:
    if isinstance(pool, TemporalAttention):
        with torch.no_grad():
            return pool.pool(as_2d_float(features, "features").to(pool.hidden.weight.device),
                             tracklets)
    return pool(features, tracklets)


def evaluate_tracklets(query_features, query_tracklets, query_pids, query_camids,
                       gallery_features, gallery_tracklets, gallery_pids, gallery_camids,
                       pool=temporal_average, metric: str = "cosine",
                       max_rank: int = 50) -> dict:
    """MARS evaluation: pool frames into tracklets, rank gallery tracklets per query tracklet.

    Frame-level inputs: features (N, D) and (N,) integer tracklet ids, pids, camids, for the
    query and the gallery side. A tracklet's pid and camid must be constant over its frames.
    ``pool``: :func:`temporal_average` (or any callable ``(features, tracklets) -> (pooled,
    ids)``) or a :class:`TemporalAttention` module (its :meth:`~TemporalAttention.pool`).
    ``metric``: a :func:`reidlib.evaluation.distance.pairwise_distance` metric.

    Returns :func:`reidlib.evaluation.metrics.evaluate`'s dict (per-query arrays per query
    tracklet) plus ``distmat`` and, for each side, ``query_features`` / ``gallery_features``
    (pooled), ``query_tracklets`` (ids), ``query_pids``, ``query_camids`` (and gallery_...).
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    if not callable(pool):
        raise ValueError(f"pool must be a callable like temporal_average, or a "
                         f"TemporalAttention, got {type(pool).__name__}")
    sides = {}
    for side, feats, trk, pids, cams in (
        ("query", query_features, query_tracklets, query_pids, query_camids),
        ("gallery", gallery_features, gallery_tracklets, gallery_pids, gallery_camids),
    ):
        n = len(as_2d_float(feats, f"{side}_features", "(num_frames, dim)"))
        trk = _column(trk, f"{side}_tracklets", n)
        pooled, ids = _pool_with(pool, feats, trk)
        sides[f"{side}_features"] = pooled
        sides[f"{side}_tracklets"] = ids
        for column, values in (("pids", pids), ("camids", cams)):
            name = f"{side}_{column}"
            sides[name] = tracklet_labels(_column(values, name, n), trk, name=name)
    distmat = pairwise_distance(sides["query_features"], sides["gallery_features"], metric)
    result = evaluate(distmat, sides["query_pids"], sides["gallery_pids"],
                      sides["query_camids"], sides["gallery_camids"], max_rank=max_rank)
    return {**result, "distmat": distmat, **sides}


def evaluate_video(model: nn.Module, query, gallery, pool=temporal_average,
                   metric: str = "cosine", max_rank: int = 50,
                   batch_size: int = 256) -> dict:
    """:func:`evaluate_tracklets` on the frame features of two ImageSets (``query``,
    ``gallery``) that carry ``tracklets``; features by
    :func:`reidlib.training.features.extract_features` (no flip, L2-normalised).

    Meant for a video split (:func:`reidlib.video.benchmark.video_splits`: whole tracklets
    as queries). On the world's image split a query "tracklet" is a single frame and the
    rest of its pass sits in the gallery with the same pid and camera, which the protocol
    ignores: it still measures cross-camera retrieval, of one frame against tracklets.
    """
    for side, images in (("query", query), ("gallery", gallery)):
        if not isinstance(images, ImageSet):
            raise ValueError(f"{side} must be an ImageSet, got {type(images).__name__}")

    def extract(images):
        return extract_features(model, images, batch_size=batch_size, flip=False,
                                progress=False)

    return evaluate_tracklets(extract(query), query.tracklets, query.pids, query.camids,
                              extract(gallery), gallery.tracklets, gallery.pids, gallery.camids,
                              pool=pool, metric=metric, max_rank=max_rank)
