"""Cluster Contrast end to end: wall time, training images/s against the bare model, mAP.

Chapter 2's recipe (survey §3.2, Eq. 6-7; Dai et al. 2021) through reidlib's one loop
(``reidlib.training.fit`` with ``ClusterContrast``) on world A of a profile, from the
generic world-P backbone. Reports:

- wall time of the whole run, and how much of it went to feature extraction + clustering;
- training images/s (batches only) against the bare model's train step at the same batch
  (``bench_throughput.py``'s (a), random tensors), i.e. what the loop's data path and
  memory cost;
- the final test mAP / rank-1 and their share of the supervised upper bound of the same
  world (chapter 0's ``train_or_load``, cached).

The full profile is the published recipe (``ClusterContrast.recipe``): ResNet-50 + GeM at
256x128, 16 x 16 from the reference sampler, 200 iterations per epoch, Jaccard k1 = 30 /
k2 = 6, DBSCAN eps 0.6 / min_samples 4, momentum 0.1, temperature 0.05, Adam 3.5e-4 with
weight decay on every parameter, StepLR(20), 50 epochs (anchor: 2 h 44 min on four
2080 Ti in the authors' log; goal: under 20 minutes on one H100).

    python benchmarks/bench_cluster_contrast.py --profile quick            # dev CPU
    python benchmarks/bench_cluster_contrast.py --profile full --out benchmarks/results/cc-full.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_throughput import bench_bare  # noqa: E402  (a sibling script, not a package)

from reidlib.data.synthetic import load_world  # noqa: E402
from reidlib.data.synthetic.world import default_cache_dir  # noqa: E402
from reidlib.feature_learning import ClusterContrast  # noqa: E402
from reidlib.models import build_model  # noqa: E402
from reidlib.profiles import get_profile  # noqa: E402
from reidlib.pseudo_labels import jaccard_dbscan  # noqa: E402
from reidlib.training import fit  # noqa: E402
from reidlib.training.supervised import train_or_load, validate  # noqa: E402
from reidlib.utils import atomic_path, default_device, seed_everything  # noqa: E402

# (epochs, p, k, lr, k1, eps); iters: one pass over the images in smoke / quick (as
# chapter 2), the recipe's 200 in full. The quick epochs: chapter 2's budget, chosen on
# the validation split by benchmarks/quick_budget.py.
RECIPES = {
    "smoke": (1, 8, 4, 1e-3, 10, 0.45),
    "quick": (10, 16, 4, 1e-3, 20, 0.45),
    "full": (50, 16, 16, 3.5e-4, 30, 0.6),
}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default=None, help="smoke | quick | full (default: "
                        "$REID_PROFILE, else full with CUDA, quick without)")
    parser.add_argument("--epochs", type=int, default=None, help="override the recipe")
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    profile = get_profile(args.profile)
    epochs, p, k, lr, k1, eps = RECIPES[profile.name]
    epochs = args.epochs or epochs
    device = default_device()
    seed_everything(args.seed)
    world = load_world("A", profile.name)
    train = world.train.subset(world.train.pids >= 0)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else \
        f"CPU, {torch.get_num_threads()} threads"
    print(f"{profile.name}: {len(train)} images, {profile.arch} {profile.height}x{profile.width},"
          f" {epochs} epochs, P x K = {p} x {k}, k1 {k1}, eps {eps} on {name}", flush=True)

    upper, _ = train_or_load(world.train, arch=profile.arch, cache_dir=default_cache_dir(),
                             epochs=profile.epochs, p=profile.p,
                             k=profile.k, lr=profile.lr, weights="synthetic", device=device)
    upper_map = validate(upper, world.query, world.gallery)["mAP"]

    model = build_model(profile.arch, weights="synthetic").to(device)
    if device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    method = ClusterContrast(model)
    recipe = {**ClusterContrast.recipe, "epochs": epochs, "p": p, "k": k, "lr": lr}
    if profile.name != "full":
        recipe["iters"] = int(np.ceil(len(train) / (p * k)))
    start = time.perf_counter()
    history = fit(method, train, cluster=jaccard_dbscan(k1=k1, k2=6, eps=eps),
                  seed=args.seed, **recipe)
    wall = time.perf_counter() - start
    scores = validate(model, world.query, world.gallery)

    cluster_s = sum(e.cluster_seconds for e in history)
    train_s = sum(e.seconds - e.cluster_seconds for e in history)
    images = sum(e.images for e in history)
    bare_args = argparse.Namespace(batch=p * k, k=k, arch=profile.arch, ids=p * 4,
                                   height=profile.height, width=profile.width, steps=10,
                                   warmup=3, repeats=3)
    bare = float(np.max(bench_bare(bare_args, device)))
    figures = {
        "profile": profile.name, "device": name, "torch": torch.__version__,
        "epochs": epochs, "p": p, "k": k, "lr": lr, "k1": k1, "eps": eps,
        "wall_minutes": wall / 60, "cluster_minutes": cluster_s / 60,
        "train_images_per_s": images / train_s, "bare_images_per_s": bare,
        "share_of_bare": images / train_s / bare,
        "mAP": scores["mAP"], "rank1": float(scores["cmc"][0]), "upper_bound_mAP": upper_map,
        "share_of_upper_bound": scores["mAP"] / upper_map,
        "final_clusters": history[-1].quality["n_clusters"],
        "final_pairwise_f": history[-1].quality["pairwise_f"],
    }
    for key, value in figures.items():
        print(f"  {key:<22} {value:.4g}" if isinstance(value, float) else f"  {key:<22} {value}")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(args.out) as tmp:
            tmp.write_text(json.dumps(figures, indent=2) + "\n")
    return figures


if __name__ == "__main__":
    main()
