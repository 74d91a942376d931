"""``python -m reidlib.recipes``: any method of chapters 1-5 on any dataset (course chapter 6).

    python -m reidlib.recipes list
    python -m reidlib.recipes cluster-contrast --dataset synthetic:A --profile quick \\
        --out results.json
    python -m reidlib.recipes cluster-contrast --dataset market1501:data/market1501 --upper
    python -m reidlib.recipes <uda-method> --dataset synthetic:A --source synthetic:B

One run: read the dataset(s), train the method with its chapter's settings (progress bars
from the training loop), picking the weights on a validation split of training identities,
checkpointing every epoch in ``--workdir`` (a killed run resumes where it stopped when run
again with the same arguments), score it on the test split and merge one row of the
chapter-6 table (:data:`reidlib.recipes.core.ROW_KEYS`) into ``--out`` (``{"rows": [...]}``,
written atomically; a row of the same method, dataset, source, seed and profile is
replaced). A bad argument, a missing or malformed dataset, or a dataset too small for the
recipe exits with code 2 and one error message, with ``--out`` untouched.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import shlex
import sys
from pathlib import Path

from reidlib.data.datasets import DatasetLayoutError
from reidlib.profiles import PROFILES
from reidlib.recipes.core import ROW_KEYS, Recipe, RecipeInputError, RecipeRun, result_row
from reidlib.recipes.datasets import dataset_forms, load_dataset, parse_dataset
from reidlib.utils import atomic_path, progress_enabled

__all__ = ["all_recipes", "main", "merge_rows", "read_out", "recipe_table"]

#: the modules whose ``RECIPES`` make up the registry (chapters 1-3, 4, 5)
MODULES = ("reidlib.recipes.image", "reidlib.recipes.adaptation", "reidlib.recipes.video")
#: the columns that say which run a row is (a new row replaces an old one with the same)
RUN_KEY = ("method", "chapter", "dataset", "source", "seed", "profile")


class UsageError(ValueError):
    """A command-line mistake: printed as one error line, exit code 2."""


def all_recipes() -> dict[str, Recipe]:
    """Every recipe: chapters 1-3 (:mod:`reidlib.recipes.image`) and, where their modules
    exist, chapters 4 (``adaptation``) and 5 (``video``). A name twice is an error."""
    import importlib

    registry: dict[str, Recipe] = {}
    for module_name in MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name != module_name:  # the module exists but an import inside it fails
                raise
            continue
        for name, recipe in module.RECIPES.items():
            if name in registry:
                raise RuntimeError(f"recipe {name!r} is defined twice ({module_name})")
            registry[name] = recipe
    return registry


def recipe_table(registry: dict[str, Recipe]) -> str:
    """One line per recipe: name, chapter, title, what it needs."""
    lines = [f"{'recipe':<34} {'ch':<3} title"]
    for recipe in sorted(registry.values(), key=lambda r: (r.chapter, r.name)):
        needs = " [needs --source]" if recipe.needs_source else ""
        needs += " [needs tracklets]" if recipe.needs_tracklets else ""
        lines.append(f"{recipe.name:<34} {recipe.chapter:<3} {recipe.title}{needs}")
    return "\n".join(lines)


def read_out(path: Path) -> list[dict]:
    """The rows already in ``path`` (none when it does not exist); a file that is not a
    results file of this command is refused before anything trains."""
    if not path.exists():
        return []
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise UsageError(f"--out {path} is not valid JSON ({err}); choose another file") from None
    rows = data.get("rows") if isinstance(data, dict) else None
    if not isinstance(rows, list) or not all(isinstance(r, dict) and set(r) == set(ROW_KEYS)
                                             for r in rows):
        raise UsageError(f"--out {path} is not a recipes results file ({{\"rows\": [...]}} with "
                         f"the keys {', '.join(ROW_KEYS)}); choose another file")
    return rows


def merge_rows(rows: list[dict], row: dict) -> list[dict]:
    """``rows`` with ``row`` in place of the row of the same run (:data:`RUN_KEY`), or
    appended."""
    key = tuple(row[k] for k in RUN_KEY)
    kept = [r for r in rows if tuple(r[k] for k in RUN_KEY) != key]
    return [*kept, row]


def write_out(path: Path, rows: list[dict]) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps({"rows": rows}, indent=2, allow_nan=False) + "\n")


def _parser(names: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m reidlib.recipes",
        description="Train and score one method of chapters 1-5 on a dataset; write one "
                    "chapter-6 table row.",
        epilog=f"methods: {', '.join(sorted(names))}. Datasets: {dataset_forms()}.")
    parser.add_argument("method", metavar="METHOD", help="a recipe name, or 'list'")
    parser.add_argument("--dataset", help=f"the target dataset: {dataset_forms()}")
    parser.add_argument("--source", help="the labelled source dataset (domain adaptation)")
    parser.add_argument("--profile", choices=sorted(PROFILES), default=None,
                        help="run size (default: $REID_PROFILE, else full on a GPU, quick "
                             "elsewhere)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None,
                        help="results JSON to merge the row into (atomic)")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="checkpoint folder (default: <cache>/recipes/<profile>/<run>)")
    parser.add_argument("--upper", action="store_true",
                        help="also score chapter 0's supervised upper bound (of_upper)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def _slug(spec: str) -> str:
    """A folder name for a dataset spec: ``synthetic-A``, ``market1501-<hash of the path>``."""
    kind, value = parse_dataset(spec)
    if kind == "synthetic":
        return f"synthetic-{value}"
    digest = hashlib.sha256(str(Path(value).resolve()).encode()).hexdigest()[:10]
    return f"{kind}-{digest}"


def _check_args(args, registry: dict[str, Recipe]) -> Recipe:
    """The recipe ``args`` name, after every check that needs no data (UsageError)."""
    if args.method not in registry:
        raise UsageError(f"unknown method {args.method!r}; valid methods: "
                         f"{', '.join(sorted(registry))} (or 'list')")
    recipe = registry[args.method]
    if not args.dataset:
        raise UsageError(f"{recipe.name} needs --dataset ({dataset_forms()})")
    if recipe.needs_source and not args.source:
        raise UsageError(f"{recipe.name} is a domain-adaptation method: it needs --source, "
                         f"the labelled source dataset ({dataset_forms()})")
    if args.source and not recipe.needs_source:
        raise UsageError(f"{recipe.name} uses no source dataset: drop --source")
    for spec in (args.dataset, args.source):
        if spec:
            try:
                parse_dataset(spec)
            except ValueError as err:
                raise UsageError(str(err)) from None
    return recipe


def _run(args, recipe: Recipe, command: str) -> dict:
    """Load the data, run the recipe, score the upper bound if asked: the table row."""
    from reidlib.notebook import setup

    session = setup("recipes", seed=args.seed, profile=args.profile)
    progress = progress_enabled(not args.no_progress)
    target = load_dataset(args.dataset, session.profile, session.cache_dir, progress)
    source = None
    if args.source:
        source = load_dataset(args.source, session.profile, session.cache_dir, progress)
    if recipe.needs_tracklets and not (target.train.tracklets >= 0).any():
        raise RecipeInputError(f"{recipe.name} needs tracklets: {args.dataset} has none "
                               "(use a synthetic world or mars:PATH)")
    workdir = args.workdir or (session.cache_dir / "recipes" / session.profile.name /
                               "-".join([recipe.name, _slug(args.dataset),
                                         *([_slug(args.source)] if args.source else []),
                                         f"seed{args.seed}"]))
    run = RecipeRun(session=session, target=target, seed=args.seed, workdir=Path(workdir),
                    source=source, progress=progress, dataset=args.dataset,
                    source_name=args.source or "")
    run.workdir.mkdir(parents=True, exist_ok=True)
    print(f"{recipe.title} (chapter {recipe.chapter}) on {args.dataset}"
          f"{' from ' + args.source if args.source else ''}; checkpoints in {run.workdir}",
          flush=True)
    result = recipe.run(run)
    upper = None
    if args.upper:
        upper = session.score(session.upper_bound(target, progress=progress), target)["mAP"]
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return result_row(recipe, run, result, command=command, date=date, upper_mAP=upper)


def main(argv: list[str] | None = None) -> int:
    """The command line (module docstring); returns the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    registry = all_recipes()
    args = _parser(list(registry)).parse_args(argv)
    if args.method == "list":
        print(recipe_table(registry))
        return 0
    try:
        recipe = _check_args(args, registry)
        if args.out:
            read_out(args.out)  # a file we may not merge into is refused before training
        row = _run(args, recipe, "python -m reidlib.recipes " + shlex.join(argv))
        print(f"{row['method']} on {row['dataset']}: mAP {row['mAP']:.3f}, rank-1 "
              f"{row['rank1']:.3f}, mINP {row['mINP']:.3f} ({row['minutes']:.1f} min)",
              flush=True)
        if args.out:  # read again: another run may have merged its row meanwhile
            write_out(args.out, merge_rows(read_out(args.out), row))
            print(f"wrote {args.out}", flush=True)
    except (UsageError, DatasetLayoutError, RecipeInputError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0
