"""dtypes: the default float dtype and PyTorch's type-promotion rules.

Tensors hold numpy arrays, so a dtype is a numpy dtype; `tinygrad_cnn.float32` and friends
are those dtypes under PyTorch's names. Promotion follows `torch.result_type`: operands are
ranked tensors with dimensions > zero-dimensional tensors > Python scalars, and a
lower-ranked operand decides the result only when it is of a higher category (bool <
integer < floating); a Python float then gives the default float dtype, a Python int int64.
"""
from __future__ import annotations

import numpy as np

from .errors import DTypeError

bool_ = np.dtype(np.bool_)
uint8, int8, int16, int32, int64 = (np.dtype(t) for t in (np.uint8, np.int8, np.int16, np.int32, np.int64))
float16, float32, float64 = (np.dtype(t) for t in (np.float16, np.float32, np.float64))
# PyTorch's other names for them; tinygrad_cnn exports these too (torch.long, torch.double, ...)
ALIASES = {"half": float16, "float": float32, "double": float64, "short": int16, "int": int32, "long": int64,
           "bool": bool_}

_default_float = float32


def set_default_dtype(dtype) -> None:
    """Set the dtype of new float tensors, parameters and Python-float results (float32 by default)."""
    global _default_float
    d = np.dtype(dtype)
    if d.kind != "f":
        raise DTypeError(f"set_default_dtype: only floating dtypes can be the default, got {d}")
    _default_float = d


def get_default_dtype() -> np.dtype:
    """The dtype of new float tensors (float32 unless `set_default_dtype` changed it)."""
    return _default_float


def as_dtype(dtype) -> np.dtype:
    """`dtype` (a numpy dtype or type, or a name such as 'float32') as a numpy dtype; Python's
    float is the default float dtype, int is int64 and bool is bool, as in PyTorch."""
    if dtype is float:
        return _default_float
    if dtype is int:
        return int64
    try:
        d = np.dtype(dtype)
    except TypeError:
        raise DTypeError(f"{dtype!r} is not a dtype") from None
    if d.kind not in "biuf" or (d.kind == "f" and d.itemsize > 8):
        raise DTypeError(f"dtype {d} is not supported: use bool, an integer type, float16, float32 or float64")
    return d


def promote_types(a: np.dtype, b: np.dtype) -> np.dtype:
    """`torch.promote_types`: the smallest dtype both cast to; a float beats any integer or bool."""
    if a == b:
        return a
    if a.kind == "f" or b.kind == "f":
        if a.kind == b.kind:
            return a if a.itemsize >= b.itemsize else b
        return a if a.kind == "f" else b
    if a.kind == "b" or b.kind == "b":
        return b if a.kind == "b" else a
    out = np.promote_types(a, b)
    return out if out.kind != "f" else int64  # numpy turns uint64 + int64 into float64


def _combine(higher, lower):
    """PyTorch's combine_categories: `lower` (a lower-ranked group) wins only with a higher category."""
    if higher is None:
        return lower
    if lower is None or higher.kind == "f":
        return higher
    if higher.kind == "b" or lower.kind == "f":
        return promote_types(higher, lower)
    return higher


def scalar_dtype(x) -> np.dtype:
    """The dtype PyTorch gives a Python number: bool, int64 or the default float."""
    if isinstance(x, bool):
        return bool_
    if isinstance(x, int):
        return int64
    return _default_float


def result_type(*operands) -> np.dtype:
    """The dtype of an op on `operands` (Tensors, ndarrays, numpy or Python scalars), as `torch.result_type`."""
    dims = zero = wrapped = None
    for x in operands:
        if x is None:
            continue
        if isinstance(x, (bool, int, float)):  # Python numbers; np.float64 is a float, np.int64 is not an int
            d = scalar_dtype(x)
            wrapped = d if wrapped is None else promote_types(wrapped, d)
            continue
        arr = x if isinstance(x, np.ndarray) else np.asarray(getattr(x, "data", x))
        if arr.ndim:
            dims = arr.dtype if dims is None else promote_types(dims, arr.dtype)
        else:
            zero = arr.dtype if zero is None else promote_types(zero, arr.dtype)
    return _combine(dims, _combine(zero, wrapped))


_CATEGORY = {"b": 0, "u": 1, "i": 1, "f": 2}


def can_cast(src: np.dtype, dst: np.dtype) -> bool:
    """`torch.can_cast` for an in-place result: no float -> integer/bool and no integer -> bool."""
    return _CATEGORY[src.kind] <= _CATEGORY[dst.kind]
