"""Choose the quick profile's epoch budget on the validation split (never the test split).

Trains chapter 2's main methods from the generic backbone on world A's training identities
minus a held-out 10% (``split_validation``), scores the held-out query / gallery after every
epoch, and reports for each method the first epoch within 1 mAP point of its best: the
budget at which it is near its plateau. The quick profile's iterations per epoch are fixed
beforehand, not tuned: one epoch sees about as many images as the training set holds,
``ceil(N / (p * k))`` batches.

    python benchmarks/quick_budget.py --epochs 16 --out benchmarks/results/quick-budget.json

``--report E`` trains nothing: it reads a recorded run and prints, for each method, the
share of its best validation mAP reached after E epochs, the cost of cutting every
method's budget to E epochs (chapter 2 uses E = 3 to fit its time):

    python benchmarks/quick_budget.py --report 3 --out benchmarks/results/quick-budget.json
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from reidlib.data.synthetic import load_world  # noqa: E402
from reidlib.feature_learning import ClusterContrast, SpCL  # noqa: E402
from reidlib.models import build_model  # noqa: E402
from reidlib.profiles import get_profile  # noqa: E402
from reidlib.pseudo_labels import jaccard_dbscan  # noqa: E402
from reidlib.training import PseudoLabelClassification, fit  # noqa: E402
from reidlib.training.supervised import split_validation  # noqa: E402
from reidlib.utils import atomic_path  # noqa: E402


def methods(profile, k1, eps):
    """name -> (method factory, clustering factory); SpCL clusters with its own criterion."""
    def generic():
        return build_model(profile.arch, weights="synthetic")

    def shared(method):
        return jaccard_dbscan(k1=k1, k2=6, eps=eps)

    return {
        "Cluster Contrast": (lambda: ClusterContrast(generic()), shared),
        "SpCL": (lambda: SpCL(generic(), eps=eps, k1=k1), lambda m: m.cluster),
        "CE + triplet": (lambda: PseudoLabelClassification(generic()), shared),
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=16)
    parser.add_argument("--k1", type=int, default=20)
    parser.add_argument("--eps", type=float, default=0.45)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--report", type=int, default=None, metavar="E",
                        help="read --out and report each method's share of its best "
                             "validation mAP after E epochs; trains nothing")
    args = parser.parse_args(argv)
    if args.report is not None:
        return report(args.out, args.report)
    profile = get_profile("quick")
    world = load_world("A", profile.name)
    train = world.train.subset(world.train.pids >= 0)
    part, val_query, val_gallery = split_validation(train, 0.1, args.seed)
    p, k = profile.p, profile.k
    iters = math.ceil(len(part) / (p * k))
    print(f"{len(part)} training images, {len(val_query)} + {len(val_gallery)} validation; "
          f"{iters} iterations of {p} x {k} per epoch", flush=True)
    curves = {}
    for name, (make, clustering) in methods(profile, args.k1, args.eps).items():
        method = make()
        start = time.perf_counter()
        history = fit(method, part, cluster=clustering(method), epochs=args.epochs, p=p, k=k,
                      iters=iters if method.sampler == "multi_gallery" else None,
                      lr=profile.lr, seed=args.seed, val=(val_query, val_gallery),
                      progress=False)
        curve = history.column("val_mAP")
        best = max(curve)
        plateau = next(e for e, m in enumerate(curve) if m >= best - 0.01) + 1
        curves[name] = {"val_mAP": curve, "plateau_epochs": plateau,
                        "seconds": time.perf_counter() - start}
        print(f"{name}: val mAP {' '.join(f'{m:.3f}' for m in curve)}; within 1 point of "
              f"its best ({best:.3f}) after {plateau} epochs; "
              f"{curves[name]['seconds']:.0f} s", flush=True)
    result = {"epochs": args.epochs, "iters": iters, "p": p, "k": k, "lr": profile.lr,
              "k1": args.k1, "eps": args.eps, "seed": args.seed, "methods": curves}
    if args.out is not None:
        with atomic_path(args.out) as tmp:
            tmp.write_text(json.dumps(result, indent=2) + "\n")
        fig, ax = plt.subplots(figsize=(6, 3.5))
        for name, c in curves.items():
            ax.plot(range(1, len(c["val_mAP"]) + 1), c["val_mAP"], marker=".", label=name)
        ax.set(xlabel="epoch", ylabel="validation mAP", title="Quick profile: mAP per epoch")
        ax.legend()
        with atomic_path(args.out.with_suffix(".png")) as tmp:
            fig.savefig(tmp, dpi=100, bbox_inches="tight", format="png")
    return result


def report(path: Path | None, epochs: int) -> dict:
    """Each recorded method's validation mAP after ``epochs`` epochs, as a share of its best."""
    if path is None or not path.exists():
        raise SystemExit("--report needs --out naming a recorded run (a JSON this script wrote)")
    recorded = json.loads(path.read_text())
    if not 1 <= epochs <= recorded["epochs"]:
        raise SystemExit(f"--report must be within the {recorded['epochs']} recorded epochs")
    shares = {}
    for name, c in recorded["methods"].items():
        curve = c["val_mAP"]
        shares[name] = curve[epochs - 1] / max(curve)
        print(f"{name}: val mAP {curve[epochs - 1]:.3f} after {epochs} epochs, "
              f"{shares[name]:.0%} of its best ({max(curve):.3f}, epoch "
              f"{curve.index(max(curve)) + 1} of {recorded['epochs']})")
    return shares


if __name__ == "__main__":
    main()
