"""Chapter 4's methods as recipes: unsupervised domain adaptation (survey §3.4, Eq. 11-12).

Every recipe starts from the *source model* (Eq. 11: chapter 0's supervised recipe on the
source's labelled training identities, :func:`~reidlib.domain_adaptation.compare.
source_model`, cached) and goes the chapter's way on the target: chapter 2's clustering
and budget of the target (``chapter_settings``, k1 / eps chosen on the target's validation
identities), the one test scorer on the target's test split. The clustering-based methods
(:data:`~reidlib.domain_adaptation.compare.METHODS`) are ``compare.train_method`` itself;
the others write the notebook's cells (``04_domain_adaptation``, sections 2-7) once more
with the same library calls.

Where a recipe differs from the chapter's run: the validation identities of the target's
training split (``split_validation(train, 0.1, 0)``, the ones the clustering was chosen
on; their images stay in training, unlabelled) are scored after every epoch and the
weights of the best epoch are kept (the chapter keeps the last). SpCL (DSBN) and camera
BN keep the last epoch: ``fit``'s validation forwards images without the domain / camera
routing their BN layers need. Every run saves ``<workdir>/fit.pt`` after each epoch and
resumes from it.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import time

import numpy as np
import torch

from reidlib.data.imageset import ImageSet
from reidlib.domain_adaptation.align import (
    MMFA,
    CrossDomainMixup,
    MMDAlignment,
    estimate_domain_bn,
    row_attributes,
)
from reidlib.domain_adaptation.camstyle import CamStyle, camera_styles
from reidlib.domain_adaptation.compare import budget, source_model, train_method
from reidlib.domain_adaptation.dsbn import convert_domain_bn, domains
from reidlib.domain_adaptation.spcl_uda import SOURCE, TARGET, source_target_set
from reidlib.domain_adaptation.style import colour_transfer
from reidlib.domain_adaptation.translator import train_translator, translate_set
from reidlib.feature_learning import ClusterContrast
from reidlib.feature_learning.compare import MethodResult, chapter_settings, train_and_score
from reidlib.pseudo_labels.quality import label_quality
from reidlib.recipes.core import Recipe, RecipeResult, RecipeRun
from reidlib.training.classification import PseudoLabelClassification
from reidlib.training.features import extract_features
from reidlib.training.supervised import split_validation
from reidlib.utils import seed_everything

__all__ = ["RECIPES", "TRANSLATOR_STEPS", "target_settings"]

#: the translator's training steps per profile (the notebook's)
TRANSLATOR_STEPS = {"smoke": 20, "quick": 300, "full": 20000}
#: clustering-based methods whose model ``fit`` cannot validate (DSBN / camera BN routing)
_LAST_EPOCH = ("camera BN", "SpCL")


# ------------------------------------------------------------------------- shared steps


def _check_run(run: RecipeRun) -> None:
    if run.source is None:
        raise ValueError("a domain-adaptation recipe needs a labelled source dataset "
                         "(--source), got none")
    if (run.source.train.pids >= 0).sum() == 0:
        raise ValueError(f"the source {run.source_name or run.source.name!r} has no labelled "
                         "training images (pid >= 0)")


def target_settings(run: RecipeRun) -> tuple[dict, ImageSet, object]:
    """(settings, train, cluster): the target's chapter-2 settings (validation seed 0, as
    the chapter and ``benchmarks/chapter4_runs.py``), its training images, its clustering."""
    return chapter_settings(run.session.profile, run.target)


def _validation(train: ImageSet) -> tuple[ImageSet, ImageSet]:
    """The target's validation (query, gallery): the identities ``chapter_settings`` held
    out to choose the clustering; labels only score, never train."""
    _, query, gallery = split_validation(train, 0.1, 0)
    return query, gallery


def _fit_options(run: RecipeRun, train: ImageSet, validated: bool = True) -> dict:
    options = {"checkpoint": run.workdir / "fit.pt"}
    if validated:
        options.update(val=_validation(train), keep_best=True)
    return options


def _selection(result: MethodResult, validated: bool) -> dict:
    history = result.history
    if not validated:
        return {"selection": "last epoch (its BN layers need a routing fit's validation "
                             "does not do)"}
    return {"selection": "best validation epoch", "best_epoch": int(history.best_epoch),
            "val_mAP": float(history.best_mAP)}


def _result(result: MethodResult, settings: dict, **more) -> RecipeResult:
    return RecipeResult(scores=dict(result.scores), seconds=result.seconds,
                        settings={**settings, **more},
                        pairwise_f=float(result.quality["pairwise_f"]))


def _starter(run: RecipeRun):
    """``start()``: a fresh copy of the source model (seed 0) on the session's device."""
    session = run.session
    source = source_model(session, run.source, progress=run.progress)

    def start():
        return copy.deepcopy(source).to(session.device)
    return start


