"""Feature extraction: images -> L2-normalised embeddings, batched on the model's device.

Every chapter retrieves (query vs gallery) and clusters on these features. Flip
averaging (the embedding of an image plus that of its mirror) is the usual cheap
test-time augmentation of Re-ID codebases; it costs one extra forward pass.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from reidlib.data.augment import eval_transform
from reidlib.data.imageset import ImageSet
from reidlib.utils import progress_enabled


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of the model's first parameter (library code follows the model)."""
    return next(model.parameters()).device


AUTOCAST_DTYPES = (torch.bfloat16, torch.float16)


def autocast_for(device: torch.device | str, dtype: torch.dtype | None = None,
                 enabled: bool | None = None):
    """bf16 autocast on CUDA (tensor cores, no loss scaling needed); nothing elsewhere.

    On CPU bf16 is slower than float32 on most laptops (without AVX-512 BF16 or AMX it is
    emulated: ~20x slower here), so we keep float32 there. ``enabled=True`` turns autocast
    on whatever the device: the tests run the CUDA code path on a CPU this way, binding
    ``enabled=True`` where the methods call this function (tests/test_gpu_paths.py).
    ``dtype``: the lower precision, bf16 by default (fp16 would need loss scaling).
    """
    device = torch.device(device)
    dtype = torch.bfloat16 if dtype is None else dtype
    if dtype not in AUTOCAST_DTYPES:
        raise ValueError(f"autocast dtype must be one of {AUTOCAST_DTYPES}, got {dtype}")
    if enabled is None:
        enabled = device.type == "cuda"
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def _batch(images, start: int, stop: int, device: torch.device) -> torch.Tensor:
    """uint8 (B, 3, H, W) rows [start, stop) of an ImageSet or a uint8 tensor, on ``device``."""
    if isinstance(images, ImageSet):
        rows = torch.from_numpy(np.ascontiguousarray(images.images[start:stop]))
        return rows.to(device, non_blocking=True).permute(0, 3, 1, 2)
    return images[start:stop].to(device, non_blocking=True)


def _check_images(images) -> int:
    if isinstance(images, ImageSet):
        return len(images)
    if isinstance(images, torch.Tensor) and images.dtype == torch.uint8 and images.ndim == 4 \
            and images.shape[1] == 3:
        return len(images)
    desc = f"{images.dtype} {tuple(images.shape)}" if hasattr(images, "shape") else type(images)
    raise ValueError(f"images must be an ImageSet or a uint8 (N, 3, H, W) tensor, got {desc}")


@torch.inference_mode()
def extract_features(model: torch.nn.Module, images, batch_size: int = 256, flip: bool = True,
                     device=None, normalize: bool = True, size=None,
                     progress: bool = True, channels_last: bool = True) -> torch.Tensor:
    """(N, D) float32 CPU tensor of embeddings, L2-normalised unless ``normalize=False``.

    ``images``: an ImageSet or a uint8 (N, 3, H, W) tensor; ``device`` defaults to the
    model's. The model is put in eval mode for the pass and restored afterwards.
    ``channels_last``: batches in that memory format (the same arithmetic, in another
    order; faster on CUDA and on our 2-core CPU: ``benchmarks/RESULTS.md``, issue #12).
    """
    n = _check_images(images)
    device = model_device(model) if device is None else torch.device(device)
    was_training = model.training
    model.eval()
    out = []
    try:
        for start in tqdm(range(0, n, batch_size), desc="features",
                          disable=not progress_enabled(progress),
                          leave=False):
            x = eval_transform(_batch(images, start, start + batch_size, device), size=size)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast_for(device):
                f = model(x).float()
                if flip:
                    f = 0.5 * (f + model(x.flip(-1)).float())
            out.append((F.normalize(f, dim=1) if normalize else f).cpu())
    finally:
        model.train(was_training)
    if not out:
        return torch.empty(0, getattr(model, "feature_dim", 0))
    return torch.cat(out)
