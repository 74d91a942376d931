"""Chapters 1-3 as recipes: every fully unsupervised image method, on any dataset (chapter 6).

Each recipe is the chapter's own run (same start, settings, budget and test scorer: chapter
1's :func:`~reidlib.pseudo_labels.loop.pseudo_label_loop` with
:mod:`reidlib.pseudo_labels.settings`, chapter 2's
:func:`~reidlib.feature_learning.compare.chapter_settings` and
:func:`~reidlib.feature_learning.compare.train_and_score` with the methods of
``benchmarks/chapter2_seeds.py``, chapter 3's :func:`reidlib.camera.compare.train_method`),
with two additions every recipe shares (:func:`reidlib.recipes.core.model_selection`):

- the model is picked on a validation split of held-out *training* identities (the weights
  of the best validation epoch are kept); their images still train, unlabelled (camera BN
  excepted: the loop's validation cannot run its per-camera statistics step, so its last
  epoch is scored);
- a checkpoint after every epoch in the run's work folder, resumed after a kill.

Budgets: the chapters' short budget in the smoke and quick profiles; in the full profile
each paper's published recipe (``method.recipe``, as the notebooks' ``budget``), and for
the methods without one (CE + triplet, triplet, parts) chapter 0's supervised budget of
the profile (epochs, P, K, learning rate). Chapter 3's "Cluster Contrast" row is chapter
2's ``cluster-contrast`` recipe (the same run), so it has no recipe of its own.
"""

from __future__ import annotations

import numpy as np

from reidlib.recipes.core import Recipe, RecipeInputError, RecipeResult, RecipeRun, model_selection

__all__ = ["RECIPES"]

DCML_DROP_SHARE, DCML_K, ECN_K = 0.2, 5, 6  # chapter 2's (the notebook's section 5)
SMP_K = 3  # chapter 1a's reciprocal neighbours
BUC_DIVERSITY = 0.005  # chapter 1's lambda of Eq. 2 (BUC's default)
BUC_MAX_N = 5000  # buc_labels' dense N x N matrix


def _fit_settings(history) -> dict:
    """The budget a run trained with, read from its history (what the table reports)."""
    keys = ("epochs", "lr", "p", "k", "iters", "recluster_every", "schedule", "milestones",
            "warmup_epochs", "weight_decay")
    return {key: history.config[key] for key in keys if key in history.config}


def _recorded(settings: dict, history, selection: dict) -> dict:
    """``settings`` plus the budget actually run and the model-selection facts."""
    query, gallery = selection["val"]
    return {**settings, **_fit_settings(history), "val_identities": int(query.num_ids),
            "val_images": len(query) + len(gallery), "best_epoch": int(history.best_epoch)}


def _training_set(run: RecipeRun):
    train = run.target.train
    return train.subset(train.pids >= 0)


# ------------------------------------------------------------------------------ chapter 1


def _dbscan_jaccard(train, c, seed):
    from reidlib.pseudo_labels import jaccard_dbscan

    return jaccard_dbscan(c.k1, c.k2, c.eps, c.min_samples), {
        "k1": c.k1, "k2": c.k2, "eps": c.eps, "min_samples": c.min_samples}


def _kmeans(train, c, seed):
    from reidlib.pseudo_labels import kmeans_labels

    n_ids = len(np.unique(train.pids))
    return (lambda f: kmeans_labels(f, n_ids, seed=seed)), {"n_clusters": n_ids}


def _buc(train, c, seed):
    from reidlib.pseudo_labels import buc_labels

    if len(train) > BUC_MAX_N:
        raise RecipeInputError(f"BUC keeps a dense N x N distance matrix: at most {BUC_MAX_N} "
                               f"training images, this dataset has {len(train)}")
    n_ids = len(np.unique(train.pids))
    return (lambda f: buc_labels(f, n_clusters=n_ids, diversity=BUC_DIVERSITY)), {
        "n_clusters": n_ids, "diversity": BUC_DIVERSITY}


def _hct(train, c, seed):
    from reidlib.pseudo_labels import hct_labels

    n_ids = len(np.unique(train.pids))
    return (lambda f: hct_labels(f, n_clusters=n_ids)), {"n_clusters": n_ids}


def _smp(train, c, seed):
    from reidlib.pseudo_labels import kmeans_labels, reciprocal_filter

    n_ids = len(np.unique(train.pids))

    def cluster(features):
        return reciprocal_filter(features, kmeans_labels(features, n_ids, seed=seed), k=SMP_K)
    return cluster, {"n_clusters": n_ids, "smp_k": SMP_K}


