"""Checkpoints: written atomically, read back with errors that say what is wrong.

A run that dies mid-write keeps the previous checkpoint (temp file + rename), so
"resume from the last complete epoch" is always possible.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path

import torch

from reidlib.models.backbones import load_state_dict_checked
from reidlib.utils import atomic_torch_save

FORMAT = "reidlib-checkpoint-v1"


def save_checkpoint(path: str | os.PathLike, model: torch.nn.Module, optimizer=None,
                    epoch: int = -1, history: dict | None = None, extra: dict | None = None):
    """Save model (+ optimizer) state, the last completed ``epoch``, ``history`` and ``extra``.

    ``history`` / ``extra`` may hold numbers, strings, lists, dicts and tensors (they are
    read back with ``weights_only=True``, which refuses arbitrary pickled objects).
    """
    payload = {
        "format": FORMAT,
        "model": model.state_dict(),
        "optimizer": None if optimizer is None else optimizer.state_dict(),
        "epoch": epoch,
        "history": history or {},
        "extra": extra or {},
    }
    atomic_torch_save(payload, path)


def read_checkpoint(path: str | os.PathLike) -> dict:
    """The raw checkpoint dict; FileNotFoundError / RuntimeError with the path and the cause."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError) as e:
        raise RuntimeError(
            f"checkpoint {path} is corrupt or not a torch file ({type(e).__name__}: {e}); "
            "delete it to train from scratch"
        ) from e
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise RuntimeError(f"{path} is not a reidlib checkpoint (expected format {FORMAT})")
    return payload


def load_checkpoint(path: str | os.PathLike, model: torch.nn.Module, optimizer=None) -> dict:
    """Load weights (and optimizer state) from ``path``; return {epoch, history, extra}.

    The model must have the architecture that was saved (same keys and shapes); the
    tensors are moved to the model's device.
    """
    payload = read_checkpoint(path)
    load_state_dict_checked(model, payload["model"], f"checkpoint {path}")
    if optimizer is not None:
        if payload["optimizer"] is None:
            raise RuntimeError(f"checkpoint {path} holds no optimizer state")
        optimizer.load_state_dict(payload["optimizer"])
    return {k: payload[k] for k in ("epoch", "history", "extra")}
