"""Tensor factories with PyTorch's names and arguments: tensor, from_numpy, zeros, ones, full,
empty, eye, arange, linspace, rand, randn, randint, randperm and the *_like forms.

Floats come in the default float dtype (float32); random values come from the framework's
generator (`manual_seed`). `device` may only be the CPU.
"""
from __future__ import annotations

import numpy as np

from . import dtypes
from ._device import device_type
from .rng import get_rng
from .tensor import Tensor, _shape_arg

__all__ = ["tensor", "as_tensor", "from_numpy", "zeros", "ones", "full", "empty", "eye", "arange", "linspace",
           "rand", "randn", "randint", "randperm", "zeros_like", "ones_like", "full_like", "empty_like",
           "rand_like", "randn_like", "is_tensor", "numel"]


def _new(arr: np.ndarray, dtype, device, requires_grad) -> Tensor:
    """A leaf Tensor over `arr` (cast to dtype when given)."""
    if device is not None:
        device_type(device)
    if dtype is not None:
        arr = arr.astype(dtypes.as_dtype(dtype), copy=False)
    return Tensor._make(arr).requires_grad_(requires_grad)


def _float(dtype):
    return dtypes.get_default_dtype() if dtype is None else dtypes.as_dtype(dtype)


def tensor(data, dtype=None, device=None, requires_grad=False) -> Tensor:
    """A new Tensor with a copy of `data` (a number, nested lists, an ndarray or a Tensor), as `torch.tensor`."""
    if device is not None:
        device_type(device)
    return Tensor(data.detach() if isinstance(data, Tensor) else data, requires_grad=requires_grad, dtype=dtype)


def as_tensor(data, dtype=None, device=None) -> Tensor:
    """`data` as a Tensor, sharing an ndarray's memory when no cast is needed (`torch.as_tensor`)."""
    if isinstance(data, Tensor):
        return data if dtype is None else data.to(dtype)
    if isinstance(data, np.ndarray) and data.dtype.kind in "biuf":
        return _new(data, dtype, device, False)
    return tensor(data, dtype, device)


def from_numpy(array: np.ndarray) -> Tensor:
    """A Tensor that shares `array`'s memory (changes show in both), as `torch.from_numpy`."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy: expected an np.ndarray, got {type(array).__name__}")
    if array.dtype.kind not in "biuf":
        raise TypeError(f"from_numpy: dtype {array.dtype} is not supported (bool, integers and floats are)")
    return Tensor._make(array)


def zeros(*size, dtype=None, device=None, requires_grad=False) -> Tensor:
    """A tensor of zeros of shape `size` (ints or one tuple)."""
    return _new(np.zeros(_shape_arg(size), _float(dtype)), None, device, requires_grad)


def ones(*size, dtype=None, device=None, requires_grad=False) -> Tensor:
    """A tensor of ones of shape `size`."""
    return _new(np.ones(_shape_arg(size), _float(dtype)), None, device, requires_grad)


def empty(*size, dtype=None, device=None, requires_grad=False) -> Tensor:
    """An uninitialised tensor of shape `size`."""
    return _new(np.empty(_shape_arg(size), _float(dtype)), None, device, requires_grad)


def full(size, fill_value, dtype=None, device=None, requires_grad=False) -> Tensor:
    """A tensor of shape `size` filled with `fill_value` (its dtype: bool, int64 or the default float)."""
    dtype = dtypes.scalar_dtype(fill_value) if dtype is None else dtypes.as_dtype(dtype)
    return _new(np.full(_shape_arg((size,)), fill_value, dtype), None, device, requires_grad)


def eye(n, m=None, dtype=None, device=None, requires_grad=False) -> Tensor:
    """The (n, m) identity matrix (m defaults to n)."""
    return _new(np.eye(n, m, dtype=_float(dtype)), None, device, requires_grad)


def arange(start, end=None, step=1, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Values from start (default 0) up to end, step apart: int64 for integer arguments, else the default float."""
    if end is None:
        start, end = 0, start
    if step == 0:
        raise ValueError("arange: step must be nonzero")
    ints = all(isinstance(v, (int, np.integer)) for v in (start, end, step))
    if dtype is None:
        dtype = dtypes.int64 if ints else dtypes.get_default_dtype()
    return _new(np.arange(start, end, step).astype(dtypes.as_dtype(dtype)), None, device, requires_grad)


def linspace(start, end, steps, dtype=None, device=None, requires_grad=False) -> Tensor:
    """`steps` evenly spaced values from start to end, both included."""
    return _new(np.linspace(start, end, int(steps)).astype(_float(dtype)), None, device, requires_grad)


def rand(*size, generator=None, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Uniform values in [0, 1) of shape `size`."""
    rng = generator or get_rng()
    return _new(rng.random(_shape_arg(size)).astype(_float(dtype)), None, device, requires_grad)


def randn(*size, generator=None, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Standard normal values of shape `size`."""
    rng = generator or get_rng()
    return _new(rng.standard_normal(_shape_arg(size)).astype(_float(dtype)), None, device, requires_grad)


def randint(low, high=None, size=None, generator=None, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Integers in [low, high) of shape `size` (int64); randint(high, size) starts at 0."""
    if size is None:
        if high is None or not isinstance(high, (tuple, list)):
            raise TypeError("randint: pass size, as in randint(low, high, size) or randint(high, size)")
        low, high, size = 0, low, high
    elif high is None:
        low, high = 0, low
    rng = generator or get_rng()
    return _new(rng.integers(low, high, _shape_arg((size,))), dtype or dtypes.int64, device, requires_grad)


def randperm(n, generator=None, dtype=None, device=None, requires_grad=False) -> Tensor:
    """A random permutation of 0..n-1 (int64)."""
    rng = generator or get_rng()
    return _new(rng.permutation(int(n)), dtype or dtypes.int64, device, requires_grad)


def _like(t: Tensor, make, dtype, device, requires_grad) -> Tensor:
    return _new(make(t.shape, t.dtype if dtype is None else dtypes.as_dtype(dtype)), None, device, requires_grad)


def zeros_like(input: Tensor, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Zeros with input's shape and dtype."""
    return _like(input, np.zeros, dtype, device, requires_grad)


def ones_like(input: Tensor, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Ones with input's shape and dtype."""
    return _like(input, np.ones, dtype, device, requires_grad)


def empty_like(input: Tensor, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Uninitialised, with input's shape and dtype."""
    return _like(input, np.empty, dtype, device, requires_grad)


def full_like(input: Tensor, fill_value, dtype=None, device=None, requires_grad=False) -> Tensor:
    """`fill_value` everywhere, with input's shape and dtype."""
    return _like(input, lambda s, d: np.full(s, fill_value, d), dtype, device, requires_grad)


def rand_like(input: Tensor, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Uniform [0, 1) values with input's shape and dtype."""
    return _like(input, lambda s, d: get_rng().random(s).astype(d), dtype, device, requires_grad)


def randn_like(input: Tensor, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Standard normal values with input's shape and dtype."""
    return _like(input, lambda s, d: get_rng().standard_normal(s).astype(d), dtype, device, requires_grad)


def is_tensor(obj) -> bool:
    """True for a Tensor (or a Parameter)."""
    return isinstance(obj, Tensor)


def numel(input: Tensor) -> int:
    """Number of elements of `input`."""
    return input.numel()
