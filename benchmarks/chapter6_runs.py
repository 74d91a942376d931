"""Chapter 6's benchmark grid: every recipe of chapters 1-5 on worlds A and B (and both UDA
directions), run through the one command line, one row each into
``benchmarks/results/ch6-runs-<profile>.json``.

Each run is ``python -m reidlib.recipes METHOD --dataset ... [--source ...] --seed S --out
<file>`` in its own process (a crash costs one cell, not the batch), so every row is exactly
what a researcher's command gives. Runs already in the file are skipped, and a killed run
resumes from its checkpoint, so the grid can be filled over several sittings. ``--jobs 2`` runs
two cells at once, each on half the cores (on our 2-core machine 1.5x the runs per hour of one
run on both cores); each row records ``threads`` and ``concurrent_runs`` in its settings, since
its minutes are then not those of a run alone (``reidlib.benchmark.table`` takes a method's
minutes from the runs made alone where there are any)::

    nice -n 10 python benchmarks/chapter6_runs.py --profile quick --seeds 0 --chapters 1 2 3 \\
        --datasets synthetic:B
    python benchmarks/chapter6_runs.py --profile quick --seeds 0 --chapters 4 --pairs B:A A:B
    nice -n 10 python benchmarks/chapter6_runs.py --profile quick --seeds 1 2 --jobs 2
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

from reidlib.recipes.cli import RUN_KEY, all_recipes, merge_rows, read_out, write_out

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


def collect(parts: Path, out: Path, threads: int | None = None,
            concurrent: int | None = None) -> int:
    """Merge the rows the runs wrote into ``parts/run-*.json`` into ``out`` (one writer, so
    two runs ending together cannot lose a row), with the ``threads`` each had and how many ran
    at once, and remove the merged files. A file left by an earlier sitting keeps what its
    row already says."""
    rows, merged = read_out(out), 0
    for part in sorted(parts.glob("run-*.json")):
        for row in read_out(part):
            if threads is not None:
                row["settings"] = {**row["settings"], "threads": threads,
                                   "concurrent_runs": concurrent}
            row["command"] = row["command"].replace(str(part), str(out))
            rows = merge_rows(rows, row)
            merged += 1
    if merged:
        write_out(out, rows)
    for part in parts.glob("run-*.json"):
        part.unlink()
    return merged


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
    parser.add_argument("--jobs", type=int, default=1,
                        help="runs at once, each on cores/jobs threads (default 1)")
    parser.add_argument("--plan", action="store_true", help="list the missing runs and stop")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, got {args.jobs}")
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
    parts = out.parent / f".{out.name}.parts"
    parts.mkdir(parents=True, exist_ok=True)
    collect(parts, out)  # rows of a sitting killed between a run's end and its merge
    threads = max(1, (os.cpu_count() or 1) // args.jobs)
    running: dict[subprocess.Popen, tuple[int, dict, float]] = {}
    failed = 0
    queue = list(enumerate(todo, 1))
    while queue or running:
        while queue and len(running) < args.jobs:
            i, r = queue.pop(0)
            part = parts / f"run-{i}.json"
            command = [sys.executable, "-m", "reidlib.recipes", r["name"], "--dataset",
                       r["dataset"], *(["--source", r["source"]] if r["source"] else []),
                       "--seed", str(r["seed"]), "--profile", args.profile, "--out", str(part),
                       "--no-progress"]
            print(f"[{i}/{len(todo)}] {' '.join(command[2:-3])}", flush=True)
            log = (parts / f"run-{i}.log").open("w")
            env = {**os.environ, "REID_PROGRESS": "0", "OMP_NUM_THREADS": str(threads),
                   "MKL_NUM_THREADS": str(threads)}
            running[subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)] = (
                i, r, time.perf_counter())
            log.close()
        time.sleep(2)
        for proc in [p for p in running if p.poll() is not None]:
            i, r, began = running.pop(proc)
            tail = (parts / f"run-{i}.log").read_text().strip().splitlines()[-2:]
            print(f"    [{i}] {r['name']} on {r['dataset']}, seed {r['seed']}: exit "
                  f"{proc.returncode} after {(time.perf_counter() - began) / 60:.1f} min"
                  + "".join(f"\n      {line}" for line in tail), flush=True)
            failed += proc.returncode != 0
            collect(parts, out, threads=threads, concurrent=args.jobs)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
