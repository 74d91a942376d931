"""Chapter 3's recorded runs: the spread over seeds and the camera-bias dial (issue #13).

Every run is one method of ``reidlib.camera.compare`` trained and scored exactly as the
notebook ``03_camera_invariance`` does it (chapter 2's start, budget and clustering chosen
on each world's validation split, seed, scorer), on world A (``--world B``: world B)
rendered with camera style ``s`` (``load_world(..., camera_style=s)``; s = 1 is the
default world). Per run: test mAP,
rank-1, mINP, the pairwise F and single-camera cluster share of the chapter's clustering
of the final training features, and minutes.

    nice -n 10 python benchmarks/chapter3_runs.py --profile quick \\
        --styles 0 0.5 1 2 --methods "Cluster Contrast" "camera BN"        # the dial
    nice -n 10 python benchmarks/chapter3_runs.py --profile quick --seeds 0 1 2 \\
        --methods "Cluster Contrast" "Cluster Contrast, cameras centred" "camera BN"
    nice -n 10 python benchmarks/chapter3_runs.py --profile quick --world B --seeds 0 1 2 \
        --epochs 12 --methods "Cluster Contrast" "camera BN"   # chapter 4's bar on world B

Results go to ``benchmarks/results/ch3-runs-<profile>.json``, rewritten atomically after
every run; a run already recorded with the same settings is skipped, so a killed
benchmark resumes where it stopped. The notebook reads the dial and the seeds from there.
"""

from __future__ import annotations

import argparse
import datetime
import json
import shlex
import sys
import time
from pathlib import Path

from reidlib.camera.compare import METHODS, train_method
from reidlib.data.synthetic import load_world
from reidlib.feature_learning.compare import chapter_settings
from reidlib.notebook import setup
from reidlib.utils import atomic_path

OUT = Path(__file__).resolve().parent / "results"


def run_one(session, name: str, world, seed: int, epochs: int | None = None) -> dict:
    """One method on ``world``: the notebook's run for that seed (``epochs``: a longer
    budget than the chapter's, recorded in the row's settings)."""
    settings, train, cluster = world_settings(session, world)
    if epochs is not None:
        settings = {**settings, "epochs": epochs}

    result = train_method(name, session, world, settings, train, cluster, seed)
    return {"method": name, "world": world.domain, "style": world.camera_style, "seed": seed,
            "settings": settings,
            **result.scores, "pairwise_f": result.quality["pairwise_f"],
            "single_camera_share": result.quality["single_camera_share"],
            "minutes": result.seconds / 60}


_SETTINGS = {}


def world_settings(session, world):
    """chapter_settings of ``world``, computed once per world (a clustering sweep)."""
    if world.name not in _SETTINGS:
        _SETTINGS[world.name] = chapter_settings(session.profile, world)
    return _SETTINGS[world.name]


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="quick", choices=("smoke", "quick"))
    parser.add_argument("--methods", nargs="+", default=["Cluster Contrast", "camera BN"],
                        choices=METHODS)
    parser.add_argument("--styles", nargs="+", type=float, default=[1.0])
    parser.add_argument("--world", default="A", choices=("A", "B"),
                        help="the world trained on (chapter 4 holds its UDA runs on B "
                             "against the fully unsupervised runs on B)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--epochs", type=int, default=None,
                        help="a longer budget than the chapter's (not what the notebook runs)")
    args = parser.parse_args(argv)
    session = setup("ch3-runs", profile=args.profile)
    path = OUT / f"ch3-runs-{args.profile}.json"
    record = json.loads(path.read_text()) if path.exists() else {"runs": []}
    command = "python benchmarks/chapter3_runs.py " + shlex.join(
        sys.argv[1:] if argv is None else argv)
    for style in args.styles:
        world = load_world(args.world, args.profile, camera_style=style)
        settings = world_settings(session, world)[0]
        if args.epochs is not None:
            settings = {**settings, "epochs": args.epochs}
        for seed in args.seeds:
            for name in args.methods:
                same = [r["method"] == name and r["style"] == style and r["seed"] == seed
                        and r.get("world", "A") == args.world
                        and r["settings"]["epochs"] == settings["epochs"]
                        for r in record["runs"]]
                if any(s and r["settings"] == settings for s, r in zip(same, record["runs"],
                                                                        strict=True)):
                    continue
                record["runs"] = [r for s, r in zip(same, record["runs"], strict=True)
                                  if not s]
                started = time.perf_counter()
                row = run_one(session, name, world, seed, args.epochs)
                row["command"] = command
                row["date"] = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
                record["runs"].append(row)
                with atomic_path(path) as tmp:
                    tmp.write_text(json.dumps(record, indent=2, allow_nan=True) + "\n")
                print(f"s = {style}, seed {seed}, {name}: mAP {row['mAP']:.3f}, single-camera "
                      f"clusters {row['single_camera_share']:.0%}, "
                      f"{time.perf_counter() - started:.0f} s", flush=True)
    return record


if __name__ == "__main__":
    main()
