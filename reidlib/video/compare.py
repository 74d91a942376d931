"""Chapter 5's comparison: image-based and tracklet-based learning on one video benchmark.

The notebook ``05_video_tracklets`` and ``benchmarks/chapter5_runs.py`` (seeds and the
tracklet-noise dial) build every method the same way from here, so that the benchmark's
seed 0 is the notebook's run:

- the *benchmark*: world A's MARS-protocol video split (:func:`~.benchmark.video_splits`):
  training frames with their tracklets, query and gallery tracklets; every method is scored
  on tracklets (temporal average pooling, :func:`~.pooling.evaluate_video`), visually and
  with the spatio-temporal fusion learnt from its own confident matches (:func:`score`);
- the *start, clustering and budget* of chapter 2 (:func:`reidlib.feature_learning.compare.
  chapter_settings`: the world-P backbone, Jaccard + DBSCAN chosen on the validation split,
  chapter 2's epochs, batch and learning rate), so that a tracklet method and image-based
  Cluster Contrast differ only in what they learn from;
- the *tracklet clustering*: the same Jaccard + DBSCAN on tracklet-average features with
  ``min_samples = 2`` (a person has 2-4 tracklets, so the image recipe's 4 would leave most
  people as outliers), and BUC on tracklets with its number of clusters chosen on the
  validation split (:func:`buc_ratio_on_validation`), never from the true count.

Methods (:data:`METHODS`): Cluster Contrast on frames (chapter 2's baseline), Cluster
Contrast on tracklets, BUC on tracklets (the survey's video baseline), UTAL and TAUDL
(per-camera tracklet discrimination + cross-camera association, trained on the tracklet
ids themselves, no clustering).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from functools import partial

import numpy as np

from reidlib.evaluation.metrics import evaluate
from reidlib.feature_learning import ClusterContrast
from reidlib.feature_learning.compare import (
    MethodResult,
    chapter_budget,
    chapter_settings,
    train_and_score,
)
from reidlib.models import build_model
from reidlib.pseudo_labels.generators import jaccard_dbscan
from reidlib.pseudo_labels.quality import label_quality
from reidlib.training.features import extract_features
from reidlib.training.supervised import split_validation
from reidlib.utils import seed_everything
from reidlib.video.benchmark import corrupt_tracklets, subsample_tracklets, video_splits
from reidlib.video.pooling import (
    evaluate_tracklets,
    temporal_average,
    tracklet_labels,
    tracklet_times,
)
from reidlib.video.spatiotemporal import (
    confident_matches,
    pair_counts,
    peak_agreement,
    rerank_st,
    transit_histograms,
    true_pairs,
    true_transit_histograms,
)
from reidlib.video.tracklet_learning import (
    TAUDL,
    UTAL,
    association_precision,
    tracklet_buc,
    tracklet_classes,
    tracklet_cluster,
)

__all__ = ["BUC_RATIOS", "FULL_FRAMES", "METHODS", "ST", "TrackletView", "buc_ratio_on_validation",
           "build_method", "learn_transit", "noisy_train", "score", "train_method",
           "video_settings"]

METHODS = ("Cluster Contrast", "Cluster Contrast, tracklets", "BUC, tracklets", "UTAL",
           "TAUDL")
#: the spatio-temporal histograms' settings (st-ReID's Parzen window, in seconds), fixed
#: in advance from the world's scale (transits of 50-250 s), not chosen on the test split
ST = {"bin_seconds": 10.0, "max_seconds": 600.0, "smooth_sigma": 10.0}
#: BUC's final clusters per tracklet, the candidates the validation split chooses from
BUC_RATIOS = (0.25, 0.33, 0.45, 0.6)
#: frames kept per tracklet in the full profile (the sequence length of video Re-ID code;
#: the quick worlds' tracklets have 2-4 frames and keep them all)
FULL_FRAMES = 8


class TrackletView:
    """One set of frames seen as tracklets: (T,) ids, pids (majority: noisy tracklets mix
    people), cameras and start times (s), with ``inverse`` mapping frames to tracklets."""

    def __init__(self, images):
        self.ids, self.inverse = np.unique(images.tracklets, return_inverse=True)
        self.pids = tracklet_labels(images.pids, images.tracklets, majority=True)
        self.camids = tracklet_labels(images.camids, images.tracklets, name="camids")
        self.times = tracklet_times(images.tracklets, frames=images.frames)
        self.num_cams = int(images.camids.max()) + 1

    def __len__(self) -> int:
        return len(self.ids)


def noisy_train(train, noise: float, seed: int = 0):
    """``train`` with a share ``noise`` of its tracklets broken, a third each cut short, split
    in two, or switched to another person midway (:func:`~.benchmark.corrupt_tracklets`);
    (images, report). ``noise = 0`` returns ``train`` itself."""
    if noise == 0:
        return train, {"cut": 0, "split": 0, "switch": 0, "mixed_frame_share": 0.0}
    return corrupt_tracklets(train, cut=noise / 3, split=noise / 3, switch=noise / 3,
                             seed=seed)


def buc_ratio_on_validation(features, train, seed: int = 0, ratios=BUC_RATIOS) -> float:
    """BUC's number of clusters as a share of the tracklets, chosen by the pairwise F of the
    validation identities' tracklets (``split_validation(train, 0.1, seed)``, as chapter 2
    chooses DBSCAN's eps): every candidate clusters *all* tracklets, and only the validation
    people's rows are scored."""
    _, val_query, _ = split_validation(train, 0.1, seed)
    val_rows = np.isin(train.pids, np.unique(val_query.pids))
    n_tracklets = len(np.unique(train.tracklets))
    scores = []
    for ratio in ratios:
        labels = tracklet_buc(features, train.tracklets, max(1, round(ratio * n_tracklets)))
        scores.append(label_quality(labels[val_rows], train.pids[val_rows])["pairwise_f"])
    return float(ratios[int(np.argmax(scores))])