def _source_train(run: RecipeRun) -> ImageSet:
    return run.source.train.subset(run.source.train.pids >= 0)


def _scorer(run: RecipeRun):
    return lambda model: run.session.score(model, run.target)


def _train(run: RecipeRun, target: tuple, build, fit_train: ImageSet, **extra) -> RecipeResult:
    """The notebook's ``run``: ``build()`` trained with the target's budget on ``fit_train``
    (the target's images, the source's, or both joined) and scored on the target's test
    split; the target's final training features are clustered for the pairwise F.
    ``target``: :func:`target_settings`."""
    settings, train, cluster = target
    seed_everything(run.seed)
    method = build()
    result = train_and_score(method, fit_train, cluster=cluster, score=_scorer(run),
                             seed=run.seed, progress=run.progress, scored=train,
                             **{**budget(method, settings), **extra},
                             **_fit_options(run, train))
    return _result(result, settings, **_selection(result, True))


# ------------------------------------------------------------- clustering-based (§3.4.3)


def _clustering(name: str):
    def run_recipe(run: RecipeRun) -> RecipeResult:
        """The chapter's ``compare.train_method(name, ...)`` from the source model(s)."""
        _check_run(run)
        settings, train, cluster = target_settings(run)
        validated = name not in _LAST_EPOCH
        result = train_method(name, run.session, run.source, run.target, settings, train,
                              cluster, seed=run.seed, progress=run.progress,
                              **_fit_options(run, train, validated))
        return _result(result, settings, **_selection(result, validated))
    return run_recipe


# --------------------------------------------------------------- without training (§3.4.1)


def _untrained(run: RecipeRun, target: tuple, model, route) -> RecipeResult:
    """Scores and the pairwise F of the target's clustering of ``model``'s features
    (``route(model)``: the context its forwards need)."""
    settings, train, cluster = target
    with route(model):
        features = extract_features(model, train, flip=False, progress=False).numpy()
        scores = run.session.score(model, run.target)
    quality = label_quality(cluster(features), train.pids)
    return RecipeResult(scores=scores, seconds=0.0, settings=settings,
                        pairwise_f=float(quality["pairwise_f"]))


def direct_transfer(run: RecipeRun) -> RecipeResult:
    """Direct transfer (survey §3.4): the source model (Eq. 11) scored on the target. It
    trains nothing on the target: 0 seconds, as every recipe's minutes leave out the
    source model they all start from (trained once, cached)."""
    _check_run(run)
    model = _starter(run)().eval()
    return _untrained(run, target_settings(run), model, lambda m: contextlib.nullcontext())


def adabn(run: RecipeRun) -> RecipeResult:
    """AdaBN / DSBN's target branch (survey §3.4.1; Li et al. 2017, Chang et al. CVPR 2019):
    the source model with the target's BN statistics re-estimated from its unlabelled
    training images (``estimate_domain_bn``), no training: the notebook's section 2. Its
    seconds are the re-estimation's, not the shared source model's (trained once, cached,
    left out of every recipe's minutes)."""
    _check_run(run)
    target, start = target_settings(run), _starter(run)
    started = time.perf_counter()
    model = convert_domain_bn(start(), 2)
    estimate_domain_bn(model, target[1], TARGET)
    seconds = time.perf_counter() - started
    result = _untrained(run, target, model, lambda m: domains(m, TARGET))
    result.seconds = seconds
    return result


# ------------------------------------------------- alignment and mixup on source + target


def _joined(run: RecipeRun, train: ImageSet) -> tuple[ImageSet, np.ndarray, np.ndarray]:
    """(source rows then target rows, domain ids, labels: source classes, -1 on target)."""
    joined, domain_ids = source_target_set(_source_train(run), train)
    return joined, domain_ids, np.where(domain_ids == SOURCE, joined.pids, -1)


