"""Supervised training: chapter 0's upper bound (survey §3.2, Eq. 4-5; Luo et al., Bag of tricks).

Recipe: P x K batches, label-smoothed cross-entropy on the BNNeck embedding plus
batch-hard triplet on the pooled feature, Adam with a warmup. Model selection uses a
validation split carved from the *training* identities (held out of training, split
into query / gallery like Market-1501); the test set is never looked at.

The whole uint8 training set is moved to the model's device once and each batch is
augmented there (``reidlib.data.augment``), so there is no DataLoader.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from reidlib.data.augment import train_augment
from reidlib.data.imageset import ImageSet
from reidlib.data.sampler import RandomIdentitySampler, one_random_per_group
from reidlib.evaluation import evaluate, pairwise_distance
from reidlib.models.backbones import load_state_dict_checked, weights_identity
from reidlib.models.heads import build_model
from reidlib.training.checkpoint import read_checkpoint, save_checkpoint
from reidlib.training.features import autocast_for, extract_features, model_device
from reidlib.training.losses import batch_hard_triplet_loss, cross_entropy_label_smooth
from reidlib.utils import default_device

# ----------------------------------------------------------------------------- data


def query_gallery_split(images: ImageSet, rng: np.random.Generator):
    """Market-1501 style: one random query per (identity, camera); all other images to gallery."""
    keys = images.pids * (int(images.camids.max()) + 1) + images.camids
    is_query = np.zeros(len(images), dtype=bool)
    is_query[one_random_per_group(keys, rng)] = True
    return images.subset(is_query), images.subset(~is_query)


def split_validation(train: ImageSet, val_fraction: float, seed: int):
    """(training part, val query, val gallery): ``val_fraction`` of the identities held out.

    Only identities seen by at least two cameras with two images each are eligible, so
    that every validation query has a cross-camera match left in the gallery. Junk
    (pid < 0) is dropped. With ``val_fraction=0`` the query / gallery are ``None``.
    """
    keep = train.pids >= 0
    if val_fraction <= 0:
        return train.subset(keep), None, None
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must lie in [0, 1), got {val_fraction}")
    rng = np.random.default_rng([seed, 1])
    ids = np.unique(train.pids[keep])
    eligible = [i for i in ids if (np.bincount(train.camids[train.pids == i]) >= 2).sum() >= 2]
    n_val = max(1, round(val_fraction * len(ids)))
    if len(eligible) < n_val or len(ids) - n_val < 2:
        raise ValueError(
            f"cannot hold out {n_val} validation identities: {len(eligible)} of {len(ids)} have "
            "two cameras with two images each, and training needs two identities left; "
            "lower val_fraction or pass val_fraction=0"
        )
    val_ids = rng.choice(eligible, n_val, replace=False)
    is_val = np.isin(train.pids, val_ids)
    query, gallery = query_gallery_split(train.subset(is_val), rng)
    return train.subset(keep & ~is_val), query, gallery


def relabel(pids: np.ndarray) -> tuple[np.ndarray, int]:
    """Identity labels -> classifier targets 0..C-1."""
    ids, targets = np.unique(pids, return_inverse=True)
    return targets.astype(np.int64), len(ids)


def data_fingerprint(images: ImageSet) -> str:
    """A hash of pixels and labels: a checkpoint is only resumed / reused on the same data."""
    h = hashlib.blake2b(digest_size=16)
    for arr in (images.images, images.pids, images.camids):
        h.update(np.ascontiguousarray(arr).data)
    h.update(str(images.images.shape).encode())
    return h.hexdigest()


# ------------------------------------------------------------------------ optimiser


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on weight matrices / kernels only.

    Decaying BatchNorm scales and GeM's exponent p would pull them towards 0 (p -> 0 is a
    degenerate pooling), which is regularisation of the wrong thing.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    return [
        {"params": [p for p in params if p.ndim > 1], "weight_decay": weight_decay},
        {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0},
    ]


def lr_at(t: float, base_lr: float, epochs: int, warmup_epochs: int, schedule: str) -> float:
    """Learning rate at fractional epoch ``t``: linear warmup from lr/10, then cosine or step.

    Warmup (Bag of tricks) keeps the first large updates of a fresh classifier from
    wrecking the backbone. 'step' divides by 10 at 40% and 70% of training (their 40/70
    of 120 epochs); 'cosine' decays to 1% of ``base_lr``.
    """
    if t < warmup_epochs:
        return base_lr * (0.1 + 0.9 * t / warmup_epochs)
    if schedule == "step":
        return base_lr * 0.1 ** sum(t >= f * epochs for f in (0.4, 0.7))
    if schedule == "cosine":
        progress = (t - warmup_epochs) / max(epochs - warmup_epochs, 1e-8)
        return base_lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))
    raise ValueError(f"unknown schedule {schedule!r}: expected 'cosine' or 'step'")


# ------------------------------------------------------------------------- training


def train_step(model, optimizer, images: torch.Tensor, targets: torch.Tensor,
               generator: torch.Generator | None, margin: float | None = 0.3,
               epsilon: float = 0.1, colour: float = 0.0) -> torch.Tensor:
    """One update on a uint8 batch; returns the detached (total, CE, triplet) losses."""
    x = train_augment(images, generator, colour=colour)
    if x.device.type == "cuda":
        x = x.contiguous(memory_format=torch.channels_last)
    with autocast_for(x.device):
        out = model(x)
    ce = cross_entropy_label_smooth(out.logits.float(), targets, epsilon)
    tri = batch_hard_triplet_loss(out.features.float(), targets, margin)
    loss = ce + tri
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return torch.stack([loss, ce, tri]).detach()


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """Augmentation randomness as a function of (seed, epoch): resumed runs repeat it."""
    state = np.random.SeedSequence([seed, epoch]).generate_state(1)[0]
    return torch.Generator().manual_seed(int(state))


def train_one_epoch(model, optimizer, images, targets, sampler: RandomIdentitySampler,
                    epoch: int, lr_of: Callable[[float], float], seed: int,
                    margin: float | None, epsilon: float, progress: bool = True,
                    colour: float = 0.0) -> dict:
    """One pass of P x K batches over ``images`` (uint8, on the model's device)."""
    model.train()
    sampler.set_epoch(epoch)
    batches = torch.as_tensor(np.stack(sampler.batches()), device=images.device)
    generator = epoch_generator(seed, epoch)
    totals = torch.zeros(3, device=images.device)
    start = time.perf_counter()
    bar = tqdm(batches, desc=f"epoch {epoch + 1}", disable=not progress, leave=False)
    for i, idx in enumerate(bar):
        for group in optimizer.param_groups:
            group["lr"] = lr_of(epoch + i / len(batches))
        totals += train_step(model, optimizer, images[idx], targets[idx], generator,
                             margin, epsilon, colour)
        if i % 20 == 0:  # .item() waits for the GPU: only now and then
            bar.set_postfix(loss=f"{totals[0].item() / (i + 1):.3f}")
    loss, ce, tri = (totals / len(batches)).tolist()
    return {"loss": loss, "ce": ce, "triplet": tri, "images": batches.numel(),
            "seconds": time.perf_counter() - start}


def validate(model, query: ImageSet, gallery: ImageSet, progress: bool = False) -> dict:
    """mAP / CMC / mINP of ``model`` on any query / gallery pair (in training: validation)."""
    qf = extract_features(model, query, progress=progress)
    gf = extract_features(model, gallery, progress=progress)
    return evaluate(pairwise_distance(qf, gf), query.pids, gallery.pids,
                    query.camids, gallery.camids)


def _cpu_state(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def _new_history(config: dict) -> dict:
    keys = ("epoch", "loss", "ce", "triplet", "lr", "val_mAP", "val_rank1", "seconds")
    return {**{k: [] for k in keys}, "best_epoch": -1, "best_mAP": float("nan"),
            "wall_time": 0.0, "train_images": 0, "train_seconds": 0.0,
            "images_per_s": float("nan"), "finished": False, "config": config}


def _resume(path, model, optimizer, config: dict):
    """Load the last complete epoch from ``path``; the run's settings must match."""
    payload = read_checkpoint(path)
    saved = payload["extra"].get("config")
    if saved != config:
        diff = {k: (saved.get(k), v) for k, v in config.items() if saved.get(k) != v} \
            if isinstance(saved, dict) else "no settings stored"
        raise ValueError(
            f"checkpoint {path} was written by a run with other settings (saved, now): {diff}; "
            "delete it or pass resume=False to start over"
        )
    load_state_dict_checked(model, payload["model"], f"checkpoint {path}")
    optimizer.load_state_dict(payload["optimizer"])
    return payload["epoch"] + 1, payload["history"], payload["extra"]["best_model"]


def train_supervised(model, train: ImageSet, *, epochs: int, p: int, k: int, lr: float,
                     weight_decay: float = 5e-4, margin: float | None = 0.3,
                     epsilon: float = 0.1, colour_jitter: float = 0.15,
                     val_fraction: float = 0.1, seed: int = 0,
                     schedule: str = "cosine", warmup_epochs: int | None = None,
                     checkpoint=None, resume: bool = True, eval_every: int = 1,
                     on_epoch_end: Callable[[int, dict], None] | None = None,
                     progress: bool = True) -> dict:
    """Train ``model`` (a ReidModel) with CE (label smoothing) + batch-hard triplet (Eq. 5).

    Keeps the weights with the best validation mAP (the last epoch with
    ``val_fraction=0``) and returns the model in eval mode with them loaded. With
    ``checkpoint`` a path, every epoch is saved there and, when ``resume`` is true,
    training continues from the last complete epoch. ``on_epoch_end(epoch, history)``
    is called after each epoch (e.g. to plot). Returns the history dict: per-epoch
    losses, lr, val mAP / rank-1 (None when not evaluated), best epoch, wall time, images/s.
    """
    if p < 2 or k < 1:
        raise ValueError(f"batch-hard triplet needs p >= 2 identities and k >= 1, got {p}, {k}")
    device = model_device(model)
    part, val_query, val_gallery = split_validation(train, val_fraction, seed)
    labels, num_classes = relabel(part.pids)
    warmup_epochs = min(10, epochs // 10) if warmup_epochs is None else warmup_epochs
    config = {"epochs": epochs, "p": p, "k": k, "lr": lr, "weight_decay": weight_decay,
              "margin": margin, "epsilon": epsilon, "colour_jitter": colour_jitter,
              "val_fraction": val_fraction, "seed": seed,
              "schedule": schedule, "warmup_epochs": warmup_epochs,
              "data": data_fingerprint(train)}
    model.reset_classifier(num_classes, generator=torch.Generator().manual_seed(seed))
    if device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(param_groups(model, weight_decay), lr=lr)
    first, history, best_state = 0, _new_history(config), None
    if checkpoint is not None and resume and Path(checkpoint).exists():
        first, history, best_state = _resume(checkpoint, model, optimizer, config)

    images, targets = part.tensor(device), torch.as_tensor(labels, device=device)
    sampler = RandomIdentitySampler(labels, p, k, seed=seed)
    for epoch in range(first, epochs):
        t0 = time.perf_counter()
        stats = train_one_epoch(model, optimizer, images, targets, sampler, epoch,
                                lambda t: lr_at(t, lr, epochs, warmup_epochs, schedule),
                                seed, margin, epsilon, progress, colour_jitter)
        scores = None
        if val_query is not None and ((epoch + 1) % eval_every == 0 or epoch == epochs - 1):
            scores = validate(model, val_query, val_gallery)
        if _is_best(history, scores, has_val=val_query is not None):
            best_state = _cpu_state(model)
            history["best_epoch"] = epoch
            history["best_mAP"] = float("nan") if scores is None else scores["mAP"]
        epoch_lr = lr_at(epoch, lr, epochs, warmup_epochs, schedule)
        _record(history, epoch, stats, scores, epoch_lr, time.perf_counter() - t0, epochs)
        if progress:
            tqdm.write(_summary(history))
        if checkpoint is not None:
            save_checkpoint(checkpoint, model, optimizer, epoch, history,
                            {"config": config, "best_model": best_state,
                             "num_classes": num_classes})
        if on_epoch_end is not None:
            on_epoch_end(epoch, history)

    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return history


def _is_best(history: dict, scores: dict | None, has_val: bool) -> bool:
    """Best so far by validation mAP; without a validation split the latest epoch is best."""
    if not has_val:
        return True
    # `not <=` is true while best_mAP is still NaN (the first evaluated epoch)
    return scores is not None and not scores["mAP"] <= history["best_mAP"]


def _record(history, epoch, stats, scores, lr, seconds, epochs) -> None:
    for key in ("loss", "ce", "triplet"):
        history[key].append(stats[key])
    history["epoch"].append(epoch)
    history["lr"].append(lr)
    history["seconds"].append(seconds)
    history["val_mAP"].append(None if scores is None else scores["mAP"])
    history["val_rank1"].append(None if scores is None else float(scores["cmc"][0]))
    history["wall_time"] += seconds
    history["train_images"] += stats["images"]
    history["train_seconds"] += stats["seconds"]
    history["images_per_s"] = history["train_images"] / history["train_seconds"]
    history["finished"] = epoch == epochs - 1


def _summary(history) -> str:
    e = history["epoch"][-1]
    val = history["val_mAP"][-1]
    val = "" if val is None else f"  val mAP {val:.3f}  rank-1 {history['val_rank1'][-1]:.3f}"
    return f"epoch {e + 1}: loss {history['loss'][-1]:.3f}{val}"


# --------------------------------------------------------------------------- cache


def train_or_load(train: ImageSet, *, arch: str, cache_dir, epochs: int, p: int, k: int,
                  lr: float, seed: int = 0, pooling: str = "gem", weights=None,
                  last_stride: int = 1, device=None, progress: bool = True, **train_kwargs):
    """(model, history): the cached model trained with these arguments, else train and cache.

    The cache file name is a hash of every argument and of the data (uvadlc style: re-running
    a notebook costs a file read). A half-finished run in the cache resumes.
    ``train_kwargs`` go to ``train_supervised``.
    """
    if weights is not None and not isinstance(weights, (str, Path)):
        raise TypeError("train_or_load needs weights as None, a name or a path (to hash it)")
    key = {"arch": arch, "pooling": pooling, "weights": weights_identity(arch, weights),
           "last_stride": last_stride, "epochs": epochs, "p": p, "k": k, "lr": lr, "seed": seed,
           "train_kwargs": train_kwargs, "data": data_fingerprint(train)}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()
    path = Path(cache_dir) / f"supervised-{arch}-{digest[:16]}.pt"
    payload = read_checkpoint(path) if path.exists() else None
    finished = payload is not None and payload["history"].get("finished")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        # A finished cache overwrites every weight: loading (or pretraining) the starting
        # weights for it would be wasted work.
        start = None if finished else weights
        model = build_model(arch, pooling=pooling, weights=start, last_stride=last_stride)
    model.to(default_device() if device is None else device)
    if finished:
        model.reset_classifier(payload["extra"]["num_classes"])
        load_state_dict_checked(model, payload["extra"]["best_model"], f"cached model {path}")
        return model.eval(), payload["history"]
    history = train_supervised(model, train, epochs=epochs, p=p, k=k, lr=lr, seed=seed,
                               checkpoint=path, resume=True, progress=progress, **train_kwargs)
    return model, history
