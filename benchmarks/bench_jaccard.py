"""Time and peak memory of the k-reciprocal Jaccard distance (survey §3.1) at Re-ID scale.

N = 12,936 is the Market-1501 training set (751 identities); N = 126,441 (``--large``) is
MSMT17-sized. Features are random Gaussian identity clusters, L2-normalised inside
``jaccard_distance`` (metric "cosine", the SpCL / Cluster Contrast setting).

k1 and k2 have SpCL / Cluster Contrast's meaning (k1 counts the image itself). Goals on 2
threads, k1 = 30, k2 = 6, max_distance = 0.6 (what ``jaccard_dbscan`` passes, DBSCAN's eps):
N = 12,936 x 2048 in <= 4 s and <= 1 GB; N = 126,441 x 256 in <= 40 s and <= 4 GB.

    .venv/bin/python benchmarks/bench_jaccard.py --threads 2 --search torch --reference
    .venv/bin/python benchmarks/bench_jaccard.py --threads 2 --search faiss
    .venv/bin/python benchmarks/bench_jaccard.py --threads 2 --large --large-dim 256
    .venv/bin/python benchmarks/bench_jaccard.py --max-distance -1   # keep every pair

``--reference`` also times, in the same run, a plain full fp32 product + top-k by blocks
(the search alone, done the simple way) and prints the ratio: on a shared machine whose
load varies, that ratio is the comparable figure.

Peak memory: ``tracemalloc`` sees Python and numpy allocations made during the call (not
faiss's or torch's C++ buffers); "RSS peak above start" is ``ru_maxrss`` after the call
minus the resident size just before it (features and imports excluded: importing the CUDA
build of torch alone makes ~0.7 GB resident); ``ru_maxrss`` is the whole process's peak.
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
    p.add_argument("--k1", type=int, default=30)
    p.add_argument("--k2", type=int, default=6)
    p.add_argument("--threads", type=int, default=2, help="OpenMP / BLAS threads")
    p.add_argument("--large", action="store_true", help="also run N = 126,441")
    p.add_argument("--large-dim", type=int, default=256, help="feature dimension for --large")
    p.add_argument("--large-ids", type=int, default=4101, help="identities for --large")
    p.add_argument("--search", choices=("faiss", "torch"), default="faiss",
                   help="exact nearest-neighbour backend")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-distance", type=float, default=0.6,
                   help="keep pairs at Jaccard distance <= this (negative: keep all)")
    p.add_argument("--reference", action="store_true",
                   help="also time a full fp32 product + top-k (the search the simple way)")
    return p.parse_args(argv)


def clustered_features(n, dim, ids, noise, seed):
    """Random identity centres plus Gaussian noise, float32 (n, dim)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((ids, dim), dtype=np.float32)
    labels = rng.integers(0, ids, n)
    x = centres[labels]
    for start in range(0, n, 4096):  # in chunks: no full-size temporary to inflate the peak
        part = x[start : start + 4096]
        part += noise * rng.standard_normal(part.shape, dtype=np.float32)
    return x


def current_rss() -> int:
    """Resident size now, in bytes (Linux; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


def reference_search(x, k):
    """The search the simple way: full fp32 product + top-k, by blocks of rows (seconds)."""
    import torch

    xt = torch.from_numpy(x)
    xt = xt / xt.norm(dim=1, keepdim=True)
    start = time.perf_counter()
    step = max(1, (1 << 25) // len(xt))
    for s in range(0, len(xt), step):
        torch.topk(xt[s : s + step] @ xt.T, k, dim=1)
    return time.perf_counter() - start


def run_once(n, dim, ids, noise, k1, k2, seed, search, max_distance=0.6, reference=False):
    import numpy as np

    from reidlib.pseudo_labels.jaccard import jaccard_distance

    x = clustered_features(n, dim, ids, noise, seed)
    max_distance = None if max_distance is None or max_distance < 0 else max_distance
    rss_before = current_rss()
    tracemalloc.start()
    start = time.perf_counter()
    dist = jaccard_distance(x, k1=k1, k2=k2, metric="cosine", progress=False, search=search,
                            max_distance=max_distance)
    seconds = time.perf_counter() - start
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # ru_maxrss is in KiB on Linux, bytes on macOS.
    scale = 1 if sys.platform == "darwin" else 1024
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
    print(
        f"N={n} dim={dim} k1={k1} k2={k2} search={search} max_distance={max_distance}: "
        f"{seconds:.2f} s, tracemalloc peak {traced_peak / 2**20:.0f} MiB, RSS peak above "
        f"start {(rss - rss_before) / 2**20:.0f} MiB, ru_maxrss {rss / 2**20:.0f} MiB, "
        f"stored pairs {dist.nnz:,} ({dist.nnz / n:.0f} per row, "
        f"{dist.data.nbytes / 2**20 + dist.indices.nbytes / 2**20:.0f} MiB), "
        f"mean stored distance {np.mean(dist.data):.3f}",
        flush=True,
    )
    if reference:
        ref = reference_search(x, k1)
        print(f"  reference fp32 product + top-k: {ref:.2f} s; jaccard_distance / reference = "
              f"{seconds / ref:.2f}", flush=True)
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
    run_once(args.n, args.dim, args.ids, args.noise, args.k1, args.k2, args.seed, args.search,
             args.max_distance, args.reference)
    if args.large:
        run_once(
            126_441, args.large_dim, args.large_ids, args.noise, args.k1, args.k2, args.seed,
            args.search, args.max_distance, args.reference,
        )


if __name__ == "__main__":
    main()
