"""What a recipe is: one method of chapters 1-5, runnable on any dataset (course chapter 6).

A recipe takes a :class:`RecipeRun` (the session, the target dataset, the source dataset of a
domain-adaptation method, the seed and a work folder for checkpoints) and returns a
:class:`RecipeResult`. :func:`result_row` turns that into one row of the chapter-6 benchmark
table (:data:`ROW_KEYS`), the format ``reidlib.benchmark.table`` reads.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["ROW_KEYS", "VAL_FRACTION", "Recipe", "RecipeInputError", "RecipeResult", "RecipeRun",
           "model_selection", "result_row"]

#: the keys of one benchmark-table row, in order (``settings`` is a dict, the rest scalars;
#: ``source`` is "" for a method without a source dataset; ``upper_mAP`` and ``of_upper``
#: are None where no upper bound was scored)
ROW_KEYS = ("method", "chapter", "dataset", "source", "seed", "profile", "mAP", "rank1", "mINP",
            "pairwise_f", "minutes", "upper_mAP", "of_upper", "settings", "command", "date")

_NAME = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")

#: the share of training identities held out to pick the model (never the test split)
VAL_FRACTION = 0.1


class RecipeInputError(ValueError):
    """The dataset cannot support the recipe (too few identities, no tracklets...): the
    command line prints the message as one error, without a traceback."""


@dataclass(frozen=True)
class Recipe:
    """One method as a command-line recipe.

    ``name``: the command-line name (lower case and hyphens, e.g. ``cluster-contrast``);
    ``title``: the method's name in the chapters' tables (``"Cluster Contrast"``);
    ``chapter``: "1" to "5"; ``run``: ``RecipeRun -> RecipeResult``;
    ``needs_source``: a domain-adaptation method (``--source`` required);
    ``needs_tracklets``: a video method (a dataset with tracklets: a synthetic world or MARS);
    ``notes``: where the recipe differs from the paper, one line.
    """

    name: str
    title: str
    chapter: str
    run: Callable[[RecipeRun], RecipeResult]
    needs_source: bool = False
    needs_tracklets: bool = False
    notes: str = ""

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise ValueError(f"recipe name {self.name!r}: expected lower case words joined by '-'")
        if self.chapter not in {"1", "2", "3", "4", "5"}:
            raise ValueError(f"recipe {self.name!r}: chapter must be '1'..'5', "
                             f"got {self.chapter!r}")


@dataclass
class RecipeRun:
    """Everything a recipe may use. ``session``: :class:`reidlib.notebook.Session` (profile,
    device, cache folder, ``session.score``); ``target`` / ``source``: ``ReidSplits`` (a
    synthetic ``World`` or a real dataset read by ``reidlib.recipes.datasets``); ``workdir``:
    the folder for this run's checkpoints (resumed after a kill); ``progress``: show bars."""

    session: object
    target: object
    seed: int
    workdir: Path
    source: object | None = None
    progress: bool = True
    dataset: str = ""
    source_name: str = ""


@dataclass
class RecipeResult:
    """A trained recipe's numbers: ``scores`` (``mAP``, ``rank1``, ``mINP`` on the target's
    test split), ``pairwise_f`` of the final clustering of the training features (None when
    the method has none), training ``seconds`` and the ``settings`` it ran with."""

    scores: dict
    seconds: float
    settings: dict = field(default_factory=dict)
    pairwise_f: float | None = None


def result_row(recipe: Recipe, run: RecipeRun, result: RecipeResult, *, command: str, date: str,
               upper_mAP: float | None = None) -> dict:
    """One chapter-6 table row (:data:`ROW_KEYS`) for ``result``."""
    s = result.scores
    row = {"method": recipe.title, "chapter": recipe.chapter, "dataset": run.dataset,
           "source": run.source_name, "seed": run.seed, "profile": run.session.profile.name,
           "mAP": float(s["mAP"]), "rank1": float(s["rank1"]), "mINP": float(s["mINP"]),
           "pairwise_f": None if result.pairwise_f is None else float(result.pairwise_f),
           "minutes": result.seconds / 60, "upper_mAP": upper_mAP,
           "of_upper": None if not upper_mAP else float(s["mAP"]) / upper_mAP,
           "settings": result.settings, "command": command, "date": date}
    return {key: row[key] for key in ROW_KEYS}


def model_selection(run: RecipeRun, train) -> dict:
    """:func:`reidlib.training.fit` arguments for model selection and resuming: ``val`` (the
    query / gallery of :data:`VAL_FRACTION` of ``train``'s identities, held out by
    :func:`reidlib.training.supervised.split_validation` with ``run.seed``), ``keep_best``
    and ``checkpoint`` (``run.workdir / "fit.pt"``, saved atomically after every epoch and
    resumed after a kill).

    The validation identities' labels only *score* epochs, never train: training still sees
    their images, unlabelled, like every other training image (the held-out split of
    OpenUnReID; the test split is never looked at). Raises :class:`RecipeInputError` when
    ``train`` is too small to hold identities out.
    """
    from reidlib.training.supervised import split_validation

    try:
        _, query, gallery = split_validation(train, VAL_FRACTION, run.seed)
    except ValueError as err:
        raise RecipeInputError(
            f"{run.dataset or 'the dataset'}: its training split ({len(train)} images, "
            f"{len(set(train.pids.tolist()))} identities) is too small for a validation "
            f"split: {err}") from None
    return {"val": (query, gallery), "keep_best": True,
            "checkpoint": Path(run.workdir) / "fit.pt"}
