"""Feature-distribution alignment with the maximum mean discrepancy (survey §3.4.1).

The squared MMD between samples X = {x_i} (m rows) and Y = {y_j} (n rows) for a kernel k
(Gretton et al., "A kernel two-sample test", JMLR 2012, Eq. 3 and 5):

    biased    MMD_b^2 = 1/m^2 sum_ij k(x_i, x_j) + 1/n^2 sum_ij k(y_i, y_j)
                        - 2/(mn) sum_ij k(x_i, y_j)
    unbiased  MMD_u^2 = 1/(m(m-1)) sum_{i!=j} k(x_i, x_j) + 1/(n(n-1)) sum_{i!=j} k(y_i, y_j)
                        - 2/(mn) sum_ij k(x_i, y_j)

MMD_b^2 >= 0 and is 0 for identical samples; MMD_u^2 is unbiased (0 in expectation when X
and Y come from one distribution) and can be negative. The kernel is a *mixture* (a sum) of
Gaussians, k(a, b) = sum_h exp(-|a - b|^2 / h), one per bandwidth h (multi-kernel MMD, as
DAN, Long et al. ICML 2015; MMFA, Lin et al. BMVC 2018, aligns re-ID features with it).

Bandwidth convention. ``h`` divides the squared distance (h = 2 sigma^2 of the textbook
exp(-|a - b|^2 / (2 sigma^2))). By default (``bandwidths=None``) we follow the DAN code that
the re-ID MMD losses copy (``guassian_kernel(kernel_mul=2.0, kernel_num=5)``, read in
djidje/D-MMD ``torchreid/losses/maximum_mean_discrepancy.py`` and
toastoffee/AMC-DANN ``src/module/kernels.py``): the base h is the *mean* squared distance
between distinct rows of the pooled sample X u Y, computed without gradient, and the five
bandwidths are base * 2^-2 .. base * 2^2. We keep the mean, not Gretton's median heuristic,
because it is what the reference code does and it is one cheap reduction; ``bandwidths=``
takes any other choice. The DAN code's ``mean(XX + YY - XY - YX)``
is the biased estimator for m = n; ours also takes m != n, hence ``unbiased=False`` by
default, as in the references.

D-MMD (Mekhazni et al., "Unsupervised domain adaptation in the dissimilarity space for
person re-identification", ECCV 2020; survey ref. [102]) aligns the distributions of the
within-class and between-class pairwise distances of the source with those of the target,
plus the features themselves: see :func:`distance_distribution_mmd` for how we follow its
code (djidje/D-MMD).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch

from reidlib.checks import labels_1d, one_of

__all__ = ["DMMD_BANDWIDTHS", "DMMDTerms", "default_bandwidths", "distance_distribution_mmd",
           "gaussian_kernel_mixture", "mmd2"]

# D-MMD's kernel: sum over sigma of exp(-d^2 / (2 sigma)); as our h = 2 sigma
_DMMD_SIGMAS = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1, 5, 10, 15, 20, 25, 30, 35, 100,
                1e3, 1e4, 1e5, 1e6)
DMMD_BANDWIDTHS = tuple(2.0 * s for s in _DMMD_SIGMAS)


# ------------------------------------------------------------------ checks


def _check_samples(x, y) -> None:
    for name, value in (("x", x), ("y", y)):
        if not isinstance(value, torch.Tensor) or not value.is_floating_point():
            raise ValueError(f"{name} must be a floating-point torch tensor, got "
                             f"{getattr(value, 'dtype', type(value).__name__)}")
        if value.ndim != 2 or len(value) == 0 or value.shape[1] == 0:
            raise ValueError(f"{name} must be a 2-D (rows, D) tensor with rows >= 1 and "
                             f"D >= 1, got shape {tuple(value.shape)}")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must have the same number of columns, got x {tuple(x.shape)}"
                         f" and y {tuple(y.shape)}")


def _prepared(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Both in one dtype, at least float32 (the narrow kernels underflow in 16 bits)."""
    dtype = torch.promote_types(torch.promote_types(x.dtype, y.dtype), torch.float32)
    return x.to(dtype), y.to(dtype)


def _check_bandwidths(bandwidths, like: torch.Tensor) -> torch.Tensor:
    """(K,) tensor of the bandwidths, on ``like``'s device and dtype; all finite and > 0."""
    if isinstance(bandwidths, torch.Tensor):
        h = bandwidths.detach().to(like)
    elif isinstance(bandwidths, Sequence) and not isinstance(bandwidths, str):
        try:
            h = torch.tensor([float(b) for b in bandwidths], dtype=like.dtype,
                             device=like.device)
        except (TypeError, ValueError):
            raise ValueError(f"bandwidths must be numbers, got {bandwidths!r}") from None
    else:
        raise ValueError(f"bandwidths must be a sequence or 1-D tensor of positive numbers, "
                         f"got {type(bandwidths).__name__}")
    if h.ndim != 1 or len(h) == 0:
        raise ValueError(f"bandwidths must be a non-empty 1-D sequence, got shape "
                         f"{tuple(h.shape)}")
    if not bool(torch.isfinite(h).all()) or not bool((h > 0).all()):
        raise ValueError(f"bandwidths must be finite and > 0, got {h.tolist()}")
    return h


