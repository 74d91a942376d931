"""Every owed GPU figure and the CUDA tests, in one run on one GPU (about 8 minutes at most).

    benchmarks/gpu_check.sh                         # CUDA: benchmarks/results/gpu-<card>.json
    benchmarks/gpu_check.sh --dry-run               # every step on the CPU, tiny sizes
    benchmarks/gpu_check.sh --steps evaluate,jaccard --budgets jaccard=200   # a rerun

The steps, in this order, each in a process of its own with a time budget of its own
(``BUDGETS``, cut to what is left of ``--budget``). A step writes its figures as it
measures them and the results file is rewritten atomically after every step, so a step
that runs out of time or crashes still leaves what it measured; its ``status`` says
which ("ok", "timeout after N s", "failed (exit N)"), its ``measured`` what it timed.

1. ``tests``: ``pytest -m gpu`` on the test files holding gpu-marked tests (every test
   that CUDA's absence skips is marked gpu: tests/test_gpu_check.py checks it).
2. ``evaluate``: ``reidlib.evaluation.evaluate`` on CUDA at Market-1501 size (3,368 x
   15,913, the problem of benchmarks/bench_evaluation.py) against ``torch.sort`` of the
   same matrix on the same GPU, alternated, median of 5 after a warm-up; the CPU result
   as a check of agreement.
3. ``jaccard``: ``jaccard_distance(search="torch")`` on CUDA at N = 12,936 x 2048 and
   126,441 x 256 (random identity clusters, benchmarks/bench_jaccard.py; k1 30, k2 6,
   max_distance 0.6); faiss on this machine's CPU at N = 12,936 for comparison and as a
   check of agreement (both searches are exact).
4. ``throughput``: ResNet-50 at 256x128 under bf16 + channels_last: images/s of the loop's
   own step (``reidlib.training.loop.train_step`` with CE + triplet on a device-resident
   uint8 set, bench_throughput.py's (b)) against the bare model's step on random tensors
   ((a)), at Cluster Contrast's 16 x 16 and SpCL / MMT's 16 x 4 batches; best of 3 rounds
   of 10 steps; and ``extract_features`` images/s.
5. ``render``: world A of the ``full`` profile rendered on CUDA: a sample of its images
   first (rate and projection), then the whole world built and saved to the cache when
   the projection fits the step's budget.
6. ``cluster_contrast``: one epoch of ``ClusterContrast.recipe`` (ResNet-50 at 256x128,
   random weights, 16 x 16 from the reference sampler, 200 iterations, Adam) on the full
   world A through ``fit``, clustering by Jaccard (torch search on CUDA) + DBSCAN, and
   the recipe's 50 epochs projected from it. Random weights cluster poorly: when they give
   fewer than P clusters the epoch trains on the true ids instead (``used_true_ids``; the
   clustering is still run and timed), which costs what a trained model's epoch costs.
   If the render step did not cache the world, random pixels of its size stand in
   (``world_cached`` = 0).

``--dry-run`` runs the same steps on the CPU at tiny sizes (the small network, the smoke
world) and writes the same keys to benchmarks/results/gpu-dry-run.json (or ``--out``):
it checks the script; its figures mean nothing.

On the lent GPU machines python3 has torch, pytest and scipy but not faiss, which reidlib
imports: fetch its wheel here once into .whl/ (ignored by .gitignore), then carry ``.whl``
in the device call; gpu_check.sh installs it into a temporary folder::

    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux_2_28_x86_64 \
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl faiss-cpu
    # device call: command "benchmarks/gpu_check.sh; cp benchmarks/results/gpu-*.json $OUT/"
    #              carry [".whl"], timeout_s 560
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]  # reidlib uninstalled; sibling scripts

STEPS = ("tests", "evaluate", "jaccard", "throughput", "render", "cluster_contrast")
BUDGETS = {"tests": 110, "evaluate": 45, "jaccard": 110, "throughput": 75, "render": 150,
           "cluster_contrast": 170}  # seconds; the whole run stops at --budget
MIN_STEP_SECONDS = 10  # less left than this: the step is not started
MEASURED = {
    "tests": "pytest -m gpu over the test files with gpu-marked tests: counts",
    "evaluate": "evaluate() on the device vs torch.sort of the same (Q, G) matrix, median "
                "of 5 alternated runs after a warm-up; CPU evaluate once as a check",
    "jaccard": "jaccard_distance(search='torch', k1=30, k2=6, max_distance=0.6) on the "
               "device, random clustered features; faiss on the CPU at the first size",
    "throughput": "images/s, best of 3 rounds of 10 steps after 3 warm-up steps: the "
                  "loop's train_step (CE + triplet, augmentation on the device) vs the "
                  "bare model's step; extract_features with flip averaging",
    "render": "render_images on the device: a sample of world A's images, then "
              "build_world + save_world of the whole world if the projection fits",
    "cluster_contrast": "fit() for 1 epoch of ClusterContrast.recipe on world A (relabel "
                        "= extraction + clustering + scoring, then the iterations)",
}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dry-run", action="store_true", help="every step on the CPU, tiny sizes")
    p.add_argument("--out", type=Path, default=None, help="results JSON (default: "
                   "benchmarks/results/gpu-<card>.json, gpu-dry-run.json with --dry-run)")
    p.add_argument("--steps", default=",".join(STEPS), help="comma-separated subset of "
                   f"{', '.join(STEPS)}")
    p.add_argument("--budget", type=float, default=None,
                   help="seconds for the whole run (default 470; 600 with --dry-run)")
    p.add_argument("--budgets", default="", help="per-step overrides, e.g. jaccard=200,tests=60")
    p.add_argument("--cache-dir", type=Path, default=None, help="world cache (default: "
                   "data/cache; a temporary folder with --dry-run)")
    # child mode: one step, its figures written to --partial as they come
    p.add_argument("--step", choices=STEPS, default=None, help=argparse.SUPPRESS)
    p.add_argument("--partial", type=Path, default=None, help=argparse.SUPPRESS)
    p.add_argument("--step-budget", type=float, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.steps = [s.strip() for s in args.steps.split(",") if s.strip()]
    unknown = sorted(set(args.steps) - set(STEPS))
    if unknown:
        p.error(f"unknown steps {unknown}: expected some of {', '.join(STEPS)}")
    args.budgets = {**BUDGETS, **parse_budgets(args.budgets, p)}
    if args.budget is None:
        args.budget = 600.0 if args.dry_run else 470.0
    return args


def parse_budgets(text: str, parser) -> dict:
    out = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        name, _, value = item.partition("=")
        if name not in STEPS or not value:
            parser.error(f"--budgets takes step=seconds items, got {item!r}")
        out[name] = float(value)
    return out


# ------------------------------------------------------------------------ results file


def card_slug(name: str) -> str:
    """A device name as a file-name part: 'NVIDIA H100 80GB HBM3' -> 'nvidia-h100-80gb-hbm3'."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "unknown"


