"""Supervised training: chapter 0's upper bound (survey §3.2, Eq. 4-5; Luo et al., Bag of tricks).

Recipe: P x K batches, label-smoothed cross-entropy on the BNNeck embedding plus
batch-hard triplet on the pooled feature, Adam with a warmup, trained by the course's one
loop (:func:`reidlib.training.loop.fit`). Model selection uses a
validation split carved from the *training* identities (held out of training, split
into query / gallery like Market-1501); the test set is never looked at.

The whole uint8 training set is moved to the model's device once and each batch is
augmented there (``reidlib.data.augment``), so there is no DataLoader.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from reidlib.data.imageset import ImageSet
from reidlib.data.sampler import one_random_per_group
from reidlib.models.backbones import weights_identity
from reidlib.models.heads import build_model
from reidlib.training.checkpoint import read_checkpoint
from reidlib.training.classification import PseudoLabelClassification
from reidlib.training.loop import EpochRecord, History, data_fingerprint, fit, validate
from reidlib.training.method import load_model_state
from reidlib.utils import default_device

__all__ = ["query_gallery_split", "split_validation", "train_or_load", "train_supervised",
           "validate"]

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


# ------------------------------------------------------------------------- training


def train_supervised(model, train: ImageSet, *, epochs: int, p: int, k: int, lr: float,
                     weight_decay: float = 5e-4, margin: float | None = 0.3,
                     epsilon: float = 0.1, colour_jitter: float = 0.15,
                     val_fraction: float = 0.1, seed: int = 0,
                     schedule: str = "cosine", warmup_epochs: int | None = None,
                     checkpoint=None, resume: bool = True, eval_every: int = 1,
                     on_epoch_end: Callable[[EpochRecord], None] | None = None,
                     progress: bool = True) -> History:
    """Train ``model`` (a ReidModel) with CE (label smoothing) + batch-hard triplet (Eq. 5).

    Chapter 0's recipe through the one loop, :func:`~reidlib.training.loop.fit`, with the
    true identities as fixed labels: a random classifier drawn from ``seed``, P x K
    batches, Adam with weight decay on weight matrices only, a warmup then cosine decay.
    Keeps the weights with the best validation mAP (the last epoch with
    ``val_fraction=0``) and returns the model in eval mode with them loaded. With
    ``checkpoint`` a path, every epoch is saved there and, when ``resume`` is true,
    training continues from the last complete epoch. Returns the :class:`History`.
    """
    if p < 2 or k < 1:
        raise ValueError(f"batch-hard triplet needs p >= 2 identities and k >= 1, got {p}, {k}")
    part, val_query, val_gallery = split_validation(train, val_fraction, seed)
    warmup_epochs = min(10, epochs // 10) if warmup_epochs is None else warmup_epochs
    method = PseudoLabelClassification(model, margin=margin, epsilon=epsilon,
                                       classifier_init="random", seed=seed)
    method.name = "supervised"
    has_val = val_query is not None
    history = fit(method, part, labels=part.pids, epochs=epochs, p=p, k=k, lr=lr,
                  weight_decay=weight_decay, decay="matrices", schedule=schedule,
                  warmup_epochs=warmup_epochs, colour_jitter=colour_jitter, seed=seed,
                  val=(val_query, val_gallery) if has_val else None, eval_every=eval_every,
                  keep_best=has_val, checkpoint=checkpoint, resume=resume,
                  progress=progress, on_epoch_end=on_epoch_end)
    return history


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
    key = {"loop": "fit", "arch": arch, "pooling": pooling,
           "weights": weights_identity(arch, weights), "last_stride": last_stride,
           "epochs": epochs, "p": p, "k": k, "lr": lr, "seed": seed,
           "train_kwargs": train_kwargs, "data": data_fingerprint(train)}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()
    path = Path(cache_dir) / f"supervised-{arch}-{digest[:16]}.pt"
    payload = read_checkpoint(path) if path.exists() else None
    finished = payload is not None and payload.get("kind") == "fit" \
        and payload["history"]["finished"]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        # A finished cache overwrites every weight: loading (or pretraining) the starting
        # weights for it would be wasted work.
        start = None if finished else weights
        model = build_model(arch, pooling=pooling, weights=start, last_stride=last_stride)
    model.to(default_device() if device is None else device)
    if finished:
        best = payload["best"] if payload["best"] is not None else payload["method"]
        load_model_state(model, best["models"][0])
        return model.eval(), History.from_state(payload["history"])
    history = train_supervised(model, train, epochs=epochs, p=p, k=k, lr=lr, seed=seed,
                               checkpoint=path, resume=True, progress=progress, **train_kwargs)
    return model, history