# ------------------------------------------------------------------ kernels and MMD


def _squared_distances(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(m, n) |x_i - y_j|^2 from the differences, not |x|^2 + |y|^2 - 2 x.y: equal rows give
    an exact 0, which the narrow D-MMD kernels (sigma = 1e-6) need."""
    return torch.cdist(x, y, compute_mode="donot_use_mm_for_euclid_dist").square()


def _kernel(d2: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    return torch.exp(-d2.unsqueeze(-1) / h).sum(-1)


def gaussian_kernel_mixture(x: torch.Tensor, y: torch.Tensor, bandwidths) -> torch.Tensor:
    """(m, n) kernel matrix sum_h exp(-|x_i - y_j|^2 / h) (a sum over ``bandwidths`` h > 0,
    not a mean, as the DAN / D-MMD code). ``x``: (m, D), ``y``: (n, D) float tensors."""
    _check_samples(x, y)
    x, y = _prepared(x, y)
    return _kernel(_squared_distances(x, y), _check_bandwidths(bandwidths, x))


def default_bandwidths(x: torch.Tensor, y: torch.Tensor, kernel_mul: float = 2.0,
                       kernel_num: int = 5) -> torch.Tensor:
    """(kernel_num,) bandwidths base * kernel_mul^(i - kernel_num // 2), i = 0..kernel_num-1,
    base = the mean squared distance between distinct rows of X u Y (no gradient): DAN's
    ``guassian_kernel``. When every row is the same point, base = 1 (any h gives MMD 0)."""
    _check_samples(x, y)
    if kernel_mul <= 0 or not np.isfinite(kernel_mul):
        raise ValueError(f"kernel_mul must be a finite number > 0, got {kernel_mul!r}")
    if not isinstance(kernel_num, int) or kernel_num < 1:
        raise ValueError(f"kernel_num must be a positive integer, got {kernel_num!r}")
    with torch.no_grad():
        pooled = torch.cat([x, y]).detach()
        n = len(pooled)
        base = _squared_distances(pooled, pooled).sum() / max(n * n - n, 1)
        base = torch.where(base > 0, base, torch.ones_like(base))
        powers = torch.arange(kernel_num, dtype=x.dtype, device=x.device) - kernel_num // 2
        return base * kernel_mul ** powers


def _mmd2(x, y, h, unbiased: bool) -> torch.Tensor:
    kxx, kyy = _kernel(_squared_distances(x, x), h), _kernel(_squared_distances(y, y), h)
    kxy = _kernel(_squared_distances(x, y), h)
    if not unbiased:
        return kxx.mean() + kyy.mean() - 2 * kxy.mean()
    m, n = len(x), len(y)
    within_x = (kxx.sum() - kxx.diagonal().sum()) / (m * (m - 1))
    within_y = (kyy.sum() - kyy.diagonal().sum()) / (n * (n - 1))
    return within_x + within_y - 2 * kxy.mean()


def mmd2(x: torch.Tensor, y: torch.Tensor, bandwidths=None,
         unbiased: bool = False) -> torch.Tensor:
    """Squared multi-kernel MMD between the rows of ``x`` (m, D) and ``y`` (n, D): a scalar
    tensor with gradients to both (Gretton et al. 2012; survey §3.4.1).

    ``bandwidths``: the h of :func:`gaussian_kernel_mixture` (all > 0); None = DAN's five
    around the mean squared distance (:func:`default_bandwidths`). ``unbiased``: the
    U-statistic (needs m, n >= 2; may be negative) instead of the biased V-statistic.
    """
    _check_samples(x, y)
    if not isinstance(unbiased, bool):
        raise ValueError(f"unbiased must be True or False, got {unbiased!r}")
    if unbiased and min(len(x), len(y)) < 2:
        raise ValueError(f"the unbiased MMD needs >= 2 rows in x and in y, got {len(x)} and "
                         f"{len(y)}")
    x, y = _prepared(x, y)
    h = default_bandwidths(x, y) if bandwidths is None else _check_bandwidths(bandwidths, x)
    return _mmd2(x, y, h, unbiased)


# ------------------------------------------------------------------ D-MMD


class DMMDTerms(NamedTuple):
    """The three D-MMD terms (scalar tensors); ``total`` is their sum, D-MMD's loss."""

    within: torch.Tensor
    between: torch.Tensor
    features: torch.Tensor

    @property
    def total(self) -> torch.Tensor:
        return self.within + self.between + self.features


def _class_rows(labels: np.ndarray, name: str, need_equal: bool) -> list[np.ndarray]:
    classes = list(dict.fromkeys(labels.tolist()))  # in order of first appearance
    rows = [np.flatnonzero(labels == c) for c in classes]
    sizes = sorted({len(r) for r in rows})
    if len(rows) < 2 or sizes[-1] < 2:
        raise ValueError(f"{name} need >= 2 classes and a class with >= 2 images (within- "
                         f"and between-class distances), got {len(rows)} classes of sizes "
                         f"{sizes}")
    if need_equal and len(sizes) > 1:
        raise ValueError(f"samples='rows' needs every class of {name} to have the same number "
                         f"of images K (a P x K batch, as D-MMD's identity sampler gives), "
                         f"got sizes {sizes}; use samples='pairs' for other batches")
    return rows


def _distance_samples(features, labels, name, samples):
    """(within, between) samples of squared Euclidean distances: (rows, K) blocks for
    ``samples='rows'``, (pairs, 1) scalars for ``samples='pairs'``."""
    groups = _class_rows(labels, name, need_equal=samples == "rows")
    d2 = _squared_distances(features, features)
    if samples == "rows":
        index = [torch.as_tensor(r, device=features.device) for r in groups]
        within = [d2[a][:, a] for a in index]
        between = [d2[a][:, b] for i, a in enumerate(index) for j, b in enumerate(index)
                   if i != j]
        return torch.cat(within), torch.cat(between)
    same = torch.as_tensor(labels[:, None] == labels[None, :], device=features.device)
    upper = torch.ones_like(same).triu(1)
    return d2[same & upper].unsqueeze(1), d2[~same & upper].unsqueeze(1)


def distance_distribution_mmd(source: torch.Tensor, source_labels, target: torch.Tensor,
                              target_labels, bandwidths=DMMD_BANDWIDTHS, samples: str = "rows",
                              detach_source: bool = True) -> DMMDTerms:
    """D-MMD (Mekhazni et al., ECCV 2020; survey §3.4.1, ref. [102]): align the source's and
    the target's within-class and between-class distance distributions, and the features.

    ``source`` (Ns, D) with its identity labels, ``target`` (Nt, D) with tracklet ids or
    pseudo-labels (no -1: drop outliers first). Returns :class:`DMMDTerms` ``(within,
    between, features)``: the biased MMD^2 between the source's and the target's
    within-class distances, between their between-class distances, and between ``source``
    and ``target``; the loss is ``.total`` (the reference adds the three, unweighted, to
    the source's cross-entropy + triplet loss).

    What the reference (djidje/D-MMD, ``torchreid/losses/maximum_mean_discrepancy.py``,
    ``engine/image/mmd.py``) does and how we follow it:

    - distances are squared Euclidean (torchreid's ``compute_distance_matrix``), on the
      features the triplet loss sees;
    - its batches are P identities x K images; the distance matrix of the K images of class a
      to the K of class b is a K x K block, and each *row* of a block is one sample in R^K:
      within-class rows come from the blocks (a, a) (zero self-distance included),
      between-class rows from the blocks (a, b), a != b. ``samples='rows'`` does this (each
      class must have the same K; row order within a class = batch order); the paper too
      speaks of within- / between-class "distance vectors". The reference skips the blocks
      (0, b) for b >= 2 (a loop quirk); we take every ordered pair. ``samples='pairs'`` is
      our addition for batches whose classes differ in size: each distance between two
      distinct images is a 1-D sample;
    - the kernel is a sum of 19 Gaussians, exp(-d^2 / (2 sigma)) for sigma in 1e-6 .. 1e6
      (:data:`DMMD_BANDWIDTHS` holds our h = 2 sigma), with the biased estimator;
    - the source's distances are detached (only the target's distribution moves:
      ``detach_source``); the feature term is not;
    - the paper labels target distances within / between *tracklets* (a tracker's output);
      its code samples P x K target batches with the target dataset's identity labels as
      the tracklets. We take any target labels: tracklet ids, or pseudo-labels from
      clustering (chapter 1) where there are no tracklets.
    """
    _check_samples(source, target)
    samples = one_of(samples, "samples", ("rows", "pairs"))
    ys = labels_1d(source_labels, len(source), "source_labels", allow_outliers=False)
    yt = labels_1d(target_labels, len(target), "target_labels (drop -1 outliers first)",
                   allow_outliers=False)
    source, target = _prepared(source, target)
    h = _check_bandwidths(bandwidths, source)
    s_within, s_between = _distance_samples(source, ys, "source_labels", samples)
    t_within, t_between = _distance_samples(target, yt, "target_labels", samples)
    if s_within.shape[1] != t_within.shape[1]:
        raise ValueError(f"samples='rows' needs the same K images per class in source and "
                         f"target, got {s_within.shape[1]} and {t_within.shape[1]}")
    if detach_source:
        s_within, s_between = s_within.detach(), s_between.detach()
    return DMMDTerms(_mmd2(s_within, t_within, h, False), _mmd2(s_between, t_between, h, False),
                     _mmd2(source, target, h, False))
