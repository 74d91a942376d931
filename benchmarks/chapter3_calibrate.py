"""Chapter 3's first calibration: camera-aware methods against Cluster Contrast (issue #13).

Every method starts from chapter 2's start (the world-P backbone) on world A, with chapter
2's budget (3 epochs of P x K = 16 x 4, lr 1e-3 held, one pass of batches per epoch) and
its clustering (Jaccard + DBSCAN, k1 / eps chosen on the validation split), the same seed,
and the course's one test scorer ``session.score`` (flip + per-camera normalisation);
camera-based BN is scored with its own test-time step (statistics re-estimated per test
camera, ``evaluate_camera_bn``) *and* per-camera normalisation. Per method: test mAP,
rank-1, mINP, the share of the upper bound, the pairwise F and single-camera cluster share
of the final features' clustering, minutes. Schedules that the papers set in epochs of a
50-epoch run (CAP's inter-camera loss from epoch 5, ICE's warm-up) start at epoch 0 here:
a 3-epoch budget has no room for them (stated, not tuned).

    nice -n 10 python benchmarks/chapter3_calibrate.py --profile quick [--methods CAP ICE]

Writes ``benchmarks/results/ch3-calibration-<profile>.json`` atomically.
"""

from __future__ import annotations

import argparse
import datetime
import json
import shlex
import sys
import time
from pathlib import Path

from reidlib.camera.compare import train_method
from reidlib.data.synthetic import load_world
from reidlib.feature_learning.compare import chapter_settings
from reidlib.notebook import setup
from reidlib.pseudo_labels.quality import label_quality
from reidlib.utils import atomic_path

OUT = Path(__file__).resolve().parent / "results"
METHODS = ("Cluster Contrast", "Cluster Contrast, cameras centred", "CAP", "ICE",
           "camera BN", "IICS", "MetaCam")


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="quick", choices=("smoke", "quick"))
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    session = setup("ch3-calibration", profile=args.profile)
    world = load_world("A", args.profile)
    settings, train, cluster = chapter_settings(session.profile, world)
    upper = session.score(session.upper_bound(world, progress=False), world)
    print(settings, f"upper bound mAP {upper['mAP']:.3f}", flush=True)

    rows = {}
    for name in args.methods:
        started = time.perf_counter()
        result = train_method(name, session, world, settings, train, cluster, args.seed)
        last = [r for r in result.history if r.labels is not None][-1]
        own = label_quality(last.labels, train.pids, train.camids)
        rows[name] = {**result.scores, "of_upper": result.scores["mAP"] / upper["mAP"],
                      "pairwise_f": result.quality["pairwise_f"],
                      "single_camera_share": result.quality["single_camera_share"],
                      "own_clustering_single_camera_share": own["single_camera_share"],
                      "own_clustering_pairwise_f": own["pairwise_f"],
                      "minutes": (time.perf_counter() - started) / 60}
        print(f"{name}: mAP {result.scores['mAP']:.3f} ({rows[name]['of_upper']:.0%} of upper), "
              f"single-camera clusters {rows[name]['single_camera_share']:.0%} "
              f"(own clustering {own['single_camera_share']:.0%}), "
              f"{rows[name]['minutes']:.1f} min", flush=True)
    out = {"command": "python benchmarks/chapter3_calibrate.py " + shlex.join(
               sys.argv[1:] if argv is None else argv),
           "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
           "settings": settings, "seed": args.seed, "upper_bound": upper, "methods": rows}
    path = OUT / f"ch3-calibration-{args.profile}.json"
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(out, indent=2, allow_nan=True) + "\n")
    print(f"wrote {path}")
    return out


if __name__ == "__main__":
    main()
