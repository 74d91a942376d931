"""Time ``reidlib.evaluation.evaluate`` on a Market-1501-size problem.

Market-1501 test split: 3,368 queries, 15,913 gallery images (13,115 of the 750 test
identities + 2,798 distractors, pid 0), 6 cameras, about 14 cross-camera positives per
query. Features are synthetic (identity centre + camera shift + noise, 128-D) with the
noise chosen so that the mAP is that of a decent model (~0.7); the cost of ``evaluate``
depends on how far down the list the positives sit, so a near-perfect or a random
model would be unrepresentative (random: every row falls back to a full sort).

Compared with the classic open-reid / torchreid evaluation (``argsort`` of the whole
matrix, then a Python loop over queries). Prints a markdown table.

``--sweep`` adds a sweep of model quality: the same problem with feature noise from
almost none (mAP ~1) to overwhelming (mAP ~0, a random ranking), timing ``evaluate``
against a bare ``np.argsort(distmat, axis=1)`` of the same matrix (the first step of any
sort-based evaluation), alternated run by run so both see the same machine load. The
goal is a ratio of at most 0.5 at every quality: ``evaluate``'s cost must not grow as
the positives sink down the ranking.

    .venv/bin/python benchmarks/bench_evaluation.py [--threads 2] [--repeats 5]
        [--no-reference] [--handcrafted] [--rerank] [--sweep [--noise 0.5 1.15 3 ...]]

On a machine shared with other busy processes, set ``OMP_WAIT_POLICY=PASSIVE`` as the
Makefile does: ``evaluate`` runs a few thousand short parallel operations, and OpenMP
threads that spin while waiting for a busy core make each of them far slower.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import numpy as np
import torch

from reidlib.evaluation import evaluate, pairwise_distance
from reidlib.evaluation.rerank import re_ranking_from_features
from reidlib.handcrafted import colour_texture_features


def market_like_problem(seed: int = 0, dim: int = 128, noise: float = 1.15):
    """(query features, gallery features, q_pids, g_pids, q_cams, g_cams), Market sizes."""
    rng = np.random.default_rng(seed)
    num_ids, num_cams, num_q, num_labelled, num_distractors = 751, 6, 3368, 13115, 2798
    # Each identity is seen by 4-6 cameras; queries: one image per (identity, camera),
    # trimmed to 3,368; the gallery holds ~17.5 images per identity over its cameras.
    cams_of = [rng.choice(num_cams, rng.integers(4, num_cams + 1), replace=False)
               for _ in range(num_ids)]
    q_pairs = [(pid + 1, cam) for pid in range(num_ids) for cam in cams_of[pid]]
    q_pairs = [q_pairs[i] for i in np.sort(rng.choice(len(q_pairs), num_q, replace=False))]
    q_pids, q_cams = (np.array(x) for x in zip(*q_pairs, strict=True))
    g_ids = rng.integers(0, num_ids, num_labelled)
    g_cams = np.array([rng.choice(cams_of[i]) for i in g_ids])
    g_pids = np.concatenate([g_ids + 1, np.zeros(num_distractors, np.int64)])
    g_cams = np.concatenate([g_cams, rng.integers(0, num_cams, num_distractors)])

    centres = rng.normal(size=(num_ids + 1, dim))
    cam_shift = rng.normal(scale=0.4, size=(num_cams, dim))

    def features(pids, cams):
        base = np.where(pids[:, None] > 0, centres[pids], rng.normal(size=(len(pids), dim)))
        return torch.from_numpy(base + cam_shift[cams] + noise * rng.normal(size=base.shape))

    qf, gf = features(q_pids, q_cams).float(), features(g_pids, g_cams).float()
    return qf, gf, q_pids, g_pids, q_cams, g_cams


def classic_evaluate(distmat, q_pids, g_pids, q_cams, g_cams, max_rank=50):
    """The widely copied open-reid / torchreid ``eval_market1501`` (numpy, per-query loop)."""
    indices = np.argsort(distmat, axis=1)
    matches = (g_pids[indices] == q_pids[:, None]).astype(np.int32)
    all_cmc, all_ap = [], []
    for i in range(len(q_pids)):
        order = indices[i]
        remove = (g_pids[order] == q_pids[i]) & (g_cams[order] == q_cams[i])
        remove |= g_pids[order] == -1
        raw = matches[i][~remove]
        if not raw.any():
            continue
        cmc = raw.cumsum()
        cmc[cmc > 1] = 1
        all_cmc.append(cmc[:max_rank])
        precision = raw.cumsum() / (np.arange(len(raw)) + 1.0)
        all_ap.append((precision * raw).sum() / raw.sum())
    return float(np.mean(all_ap)), np.asarray(all_cmc, np.float32).mean(0)


def timed(fn, repeats: int = 1, warmup: bool = True, sync=lambda: None):
    """Median wall time of ``repeats`` calls (after one untimed call if ``warmup``), and
    the last result."""
    if warmup:
        fn()
        sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def timed_against(fn, baseline, repeats: int = 1):
    """Median wall times of ``fn`` and ``baseline``, called in turn ``repeats`` times after
    one untimed call of each, and ``fn``'s last result."""
    fn()
    baseline()
    times, base_times = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
        start = time.perf_counter()
        baseline()
        base_times.append(time.perf_counter() - start)
    return statistics.median(times), statistics.median(base_times), result