def finite_or_none(value):
    """JSON has no NaN / infinity: such figures are written as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_none(v) for v in value]
    return value


def write_json(path: Path, data: dict) -> None:
    from reidlib.utils import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(finite_or_none(data), indent=1) + "\n")


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


# ------------------------------------------------------------------------- orchestrator


def run_in_group(cmd: list[str], budget: float, env: dict | None = None) -> tuple[int, float, bool]:
    """Run ``cmd`` in a new process group; kill the group after ``budget`` seconds.
    Returns (exit code, seconds, timed out)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, start_new_session=True)
    try:
        code = proc.wait(timeout=max(budget, 0.1))
        return code, time.perf_counter() - start, False
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the step and whatever it started, no more
        proc.wait()
        return proc.returncode, time.perf_counter() - start, True


def run_step_process(cmd: list[str], partial: Path, budget: float,
                     env: dict | None = None) -> dict:
    """One step in its own process: its figures (as far as it got) and how it ended."""
    partial.unlink(missing_ok=True)
    code, seconds, timed_out = run_in_group(cmd, budget, env)
    figures = read_json(partial)
    partial.unlink(missing_ok=True)
    status = (f"timeout after {budget:.0f} s" if timed_out else
              "ok" if code == 0 else f"failed (exit {code})")
    return {"status": status, "budget_s": round(budget, 1), "wall_s": round(seconds, 1),
            **figures}