def _loop_recipe(make_cluster):
    """Chapter 1b's cluster -> train -> re-cluster loop (survey §3.1, Eq. 12) with the
    clustering ``make_cluster(train, cluster_settings, seed) -> (cluster, settings)``."""
    def run_loop(run: RecipeRun) -> RecipeResult:
        from reidlib.models import build_model
        from reidlib.pseudo_labels.loop import pseudo_label_loop
        from reidlib.pseudo_labels.settings import cluster_settings, loop_settings
        from reidlib.utils import seed_everything

        session, profile = run.session, run.session.profile
        train = _training_set(run)
        selection = model_selection(run, train)
        cluster, settings = make_cluster(train, cluster_settings(profile.name), run.seed)
        loop = loop_settings(profile.name, profile.epochs)
        seed_everything(run.seed)
        model = build_model(profile.arch, weights="synthetic").to(session.device)
        out = pseudo_label_loop(model, train, cluster, rounds=loop.rounds,
                                epochs_per_round=loop.epochs_per_round, p=profile.p,
                                k=profile.k, lr=profile.lr, seed=run.seed,
                                progress=run.progress, **selection)
        settings = {"profile": profile.name, "rounds": loop.rounds,
                    "epochs_per_round": loop.epochs_per_round, **settings}
        return RecipeResult(session.score(model, run.target), out.history.wall_time,
                            _recorded(settings, out.history, selection),
                            float(out.quality["pairwise_f"]))
    return run_loop


# ------------------------------------------------------------------------------ chapter 2


def _budget(method, settings: dict, profile) -> dict:
    """Chapter 2's ``budget(method)``: the short budget, or in the full profile the paper's
    recipe (chapter 0's supervised budget for a method that has none)."""
    from reidlib.feature_learning.compare import chapter_budget

    return chapter_budget(method, settings, method.recipe or {
        "epochs": profile.epochs, "p": profile.p, "k": profile.k, "lr": profile.lr})


def _chapter2(build):
    """Chapter 2's comparison for one method: ``build(backbone, settings, cluster) ->
    (method, extra train_and_score arguments)`` from ``benchmarks/chapter2_seeds.py``."""
    def run_method(run: RecipeRun) -> RecipeResult:
        from reidlib.feature_learning.compare import chapter_settings, train_and_score
        from reidlib.models import build_model
        from reidlib.utils import seed_everything

        session, profile = run.session, run.session.profile
        selection = model_selection(run, _training_set(run))  # first: a clear error if small
        settings, train, cluster = chapter_settings(profile, run.target, seed=run.seed)
        settings = settings | {"dcml_drop_share": DCML_DROP_SHARE, "ecn_k": ECN_K}

        def backbone():
            return build_model(profile.arch, weights="synthetic").to(session.device)

        seed_everything(run.seed)
        method, extra = build(backbone, settings, cluster)
        result = train_and_score(method, train, cluster=cluster,
                                 score=lambda m: session.score(m, run.target), seed=run.seed,
                                 progress=run.progress, **_budget(method, settings, profile),
                                 **extra, **selection)
        return RecipeResult(result.scores, result.history.wall_time,
                            _recorded(settings, result.history, selection),
                            float(result.quality["pairwise_f"]))
    return run_method


def _ce_triplet(backbone, settings, cluster):
    from reidlib.training import PseudoLabelClassification

    return PseudoLabelClassification(backbone(), ce=True, triplet=True), {}


def _triplet(backbone, settings, cluster):
    from reidlib.training import PseudoLabelClassification

    return PseudoLabelClassification(backbone(), ce=False, triplet=True), {}


def _ecn(backbone, settings, cluster):
    from reidlib.feature_learning import ECN

    return ECN(backbone(), k=settings["ecn_k"]), {}


def _cluster_contrast(backbone, settings, cluster):
    from reidlib.feature_learning import ClusterContrast

    return ClusterContrast(backbone()), {}


def _spcl(backbone, settings, cluster):
    from reidlib.feature_learning import SpCL

    spcl = SpCL(backbone(), eps=settings["eps"], k1=settings["k1"])
    return spcl, {"clustering": spcl.cluster}


def _mmt(backbone, settings, cluster):
    from reidlib.feature_learning import MutualMeanTeaching

    return MutualMeanTeaching(backbone()), {}


def _parts(backbone, settings, cluster):
    from reidlib.feature_learning import PartContrast

    return PartContrast(backbone(), cluster), {}


def _dcml(backbone, settings, cluster):
    from reidlib.feature_learning import ClusterContrast, credible_selector

    dcml = ClusterContrast(backbone())
    dcml.name = "Cluster Contrast + DCML selection"
    return dcml, {"select": credible_selector(k=DCML_K, drop_share=settings["dcml_drop_share"])}