def video_settings(profile, world, seed: int = 0, splits=None) -> tuple[dict, object, Callable]:
    """(settings, splits, cluster): chapter 2's settings of ``world`` (its clustering of
    frames), the world's video split and that clustering. ``settings`` adds the tracklet
    clustering's ``min_samples`` and BUC's ratio chosen on the validation split. The full
    profile keeps :data:`FULL_FRAMES` frames per tracklet in every set
    (:func:`~.benchmark.subsample_tracklets`); the quick and smoke profiles keep all.
    ``splits``: a video split already in the MARS protocol (a real MARS read by
    ``read_mars``); default :func:`~.benchmark.video_splits` of the world."""
    settings, _, cluster = chapter_settings(profile, world, seed)
    splits = video_splits(world) if splits is None else splits
    frames = FULL_FRAMES if profile.name == "full" else None
    if frames is not None:
        splits = dataclasses.replace(splits, **{
            name: subsample_tracklets(getattr(splits, name), frames, seed)
            for name in ("train", "query", "gallery")})
    start = build_model(profile.arch, weights="synthetic").eval()
    features = extract_features(start, splits.train, flip=False, progress=False).numpy()
    settings = {**settings, "tracklet_min_samples": 2,
                "buc_ratio": buc_ratio_on_validation(features, splits.train, seed)}
    return settings, splits, cluster


def tracklet_clustering(settings: dict, train) -> Callable:
    """Chapter 2's Jaccard + DBSCAN on the tracklet averages of ``train``'s frames."""
    frames = jaccard_dbscan(k1=settings["k1"], k2=6, eps=settings["eps"],
                            min_samples=settings["tracklet_min_samples"])
    return tracklet_cluster(frames, train.tracklets)


def build_method(name: str, backbone: Callable, train, settings: dict
                 ) -> tuple[object, dict]:
    """(method, extra ``train_and_score`` arguments) for one of :data:`METHODS` on the
    training frames ``train`` (their tracklets, perhaps noisy)."""
    if name == "Cluster Contrast":
        return ClusterContrast(backbone()), {}
    if name == "Cluster Contrast, tracklets":
        method = ClusterContrast(backbone())
        method.name = name
        return method, {"clustering": tracklet_clustering(settings, train)}
    if name == "BUC, tracklets":
        method = ClusterContrast(backbone())
        method.name = name
        n = max(1, round(settings["buc_ratio"] * len(np.unique(train.tracklets))))
        return method, {"clustering": partial(tracklet_buc, tracklets=train.tracklets,
                                              n_clusters=n)}
    if name in ("UTAL", "TAUDL"):
        method = (UTAL if name == "UTAL" else TAUDL)(backbone())
        return method, {"labels": tracklet_classes(train)}
    raise ValueError(f"unknown method {name!r}: expected one of {METHODS}")


