"""Chapter 2's comparison for several seeds: the spread behind the notebook's error bars.

Reruns section 5's comparison of ``notebooks/02_feature_learning.py`` (same start, same
clustering chosen on the validation split, same budget, same methods, same test scorer
``session.score``) once per seed and writes each method's test mAP per seed, with the
settings and the command, to ``benchmarks/results/ch2-seeds.json`` (atomically). The
notebook shows the spread only when the recorded settings equal its own.

    nice -n 15 python benchmarks/chapter2_seeds.py --profile quick --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import datetime
import json
import shlex
import sys
import time
from pathlib import Path

from reidlib.data.synthetic import load_world
from reidlib.feature_learning import train_and_score
from reidlib.feature_learning.compare import chapter_settings as shared_settings
from reidlib.models import build_model
from reidlib.notebook import setup
from reidlib.recipes.image import CHAPTER2_BUILDERS, DCML_DROP_SHARE, ECN_K
from reidlib.utils import atomic_path, seed_everything

OUT = Path(__file__).resolve().parent / "results" / "ch2-seeds.json"


def chapter_settings(session, world):
    """(settings, train, cluster): what the notebook's section 1 computes, seed 0's split."""
    settings, train, cluster = shared_settings(session.profile, world)
    return settings | {"dcml_drop_share": DCML_DROP_SHARE, "ecn_k": ECN_K}, train, cluster


def methods(backbone, settings, cluster):
    """name -> (method, extra fit arguments), in the notebook's order: the builders the
    command-line recipes use (``reidlib.recipes.image.CHAPTER2_BUILDERS``)."""
    return [build(backbone, settings, cluster) for build in CHAPTER2_BUILDERS]


def run_seed(session, world, settings, train, cluster, seed: int) -> dict:
    seed_everything(seed)

    def backbone():
        return build_model(session.profile.arch, weights="synthetic").to(session.device)

    out = {}
    for method, extra in methods(backbone, settings, cluster):
        budget = {"epochs": settings["epochs"], "p": settings["p"], "k": settings["k"],
                  "lr": settings["lr"],
                  "iters": settings["iters"] if method.sampler == "multi_gallery" else None}
        result = train_and_score(method, train, cluster=cluster,
                                 score=lambda m: session.score(m, world), seed=seed,
                                 progress=False, **budget, **extra)
        out[result.name] = result.scores["mAP"]
        print(f"seed {seed}: {result.name} mAP {result.scores['mAP']:.3f} "
              f"({result.seconds:.0f} s)", flush=True)
    return out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="quick", choices=("smoke", "quick"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    began = time.perf_counter()
    session = setup("ch2-seeds", profile=args.profile)
    world = load_world("A", args.profile)
    settings, train, cluster = chapter_settings(session, world)
    print(settings, flush=True)
    per_seed = {seed: run_seed(session, world, settings, train, cluster, seed)
                for seed in args.seeds}
    names = list(per_seed[args.seeds[0]])
    result = {
        "command": "python benchmarks/chapter2_seeds.py " + shlex.join(sys.argv[1:] if argv is None
                                                                       else argv),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "hours": (time.perf_counter() - began) / 3600, "seeds": args.seeds,
        "settings": settings,
        # one list per method, one value per seed (pandas reads it as seeds x methods)
        "mAP": {name: [per_seed[s][name] for s in args.seeds] for name in names},
    }
    with atomic_path(args.out) as tmp:
        tmp.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}", flush=True)
    return result


if __name__ == "__main__":
    main()