def device_meta(dry_run: bool) -> dict:
    import torch

    meta = {"torch": torch.__version__, "cuda": torch.version.cuda, "dry_run": dry_run,
            "cpu_count": os.cpu_count(), "python": sys.version.split()[0],
            "started": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    if dry_run:
        meta["card"] = "dry-run (CPU)"
    else:
        props = torch.cuda.get_device_properties(0)
        meta.update(card=torch.cuda.get_device_name(0), cudnn=torch.backends.cudnn.version(),
                    gpu_memory_gib=round(props.total_memory / 2**30, 1))
    try:
        meta["commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                                        capture_output=True, text=True, timeout=10
                                        ).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        meta["commit"] = None
    return meta


def orchestrate(args) -> int:
    import torch

    if not args.dry_run and not torch.cuda.is_available():
        print("gpu_check: no CUDA device here; --dry-run runs every step on the CPU",
              file=sys.stderr)
        return 2
    meta = device_meta(args.dry_run)
    slug = "dry-run" if args.dry_run else card_slug(meta["card"])
    out = args.out or ROOT / "benchmarks" / "results" / f"gpu-{slug}.json"
    temporary = None
    if args.cache_dir is None and args.dry_run:
        temporary = tempfile.TemporaryDirectory(prefix="gpu-check-cache-")
        args.cache_dir = Path(temporary.name)
    cache_dir = args.cache_dir or ROOT / "data" / "cache"
    results = {"meta": {**meta, "budget_s": args.budget, "steps": args.steps}}
    write_json(out, results)
    env = {**os.environ, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE"),
           "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    print(f"gpu_check on {meta['card']}, torch {meta['torch']}, budget {args.budget:.0f} s "
          f"-> {out}", flush=True)
    start = time.perf_counter()
    for step in args.steps:
        left = args.budget - (time.perf_counter() - start)
        if left < MIN_STEP_SECONDS:
            results[step] = {"status": f"not run: {left:.0f} s of the budget left"}
            write_json(out, results)
            continue
        budget = min(args.budgets[step], left)
        partial = out.with_name(f".{out.stem}.{step}.partial.json")
        cmd = [sys.executable, str(Path(__file__).resolve()), "--step", step, "--partial",
               str(partial), "--step-budget", str(budget), "--cache-dir", str(cache_dir)]
        if args.dry_run:
            cmd.append("--dry-run")
        print(f"\n== {step} (budget {budget:.0f} s): {MEASURED[step]}", flush=True)
        results[step] = {**run_step_process(cmd, partial, budget, env),
                         "measured": MEASURED[step]}
        results["meta"]["wall_s"] = round(time.perf_counter() - start, 1)
        write_json(out, results)
        print(f"== {step}: {results[step]['status']} in {results[step]['wall_s']} s",
              flush=True)
    if temporary is not None:
        temporary.cleanup()
    print_summary(results, out)
    return 0 if all(results[s]["status"] == "ok" for s in args.steps) else 1


def print_summary(results: dict, out: Path) -> None:
    print(f"\nwritten: {out}")
    for step, figures in results.items():
        if step == "meta":
            continue
        shown = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                          for k, v in figures.items()
                          if k not in ("measured", "files") and not isinstance(v, dict))
        print(f"  {step}: {shown}")


# ----------------------------------------------------------------------------- steps


class Recorder:
    """Figures of one step, rewritten atomically to ``path`` at every ``record``."""

    def __init__(self, path: Path | None):
        self.path, self.figures = path, {}

    def __call__(self, **figures) -> None:
        self.figures.update(figures)
        for key, value in figures.items():
            print(f"  {key}: {value:.4g}" if isinstance(value, float) else f"  {key}: {value}",
                  flush=True)
        if self.path is not None:
            write_json(self.path, self.figures)


def sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device, *args, **kwargs):
    """(seconds, ``fn(*args, **kwargs)``), the device synchronised on both sides."""
    sync(device)
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    sync(device)
    return time.perf_counter() - start, result


def peak_gib(device) -> float:
    import torch

    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else 0.0


