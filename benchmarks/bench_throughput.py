"""Training throughput (images/s) of a Re-ID model, bare and through the full data path.

(a) bare:  forward + backward + Adam step on random float tensors (the model alone);
(b) full:  reidlib's real train step from an in-memory uint8 ImageSet: P x K sampler ->
           index the device-resident uint8 set -> train_augment -> CE + batch-hard triplet;
(c) eval:  extract_features (with flip averaging) on the same set.
The gap between (a) and (b) is the cost of our data path. bf16 autocast and channels_last
are used on CUDA only, as in training.

    python benchmarks/bench_throughput.py                          # small, 64x32, batch 64, CPU
    python benchmarks/bench_throughput.py --arch resnet50 --height 256 --width 128 --batch 64
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from reidlib.data.imageset import ImageSet
from reidlib.data.sampler import RandomIdentitySampler
from reidlib.models import build_model
from reidlib.training import PseudoLabelClassification
from reidlib.training.features import autocast_for, extract_features
from reidlib.training.loop import Batch, epoch_generator, param_groups, train_step
from reidlib.training.losses import batch_hard_triplet_loss, cross_entropy_label_smooth


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(step, n_steps: int, warmup: int, device: torch.device, repeats: int) -> np.ndarray:
    """Seconds per step in each of ``repeats`` rounds, after ``warmup`` untimed steps.

    Several rounds because a shared machine is noisy: we report the best round (what the
    code can do, as ``timeit`` does) and the median (what a user will typically see).
    """
    for _ in range(warmup):
        step()
    rounds = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        for _ in range(n_steps):
            step()
        sync(device)
        rounds.append((time.perf_counter() - start) / n_steps)
    return np.array(rounds)


def random_imageset(n_ids: int, per_id: int, height: int, width: int, seed: int = 0) -> ImageSet:
    rng = np.random.default_rng(seed)
    n = n_ids * per_id
    images = rng.integers(0, 256, (n, height, width, 3), dtype=np.uint8)
    return ImageSet(images, np.repeat(np.arange(n_ids), per_id), np.arange(n) % 6)


def prepare(model, device, lr=3.5e-4):
    model.to(device)
    if device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    return torch.optim.Adam(param_groups(model.parameters(), 5e-4, "matrices"), lr=lr)


def bench_bare(args, device) -> np.ndarray:
    p, k = args.batch // args.k, args.k
    model = build_model(args.arch, num_classes=args.ids)
    optimizer = prepare(model, device)
    x = torch.randn(p * k, 3, args.height, args.width, device=device)
    if device.type == "cuda":
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.arange(p, device=device).repeat_interleave(k)

    def step():
        with autocast_for(device):
            out = model(x)
        loss = cross_entropy_label_smooth(out.logits.float(), y) + \
            batch_hard_triplet_loss(out.features.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return p * k / timed(step, args.steps, args.warmup, device, args.repeats)


def bench_full(args, device, data: ImageSet) -> np.ndarray:
    """The loop's own step (``reidlib.training.loop.train_step``) with chapter 0's method."""
    model = build_model(args.arch, num_classes=data.num_ids)
    method = PseudoLabelClassification(model, classifier_init="random")
    optimizer = prepare(model, device)
    images = data.tensor(device)
    targets = torch.as_tensor(data.pids, device=device)
    cams = torch.as_tensor(data.camids, device=device)
    sampler = RandomIdentitySampler(data.pids, args.batch // args.k, args.k, seed=0)
    batches = iter(())
    generator = epoch_generator(0, 0)

    def step():
        nonlocal batches
        idx = next(batches, None)
        if idx is None:  # a new epoch, as the training loop does it
            batches = iter(torch.as_tensor(np.stack(sampler.batches()), device=device))
            idx = next(batches)
        batch = Batch(images[idx], idx, targets[idx], cams[idx], torch.zeros_like(idx),
                      generator, 0.15)
        train_step(method, optimizer, batch)

    return args.batch / timed(step, args.steps, args.warmup, device, args.repeats)


def bench_eval(args, device, data: ImageSet) -> np.ndarray:
    model = build_model(args.arch).to(device)
    if device.type == "cuda":
        model.to(memory_format=torch.channels_last)

    def run():
        extract_features(model, data, batch_size=args.eval_batch, progress=False)

    return len(data) / timed(run, 1, 1, device, args.repeats)


def main() -> None:
    cuda = torch.cuda.is_available()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arch", default="resnet50" if cuda else "small")
    parser.add_argument("--height", type=int, default=256 if cuda else 64)
    parser.add_argument("--width", type=int, default=128 if cuda else 32)
    parser.add_argument("--batch", type=int, default=64, help="P x K images per step")
    parser.add_argument("--k", type=int, default=4, help="images per identity")
    parser.add_argument("--ids", type=int, default=200, help="identities in the fake set")
    parser.add_argument("--per-id", type=int, default=16, help="images per identity")
    parser.add_argument("--steps", type=int, default=20, help="steps per timed round")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--eval-batch", type=int, default=256)
    parser.add_argument("--device", default="cuda" if cuda else "cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args()
    if args.batch % args.k:
        parser.error("--batch must be a multiple of --k")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    data = random_imageset(args.ids, args.per_id, args.height, args.width)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else \
        f"CPU, {torch.get_num_threads()} threads"
    print(f"{args.arch} {args.height}x{args.width} batch {args.batch} on {name} "
          f"(torch {torch.__version__}{', bf16 + channels_last' if device.type == 'cuda' else ''})")
    print(f"images/s over {args.repeats} rounds:      best   median")
    for label, rates in (("(a) bare train step", bench_bare(args, device)),
                         ("(b) full train step", bench_full(args, device, data)),
                         ("(c) features (flip avg)", bench_eval(args, device, data))):
        print(f"  {label:<24} {rates.max():8.0f} {np.median(rates):8.0f}")


if __name__ == "__main__":
    main()
