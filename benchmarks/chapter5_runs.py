"""Chapter 5's recorded runs: the spread over seeds and the tracklet-noise dial (issue #15).

Every run is one method of ``reidlib.video.compare`` trained and scored exactly as the
notebook ``05_video_tracklets`` does it: world A's MARS-protocol video split, chapter 2's
start, budget and clustering (chosen on the validation split), the seed, and a share
``noise`` of the training tracklets broken (a third each cut short, split in two,
switched to another person midway; 0 = the clean tracklets of the notebook's main table).
Per run: tracklet-level mAP, rank-1 and mINP, visually and fused with the transit times
learnt from the run's own confident matches (JVTC+), the share of camera pairs whose learnt
transit peak lies within one bin of the truth, the pairwise F of the final clustering,
UTAL's association precision, and minutes.

    nice -n 10 python benchmarks/chapter5_runs.py --profile quick --seeds 0 1 2
    nice -n 10 python benchmarks/chapter5_runs.py --profile quick --seeds 0 1 2 \\
        --noise 0.3 0.6 --methods "Cluster Contrast" "Cluster Contrast, tracklets" UTAL

Results go to ``benchmarks/results/ch5-runs-<profile>.json``, rewritten atomically after
every run (rows merged into the file as it is then, so two processes may share it); a run
already recorded with the same settings is skipped, so a killed benchmark resumes where it
stopped. The notebook reads its seeds and its noise dial from there.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import shlex
import sys
import time
from pathlib import Path

from reidlib.data.synthetic import load_world
from reidlib.notebook import setup
from reidlib.utils import atomic_path
from reidlib.video.compare import METHODS, train_method, video_settings

OUT = Path(__file__).resolve().parent / "results"
KEY = ("method", "seed", "noise")


def run_one(session, name: str, splits, settings, cluster, seed: int, noise: float) -> dict:
    """One method: the notebook's run for that seed and noise."""
    result, info = train_method(name, session, splits, settings, cluster, seed, noise)
    transit = info["transit"]
    return {"method": name, "seed": seed, "noise": noise, "settings": settings,
            **result.scores, "pairwise_f": result.quality["pairwise_f"],
            "peak_agreement": transit["peak_agreement"],
            "match_precision": transit["match_precision"],
            "association_precision": info.get("association_precision", math.nan),
            "mixed_frame_share": info["noise"]["mixed_frame_share"],
            "minutes": result.seconds / 60}


def _save(path: Path, row: dict) -> None:
    """Merge ``row`` into the file as it is now (replacing a row with the same key), then
    write it atomically."""
    record = json.loads(path.read_text()) if path.exists() else {"runs": []}
    record["runs"] = [r for r in record["runs"] if any(r[k] != row[k] for k in KEY)]
    record["runs"].append(row)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(record, indent=2, allow_nan=True) + "\n")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="quick", choices=("smoke", "quick"))
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--noise", nargs="+", type=float, default=[0.0])
    args = parser.parse_args(argv)
    session = setup("ch5-runs", profile=args.profile)
    path = OUT / f"ch5-runs-{args.profile}.json"
    command = "python benchmarks/chapter5_runs.py " + shlex.join(
        sys.argv[1:] if argv is None else argv)
    world = load_world("A", args.profile)
    settings, splits, cluster = video_settings(session.profile, world)
    for noise in args.noise:
        for seed in args.seeds:
            for name in args.methods:
                done = json.loads(path.read_text())["runs"] if path.exists() else []
                if any(r["method"] == name and r["seed"] == seed and r["noise"] == noise
                       and r["settings"] == settings for r in done):
                    continue
                started = time.perf_counter()
                row = run_one(session, name, splits, settings, cluster, seed, noise)
                row["command"] = command
                row["date"] = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
                _save(path, row)
                print(f"noise {noise}, seed {seed}, {name}: mAP {row['mAP']:.3f} "
                      f"(with transit times {row['st_mAP']:.3f}), rank-1 {row['rank1']:.3f} "
                      f"({row['st_rank1']:.3f}), {time.perf_counter() - started:.0f} s",
                      flush=True)


if __name__ == "__main__":
    main()
