"""Choose the supervised upper bound's epoch count on the validation split (never the test split).

Chapter 0's supervised model (``reidlib.training.supervised``: GeM + BNNeck, label-smoothed CE
+ batch-hard triplet, P x K batches, Adam, warmup then cosine decay) is trained on world A's
training identities minus the 10% that ``split_validation`` holds out, with a generous
epoch cap, and the held-out query / gallery are scored after every epoch. The plateau is
the first epoch whose validation mAP is within ``--tol`` (0.5 mAP points) of the best of
the whole trace; the profile's ``epochs`` is set from it (``reidlib/profiles.py``).

The trace runs one cosine schedule over the whole cap, so its learning rate at epoch e is
higher than a shorter schedule's at its end: a run of ``e`` epochs with its own schedule
anneals and ends at least as well. ``--confirm N`` trains that run (the very one chapter 0
caches, through ``train_or_load`` with the profile's settings) and records its curve, so
the choice is checked rather than assumed; ``--choose N --why ...`` records the decision.

    python benchmarks/upper_bound_epochs.py --cap 40 \
        --out benchmarks/results/upper-bound-quick.json
    python benchmarks/upper_bound_epochs.py --confirm 20 \
        --out benchmarks/results/upper-bound-quick.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from reidlib.data.synthetic import load_world  # noqa: E402
from reidlib.notebook import find_repo_root  # noqa: E402
from reidlib.profiles import get_profile  # noqa: E402
from reidlib.training.supervised import train_or_load  # noqa: E402
from reidlib.utils import atomic_path  # noqa: E402


def plateau_epoch(curve: list[float], tol: float) -> int:
    """The first epoch (1-based) whose value is within ``tol`` of the curve's best."""
    best = max(curve)
    return next(e for e, m in enumerate(curve, start=1) if m >= best - tol)


def train_trace(profile, epochs: int, cache_dir) -> dict:
    """Train chapter 0's recipe for ``epochs`` epochs (one schedule); its validation trace."""
    world = load_world("A", profile.name)
    start = time.perf_counter()
    _, history = train_or_load(world.train, arch=profile.arch, cache_dir=cache_dir,
                               epochs=epochs, p=profile.p, k=profile.k, lr=profile.lr,
                               weights="synthetic", progress=False)
    return {"epochs": epochs, "val_mAP": history.column("val_mAP"),
            "val_mINP": history.column("val_mINP"), "lr": history.column("lr"),
            "epoch_seconds": history.column("seconds"),
            "seconds": time.perf_counter() - start}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--cap", type=int, default=40, help="epochs of the trace")
    parser.add_argument("--tol", type=float, default=0.005, help="plateau: within tol of best")
    parser.add_argument("--confirm", type=int, default=None,
                        help="train this many epochs with its own schedule (chapter 0's cache)")
    parser.add_argument("--choose", type=int, default=None,
                        help="record this epoch count as the profile's choice (no training)")
    parser.add_argument("--why", default="", help="with --choose: why this epoch count")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    profile = get_profile(args.profile)
    result = json.loads(args.out.read_text()) if args.out and args.out.exists() else {}
    result.update({"profile": profile.name, "arch": profile.arch, "p": profile.p,
                   "k": profile.k, "lr": profile.lr, "val_fraction": 0.1, "tol": args.tol})
    runs = result.setdefault("runs", {})
    if args.choose is not None:  # record the decision; reidlib/profiles.py holds the same number
        result["chosen_epochs"], result["choice"] = args.choose, args.why
    elif args.confirm is None:
        with tempfile.TemporaryDirectory() as tmp:  # the long trace is not worth caching
            trace = train_trace(profile, args.cap, tmp)
        trace["plateau_epochs"] = plateau_epoch(trace["val_mAP"], args.tol)
        trace["within_1_point_epochs"] = plateau_epoch(trace["val_mAP"], 0.01)
        runs["trace"] = trace
        print(f"trace of {args.cap} epochs: best val mAP {max(trace['val_mAP']):.4f}; "
              f"within {args.tol:.3f} after {trace['plateau_epochs']} epochs, within 0.01 after "
              f"{trace['within_1_point_epochs']}; {trace['seconds']:.0f} s", flush=True)
    else:
        cache = Path(find_repo_root()) / "data" / "cache"  # the cache chapter 0 reads
        run = train_trace(profile, args.confirm, cache)
        run["best_val_mAP"] = max(run["val_mAP"])
        runs[f"confirm-{args.confirm}"] = run
        print(f"{args.confirm} epochs, own schedule: best val mAP {run['best_val_mAP']:.4f}; "
              f"{run['seconds']:.0f} s", flush=True)
    result.setdefault("commands", []).append(" ".join(["python", *sys.argv]))
    result["date"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    if args.out is not None:
        with atomic_path(args.out) as tmp:
            tmp.write_text(json.dumps(result, indent=2) + "\n")
        plot(runs, args.out.with_suffix(".png"))
    return result


def plot(runs: dict, path: Path) -> None:
    """Validation mAP per epoch of every run in ``runs``, the plateau marked."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, run in runs.items():
        epochs = range(1, len(run["val_mAP"]) + 1)
        ax.plot(epochs, run["val_mAP"], marker=".", label=f"{name} ({run['epochs']} epochs)")
        if "plateau_epochs" in run:
            ax.axvline(run["plateau_epochs"], color="grey", ls="--", lw=1)
    ax.set(xlabel="epoch", ylabel="validation mAP",
           title="Supervised upper bound: validation mAP per epoch")
    ax.legend()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, bbox_inches="tight", format="png")


if __name__ == "__main__":
    main()
