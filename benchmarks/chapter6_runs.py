"""Chapter 6's benchmark grid: every recipe of chapters 1-5 on worlds A and B (and both UDA
directions), run through the one command line, one row each into
``benchmarks/results/ch6-runs-<profile>.json``.

Each run is ``python -m reidlib.recipes METHOD --dataset ... [--source ...] --seed S --out
<file>`` in its own process (a crash costs one cell, not the batch), so every row is exactly
what a researcher's command gives. Runs already in the file are skipped, and a killed run
resumes from its checkpoint, so the grid can be filled over several sittings::

    nice -n 10 python benchmarks/chapter6_runs.py --profile quick --seeds 0 --chapters 1 2 3 \\
        --datasets synthetic:B
    python benchmarks/chapter6_runs.py --profile quick --seeds 0 --chapters 4 --pairs B:A A:B
    python benchmarks/chapter6_runs.py --plan   # what is still missing, nothing runs

``reidlib.benchmark.table`` reads the file next to the chapters' own recorded runs.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from reidlib.recipes.cli import RUN_KEY, all_recipes, read_out

RESULTS = Path(__file__).resolve().parent / "results"


def planned(recipes: dict, chapters, datasets, pairs, seeds, profile: str) -> list[dict]:
    """The grid's runs, in order: per seed, per chapter, per recipe, per dataset (or
    source -> target pair for a recipe that needs a source)."""
    runs = []
    for seed in seeds:
        for recipe in sorted(recipes.values(), key=lambda r: (r.chapter, r.name)):
            if recipe.chapter not in chapters:
                continue
            if recipe.needs_source:
                targets = [(f"synthetic:{t}", f"synthetic:{s}") for s, t in pairs]
            else:
                targets = [(d, "") for d in datasets]
            for dataset, source in targets:
                runs.append({"name": recipe.name, "method": recipe.title,
                             "chapter": recipe.chapter, "dataset": dataset, "source": source,
                             "seed": seed, "profile": profile})
    return runs


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="quick", choices=("smoke", "quick", "full"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--chapters", nargs="+", default=["1", "2", "3", "4", "5"])
    parser.add_argument("--datasets", nargs="+", default=["synthetic:A", "synthetic:B"])
    parser.add_argument("--pairs", nargs="+", default=["B:A", "A:B"],
                        help="source:target worlds of the domain-adaptation recipes")
    parser.add_argument("--methods", nargs="+", default=None, help="recipe names (default all)")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--plan", action="store_true", help="list the missing runs and stop")
    args = parser.parse_args(argv)
    out = args.out or RESULTS / f"ch6-runs-{args.profile}.json"
    recipes = all_recipes()
    if args.methods:
        unknown = sorted(set(args.methods) - set(recipes))
        if unknown:
            parser.error(f"unknown recipes {unknown}; `python -m reidlib.recipes list`")
        recipes = {name: recipes[name] for name in args.methods}
    pairs = [tuple(p.split(":")) for p in args.pairs]
    runs = planned(recipes, args.chapters, args.datasets, pairs, args.seeds, args.profile)
    done = {tuple(r[k] for k in RUN_KEY) for r in read_out(out)}
    todo = [r for r in runs if tuple(r[k] for k in RUN_KEY) not in done]
    print(f"{len(runs)} runs planned, {len(runs) - len(todo)} recorded in {out}, "
          f"{len(todo)} to run", flush=True)
    if args.plan:
        for r in todo:
            print(f"  {r['name']} on {r['dataset']}{' from ' + r['source'] if r['source'] else ''}"
                  f", seed {r['seed']}")
        return 0
    failed = 0
    for i, r in enumerate(todo, 1):
        command = [sys.executable, "-m", "reidlib.recipes", r["name"], "--dataset", r["dataset"],
                   *(["--source", r["source"]] if r["source"] else []), "--seed", str(r["seed"]),
                   "--profile", args.profile, "--out", str(out), "--no-progress"]
        began = time.perf_counter()
        print(f"[{i}/{len(todo)}] {' '.join(command[2:])}", flush=True)
        code = subprocess.call(command, env={**os.environ, "REID_PROGRESS": "0"})
        print(f"    exit {code} after {(time.perf_counter() - began) / 60:.1f} min", flush=True)
        failed += code != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