def quality_sweep(noises, repeats: int):
    """(noise, mAP, evaluate seconds, argsort seconds) per feature noise level, Market size.

    The labels are the same at every level (same seed); only the features' noise, hence
    how far down each query's positives rank, changes.
    """
    return [(noise, *time_against_argsort(noise, repeats)) for noise in noises]


def time_against_argsort(noise: float, repeats: int):
    """(mAP, evaluate seconds, np.argsort seconds) at one feature noise level."""
    qf, gf, *labels = market_like_problem(noise=noise)
    distmat = pairwise_distance(qf, gf)
    array = distmat.numpy()
    seconds, sort_seconds, out = timed_against(
        lambda: evaluate(distmat, *labels), lambda: np.argsort(array, axis=1), repeats
    )
    return out["mAP"], seconds, sort_seconds


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-reference", action="store_true", help="skip the slow classic loop")
    parser.add_argument("--handcrafted", action="store_true",
                        help="also time colour_texture_features on 10k 64x32 images")
    parser.add_argument("--rerank", action="store_true",
                        help="also time k-reciprocal re-ranking at this size (~3 GB of RAM)")
    parser.add_argument("--sweep", action="store_true",
                        help="also time evaluate against np.argsort over a sweep of model quality")
    parser.add_argument("--noise", type=float, nargs="+",
                        default=[0.5, 1.0, 1.15, 1.4, 1.7, 2.0, 3.0, 100.0],
                        help="feature noise levels of the sweep (default: mAP ~1 down to ~0)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    qf, gf, q_pids, g_pids, q_cams, g_cams = market_like_problem()
    distmat = pairwise_distance(qf, gf)
    labels = (q_pids, g_pids, q_cams, g_cams)
    rows = []
    cpu = f"{cpu_name()}, {args.threads} threads"

    seconds, ours = timed(lambda: evaluate(distmat, *labels), args.repeats)
    rows.append(("reidlib evaluate (torch, CPU)", cpu, seconds, ours["mAP"], ours["cmc"][0]))
    if torch.cuda.is_available():
        on_gpu = distmat.cuda()
        seconds, gpu = timed(lambda: evaluate(on_gpu, *labels), args.repeats,
                             sync=torch.cuda.synchronize)
        rows.append(("reidlib evaluate (torch, CUDA)", torch.cuda.get_device_name(), seconds,
                     gpu["mAP"], gpu["cmc"][0]))
    if not args.no_reference:
        d = distmat.numpy()
        seconds, (ref_map, ref_cmc) = timed(lambda: classic_evaluate(d, *labels), warmup=False)
        rows.append(("classic argsort + per-query loop (numpy)", cpu, seconds, ref_map, ref_cmc[0]))

    print(f"Market-1501-size evaluation: {distmat.shape[0]} x {distmat.shape[1]}, "
          f"{ours['num_valid_queries']} valid queries, mINP {ours['mINP']:.4f}; "
          f"torch {torch.__version__}, numpy {np.__version__}; median of {args.repeats} "
          "runs after a warm-up (the others: 1 run)\n")
    print("| method | machine | seconds | mAP | rank-1 |")
    print("|---|---|---:|---:|---:|")
    for name, machine, seconds, map_, rank1 in rows:
        print(f"| {name} | {machine} | {seconds:.3f} | {map_:.4f} | {rank1:.4f} |")

    if args.sweep:
        print(f"\nQuality sweep, {distmat.shape[0]} x {distmat.shape[1]}, {cpu}: evaluate vs "
              f"np.argsort(distmat, axis=1), median of {args.repeats} alternated runs after "
              "a warm-up; goal ratio <= 0.5\n")
        print("| noise | mAP | evaluate s | argsort s | ratio |")
        print("|---:|---:|---:|---:|---:|")
        for noise, map_, seconds, sort_seconds in quality_sweep(args.noise, args.repeats):
            print(f"| {noise:g} | {map_:.4f} | {seconds:.3f} | {sort_seconds:.3f} "
                  f"| {seconds / sort_seconds:.2f} |", flush=True)

    if args.rerank:
        seconds, reranked = timed(lambda: re_ranking_from_features(qf, gf), warmup=False)
        after = evaluate(reranked, *labels)
        print(f"\n| re_ranking (k1=20, k2=6, lambda=0.3), {len(qf) + len(gf)} images | {cpu} "
              f"| {seconds:.1f} s | mAP {ours['mAP']:.4f} -> {after['mAP']:.4f} |")
    if args.handcrafted:
        images = np.random.default_rng(0).integers(0, 256, (10_000, 64, 32, 3), dtype=np.uint8)
        seconds, feats = timed(lambda: colour_texture_features(images), warmup=False)
        print(f"\n| colour_texture_features, 10,000 x 64x32 images -> {tuple(feats.shape)} "
              f"| {cpu} | {seconds:.3f} s |")


if __name__ == "__main__":
    main()
