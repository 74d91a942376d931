"""Chapter 5's methods as recipes: learning from tracklets (survey §3.2-3.3, Table 5).

Every recipe is ``reidlib.video.compare.train_method`` itself, on the video benchmark of
the target:

- a synthetic world: chapter 5's MARS-protocol split of it (``video_splits``), the same
  settings (``video_settings``: chapter 2's start, clustering and budget, BUC's ratio
  chosen on the validation split), so a recipe's seed-0 run is the chapter's;
- a real MARS (``read_mars``: each frame with its tracklet and frame number): already in
  the video protocol, used as it is (:func:`mars_splits`), with the same settings computed
  on its training frames.

``RecipeResult.scores`` are the visual tracklet scores (temporal average pooling, MARS
rules). The spatio-temporal fusion (TFusion / st-ReID / JVTC+: transit times learnt from
the model's confident matches) needs a clock: ``settings["fused"]`` holds its ``mAP``,
``rank1``, ``mINP`` where every frame has a timestamp (the synthetic worlds), else None
with ``settings["fused_note"]`` (MARS's frame numbers restart in every tracklet).

Where a recipe differs from the chapter's run: the validation identities of the training
frames (``split_validation(train, 0.1, 0)``, those BUC's ratio and the clustering were
chosen on; they stay in training, unlabelled) are scored frame by frame after every
epoch and the best epoch's weights are kept (the chapter keeps the last). Every run saves
``<workdir>/fit.pt`` after each epoch and resumes from it.
"""

from __future__ import annotations

import numpy as np

from reidlib.data.imageset import ImageSet, ReidSplits
from reidlib.data.synthetic.world import World
from reidlib.recipes.core import Recipe, RecipeResult, RecipeRun
from reidlib.training.supervised import split_validation
from reidlib.video.compare import train_method, video_settings

__all__ = ["RECIPES", "has_clock", "mars_splits", "video_benchmark"]

_NO_CLOCK = ("no fused scores: the frames carry no timestamps (MARS numbers the frames of "
             "each tracklet from 1), so transit times between cameras cannot be measured")


def _by_tracklet(images: ImageSet) -> ImageSet:
    """Rows grouped by tracklet id (ascending), frames in time order inside each."""
    return images.subset(np.lexsort((np.arange(len(images)), images.frames, images.tracklets)))


def mars_splits(target: ReidSplits) -> ReidSplits:
    """A dataset already in the MARS protocol as chapter 5's video split: every frame of
    every set needs its tracklet id; junk (pid -1) leaves the training frames; query and
    gallery tracklets must be distinct (``read_mars`` numbers them by test-info row)."""
    for name in ("train", "query", "gallery"):
        images = getattr(target, name)
        if len(images) == 0 or (images.tracklets < 0).any():
            raise ValueError(f"a video recipe needs a tracklet id for every frame: "
                             f"{target.name!r}.{name} has {int((images.tracklets < 0).sum())} "
                             f"of {len(images)} frames without one (use a synthetic world or "
                             "MARS)")
    shared = np.intersect1d(target.query.tracklets, target.gallery.tracklets)
    if len(shared):
        raise ValueError(f"{target.name!r}: {len(shared)} tracklet id(s) are in both query and "
                         "gallery; a video split keeps them apart")
    train = target.train.subset(target.train.pids >= 0)
    return ReidSplits(name=f"{target.name}-video", train=_by_tracklet(train),
                      query=_by_tracklet(target.query), gallery=_by_tracklet(target.gallery))


def has_clock(splits: ReidSplits) -> bool:
    """Whether every frame has a timestamp (>= 0): what the transit times need."""
    return all((getattr(splits, name).timestamps >= 0).all()
               for name in ("train", "query", "gallery"))


def video_benchmark(run: RecipeRun) -> tuple[dict, ReidSplits, object]:
    """(settings, splits, cluster) of the target: chapter 5's for a synthetic world, the
    same settings on :func:`mars_splits` for a real video dataset."""
    profile = run.session.profile
    splits = None if isinstance(run.target, World) else mars_splits(run.target)
    try:
        return video_settings(profile, run.target, splits=splits)
    except ValueError as err:
        if "validation" not in str(err):
            raise
        raise ValueError(f"{run.dataset or run.target.name}: too few training identities for "
                         f"chapter 2's validation split (the clustering and BUC's ratio are "
                         f"chosen on it): {err}") from err


def _method(name: str):
    def run_recipe(run: RecipeRun) -> RecipeResult:
        """The chapter's ``video.compare.train_method(name, ...)`` on the target's split."""
        settings, splits, cluster = video_benchmark(run)
        clock = has_clock(splits)
        _, val_query, val_gallery = split_validation(splits.train, 0.1, 0)
        result, info = train_method(name, run.session, splits, settings, cluster,
                                    seed=run.seed, progress=run.progress, transit=clock,
                                    checkpoint=run.workdir / "fit.pt",
                                    val=(val_query, val_gallery), keep_best=True)
        scores = {key: result.scores[key] for key in ("mAP", "rank1", "mINP")}
        extra = {"selection": "best validation epoch (frames)",
                 "best_epoch": int(result.history.best_epoch),
                 "val_mAP": float(result.history.best_mAP)}
        if clock:
            extra["fused"] = {key: result.scores[f"st_{key}"] for key in scores}
            extra["transit_match_precision"] = info["transit"]["match_precision"]
        else:
            extra.update(fused=None, fused_note=_NO_CLOCK)
        if "association_precision" in info:
            extra["association_precision"] = info["association_precision"]
        return RecipeResult(scores=scores, seconds=result.seconds,
                            settings={**settings, **extra},
                            pairwise_f=float(result.quality["pairwise_f"]))
    return run_recipe


_SELECTION = "the best validation epoch kept (the chapter keeps the last)"


def _recipe(name: str, title: str, method: str, notes: str = _SELECTION) -> Recipe:
    return Recipe(name=name, title=title, chapter="5", run=_method(method),
                  needs_tracklets=True, notes=notes)


RECIPES = {r.name: r for r in [
    _recipe("video-cluster-contrast", "Cluster Contrast, frames", "Cluster Contrast"),
    _recipe("video-cluster-contrast-tracklets", "Cluster Contrast, tracklets",
            "Cluster Contrast, tracklets"),
    _recipe("video-buc", "BUC, tracklets", "BUC, tracklets",
            "BUC's merges of tracklet averages give the labels, Cluster Contrast trains on "
            "them; " + _SELECTION),
    _recipe("utal", "UTAL", "UTAL", "one memory slot per tracklet instead of a classifier "
            "per camera; " + _SELECTION),
    _recipe("taudl", "TAUDL", "TAUDL", "UTAL's tracklet memory for PCTD, the association "
            "kernel on normalised features; " + _SELECTION),
]}
"""Chapter 5's recipes by command-line name (all ``needs_tracklets``)."""