def step_tests(args, device, record) -> int:
    """pytest -m gpu on every test file that has gpu-marked tests."""
    files = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").glob("test_*.py")
                   if "mark.gpu" in p.read_text(encoding="utf-8"))
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as folder:
        junit = Path(folder) / "junit.xml"
        cmd = [sys.executable, "-m", "pytest", "-q", "-rs", "-m", "gpu", "-p",
               "no:cacheprovider", "--continue-on-collection-errors", f"--junitxml={junit}",
               *files]
        start = time.perf_counter()
        code = subprocess.call(cmd, cwd=ROOT)
        seconds = time.perf_counter() - start
        reported = junit.exists()
        if reported:
            root = ET.parse(junit).getroot()
            for suite in ([root] if root.tag == "testsuite" else root.iter("testsuite")):
                for key in counts:
                    counts[key] += int(suite.get(key, 0))
    record(files=files, exit_code=code, seconds=seconds,
           passed=counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"],
           failed=counts["failures"], errors=counts["errors"], skipped=counts["skipped"])
    return 0 if reported else 1


def step_evaluate(args, device, record) -> int:
    import numpy as np
    import torch
    from bench_evaluation import market_like_problem

    from reidlib.evaluation import evaluate, pairwise_distance

    qf, gf, q_pids, g_pids, q_cams, g_cams = market_like_problem()
    if args.dry_run:  # the first 150 queries and their gallery identities' images
        qf, q_pids, q_cams = qf[:150], q_pids[:150], q_cams[:150]
        keep = np.isin(g_pids, q_pids) | (np.arange(len(g_pids)) % 20 == 0)
        gf, g_pids, g_cams = gf[keep], g_pids[keep], g_cams[keep]
    labels = (q_pids, g_pids, q_cams, g_cams)
    distmat = pairwise_distance(qf.to(device), gf.to(device))
    record(queries=len(q_pids), gallery=len(g_pids))
    on_host = distmat.cpu()
    cpu_seconds, on_cpu = timed(evaluate, torch.device("cpu"), on_host, *labels)
    record(cpu_evaluate_seconds=cpu_seconds, cpu_threads=torch.get_num_threads())
    evaluate(distmat, *labels)  # warm-up: kernels, allocator
    torch.sort(distmat, dim=1)
    ours, sorts, result = [], [], None
    for _ in range(5):  # alternated, so both see the same machine
        seconds, result = timed(lambda: evaluate(distmat, *labels), device)
        ours.append(seconds)
        sorts.append(timed(lambda: torch.sort(distmat, dim=1), device)[0])
    record(evaluate_seconds=float(np.median(ours)), sort_seconds=float(np.median(sorts)),
           evaluate_over_sort=float(np.median(ours) / np.median(sorts)),
           valid_queries=result["num_valid_queries"], mAP=result["mAP"],
           rank1=float(result["cmc"][0]), mINP=result["mINP"],
           mAP_gap_to_cpu=abs(result["mAP"] - on_cpu["mAP"]),
           cmc_gap_to_cpu=float(np.abs(result["cmc"] - on_cpu["cmc"]).max()))
    return 0


