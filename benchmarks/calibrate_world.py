"""Calibrate the synthetic worlds: does each challenge of the survey show up, and how strongly?

For worlds A and B of one profile it measures
- handcrafted colour-texture features: mAP, and mAP after per-camera normalisation;
- camera bias: the share of queries whose nearest valid match comes from their own camera
  (against the chance share);
- the supervised upper bound: a model trained on the world's own training identities;
- the domain gap: each model evaluated on the other world, relative to the model trained there.

    python benchmarks/calibrate_world.py --profile quick \
        [--out benchmarks/results/calibration-quick.json]

Prints a markdown table for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from reidlib.data.synthetic import load_world
from reidlib.evaluation import evaluate, pairwise_distance
from reidlib.evaluation.camera_bias import same_camera_nearest_share
from reidlib.handcrafted import colour_texture_features, per_camera_normalise
from reidlib.profiles import get_profile
from reidlib.training.features import extract_features
from reidlib.training.supervised import train_or_load
from reidlib.utils import default_device


def score(qf, gf, world) -> dict:
    args = (world.query.pids, world.gallery.pids, world.query.camids, world.gallery.camids)
    dist = pairwise_distance(qf, gf)
    r = evaluate(dist, *args)
    share, chance = same_camera_nearest_share(dist, *args)
    return {
        "mAP": r["mAP"],
        "rank1": float(r["cmc"][0]),
        "mINP": r["mINP"],
        "same_camera_share": share,
        "chance_share": chance,
    }


def handcrafted(world) -> dict:
    qf = colour_texture_features(world.query.images)
    gf = colour_texture_features(world.gallery.images)
    raw = score(qf, gf, world)
    cams = np.concatenate([world.query.camids, world.gallery.camids])
    both = per_camera_normalise(torch.cat([qf, gf]), cams, standardise=False)
    norm = score(both[: len(qf)], both[len(qf) :], world)
    return {"raw": raw, "per_camera": norm}


def supervised(world, profile, cache_dir, weights) -> tuple[torch.nn.Module, dict]:
    t0 = time.perf_counter()
    model, history = train_or_load(
        world.train,
        arch=profile.arch,
        cache_dir=cache_dir,
        epochs=profile.epochs,
        p=profile.p,
        k=profile.k,
        lr=profile.lr,
        weights=weights,
        device=default_device(),
    )
    return model, {
        "train_seconds": history.wall_time or time.perf_counter() - t0,
        "images_per_s": history.images_per_s,
        "best_epoch": history.best_epoch,
    }


def deep_scores(model, world) -> dict:
    qf = extract_features(model, world.query, progress=False)
    gf = extract_features(model, world.gallery, progress=False)
    return score(qf, gf, world)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--weights", default="synthetic", help="backbone init (None for random)")
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    profile = get_profile(args.profile)
    weights = None if args.weights == "None" else args.weights
    cache_dir = Path(args.cache_dir) if args.cache_dir else Path("data/cache")
    worlds = {d: load_world(d, profile.name) for d in ("A", "B")}
    result = {
        "profile": profile.name,
        "machine": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "device": str(default_device()),
        "weights": str(weights),
        "worlds": {},
    }
    models = {}
    for d, world in worlds.items():
        entry = {"handcrafted": handcrafted(world)}
        models[d], entry["training"] = supervised(world, profile, cache_dir, weights)
        entry["supervised"] = deep_scores(models[d], world)
        result["worlds"][d] = entry
    for src, tgt in (("A", "B"), ("B", "A")):
        cross = deep_scores(models[src], worlds[tgt])
        own = result["worlds"][tgt]["supervised"]["mAP"]
        result["worlds"][tgt][f"direct_transfer_from_{src}"] = cross
        result["worlds"][tgt]["relative_drop_from_" + src] = 1 - cross["mAP"] / own
    print(markdown(result))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=1))


def markdown(r: dict) -> str:
    rows = [
        "| world | handcrafted mAP | + per-camera norm | same-camera nearest (chance) | "
        "supervised mAP / R1 | train s | transfer mAP (drop) |",
        "|---" * 7 + "|",
    ]
    for d, e in r["worlds"].items():
        src = "B" if d == "A" else "A"
        hc, sup = e["handcrafted"], e["supervised"]
        cross = e[f"direct_transfer_from_{src}"]
        rows.append(
            f"| {d} | {hc['raw']['mAP']:.1%} | {hc['per_camera']['mAP']:.1%} | "
            f"{hc['raw']['same_camera_share']:.0%} ({hc['raw']['chance_share']:.0%}) | "
            f"{sup['mAP']:.1%} / {sup['rank1']:.1%} | {e['training']['train_seconds']:.0f} | "
            f"{src}->{d}: {cross['mAP']:.1%} (-{e['relative_drop_from_' + src]:.0%}) |"
        )
    return "\n".join(rows)


if __name__ == "__main__":
    main()
