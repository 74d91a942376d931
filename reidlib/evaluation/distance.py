"""Query-gallery distances between feature vectors (survey §2, §4.2: ranking by distance).

The result follows the features' device, is computed in blocks of query rows so that
temporaries stay near one (chunk, G) matrix, and is exact enough for ranking: the squared
Euclidean distance uses |q|^2 + |g|^2 - 2 q.g (one matrix product) clamped at 0, since
rounding can push it slightly negative for near-duplicates.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

METRICS = ("euclidean", "sqeuclidean", "cosine")


def pairwise_distance(
    query_features,
    gallery_features,
    metric: str = "euclidean",
    chunk_size: int = 4096,
) -> torch.Tensor:
    """(Q, G) distances between rows of ``query_features`` (Q, D) and ``gallery_features``.

    Args:
        query_features, gallery_features: 2-D float tensors (same device) or numpy arrays.
        metric: ``"euclidean"``, ``"sqeuclidean"`` (the squared one, what many Re-ID codes
            call "euclidean"), or ``"cosine"`` (1 - cosine similarity, in [0, 2]).
        chunk_size: query rows per block.

    Returns:
        float tensor on the features' device, float32 unless the input is float64.
    """
    qf, gf = _check_features(query_features, gallery_features, metric, chunk_size)
    if metric == "cosine":
        qf, gf = F.normalize(qf, dim=1), F.normalize(gf, dim=1)
    g_sq = (gf * gf).sum(1)
    out = torch.empty(len(qf), len(gf), dtype=qf.dtype, device=qf.device)
    for start in range(0, len(qf), chunk_size):
        q = qf[start : start + chunk_size]
        if metric == "cosine":
            block = 1.0 - q @ gf.T
        else:
            block = ((q * q).sum(1, keepdim=True) + g_sq[None, :] - 2.0 * (q @ gf.T)).clamp_(min=0)
            if metric == "euclidean":
                block.sqrt_()
        out[start : start + chunk_size] = block
    return out


def as_2d_float(x, name: str, shape_hint: str = "(num_images, dim)") -> torch.Tensor:
    """``x`` (tensor or numpy array) as a 2-D float32/float64 tensor, or a clear error."""
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(x))
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch tensor or numpy array, got {type(x).__name__}")
    if x.ndim != 2:
        hint = f" {shape_hint}" if shape_hint else ""
        raise ValueError(f"{name} must be 2-D{hint}, got shape {tuple(x.shape)}")
    return x if x.dtype == torch.float64 else x.float()


def _check_features(qf, gf, metric, chunk_size):
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    if int(chunk_size) < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    qf, gf = as_2d_float(qf, "query_features"), as_2d_float(gf, "gallery_features")
    if qf.shape[1] != gf.shape[1]:
        raise ValueError(
            f"feature dimensions differ: query_features has {qf.shape[1]}, "
            f"gallery_features has {gf.shape[1]}"
        )
    if qf.device != gf.device:
        raise ValueError(f"features are on different devices: {qf.device} and {gf.device}")
    if qf.dtype != gf.dtype:
        qf, gf = qf.float(), gf.float()
    return qf, gf