#: chapter 2's methods in the notebook's order: ``build(backbone, settings, cluster) ->
#: (method, extra train_and_score arguments)``; ``benchmarks/chapter2_seeds.py`` uses them too
CHAPTER2_BUILDERS = (_ce_triplet, _triplet, _ecn, _cluster_contrast, _spcl, _mmt, _parts, _dcml)


# ------------------------------------------------------------------------------ chapter 3


def _chapter3(name: str, validate: bool = True):
    """Chapter 3's run of ``name`` (one of :data:`reidlib.camera.compare.METHODS`).

    ``validate=False`` (camera BN): no model selection, the last epoch's weights are scored,
    because the loop's validation extracts features without camera BN's per-camera
    statistics step (its layers refuse images without their cameras)."""
    def run_method(run: RecipeRun) -> RecipeResult:
        from reidlib.camera.compare import train_method
        from reidlib.feature_learning.compare import chapter_settings

        session = run.session
        selection = model_selection(run, _training_set(run))  # first: a clear error if small
        settings, train, cluster = chapter_settings(session.profile, run.target, seed=run.seed)
        fit_args = selection if validate else {"checkpoint": selection["checkpoint"]}
        result = train_method(name, session, run.target, settings, train, cluster,
                              seed=run.seed, progress=run.progress, **fit_args)
        recorded = _recorded(settings, result.history, selection)
        if not validate:
            recorded = {key: value for key, value in recorded.items()
                        if key not in ("val_identities", "val_images", "best_epoch")}
        return RecipeResult(result.scores, result.history.wall_time, recorded,
                            float(result.quality["pairwise_f"]))
    return run_method


# ------------------------------------------------------------------------------ registry

_ORACLE_K = "K = the true number of training identities, as chapter 1 (an oracle no real " \
            "method has)"

RECIPES: dict[str, Recipe] = {r.name: r for r in [
    Recipe("dbscan-jaccard-loop", "DBSCAN-Jaccard loop", "1", _loop_recipe(_dbscan_jaccard),
           notes="chapter 1's fixed k1 / eps per profile (SSG / Cluster Contrast clustering)"),
    Recipe("pul-loop", "PUL loop (K-means)", "1", _loop_recipe(_kmeans), notes=_ORACLE_K),
    Recipe("buc-loop", "BUC loop", "1", _loop_recipe(_buc),
           notes="BUC's Eq. 2 clustering in chapter 1's loop (BUC merges and retrains "
                 "instead); " + _ORACLE_K),
    Recipe("hct-loop", "HCT loop", "1", _loop_recipe(_hct),
           notes="HCT's average linkage in chapter 1's loop (CE + triplet, not HCT's "
                 "triplet-only training); " + _ORACLE_K),
    Recipe("smp-loop", "SMP loop (K-means + reciprocal filter)", "1", _loop_recipe(_smp),
           notes="SMP-style reciprocal filtering of K-means labels in chapter 1's loop; "
                 + _ORACLE_K),
    Recipe("ce-triplet", "CE + triplet", "2", _chapter2(_ce_triplet)),
    Recipe("triplet", "triplet", "2", _chapter2(_triplet)),
    Recipe("ecn", "ECN (exemplar memory)", "2", _chapter2(_ecn)),
    Recipe("cluster-contrast", "Cluster Contrast", "2", _chapter2(_cluster_contrast)),
    Recipe("spcl", "SpCL (hybrid memory)", "2", _chapter2(_spcl)),
    Recipe("mmt", "MMT", "2", _chapter2(_mmt)),
    Recipe("parts", "parts (global + upper + lower)", "2", _chapter2(_parts)),
    Recipe("dcml", "Cluster Contrast + DCML selection", "2", _chapter2(_dcml)),
    Recipe("cluster-contrast-camera-free", "Cluster Contrast, camera-free sampler", "3",
           _chapter3("Cluster Contrast, camera-free sampler")),
    Recipe("cluster-contrast-centred", "Cluster Contrast, cameras centred", "3",
           _chapter3("Cluster Contrast, cameras centred")),
    Recipe("camera-bn", "camera BN", "3", _chapter3("camera BN", validate=False),
           notes="no validation model selection (the loop's validation has no camera-BN "
                 "step): the last epoch is scored"),
    Recipe("cap", "CAP", "3", _chapter3("CAP")),
    Recipe("ice", "ICE", "3", _chapter3("ICE")),
    Recipe("metacam", "MetaCam", "3", _chapter3("MetaCam")),
    Recipe("iics", "IICS", "3", _chapter3("IICS")),
]}