def _source_target(run: RecipeRun, build) -> RecipeResult:
    """``build(start, domain_ids, joined)`` trained on the joined set with the source's
    classes as fixed labels (the notebook's ``run(..., fit_train=joined, labels=...)``)."""
    _check_run(run)
    start = _starter(run)
    target = target_settings(run)
    joined, domain_ids, labels = _joined(run, target[1])
    return _train(run, target, lambda: build(start, domain_ids, joined), joined,
                  labels=labels, domains=domain_ids)


def mmd_alignment(run: RecipeRun) -> RecipeResult:
    """MMD alignment (survey §3.4.1; MMFA's feature term, Lin et al. BMVC 2018, with DAN's
    multi-kernel MMD): Eq. 11 on the source half + MMD^2 of the two halves' features."""
    return _source_target(run, lambda start, domain_ids, _: MMDAlignment(start(), domain_ids))


def mmfa(run: RecipeRun) -> RecipeResult:
    """MMFA (survey §3.4.1; Lin et al., BMVC 2018; TJ-AIDL, Wang et al., CVPR 2018): Eq. 11,
    attribute heads learnt on the source's attribute labels, MMD of the features and of the
    attribute predictions. Needs a source with attribute annotations (a synthetic world)."""
    _check_run(run)
    if not hasattr(run.source, "people") or not hasattr(run.source, "people_pid"):
        raise ValueError(f"MMFA needs attribute labels of the source's people; the source "
                         f"{run.source_name or run.source.name!r} has none (only a synthetic "
                         "world carries them, e.g. --source synthetic:B)")

    def build(start, domain_ids, joined):
        attributes = row_attributes(run.source, np.where(domain_ids == SOURCE, joined.pids, -1))
        return MMFA(start(), domain_ids, attributes)
    return _source_target(run, build)


def cross_domain_mixup(run: RecipeRun) -> RecipeResult:
    """Cross-domain mixup (survey §3.4; Luo, Song, Zhang, ECCV 2020): source images mixed
    with target images, soft labels over the source classes and the target image's slot."""
    return _source_target(run, lambda start, domain_ids, _: CrossDomainMixup(start(),
                                                                            domain_ids))


# ---------------------------------------------------------------- style transfer (§3.4.2)


def _chw(images: ImageSet) -> torch.Tensor:
    return torch.as_tensor(images.images).permute(0, 3, 1, 2)


def _fine_tune(run: RecipeRun, restyle, name: str, wrap=None) -> RecipeResult:
    """The source model fine-tuned on the source images ``restyle(source, target)`` with
    their identities (PTGAN / SPGAN's recipe, shortened: from the source model, the
    target's budget); ``wrap(method, target)`` wraps the method (camera styles)."""
    _check_run(run)
    start = _starter(run)
    target = target_settings(run)
    images = restyle(_source_train(run), target[1])

    def build():
        method = PseudoLabelClassification(start(), classifier_init="centroids")
        method.name = name
        return wrap(method, target[1]) if wrap is not None else method
    return _train(run, target, build, images, labels=images.pids)


def source_fine_tune(run: RecipeRun) -> RecipeResult:
    """The style rows' control: the same fine-tuning on the source as rendered."""
    return _fine_tune(run, lambda source, _: source, "source fine-tuned (control)")


def colour_style(run: RecipeRun) -> RecipeResult:
    """Reinhard's colour transfer (survey §3.4.2): every source image moved to the target's
    channel statistics (one transfer for the whole set), then fine-tuned."""
    def recolour(source, target):
        pixels = colour_transfer(_chw(source), _chw(target), per_image=False)
        return dataclasses.replace(source, images=pixels.permute(0, 2, 3, 1).numpy())
    return _fine_tune(run, recolour, "style: source in the target's colours")


