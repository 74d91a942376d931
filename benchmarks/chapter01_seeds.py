"""Chapter 1b's two loops over three seeds: the spread behind its direction claims.

The notebook trains each loop once (seed 0) within its time budget; this script repeats
both loops, DBSCAN on the Jaccard distance and PUL's K-means with the true number of
identities, for seeds 0, 1, 2 with exactly the notebook's settings
(``reidlib.pseudo_labels.settings``), and writes test mAP / rank-1 / mINP (the course's one
scorer, ``session.score``: flip + per-camera normalisation) and the final label quality of
each run to a JSON that notebook 01b loads and plots with error bars. The seed changes the
classifier's initialisation, the batches and augmentations, and K-means' initialisation;
the world stays the same.

    OMP_WAIT_POLICY=PASSIVE nice -n 10 .venv/bin/python benchmarks/chapter01_seeds.py \
        --profile quick --out benchmarks/results/chapter01-seeds-quick.json

Seeds can run in separate processes (``--seeds 2 --out /tmp/s2.json``) and be merged:
``--merge benchmarks/results/chapter01-seeds-quick.json /tmp/s2.json --out ...``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

from reidlib.data.synthetic import load_world
from reidlib.models import build_model
from reidlib.notebook import setup
from reidlib.pseudo_labels import jaccard_dbscan, kmeans_labels
from reidlib.pseudo_labels.loop import pseudo_label_loop
from reidlib.pseudo_labels.settings import cluster_settings, loop_settings
from reidlib.utils import atomic_path

QUALITY = ("pairwise_f", "pairwise_precision", "pairwise_recall", "ari", "nmi",
           "n_clusters", "outlier_share", "single_camera_share")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--merge", type=Path, nargs="+", default=None,
                        help="merge these result files (same profile and settings) into --out")
    args = parser.parse_args(argv)
    if args.merge:
        write(args.out, merge([json.loads(path.read_text()) for path in args.merge]))
        return

    session = setup("bench-01", profile=args.profile)
    profile = session.profile
    world = load_world("A", profile.name)
    train = world.train.subset(world.train.pids >= 0)
    n_ids = len(np.unique(train.pids))
    c = cluster_settings(profile.name)
    loop = loop_settings(profile.name, profile.epochs)
    generic = build_model(profile.arch, weights="synthetic").to(session.device).eval()
    out = {"profile": profile.name, "machine": platform.node(), "seeds": args.seeds,
           "settings": {**vars(c), **vars(loop)},
           "generic": session.score(generic, world),
           "upper_bound": session.score(session.upper_bound(world, progress=False), world),
           "runs": []}
    clusters = {
        "DBSCAN-Jaccard loop": lambda seed: jaccard_dbscan(c.k1, c.k2, c.eps, c.min_samples),
        "PUL loop (K-means)": lambda seed: (lambda f: kmeans_labels(f, n_ids, seed=seed)),
    }
    for seed in args.seeds:
        for name, make in clusters.items():
            start = time.perf_counter()
            model = build_model(profile.arch, weights="synthetic").to(session.device)
            run = pseudo_label_loop(model, train, make(seed), rounds=loop.rounds,
                                    epochs_per_round=loop.epochs_per_round, p=profile.p,
                                    k=profile.k, lr=profile.lr, seed=seed, progress=False)
            row = {"method": name, "seed": seed, **session.score(model, world),
                   **{key: float(run.quality[key]) for key in QUALITY},
                   "round_pairwise_f": [float(q["pairwise_f"]) for q in run.qualities],
                   "seconds": time.perf_counter() - start}
            out["runs"].append(row)
            print(f"seed {seed} {name:<20} mAP {row['mAP']:.3f} F {row['pairwise_f']:.3f} "
                  f"({row['seconds']:.0f} s)", flush=True)
            write(args.out, out)  # after every run: a partial file is usable


def merge(results: list[dict]) -> dict:
    """One result from several runs of this script (same profile and settings)."""
    first = results[0]
    for other in results[1:]:
        if (other["profile"], other["settings"]) != (first["profile"], first["settings"]):
            raise ValueError("cannot merge results of different profiles or settings")
    runs = sorted((r for result in results for r in result["runs"]),
                  key=lambda r: (r["seed"], r["method"]))
    return {**first, "seeds": sorted({r["seed"] for r in runs}), "runs": runs}


def write(path: Path, result: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
