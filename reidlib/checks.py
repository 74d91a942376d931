"""Shared input checks: one place that says what a function expects and what it got.

The pseudo-labelling and selection functions of the course all take the same kinds of input:
an (N, D) feature array (numpy or torch), an (N,) vector of pseudo-labels with -1 for
outliers, a count k bounded by N, a real hyper-parameter in a range. Each helper here checks
one of them, returns it in the form the caller computes with, and otherwise raises a
ValueError whose message names the argument, what was expected and what was received.

A wrong *dtype* (float labels, string features) raises :class:`InputTypeError`, which is both
a ValueError and a TypeError, so callers and tests written for either keep working.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

__all__ = [
    "InputTypeError",
    "as_numpy",
    "distance_matrix",
    "features_2d",
    "int_in_range",
    "labels_1d",
    "one_of",
    "real_in_range",
    "unit_rows",
]


class InputTypeError(ValueError, TypeError):
    """An argument of the wrong dtype or type: a ValueError, and a TypeError as well."""


def as_numpy(value) -> np.ndarray:
    """A numpy array from an array, a nested list or a torch tensor (detached, copied to the
    CPU; half / bfloat16 tensors become float32, which numpy can hold)."""
    if hasattr(value, "detach"):
        value = value.detach().cpu()
        try:
            return value.numpy()
        except TypeError:  # bfloat16 has no numpy dtype
            return value.float().numpy()
    try:
        return np.asarray(value)
    except (ValueError, TypeError) as err:  # ragged nested lists
        raise InputTypeError(f"expected an array or tensor, got {type(value).__name__} that "
                             f"numpy cannot turn into one ({err})") from None


def features_2d(features, name: str = "features", min_rows: int = 1,
                dtype=np.float32) -> np.ndarray:
    """``features`` as a C-contiguous (N, D) array of ``dtype`` (float32 or float64), checked.

    Expected: an array or tensor with 2 dimensions, N >= ``min_rows`` rows, D >= 1 columns,
    a real numeric dtype (not bool, not complex), every value finite after the cast to
    ``dtype`` (a float64 1e300 overflows float32).
    """
    x = as_numpy(features)
    if x.ndim != 2 or x.shape[0] < min_rows or x.shape[1] < 1:
        raise ValueError(f"{name} must be a 2-D (N, D) array with N >= {min_rows} and D >= 1, "
                         f"got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
        raise InputTypeError(f"{name} must be a real numeric array, got dtype {x.dtype}")
    with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported just below
        x = np.ascontiguousarray(x, dtype=dtype)
    bad = int(np.count_nonzero(~np.isfinite(x)))
    if bad:
        raise ValueError(f"{name} must be finite, got {bad} NaN or infinite values "
                         f"(of {x.size}, as {np.dtype(dtype).name})")
    return x


def unit_rows(x: np.ndarray, name: str = "features", purpose: str = "cosine similarities"
              ) -> np.ndarray:
    """The rows of a checked (N, D) float array divided by their L2 norms (a new array).

    Expected: no all-zero row (it has no direction). ``purpose`` says in the message why unit
    rows are needed.
    """
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    zero = np.flatnonzero(norms[:, 0] == 0)
    if len(zero):
        raise ValueError(f"{purpose} need {name} rows of non-zero norm, got {len(zero)} rows "
                         f"of norm 0 (first: row {zero[0]})")
    return x / norms


def labels_1d(labels, n: int, name: str = "labels", allow_outliers: bool = True) -> np.ndarray:
    """``labels`` as an (N,) int64 array, checked.

    Expected: shape (n,), one label per feature row; an integer dtype (not bool); values >= 0,
    or -1 for outliers when ``allow_outliers``.
    """
    y = as_numpy(labels)
    if y.shape != (n,):
        raise ValueError(f"{name} must have shape (N,) = ({n},), one per feature row, "
                         f"got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise InputTypeError(f"{name} must be integers (cluster ids, -1 for outliers), "
                             f"got dtype {y.dtype}")
    lowest = -1 if allow_outliers else 0
    if n and int(y.min()) < lowest:
        what = "(cluster ids >= 0, -1 for outliers)" if allow_outliers else "(no outliers here)"
        raise ValueError(f"{name} must be >= {lowest} {what}, got a minimum of {int(y.min())}")
    return y.astype(np.int64)


def int_in_range(value, name: str, lo: int, hi: int | None = None,
                 hi_name: str | None = None) -> int:
    """``value`` as a Python int, checked: an integer (Python or numpy, not bool, not a float
    such as 3.0) with lo <= value <= hi (no upper bound when ``hi`` is None). ``hi_name``
    names the bound in the message, e.g. "N - 1" gives "k <= N - 1 = 19"."""
    is_int = isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))
    if is_int and lo <= value and (hi is None or value <= hi):
        return int(value)
    if hi is not None:
        bound = f"{hi_name} = {hi}" if hi_name else f"{hi}"
        expected = f"an integer with {lo} <= {name} <= {bound}"
    elif lo == 1:
        expected = "a positive integer"
    elif lo == 0:
        expected = "a non-negative integer"
    else:
        expected = f"an integer >= {lo}"
    got = f"{value!r}" if is_int else f"{value!r} ({type(value).__name__})"
    error = ValueError if is_int else InputTypeError
    raise error(f"{name} must be {expected}, got {got}")


def real_in_range(value, name: str, lo: float | None = None, hi: float | None = None,
                  lo_open: bool = False, hi_open: bool = False,
                  allow_none: bool = False) -> float | None:
    """``value`` as a float, checked: a finite real number (Python or numpy, not bool) within
    [lo, hi] (``lo_open`` / ``hi_open`` exclude an end; None leaves that side open). With
    ``allow_none``, None is accepted and returned as None."""
    if value is None and allow_none:
        return None
    is_real = isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))
    ok = is_real and bool(np.isfinite(value))
    ok = ok and (lo is None or (value > lo if lo_open else value >= lo))
    ok = ok and (hi is None or (value < hi if hi_open else value <= hi))
    if ok:
        return float(value)
    left, right = ("<" if lo_open else "<="), ("<" if hi_open else "<=")
    if lo is not None and hi is not None:
        within = f" with {lo} {left} {name} {right} {hi}"
    elif lo is not None:
        within = f" with {name} {'>' if lo_open else '>='} {lo}"
    elif hi is not None:
        within = f" with {name} {right} {hi}"
    else:
        within = ""
    got = f"{value!r}" if is_real else f"{value!r} ({type(value).__name__})"
    error = ValueError if is_real else InputTypeError
    raise error(f"{name} must be a finite number{within}{' (or None)' if allow_none else ''}, "
                f"got {got}")


def one_of(value, name: str, options: Sequence):
    """``value`` unchanged if it is one of ``options``; otherwise a ValueError listing them."""
    if isinstance(value, str | int | float | type(None)) and value in tuple(options):
        return value
    raise ValueError(f"{name} must be one of {tuple(options)}, got {value!r}")


def distance_matrix(dist, name: str = "dist"):
    """A square (N, N) distance matrix, checked: a dense array (returned as numpy) or a
    scipy.sparse matrix (returned as is; absent entries mean "not a neighbour"). Expected:
    2-D and square, a real numeric dtype, the stored values finite and >= 0."""
    if not sp.issparse(dist):
        dist = as_numpy(dist)
    if dist.ndim != 2 or dist.shape[0] != dist.shape[1]:
        raise ValueError(f"{name} must be a square (N, N) distance matrix, got shape "
                         f"{dist.shape}")
    values = dist.data if sp.issparse(dist) else dist
    if not np.issubdtype(values.dtype, np.number) or np.issubdtype(values.dtype,
                                                                   np.complexfloating):
        raise InputTypeError(f"{name} must hold real numbers, got dtype {values.dtype}")
    if values.size:
        bad = int(np.count_nonzero(~np.isfinite(values)))
        if bad:
            raise ValueError(f"{name} must hold finite, non-negative distances, got {bad} NaN "
                             "or infinite entries")
        if values.min() < 0:
            raise ValueError(f"{name} must hold finite, non-negative distances, got a minimum "
                             f"of {values.min()}")
    return dist