def gan_translation(run: RecipeRun) -> RecipeResult:
    """A CycleGAN with SPGAN's target-identity term (survey §3.4.2; Zhu et al. ICCV 2017,
    Deng et al. CVPR 2018) translates the source to the target's style, then fine-tuned.
    The notebook's translator: width 16 and 2 blocks (CycleGAN's 64 and 9 in the full
    profile), :data:`TRANSLATOR_STEPS`; checkpointed in the work folder and resumed."""
    profile = run.session.profile.name
    full = profile == "full"

    def translate(source, target):
        translator = train_translator(
            source, target, steps=TRANSLATOR_STEPS[profile], seed=run.seed,
            device=run.session.device, width=64 if full else 16, blocks=9 if full else 2,
            checkpoint=run.workdir / "translator.pt", progress=run.progress)
        return translate_set(translator, source)
    return _fine_tune(run, translate, "style: source translated by the GAN")


def hhl(run: RecipeRun) -> RecipeResult:
    """HHL's camera-style term (survey §3.4.2; Zhong et al., ECCV 2018): the source images
    restyled to the target cameras' colour statistics (p = 0.5), fine-tuned with their
    identities. A colour transfer per camera, not a StarGAN per camera."""
    return _fine_tune(run, lambda source, _: source, "style: source in the target's camera "
                      "styles (HHL)", wrap=lambda m, train: CamStyle(m, camera_styles(train),
                                                                     p=0.5))


def camstyle(run: RecipeRun) -> RecipeResult:
    """CamStyle (survey §3.4.2; Zhong et al., CVPR 2018): Cluster Contrast from the source
    model on the target's clusters, each target image restyled (p = 0.5) to another target
    camera's colour statistics. Left out of the notebook for time; trained in its tests."""
    _check_run(run)
    start = _starter(run)
    target = target_settings(run)
    train = target[1]
    return _train(run, target, lambda: CamStyle(ClusterContrast(start()), camera_styles(train),
                                                p=0.5, exclude_own_camera=True), train)


# ------------------------------------------------------------------------------- table


def _recipe(name, title, run, notes=""):
    return Recipe(name=name, title=title, chapter="4", run=run, needs_source=True,
                  notes=notes)


_SELECTION = "the best validation epoch kept (the chapter keeps the last)"

RECIPES = {r.name: r for r in [
    _recipe("direct-transfer", "direct transfer (source model)", direct_transfer),
    _recipe("adabn", "direct transfer, target BN statistics (AdaBN)", adabn),
    _recipe("mmd-alignment", "MMD alignment", mmd_alignment, _SELECTION),
    _recipe("mmfa", "MMFA (features + attributes)", mmfa,
            "needs a source with attribute labels (a synthetic world); " + _SELECTION),
    _recipe("source-fine-tune", "source fine-tuned (control)", source_fine_tune, _SELECTION),
    _recipe("colour-transfer", "style: colour transfer", colour_style,
            "fine-tunes the source model, not from ImageNet; " + _SELECTION),
    _recipe("gan-translation", "style: CycleGAN / SPGAN translation", gan_translation,
            "a small translator without SPGAN's siamese term; fine-tunes the source model; "
            + _SELECTION),
    _recipe("hhl", "style: target camera styles (HHL)", hhl,
            "camera styles are colour statistics, not a StarGAN; " + _SELECTION),
    _recipe("camstyle", "CamStyle + Cluster Contrast", camstyle,
            "camera styles are colour statistics, not a CycleGAN per camera pair; "
            + _SELECTION),
    _recipe("uda-cluster-contrast", "Cluster Contrast (from the source)",
            _clustering("Cluster Contrast"), _SELECTION),
    _recipe("uda-cameras-centred", "Cluster Contrast, cameras centred (from the source)",
            _clustering("Cluster Contrast, cameras centred"), _SELECTION),
    _recipe("uda-camera-bn", "camera BN (from the source)", _clustering("camera BN"),
            "the last epoch kept (fit cannot validate camera BN)"),
    _recipe("uda-ssg", "SSG (global + parts)", _clustering("SSG"), _SELECTION),
    _recipe("uda-mmt", "MMT (two source models)", _clustering("MMT"), _SELECTION),
    _recipe("uda-spcl", "SpCL (source classes + DSBN)", _clustering("SpCL"),
            "the last epoch kept (fit cannot validate a DSBN model)"),
    _recipe("cross-domain-mixup", "cross-domain mixup", cross_domain_mixup,
            "exemplar term only, no camera-aware neighbourhood losses; " + _SELECTION),
]}
"""Chapter 4's recipes by command-line name (all ``needs_source``)."""
