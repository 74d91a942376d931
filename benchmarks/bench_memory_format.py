"""Training steps and feature extraction in one memory format: the CPU case for channels_last.

``fit`` and ``extract_features`` put models and batches in channels_last on every device
(``reidlib.training.loop``). This script times one process doing what a quick-profile
chapter does most (Adam steps of the ``small`` model on P x K = 16 x 4 batches of 64x32
crops, then extraction of 2,048 crops with flip) in the layout asked for, so that two runs
compare the layouts as whole processes:

    python benchmarks/bench_memory_format.py --layout channels_last   # A
    python benchmarks/bench_memory_format.py --layout contiguous      # B

(results and the command pairing them in ``benchmarks/RESULTS.md``).
"""

from __future__ import annotations

import argparse
import time

import torch

from reidlib.models import build_model
from reidlib.training.features import extract_features
from reidlib.training.loop import Batch


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layout", choices=("channels_last", "contiguous"), required=True)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--extract", type=int, default=2048, help="crops to extract")
    args = parser.parse_args(argv)
    last = args.layout == "channels_last"
    torch.manual_seed(0)
    model = build_model("small", weights=None)
    if last:
        model.to(memory_format=torch.channels_last)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    images = torch.randint(0, 256, (64, 3, 64, 32), dtype=torch.uint8)
    batch = Batch(images, torch.arange(64), torch.arange(64) // 4, torch.zeros(64, dtype=int),
                  torch.zeros(64, dtype=int), torch.Generator().manual_seed(0),
                  channels_last=last)
    model.train()
    start = time.perf_counter()
    for _ in range(args.steps):
        out = model(batch.augmented())
        loss = out.embeddings.float().pow(2).mean() + out.features.float().pow(2).mean()
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
    trained = time.perf_counter() - start
    crops = torch.randint(0, 256, (args.extract, 3, 64, 32), dtype=torch.uint8)
    start = time.perf_counter()
    features = extract_features(model, crops, progress=False, channels_last=last)
    extracted = time.perf_counter() - start
    print(f"{args.layout}: {args.steps} steps {trained:.2f} s, {len(features)} crops "
          f"extracted {extracted:.2f} s")


if __name__ == "__main__":
    main()
