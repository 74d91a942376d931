"""reidlib.checks: each helper returns the checked value and names expected vs received."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from reidlib.checks import (
    InputTypeError,
    as_numpy,
    distance_matrix,
    features_2d,
    int_in_range,
    labels_1d,
    one_of,
    real_in_range,
    unit_rows,
)


def test_input_type_error_is_both_value_and_type_error():
    assert issubclass(InputTypeError, ValueError) and issubclass(InputTypeError, TypeError)


def test_as_numpy_copies_tensors_to_the_cpu():
    t = torch.arange(6, dtype=torch.float32).reshape(2, 3).requires_grad_()
    np.testing.assert_array_equal(as_numpy(t), [[0, 1, 2], [3, 4, 5]])
    half = as_numpy(torch.tensor([1.5, -2.0], dtype=torch.bfloat16))  # numpy has no bfloat16
    assert half.dtype == np.float32 and half.tolist() == [1.5, -2.0]
    assert as_numpy([[1, 2]]).shape == (1, 2)
    with pytest.raises(InputTypeError, match="expected an array or tensor, got list"):
        as_numpy([[1, 2], [3]])


def test_features_2d_returns_contiguous_float_rows():
    x = np.arange(12, dtype=np.int64).reshape(3, 4)[:, ::2]  # a strided int view
    got = features_2d(x)
    assert got.dtype == np.float32 and got.flags.c_contiguous
    np.testing.assert_array_equal(got, [[0, 2], [4, 6], [8, 10]])
    assert features_2d(torch.ones(2, 3, dtype=torch.float64), dtype=np.float64).dtype == np.float64
    assert features_2d(np.ones((2, 1)), min_rows=2).shape == (2, 1)


@pytest.mark.parametrize(
    "x, kwargs, error, match",
    [
        (np.zeros(5), {}, ValueError, r"features must be a 2-D \(N, D\) array with N >= 1 and "
                                      r"D >= 1, got shape \(5,\)"),
        (np.zeros((0, 3)), {}, ValueError, r"got shape \(0, 3\)"),
        (np.zeros((3, 0)), {}, ValueError, r"D >= 1, got shape \(3, 0\)"),
        (np.zeros((1, 3)), {"min_rows": 2, "name": "gallery"},
         ValueError, r"gallery must be a 2-D \(N, D\) array with N >= 2"),
        (np.array([["a", "b"]]), {}, InputTypeError, "real numeric array, got dtype <U1"),
        (np.ones((2, 2), dtype=bool), {}, InputTypeError, "got dtype bool"),
        (np.ones((2, 2), dtype=complex), {}, InputTypeError, "got dtype complex128"),
        (np.array([[0.0, np.nan], [np.inf, 1.0]]), {}, ValueError,
         r"features must be finite, got 2 NaN or infinite values \(of 4, as float32\)"),
        # finite as float64, infinite once cast to float32
        (np.array([[1e300, 0.0]]), {}, ValueError, "1 NaN or infinite values"),
    ],
)
def test_features_2d_rejects(x, kwargs, error, match):
    with pytest.raises(error, match=match):
        features_2d(x, **kwargs)


def test_features_2d_float64_keeps_large_values():
    assert features_2d(np.array([[1e300, 0.0]]), dtype=np.float64)[0, 0] == 1e300


def test_unit_rows():
    x = np.array([[3.0, 4.0], [0.0, -2.0]])
    np.testing.assert_allclose(unit_rows(x), [[0.6, 0.8], [0.0, -1.0]])
    with pytest.raises(ValueError, match=r"cosine similarities need features rows of non-zero "
                                         r"norm, got 2 rows of norm 0 \(first: row 1\)"):
        unit_rows(np.array([[1.0, 0.0], [0.0, 0.0], [0.0, 0.0]]))
    with pytest.raises(ValueError, match="^prototypes need centres rows"):
        unit_rows(np.zeros((1, 2)), name="centres", purpose="prototypes")


def test_labels_1d():
    got = labels_1d(np.array([3, -1, 0], dtype=np.int16), 3)
    assert got.dtype == np.int64 and got.tolist() == [3, -1, 0]
    assert labels_1d(torch.tensor([1, 2]), 2).tolist() == [1, 2]
    assert labels_1d([0, 5], 2, allow_outliers=False).tolist() == [0, 5]
    assert labels_1d(np.zeros(0, dtype=int), 0).shape == (0,)


@pytest.mark.parametrize(
    "labels, kwargs, error, match",
    [
        (np.zeros(3, dtype=int), {}, ValueError,
         r"labels must have shape \(N,\) = \(4,\), one per feature row, got shape \(3,\)"),
        (np.zeros((4, 1), dtype=int), {}, ValueError, r"got shape \(4, 1\)"),
        (np.zeros(4), {}, InputTypeError,
         r"labels must be integers \(cluster ids, -1 for outliers\), got dtype float64"),
        (np.zeros(4, dtype=bool), {}, InputTypeError, "got dtype bool"),
        (np.array([0, -2, 1, -5]), {}, ValueError,
         r"labels must be >= -1 \(cluster ids >= 0, -1 for outliers\), got a minimum of -5"),
        (np.array([0, -1, 1, 2]), {"allow_outliers": False, "name": "targets"}, ValueError,
         r"targets must be >= 0 \(no outliers here\), got a minimum of -1"),
    ],
)
def test_labels_1d_rejects(labels, kwargs, error, match):
    with pytest.raises(error, match=match):
        labels_1d(labels, 4, **kwargs)


def test_int_in_range_accepts_python_and_numpy_integers():
    assert int_in_range(3, "k", 1, 3) == 3
    got = int_in_range(np.int64(1), "k", 1)
    assert got == 1 and type(got) is int
    assert int_in_range(0, "seed", 0) == 0


@pytest.mark.parametrize(
    "value, lo, hi, hi_name, error, message",
    [
        (0, 1, None, None, ValueError, "k must be a positive integer, got 0"),
        (-1, 0, None, None, ValueError, "k must be a non-negative integer, got -1"),
        (1, 2, None, None, ValueError, "k must be an integer >= 2, got 1"),
        (20, 1, 19, "N - 1", ValueError, "k must be an integer with 1 <= k <= N - 1 = 19, got 20"),
        (5, 1, 4, None, ValueError, "k must be an integer with 1 <= k <= 4, got 5"),
        (2.5, 1, None, None, InputTypeError, "k must be a positive integer, got 2.5 (float)"),
        (3.0, 1, 5, "N", InputTypeError,
         "k must be an integer with 1 <= k <= N = 5, got 3.0 (float)"),
        (True, 1, None, None, InputTypeError, "k must be a positive integer, got True (bool)"),
        ("3", 1, None, None, InputTypeError, "k must be a positive integer, got '3' (str)"),
    ],
)
def test_int_in_range_rejects(value, lo, hi, hi_name, error, message):
    with pytest.raises(error) as info:
        int_in_range(value, "k", lo, hi, hi_name=hi_name)
    assert str(info.value) == message


def test_real_in_range_accepts():
    got = real_in_range(np.float32(0.5), "eps", lo=0.0, lo_open=True)
    assert got == 0.5 and type(got) is float
    assert real_in_range(1, "f", lo=0.0, hi=1.0) == 1.0  # ints are real numbers, ends closed
    assert real_in_range(0.0, "lam", lo=0.0) == 0.0
    assert real_in_range(None, "t", allow_none=True) is None
    assert real_in_range(-1e9, "t") == -1e9


@pytest.mark.parametrize(
    "value, kwargs, error, message",
    [
        (0.0, {"lo": 0.0, "lo_open": True}, ValueError, "x must be a finite number with x > 0.0, "
                                                        "got 0.0"),
        (-0.1, {"lo": 0.0}, ValueError, "x must be a finite number with x >= 0.0, got -0.1"),
        (1.5, {"lo": 0.0, "hi": 1.0, "lo_open": True, "allow_none": True}, ValueError,
         "x must be a finite number with 0.0 < x <= 1.0 (or None), got 1.5"),
        (1.0, {"hi": 1.0, "hi_open": True}, ValueError, "x must be a finite number with x < 1.0, "
                                                        "got 1.0"),
        (float("nan"), {}, ValueError, "x must be a finite number, got nan"),
        (float("inf"), {"lo": 0.0}, ValueError, "x must be a finite number with x >= 0.0, got inf"),
        (None, {}, InputTypeError, "x must be a finite number, got None (NoneType)"),
        ("high", {"allow_none": True}, InputTypeError,
         "x must be a finite number (or None), got 'high' (str)"),
        (False, {}, InputTypeError, "x must be a finite number, got False (bool)"),
    ],
)
def test_real_in_range_rejects(value, kwargs, error, message):
    with pytest.raises(error) as info:
        real_in_range(value, "x", **kwargs)
    assert str(info.value) == message


def test_one_of():
    assert one_of("b", "mode", ("a", "b")) == "b"
    with pytest.raises(ValueError, match=r"^mode must be one of \('a', 'b'\), got 'c'$"):
        one_of("c", "mode", ["a", "b"])
    with pytest.raises(ValueError, match="got array"):  # no ambiguous array comparison
        one_of(np.array(["a"]), "mode", ("a", "b"))


def test_distance_matrix_dense_and_sparse():
    dense = distance_matrix([[0.0, 1.0], [1.0, 0.0]])
    assert isinstance(dense, np.ndarray) and dense.shape == (2, 2)
    sparse = sp.csr_matrix(np.array([[0.0, 0.3], [0.3, 0.0]]))
    assert distance_matrix(sparse) is sparse
    assert distance_matrix(sp.csr_matrix((3, 3))).shape == (3, 3)  # nothing stored: fine
    assert distance_matrix(torch.zeros(2, 2)).shape == (2, 2)


@pytest.mark.parametrize(
    "dist, error, match",
    [
        (np.zeros((3, 4)), ValueError,
         r"dist must be a square \(N, N\) distance matrix, got shape \(3, 4\)"),
        (np.zeros(4), ValueError, r"got shape \(4,\)"),
        (sp.csr_matrix((2, 3)), ValueError, r"got shape \(2, 3\)"),
        (np.full((2, 2), "a"), InputTypeError, "dist must hold real numbers, got dtype <U1"),
        (np.array([[0.0, np.nan], [1.0, np.inf]]), ValueError,
         "dist must hold finite, non-negative distances, got 2 NaN or infinite entries"),
        (sp.csr_matrix(np.array([[0.0, -0.5], [0.2, 0.0]])), ValueError,
         "dist must hold finite, non-negative distances, got a minimum of -0.5"),
    ],
)
def test_distance_matrix_rejects(dist, error, match):
    with pytest.raises(error, match=match):
        distance_matrix(dist)