def step_jaccard(args, device, record) -> int:
    import torch
    from bench_jaccard import clustered_features

    from reidlib.pseudo_labels.jaccard import jaccard_distance

    sizes = ([("market", 600, 64, 40), ("msmt", 3000, 16, 200)] if args.dry_run else
             [("market", 12_936, 2048, 751), ("msmt", 126_441, 256, 4101)])
    settings = {"k1": 30, "k2": 6, "metric": "cosine", "max_distance": 0.6, "progress": False}
    warm = torch.from_numpy(clustered_features(2000, sizes[0][2], 100, 1.0, 1)).to(device)
    jaccard_distance(warm, search="torch", **settings)  # kernels, allocator
    for name, n, dim, ids in sizes:
        x = clustered_features(n, dim, ids, 1.0, 0)
        xt = torch.from_numpy(x).to(device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        seconds, dist = timed(jaccard_distance, device, xt, search="torch", **settings)
        record(**{f"{name}_n": n, f"{name}_dim": dim, f"{name}_seconds": seconds,
                  f"{name}_pairs_per_row": dist.nnz / n,
                  f"{name}_gpu_peak_gib": peak_gib(device)})
        if name == "market":
            faiss_seconds, reference = timed(jaccard_distance, torch.device("cpu"), x,
                                             search="faiss", **settings)
            gap = abs(dist - reference)
            pattern = abs((dist != 0).astype(int) - (reference != 0).astype(int))
            record(market_faiss_cpu_seconds=faiss_seconds,
                   market_faiss_max_gap=float(gap.max()) if gap.nnz else 0.0,
                   market_faiss_pairs_differ=int(pattern.nnz))
    record(cpu_threads=torch.get_num_threads())
    return 0


def step_throughput(args, device, record) -> int:
    import numpy as np
    from bench_throughput import bench_bare, bench_eval, bench_full, random_imageset

    arch, height, width = ("small", 32, 16) if args.dry_run else ("resnet50", 256, 128)
    shapes = ((("cc", 4, 4), ("spcl", 4, 2)) if args.dry_run else
              (("cc", 16, 16), ("spcl", 16, 4)))
    rounds = dict(steps=2, repeats=1, warmup=1) if args.dry_run else \
        dict(steps=10, repeats=3, warmup=3)
    data = random_imageset(32 if args.dry_run else 64, 16, height, width)
    record(arch=arch, height=height, width=width)
    for prefix, p, k in shapes:
        ns = argparse.Namespace(arch=arch, height=height, width=width, batch=p * k, k=k,
                                ids=data.num_ids, eval_batch=256, **rounds)
        bare = bench_bare(ns, device)
        full = bench_full(ns, device, data)
        record(**{f"{prefix}_batch_images": p * k,
                  f"{prefix}_bare_images_per_s": float(bare.max()),
                  f"{prefix}_bare_images_per_s_median": float(np.median(bare)),
                  f"{prefix}_loop_images_per_s": float(full.max()),
                  f"{prefix}_loop_images_per_s_median": float(np.median(full)),
                  f"{prefix}_loop_over_bare": float(full.max() / bare.max()),
                  f"{prefix}_gpu_peak_gib": peak_gib(device)})
    ns = argparse.Namespace(arch=arch, eval_batch=256, repeats=rounds["repeats"])
    record(features_images_per_s=float(bench_eval(ns, device, data).max()))
    return 0


def world_parameters(domain: str, profile: str, seed: int = 0) -> dict:
    """The per-image parameters ``build_world`` renders, sampled the same way (cheap)."""
    import numpy as np

    from reidlib.data.synthetic.render import image_parameters
    from reidlib.data.synthetic.sample import (
        sample_cameras,
        sample_nuisances,
        sample_people,
        sample_walks,
    )
    from reidlib.data.synthetic.spec import get_domain, get_size

    dom, size = get_domain(domain), get_size(profile)
    rng = np.random.default_rng([dom.seed, seed])
    cameras = sample_cameras(dom, rng)
    n = size.n_train + size.n_test + size.n_distractors
    people = sample_people(dom, n, rng)
    walks = sample_walks(n, size, cameras, rng)
    return image_parameters(people, cameras, walks, sample_nuisances(walks, cameras, rng))


def step_render(args, device, record) -> int:
    from reidlib.data.synthetic.render import render_images
    from reidlib.data.synthetic.spec import get_size
    from reidlib.data.synthetic.world import build_world, cache_paths, save_world

    start = time.perf_counter()
    profile = "smoke" if args.dry_run else "full"
    size = get_size(profile)
    params = world_parameters("A", profile)
    n = len(params["scene"])
    sample = min(n, 256 if args.dry_run else 2048)

    def first(count):
        return {key: value[:count] for key, value in params.items()}

    render_images(first(64), size.height, size.width, seed=0, device=device, progress=False)
    seconds, _ = timed(lambda: render_images(first(sample), size.height, size.width, seed=0,
                                             device=device, progress=False), device)
    projected = n * seconds / sample
    record(profile=profile, height=size.height, width=size.width, images_in_world=n,
           sample_images=sample, sample_seconds=seconds, images_per_s=sample / seconds,
           projected_world_seconds=projected)
    left = (args.step_budget or math.inf) - (time.perf_counter() - start)
    # saving writes ~3 GB for full (npz + checksum): allow as long again as the rendering
    if 2.5 * projected > left:
        record(whole_world=0, world_render_seconds=math.nan, world_save_seconds=math.nan)
        return 0
    render_seconds, world = timed(lambda: build_world("A", profile, seed=0, device=device,
                                                      progress=False), device)
    record(world_render_seconds=render_seconds, world_images=sum(
        len(s) for s in (world.train, world.query, world.gallery)))
    save_start = time.perf_counter()
    save_world(world, *cache_paths("A", profile, 0, args.cache_dir), seed=0)
    record(whole_world=1, world_save_seconds=time.perf_counter() - save_start)
    return 0


def step_cluster_contrast(args, device, record) -> int:
    import numpy as np
    import torch
    from bench_throughput import random_imageset

    from reidlib.data.synthetic import load_world
    from reidlib.data.synthetic.spec import get_size
    from reidlib.data.synthetic.world import cache_paths
    from reidlib.feature_learning import ClusterContrast
    from reidlib.models import build_model
    from reidlib.pseudo_labels import jaccard_dbscan
    from reidlib.training import fit

    profile = "smoke" if args.dry_run else "full"
    cached = all(path.exists() for path in cache_paths("A", profile, 0, args.cache_dir))
    if cached:
        seconds, world = timed(lambda: load_world("A", profile, cache_dir=args.cache_dir,
                                                  progress=False), device)
        train = world.train.subset(world.train.pids >= 0)
    else:  # the render step did not get to cache it: random pixels of the same size cost
        # the same to train on (labels: see used_true_ids)
        size = get_size(profile)
        seconds, train = timed(lambda: random_imageset(size.n_train, 18, size.height,
                                                       size.width), device)
    recipe = dict(ClusterContrast.recipe)
    epochs = recipe.pop("epochs")
    if args.dry_run:
        recipe.update(iters=2, p=4, k=4)
    arch = "small" if args.dry_run else "resnet50"
    record(world_cached=int(cached), load_world_seconds=seconds, train_images=len(train),
           arch=arch,
           iters=recipe["iters"], batch_images=recipe["p"] * recipe["k"])
    clusterer = jaccard_dbscan(k1=30, k2=6, eps=0.6, min_samples=4, search="torch")
    true_ids = np.unique(train.pids, return_inverse=True)[1].astype(np.int64)
    seen = {}

    def cluster(features):
        start = time.perf_counter()
        labels = clusterer(torch.from_numpy(features).to(device))
        found = len(np.unique(labels[labels >= 0]))
        seen.update(cluster_call_seconds=time.perf_counter() - start, clusters_found=found,
                    clustered_share=float(np.mean(labels >= 0)),
                    used_true_ids=int(found < recipe["p"]))
        return true_ids if found < recipe["p"] else labels

    torch.manual_seed(0)
    method = ClusterContrast(build_model(arch).to(device))
    fit_seconds, history = timed(lambda: fit(method, train, cluster=cluster, epochs=1,
                                             progress=False, seed=0, **recipe), device)
    epoch = history[0]
    train_seconds = epoch.seconds - epoch.cluster_seconds
    record(**seen, fit_call_seconds=fit_seconds, epoch_seconds=epoch.seconds,
           relabel_seconds=epoch.cluster_seconds, train_seconds=train_seconds,
           images_per_s=epoch.images / train_seconds, loss=epoch.losses["loss"],
           gpu_peak_gib=peak_gib(device), projected_epochs=epochs,
           projected_minutes=epochs * epoch.seconds / 60)
    return 0


STEP_FUNCTIONS = {"tests": step_tests, "evaluate": step_evaluate, "jaccard": step_jaccard,
                  "throughput": step_throughput, "render": step_render,
                  "cluster_contrast": step_cluster_contrast}


def run_step(args) -> int:
    import torch

    device = torch.device("cpu" if args.dry_run else "cuda")
    return STEP_FUNCTIONS[args.step](args, device, Recorder(args.partial))


def main(argv=None) -> int:
    args = parse_args(argv)
    return run_step(args) if args.step else orchestrate(args)


if __name__ == "__main__":
    sys.exit(main())
