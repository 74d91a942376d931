"""Chapter 4's recorded runs: UDA in both directions over seeds, and the domain-gap dial.

Every run is one method of ``reidlib.domain_adaptation.compare`` trained and scored as
the notebook ``04_domain_adaptation`` does it: started from the source model (chapter 0's
supervised recipe on the source world, seed 0; MMT's second network seed 1), trained on
the target's training images with the target's chapter-2 settings (clustering chosen on
the target's validation split, budget, seed) and scored on the target's test split. Each
(source, target, gap) also records its references once: direct transfer (the source
model on the target) and the target's supervised upper bound, so that every row's share
of the gap recovered can be computed. ``--gaps`` renders the *source* world with the
domain-gap dial (``load_world(source, domain_gap=g)``; 1 = the default world).

    nice -n 10 python benchmarks/chapter4_runs.py --profile quick --pairs B:A A:B \\
        --seeds 0 1 2 --epochs 12 --methods "Cluster Contrast" "camera BN"
    nice -n 10 python benchmarks/chapter4_runs.py --profile quick --pairs B:A \\
        --gaps 0 0.5 2 --epochs 12 --methods "Cluster Contrast" "camera BN"   # the dial

Results go to ``benchmarks/results/ch4-runs-<profile>.json``, rewritten atomically after
every run; a run already recorded with the same settings is skipped, so a killed
benchmark resumes where it stopped. The notebook reads its seeds and its dial from there.
"""

from __future__ import annotations

import argparse
import datetime
import json
import shlex
import sys
from pathlib import Path

from chapter3_runs import world_settings  # the target world's settings, once per world

from reidlib.data.synthetic import load_world
from reidlib.domain_adaptation.compare import METHODS, source_model, train_method
from reidlib.notebook import setup
from reidlib.utils import atomic_path

OUT = Path(__file__).resolve().parent / "results"

def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


def references(session, source_world, target_world) -> dict:
    """Direct transfer of the source model and the target's supervised upper bound."""
    direct = session.score(source_model(session, source_world), target_world)
    upper = session.score(session.upper_bound(target_world, progress=False), target_world)
    return {"direct": direct, "supervised": upper}


RUN_KEY = ("source", "target", "gap", "method", "seed")
REFERENCE_KEY = ("source", "target", "gap")


def _save(path: Path, record: dict) -> None:
    """Merge ``record`` into the file as it is now (another benchmark process may have added
    rows since this one read it; a row of ours replaces the file's row with the same key and
    budget), then write it atomically."""
    current = json.loads(path.read_text()) if path.exists() else {"runs": [], "references": []}
    for part, key in (("runs", RUN_KEY), ("references", REFERENCE_KEY)):
        def ident(row, key=key, part=part):
            budget = json.dumps(row.get("settings", {}), sort_keys=True) if part == "runs" else ""
            return tuple(row[k] for k in key) + (budget,)
        ours = {ident(row) for row in record[part]}
        record[part] = [row for row in current.get(part, []) if ident(row) not in ours] \
            + record[part]
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(record, indent=2, allow_nan=True) + "\n")


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="quick", choices=("smoke", "quick"))
    parser.add_argument("--pairs", nargs="+", default=["B:A"],
                        help="source:target world pairs, e.g. B:A A:B")
    parser.add_argument("--methods", nargs="+", default=["Cluster Contrast"], choices=METHODS)
    parser.add_argument("--gaps", nargs="+", type=float, default=[1.0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--epochs", type=int, default=None,
                        help="a longer budget than the chapter's (not what the notebook runs)")
    args = parser.parse_args(argv)
    pairs = []
    for pair in args.pairs:
        source, _, target = pair.partition(":")
        if {source, target} != {"A", "B"}:
            parser.error(f"--pairs takes B:A or A:B, got {pair!r}")
        pairs.append((source, target))
    session = setup("ch4-runs", profile=args.profile)
    path = OUT / f"ch4-runs-{args.profile}.json"
    record = json.loads(path.read_text()) if path.exists() else {"runs": [], "references": []}
    command = "python benchmarks/chapter4_runs.py " + shlex.join(
        sys.argv[1:] if argv is None else argv)
    for source, target in pairs:
        target_world = load_world(target, args.profile, progress=False)
        settings, train, cluster = world_settings(session, target_world)
        if args.epochs is not None:
            settings = {**settings, "epochs": args.epochs}
        for gap in args.gaps:
            source_world = load_world(source, args.profile, domain_gap=gap, progress=False)
            key = {"source": source, "target": target, "gap": gap}
            if not any(all(r[k] == v for k, v in key.items()) for r in record["references"]):
                record["references"].append({**key, **references(session, source_world,
                                                                 target_world),
                                             "command": command, "date": _now()})
                _save(path, record)
            for seed in args.seeds:
                for name in args.methods:
                    row_key = {**key, "method": name, "seed": seed}
                    same = [all(r[k] == v for k, v in row_key.items()) for r in record["runs"]]
                    if any(s and r["settings"] == settings
                           for s, r in zip(same, record["runs"], strict=True)):
                        continue
                    record["runs"] = [r for s, r in zip(same, record["runs"], strict=True)
                                      if not s]
                    result = train_method(name, session, source_world, target_world,
                                          settings, train, cluster, seed)
                    row = {**row_key, "settings": settings, **result.scores,
                           "pairwise_f": result.quality["pairwise_f"],
                           "minutes": result.seconds / 60, "command": command, "date": _now()}
                    record["runs"].append(row)
                    _save(path, record)
                    print(f"{source}->{target} g={gap} seed {seed} {name}: mAP "
                          f"{row['mAP']:.3f}, {row['minutes']:.1f} min", flush=True)
    return record


if __name__ == "__main__":
    main()
