"""Time of each pseudo-label generator of chapter 1 (survey §3.1) on clustered features,
with the label quality it reaches against the true identities.

    .venv/bin/python benchmarks/bench_label_generators.py --n 2000 --threads 2

Features: ``--ids`` Gaussian identity clusters in ``--dim`` dimensions, L2-normalised.
BUC (Eq. 2) and HCT (Eq. 3) keep an N x N matrix, so they are run up to N = 5,000.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from reidlib.pseudo_labels import (
    buc_labels,
    dbscan_labels,
    hct_labels,
    jaccard_distance,
    kmeans_labels,
    label_quality,
    reciprocal_filter,
)


def clustered_features(n: int, ids: int, dim: int, noise: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    pids = rng.integers(0, ids, n)
    x = rng.normal(size=(ids, dim))[pids] + noise * rng.normal(size=(n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), pids


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--ids", type=int, default=200)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--noise", type=float, default=0.9)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    x, pids = clustered_features(args.n, args.ids, args.dim, args.noise)
    runs = {
        "k-means (faiss, k = ids)": lambda: kmeans_labels(x, args.ids, seed=0),
        "Jaccard + DBSCAN (eps 0.6)": lambda: dbscan_labels(
            jaccard_distance(x, progress=False), eps=0.6, min_samples=4),
        "BUC (Eq. 2, lambda 0.005)": lambda: buc_labels(x, args.ids),
        "HCT (Eq. 3, average linkage)": lambda: hct_labels(x, args.ids),
        "HCT + reciprocal filter (k 10)": lambda: reciprocal_filter(x, hct_labels(x, args.ids), 10),
    }
    print(f"N = {args.n}, {args.ids} identities, {args.dim}-d, {args.threads} threads\n")
    print("| generator | seconds | clusters | outliers | NMI | pairwise F |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, run in runs.items():
        t0 = time.perf_counter()
        labels = run()
        seconds = time.perf_counter() - t0
        q = label_quality(labels, pids)
        print(f"| {name} | {seconds:.2f} | {q['n_clusters']} | {q['outlier_share']:.1%} | "
              f"{q['nmi']:.3f} | {q['pairwise_f']:.3f} |")


if __name__ == "__main__":
    main()