def learn_transit(train_features, train, **st) -> tuple[np.ndarray, dict]:
    """TFusion / JVTC's step without labels: (C, C, B) transit-time histograms from the
    model's own confident matches between the training tracklets (mutual nearest
    neighbours across cameras, :func:`~.spatiotemporal.confident_matches`), and what they
    are worth against the truth: the matches' precision, and the share of camera pairs
    whose peak lies within one bin of the true transits' peak."""
    st = {**ST, **st}
    view = TrackletView(train)
    pooled, _ = temporal_average(train_features, train.tracklets)
    sim = (pooled @ pooled.T).numpy()
    i, j = confident_matches(sim, view.camids, view.times, top=1, mutual=True,
                             max_seconds=st["max_seconds"])
    hist = transit_histograms(i, j, view.camids, view.times, view.num_cams, **st)
    truth = true_transit_histograms(view.pids, view.camids, view.times, view.num_cams, **st)
    ti, tj = true_pairs(view.pids, view.camids)
    counts = pair_counts(ti, tj, view.camids, view.times, view.num_cams,
                         max_seconds=st["max_seconds"])
    report = {"matches": len(i),
              "match_precision": float(np.mean(view.pids[i] == view.pids[j])) if len(i)
              else float("nan"),
              "peak_agreement": peak_agreement(hist, truth, counts)}
    return hist, {**report, "truth": truth, "true_counts": counts}


def score(model, splits, hist=None, st: dict | None = None) -> dict:
    """Tracklet-level scores of ``model`` on the video split (temporal average pooling,
    MARS protocol): ``mAP``, ``rank1``, ``mINP``; with transit histograms ``hist`` also the
    same after JVTC+'s joint similarity (``st_mAP``, ``st_rank1``, ``st_mINP``)."""
    st = {**ST, **(st or {})}
    q, g = splits.query, splits.gallery
    qf, gf = (extract_features(model, s, flip=False, progress=False) for s in (q, g))
    r = evaluate_tracklets(qf, q.tracklets, q.pids, q.camids, gf, g.tracklets, g.pids,
                           g.camids)
    out = {"mAP": float(r["mAP"]), "rank1": float(r["cmc"][0]), "mINP": float(r["mINP"])}
    if hist is not None:
        qv, gv = TrackletView(q), TrackletView(g)
        qp, gp = r["query_features"], r["gallery_features"]  # the pooled tracklets above
        dist = rerank_st((qp @ gp.T).numpy(), hist, qv.camids, qv.times, gv.camids,
                         gv.times, bin_seconds=st["bin_seconds"])
        f = evaluate(dist, qv.pids, gv.pids, qv.camids, gv.camids)
        out.update(st_mAP=float(f["mAP"]), st_rank1=float(f["cmc"][0]),
                   st_mINP=float(f["mINP"]))
    return out


def train_method(name: str, session, splits, settings: dict, cluster, seed: int = 0,
                 noise: float = 0.0, progress: bool = False, snapshot_rows=None, *,
                 transit: bool = True, checkpoint=None, val=None, keep_best: bool = False
                 ) -> tuple[MethodResult, dict]:
    """Build ``name`` from chapter 2's start, train it with ``settings``' budget on the video
    split's training frames (a share ``noise`` of their tracklets broken first) and score
    it on the tracklets, visually and with the transit histograms it learns from its own
    confident matches. Returns (result, info): ``info`` holds the noise report, the transit
    report (``learn_transit``), the training frames as trained on (``train``), the trained
    ``model`` (in eval mode) and its ``train_features``, and for UTAL the precision of its
    final cross-camera associations. ``snapshot_rows``: the training rows kept in the
    explorer's snapshots (clean tracklets only: noise drops rows). ``transit=False``: no
    transit histograms and no fused scores (a dataset without a clock, e.g. MARS, whose
    frame numbers restart in every tracklet); ``info["transit"]`` is then empty.
    ``checkpoint``, ``val``, ``keep_best``: passed to ``fit`` (saved every epoch and
    resumed; validation (query, gallery) and the best epoch's weights kept)."""
    def backbone():
        return build_model(session.profile.arch, weights="synthetic").to(session.device)

    train, noise_report = noisy_train(splits.train, noise, seed)
    seed_everything(seed)
    method, extra = build_method(name, backbone, train, settings)
    # the full profile: the paper's recipe (Cluster Contrast's for UTAL / TAUDL)
    budget = chapter_budget(method, settings, method.recipe or ClusterContrast.recipe)
    learnt, kept = {}, {}

    def video_score(model):
        features = extract_features(model, train, flip=False, progress=False)
        kept.update(model=model, train_features=features)
        if not transit:
            return score(model, splits)
        hist, report = learn_transit(features, train)
        learnt.update(hist=hist, **report)
        return score(model, splits, hist)

    result = train_and_score(method, train, cluster=cluster,
                             clustering=extra.get("clustering"), score=video_score,
                             seed=seed, progress=progress, snapshot_rows=snapshot_rows,
                             checkpoint=checkpoint, val=val, keep_best=keep_best, **budget,
                             **({"labels": extra["labels"]} if "labels" in extra else {}))
    info = {"noise": noise_report, "transit": learnt, "train": train, **kept}
    if isinstance(method, UTAL):
        view = TrackletView(train)
        info["association_precision"] = association_precision(method.associations(),
                                                               view.pids)
    return result, info
