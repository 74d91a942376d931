"""Chapter 4's comparison: domain adaptation from a labelled source world (survey §3.4).

The notebook ``04_domain_adaptation`` and ``benchmarks/chapter4_runs.py`` (seeds, both
directions, the domain-gap dial) build the same methods the same way from here:

- the *source model* (Eq. 11): chapter 0's supervised recipe on the source world's
  labelled training identities (:func:`source_model`; seed 0 is the source world's upper
  bound, the same cache file; MMT's second source model is seed 1);
- the *target's* clustering and budget: chapter 2's settings of the target world
  (:func:`reidlib.feature_learning.compare.chapter_settings`: Jaccard + DBSCAN chosen on
  the target's validation split, chapter 2's epochs, batch and learning rate), so a UDA
  method and the fully unsupervised methods of chapters 2-3 on the same target differ
  only in where they start and what else they learn from;
- the one test scorer of the course on the target's test split (DSBN models in their
  target branch, camera BN with its own test-time step).

:func:`train_method` is one named method built, trained and scored; the notebook writes
the same steps in its cells and a test holds the two equal.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable

from reidlib.camera.camera_bn import CameraBNContrast
from reidlib.camera.compare import camera_bn_features, camera_bn_score, centred_clustering
from reidlib.domain_adaptation.dsbn import convert_domain_bn, domain_bn_layers, domains
from reidlib.domain_adaptation.spcl_uda import TARGET, SpCLUDA, source_target_set
from reidlib.feature_learning import ClusterContrast
from reidlib.feature_learning.compare import MethodResult, chapter_budget, train_and_score
from reidlib.feature_learning.mmt import MutualMeanTeaching
from reidlib.feature_learning.part_contrast import PartContrast
from reidlib.training.features import extract_features
from reidlib.utils import seed_everything

__all__ = ["METHODS", "budget", "build_method", "gap_recovered", "source_model", "train_method"]

#: the clustering-based UDA methods (§3.4.3), each started from the source model
METHODS = ("Cluster Contrast", "Cluster Contrast, cameras centred", "camera BN", "SSG", "MMT",
           "SpCL")


def source_model(session, source_world, seed: int = 0, progress: bool = False):
    """Eq. 11: the supervised model of ``source_world`` (chapter 0's recipe), eval mode.

    Seed 0 is :meth:`reidlib.notebook.Session.upper_bound` of the source world (one cache
    file for both uses); another seed trains (or reads) the same recipe from another
    random start: MMT's second source model (Ge et al. pre-train their two networks on
    the source with different seeds).
    """
    if seed == 0:
        return session.upper_bound(source_world, progress=progress)
    from reidlib.training.supervised import train_or_load

    p = session.profile
    model, _ = train_or_load(source_world.train, arch=p.arch, cache_dir=session.cache_dir,
                             epochs=p.epochs, p=p.p, k=p.k, lr=p.lr, seed=seed,
                             weights="synthetic", device=session.device, progress=progress)
    return model.eval()


def gap_recovered(adapted: float, direct: float, supervised: float) -> float:
    """The share of the direct-transfer gap a UDA method closes (issue #14's measure):
    ``(adapted - direct) / (supervised - direct)``; 1 = as good as supervised on the target."""
    if not supervised > direct:
        raise ValueError(f"the supervised target model ({supervised:.4f}) must beat direct "
                         f"transfer ({direct:.4f}) for a gap to exist")
    return (adapted - direct) / (supervised - direct)


def budget(method, settings: dict) -> dict:
    """``fit``'s budget for ``method``: the target's chapter-2 budget (``epochs``, ``p``,
    ``k``, ``lr``; ``iters`` for the reference sampler), or in the full profile
    (``settings["epochs"]`` None) the method's own recipe, MMT's UDA recipe for a method
    that publishes none (the notebook's rule)."""
    return chapter_budget(method, settings, method.recipe or MutualMeanTeaching.recipe)


def _dsbn_extract(model, images):
    with domains(model, TARGET):
        return extract_features(model, images, flip=False, progress=False)


def build_method(name: str, start: Callable[[int], object], target_train, source_train,
                 settings: dict, cluster: Callable, seed: int = 0) -> tuple[object, dict]:
    """(method, extra ``train_and_score`` arguments) for one of :data:`METHODS`.

    ``start(s)``: a fresh copy of the source model of seed ``s`` (0 for every method; MMT's
    second network takes seed 1). The extra arguments may hold ``clustering`` (centred
    clustering, SSG's per-branch clustering is its own), ``extract``, ``iters``, and for
    SpCL the joined ``train`` with its ``domains`` (its DSBN model is scored in the
    target branch).
    """
    if name == "Cluster Contrast":
        return ClusterContrast(start(0)), {}
    if name == "Cluster Contrast, cameras centred":
        method = ClusterContrast(start(0))
        method.name = name
        return method, {"clustering": centred_clustering(cluster, target_train.camids)}
    if name == "camera BN":
        return CameraBNContrast(start(0), target_train), {"extract": camera_bn_features}
    if name == "SSG":
        method = PartContrast(start(0), cluster)
        method.name = "SSG (global + parts)"
        return method, {}
    if name == "MMT":
        method = MutualMeanTeaching(start(0), model2=start(1))
        method.name = "MMT (two source models)"
        return method, {}
    if name == "SpCL":
        joined, domain_ids = source_target_set(source_train, target_train)
        model = convert_domain_bn(start(0), 2)
        method = SpCLUDA(model, joined, domain_ids, eps=settings["eps"], k1=settings["k1"])
        method.name = "SpCL (source classes + DSBN)"
        return method, {"train": joined, "domains": domain_ids, "clustering": method.cluster,
                        "extract": _dsbn_extract, "iters": None}
    raise ValueError(f"unknown method {name!r}: expected one of {METHODS}")


def train_method(name: str, session, source_world, target_world, settings: dict, train,
                 cluster, seed: int = 0, *, progress: bool = False, checkpoint=None,
                 val=None, keep_best: bool = False) -> MethodResult:
    """Build ``name`` from the source model(s), train it on the target with ``settings``'
    budget (:func:`budget`) and score it on ``target_world``'s test split. ``train``,
    ``cluster``: the target's training images and clustering (``chapter_settings(profile,
    target_world)``). ``checkpoint``, ``val``, ``keep_best``: passed to ``fit`` (a run
    saved every epoch and resumed; validation (query, gallery) and the best epoch's
    weights kept)."""
    sources = {}

    def start(s):
        if s not in sources:
            sources[s] = source_model(session, source_world, seed=s)
        return copy.deepcopy(sources[s]).to(session.device)

    source_train = source_world.train.subset(source_world.train.pids >= 0)
    seed_everything(seed)
    method, extra = build_method(name, start, train, source_train, settings, cluster,
                                 seed=seed)
    fit_budget = budget(method, settings)
    fit_budget.update({key: extra[key] for key in ("iters", "domains") if key in extra})
    fit_train = extra.get("train", train)
    if isinstance(method, CameraBNContrast):
        def score(model):
            return camera_bn_score(model, target_world)
    else:
        def score(model):
            dsbn = domain_bn_layers(model, required=False)  # DSBN: test in the target branch
            route = domains(model, TARGET) if dsbn else contextlib.nullcontext()
            with route:
                return session.score(model, target_world)
    return train_and_score(method, fit_train, cluster=cluster,
                           clustering=extra.get("clustering"), score=score, seed=seed,
                           progress=progress, extract=extra.get("extract"), scored=train,
                           checkpoint=checkpoint, val=val, keep_best=keep_best, **fit_budget)

