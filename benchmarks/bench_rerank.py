"""Time and memory of k-reciprocal re-ranking (Zhong et al. 2017) at Market-1501 size.

3,368 queries + 15,913 gallery images, 2048-d random identity clusters, k1 = 20, k2 = 6,
lambda = 0.3 (the paper's setting; k1 in the paper's meaning, the image not counted).
Goal on 2 threads: ``re_ranking_from_features`` in <= 5 s and <= 1 GB.

    .venv/bin/python benchmarks/bench_rerank.py --threads 2
    .venv/bin/python benchmarks/bench_rerank.py --threads 2 --baseline   # + the dense path

``--baseline`` also times, in the same run, ``re_ranking`` on the three ``pairwise_distance``
blocks (the path that builds every distance), prints the ratio and the largest difference
between the two results. "RSS peak above start" is ``ru_maxrss`` after a call minus the
resident size just before the first one (imports and features excluded).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from bench_jaccard import clustered_features, current_rss


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--queries", type=int, default=3_368)
    p.add_argument("--gallery", type=int, default=15_913)
    p.add_argument("--dim", type=int, default=2048)
    p.add_argument("--ids", type=int, default=1_501)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--baseline", action="store_true", help="also time the dense path")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    import resource

    import torch

    from reidlib.evaluation import pairwise_distance, re_ranking
    from reidlib.evaluation.rerank import re_ranking_from_features

    torch.set_num_threads(args.threads)
    scale = 1 if sys.platform == "darwin" else 1024
    x = torch.from_numpy(clustered_features(args.queries + args.gallery, args.dim, args.ids,
                                            1.0, 0))
    qf, gf = x[: args.queries], x[args.queries :]
    rss_start = current_rss()

    start = time.perf_counter()
    fast = re_ranking_from_features(qf, gf, k1=20, k2=6, lambda_value=0.3)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale - rss_start
    print(f"re_ranking_from_features Q={args.queries} G={args.gallery} dim={args.dim}: "
          f"{seconds:.2f} s, RSS peak above start {peak / 2**20:.0f} MiB", flush=True)
    if args.baseline:
        start = time.perf_counter()
        blocks = [pairwise_distance(a, b) for a, b in ((qf, gf), (qf, qf), (gf, gf))]
        dense = re_ranking(*blocks, k1=20, k2=6, lambda_value=0.3)
        base = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale - rss_start
        print(f"re_ranking on the three distance blocks: {base:.2f} s, RSS peak above start "
              f"{peak / 2**20:.0f} MiB; ratio {seconds / base:.2f}; max |difference| "
              f"{(fast - dense).abs().max().item():.2e}", flush=True)


if __name__ == "__main__":
    main()
