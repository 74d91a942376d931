"""Train several methods the same way and put them in one table (course chapter 2, §3.2).

A fair comparison holds everything but the method fixed: the start, the clustering the
final features are scored with, the budget, the seed and the test-time scorer. Chapter 2
and ``benchmarks/chapter2_seeds.py`` both go through :func:`train_and_score`, so the
notebook's numbers and the seeds' spread come from the same code::

    result = train_and_score(ClusterContrast(backbone()), train, cluster=cluster,
                             score=lambda m: session.score(m, world), epochs=3, lr=1e-3)
    results_table([result, ...], references={"upper bound": session.score(upper, world)})
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from reidlib.data.imageset import ImageSet
from reidlib.pseudo_labels.generators import dbscan_labels
from reidlib.pseudo_labels.jaccard import jaccard_distance
from reidlib.pseudo_labels.quality import label_quality, record_round
from reidlib.training.features import extract_features
from reidlib.training.loop import History, fit
from reidlib.utils import progress_enabled
from reidlib.viz.explorer import Snapshot

__all__ = ["MethodResult", "chapter_budget", "chapter_settings", "clustering_on_validation",
           "results_table", "train_and_score"]

# the short budget of chapters 2-3 (epochs); the full profile takes each paper's recipe
EPOCHS = {"smoke": 1, "quick": 3, "full": None}


@dataclass
class MethodResult:
    """One trained method: test scores, the clustering of its final features, its run.

    ``scores``: the test scorer's dict (``mAP``, ``rank1``, ``mINP``); ``quality``:
    :func:`reidlib.pseudo_labels.label_quality` of the shared clustering of the final
    training features (pairwise F, outlier share, ...); ``seconds``: training wall time;
    ``final``: the explorer snapshot of those final features ("after training").
    """

    name: str
    scores: dict
    quality: dict
    seconds: float
    history: History
    final: Snapshot

    def row(self) -> dict:
        """The table row of this result (see :func:`results_table`)."""
        q = self.quality
        return {"mAP": self.scores["mAP"], "rank-1": self.scores["rank1"],
                "mINP": self.scores["mINP"], "pairwise F": q["pairwise_f"],
                "clusters": q["n_clusters"], "outliers": q["outlier_share"],
                "minutes": self.seconds / 60}


def train_and_score(method, train: ImageSet, *, cluster: Callable[[np.ndarray], np.ndarray],
                    score: Callable, clustering: Callable | None = None, select=None,
                    seed: int = 0, snapshot_rows=None, progress: bool = True,
                    extract: Callable | None = None, scored: ImageSet | None = None,
                    **fit_args) -> MethodResult:
    """Train ``method`` with the one loop, then score it the same way as every other.

    Args:
        method: a :class:`reidlib.training.Method`, freshly built from the shared start.
        train: the training images (junk dropped; pids only score the pseudo-labels).
        cluster: the chapter's clustering, used to train unless ``clustering`` is given
            (SpCL's own), and always to score the final features' pseudo-labels.
        score: ``model -> {"mAP", "rank1", "mINP"}``, the one test-set scorer.
        select: optional per-epoch sample selection (DCML), see :func:`fit`.
        snapshot_rows: rows kept in the explorer snapshots.
        extract: ``(model, images) -> (N, D) features`` of the final training features
            (default: :func:`extract_features` without flip); a method whose model needs
            more than images (camera-based BN: the cameras) passes its own.
        progress: progress bars (off when ``$REID_PROGRESS=0``, as in static builds).
        scored: the images whose final clustering is scored (default ``train``); a domain
            adaptation method trained on source + target rows scores the target's alone.
        fit_args: the budget (``epochs``, ``lr``, ``p``, ``k``, ``iters``...), passed to
            :func:`reidlib.training.fit` unchanged; with fixed ``labels=`` (a domain
            adaptation method trained on its source classes) nothing is clustered to
            train, and ``cluster`` only scores the final features.
    """
    start = time.perf_counter()
    fixed = "labels" in fit_args  # trained on fixed labels (a UDA method's source classes)
    history = fit(method, train, cluster=None if fixed else clustering or cluster,
                  select=select, seed=seed,
                  snapshot_rows=snapshot_rows, progress=progress_enabled(progress), **fit_args)
    seconds = time.perf_counter() - start
    seconds += history.earlier_seconds(seconds)  # epochs trained before a kill
    scored = train if scored is None else scored
    if extract is None:
        features = extract_features(method.feature_model(), scored, flip=False, progress=False)
    else:
        features = extract(method.feature_model(), scored)
    features = features.numpy()
    quality, final = record_round(len(history), features, cluster(features), scored,
                                  name=f"{method.name}, after training", rows=snapshot_rows)
    if final is not None:  # the panel's title quotes the whole clustering, like the epochs'
        final = dataclasses.replace(final, metrics={
            key: quality[key] for key in ("pairwise_f", "outlier_share", "n_clusters")})
    return MethodResult(method.name, score(method.feature_model()), quality, seconds,
                        history, final)


def results_table(results: Iterable[MethodResult], references: dict[str, dict] | None = None,
                  upper: str | None = None) -> pd.DataFrame:
    """One row per method, best mAP first, then the reference rows (start, upper bound).

    ``references``: name -> a score dict (``mAP``, ``rank1``, ``mINP``) of a model that
    was not trained here. ``upper``: the reference whose mAP the column "of upper bound"
    divides by.
    """
    rows = {r.name: r.row() for r in results}
    if not rows:
        raise ValueError("results_table needs at least one MethodResult")
    table = pd.DataFrame(rows).T.sort_values("mAP", ascending=False)
    for name, s in (references or {}).items():
        table.loc[name, ["mAP", "rank-1", "mINP"]] = (s["mAP"], s["rank1"], s["mINP"])
    if upper is not None:
        if upper not in (references or {}):
            raise ValueError(f"upper={upper!r} is not one of the references "
                             f"{list(references or {})}")
        table["of upper bound"] = table["mAP"] / references[upper]["mAP"]
    return table


def chapter_budget(method, settings: dict, full: dict | None = None) -> dict:
    """``fit``'s budget for ``method`` under ``settings`` (:func:`chapter_settings`): the
    short budget (``epochs``, ``p``, ``k``, ``lr``; ``iters`` only for the reference
    sampler, one pass for the others), or in the full profile (``settings["epochs"]`` None)
    ``full`` (default: the method's published ``recipe``), copied. Chapters 3-5 and the
    recipes pass their own fallback for a method that publishes no recipe."""
    if settings["epochs"] is None:
        return dict(method.recipe if full is None else full)
    return {"epochs": settings["epochs"], "p": settings["p"], "k": settings["k"],
            "lr": settings["lr"],
            "iters": settings["iters"] if method.sampler == "multi_gallery" else None}


def chapter_settings(profile, world, seed: int = 0) -> tuple[dict, ImageSet, Callable]:
    """(settings, train, cluster): chapter 2's comparison settings, shared by chapter 3.

    ``train`` is world's training split without junk; ``cluster`` Jaccard + DBSCAN with k1
    and eps chosen on the validation split (``split_validation(train, 0.1, seed)``: each
    setting clusters the generic backbone's features of all training images and is scored
    on the validation identities only), or the papers' k1 = 30, eps = 0.6 in the full
    profile. ``settings``: profile, epochs (None in the full profile: the recipes'), P, K,
    learning rate, iterations per epoch (one pass over the images) and the chosen k1, eps:
    what a seeds run must share with a notebook for its spread to describe the notebook.
    """
    from reidlib.models import build_model  # models import training, which imports this
    from reidlib.pseudo_labels.generators import jaccard_dbscan
    from reidlib.training.supervised import split_validation

    if profile.name not in EPOCHS:
        raise ValueError(f"unknown profile {profile.name!r}: expected one of {list(EPOCHS)}")
    train = world.train.subset(world.train.pids >= 0)
    if profile.name == "full":
        k1, eps = 30, 0.6
    else:
        start = extract_features(build_model(profile.arch, weights="synthetic").eval(), train,
                                 flip=False, progress=False)
        _, val_query, _ = split_validation(train, 0.1, seed)
        val_rows = np.isin(train.pids, np.unique(val_query.pids))
        sweep = clustering_on_validation(start.numpy(), train.pids, val_rows)
        k1, eps = int(sweep.k1[0]), float(sweep.eps[0])
    p, k, lr = profile.p, profile.k, profile.lr
    settings = {"profile": profile.name, "epochs": EPOCHS[profile.name], "p": p, "k": k,
                "lr": lr, "iters": int(np.ceil(len(train) / (p * k))), "k1": k1, "eps": eps}
    return settings, train, jaccard_dbscan(k1=k1, k2=6, eps=eps, min_samples=4)


def clustering_on_validation(features: np.ndarray, pids: np.ndarray, val_rows: np.ndarray,
                             k1_values=(10, 20, 30), eps_values=(0.45, 0.5, 0.55, 0.6),
                             k2: int = 6, min_samples: int = 4) -> pd.DataFrame:
    """Jaccard + DBSCAN settings (survey §3.1) scored on validation identities only.

    Every setting clusters *all* training ``features`` (so that the validation people
    meet their real confusers), and its labels are scored on the rows ``val_rows`` alone,
    against ``pids`` there: the identities of a held-out validation split
    (:func:`reidlib.training.supervised.split_validation`), the only labels a method may be
    tuned on. One row per (k1, eps): pairwise F, clusters and outlier share among those
    rows; best pairwise F first.
    """
    val_rows = np.asarray(val_rows)
    if val_rows.dtype != bool or val_rows.shape != (len(features),) or not val_rows.any():
        raise ValueError("val_rows must be a boolean mask over the rows of features with at "
                         "least one True (the validation identities' images)")
    rows = []
    for k1 in k1_values:
        dist = jaccard_distance(features, k1=k1, k2=k2, progress=False,
                                max_distance=max(eps_values))
        for eps in eps_values:
            labels = dbscan_labels(dist, eps=eps, min_samples=min_samples)
            q = label_quality(labels[val_rows], pids[val_rows])
            rows.append({"k1": k1, "eps": eps, "pairwise F": q["pairwise_f"],
                         "clusters": q["n_clusters"], "outliers": q["outlier_share"]})
    return pd.DataFrame(rows).sort_values("pairwise F", ascending=False, ignore_index=True)


TABLE_FORMAT = {"mAP": "{:.1%}", "rank-1": "{:.1%}", "mINP": "{:.1%}", "pairwise F": "{:.2f}",
                "clusters": "{:.0f}", "outliers": "{:.0%}", "minutes": "{:.1f}",
                "of upper bound": "{:.0%}"}
"""Display formats for :func:`results_table`'s columns (``table.style.format(...)``)."""
