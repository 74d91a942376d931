"""Time and peak memory of the k-reciprocal Jaccard distance (survey §3.1) at Re-ID scale.

N = 12,936 is the Market-1501 training set (751 identities); N = 126,441 (``--large``) is
MSMT17-sized. Features are random Gaussian identity clusters, L2-normalised inside
``jaccard_distance`` (metric "cosine", the SpCL / Cluster Contrast setting).

Goal at N = 12,936, 2048-d, k1 = 20, k2 = 6 on 2 threads: under 10 s and under 2 GB.

    .venv/bin/python benchmarks/bench_jaccard.py --threads 2 --search torch
    .venv/bin/python benchmarks/bench_jaccard.py --threads 2 --search faiss
    .venv/bin/python benchmarks/bench_jaccard.py --threads 2 --large --large-dim 256

Peak memory: ``tracemalloc`` sees Python and numpy allocations made during the call (not
faiss's C++ buffers); ``ru_maxrss`` is the whole process's peak resident size, features and
imports included.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
import tracemalloc


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=12_936, help="number of images")
    p.add_argument("--dim", type=int, default=2048, help="feature dimension")
    p.add_argument("--ids", type=int, default=751, help="number of identity clusters")
    p.add_argument("--noise", type=float, default=1.0, help="within-identity spread")
    p.add_argument("--k1", type=int, default=20)
    p.add_argument("--k2", type=int, default=6)
    p.add_argument("--threads", type=int, default=2, help="OpenMP / BLAS threads")
    p.add_argument("--large", action="store_true", help="also run N = 126,441")
    p.add_argument("--large-dim", type=int, default=256, help="feature dimension for --large")
    p.add_argument("--large-ids", type=int, default=4101, help="identities for --large")
    p.add_argument("--search", choices=("faiss", "torch"), default="faiss",
                   help="exact nearest-neighbour backend")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def clustered_features(n, dim, ids, noise, seed):
    """Random identity centres plus Gaussian noise, float32 (n, dim)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((ids, dim), dtype=np.float32)
    labels = rng.integers(0, ids, n)
    x = centres[labels]
    x += noise * rng.standard_normal((n, dim), dtype=np.float32)
    return x


def run_once(n, dim, ids, noise, k1, k2, seed, search):
    import numpy as np

    from reidlib.pseudo_labels.jaccard import jaccard_distance

    x = clustered_features(n, dim, ids, noise, seed)
    tracemalloc.start()
    start = time.perf_counter()
    dist = jaccard_distance(x, k1=k1, k2=k2, metric="cosine", progress=False, search=search)
    seconds = time.perf_counter() - start
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # ru_maxrss is in KiB on Linux, bytes on macOS.
    scale = 1 if sys.platform == "darwin" else 1024
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
    print(
        f"N={n} dim={dim} k1={k1} k2={k2} search={search}: {seconds:.2f} s, tracemalloc peak "
        f"{traced_peak / 2**20:.0f} MiB, ru_maxrss {rss / 2**20:.0f} MiB, "
        f"stored pairs {dist.nnz:,} ({dist.nnz / n:.0f} per row, "
        f"{dist.data.nbytes / 2**20 + dist.indices.nbytes / 2**20:.0f} MiB), "
        f"mean stored distance {np.mean(dist.data):.3f}",
        flush=True,
    )
    return seconds, traced_peak, rss


def main(argv=None):
    args = parse_args(argv)
    # Thread counts must be fixed before numpy / faiss start their thread pools.
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    import torch

    from reidlib._faiss import faiss  # chooses OpenBLAS's kernels first (see its docstring)

    faiss.omp_set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    coretype = os.environ.get("OPENBLAS_CORETYPE", "auto")
    print(f"threads={args.threads} faiss={faiss.__version__} OPENBLAS_CORETYPE={coretype}",
          flush=True)
    run_once(args.n, args.dim, args.ids, args.noise, args.k1, args.k2, args.seed, args.search)
    if args.large:
        run_once(
            126_441, args.large_dim, args.large_ids, args.noise, args.k1, args.k2, args.seed,
            args.search,
        )


if __name__ == "__main__":
    main()
