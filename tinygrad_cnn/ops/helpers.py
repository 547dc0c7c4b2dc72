"""What the Tensor ops share: operands as Tensors in a promoted dtype, gradients summed back
over broadcast axes, dims checked as PyTorch checks them."""
from __future__ import annotations

from collections import namedtuple

import numpy as np

from .. import dtypes
from ..errors import InvalidArgumentError, ShapeError, normalize_dim
from ..tensor import Tensor


MinMax = namedtuple("MinMax", ["values", "indices"])  # what max(dim) / min(dim) return, as torch.return_types


def as_tensor(x, like: Tensor | None = None) -> Tensor:
    """`x` as a Tensor; a Python number becomes a 0-d constant of the dtype it promotes to with `like`."""
    if isinstance(x, Tensor):
        return x
    if isinstance(x, (bool, int, float)):
        dt = dtypes.result_type(like, x) if like is not None else dtypes.scalar_dtype(x)
        return Tensor._constant(np.array(x).astype(dt))
    if isinstance(x, (np.ndarray, np.generic)):
        return Tensor._make(np.asarray(x))
    return Tensor(x)


def cast_operand(x, dt) -> Tensor:
    """Operand `x` (Tensor, array or number) in dtype dt; differentiable for a tensor that requires grad."""
    if isinstance(x, Tensor):
        if x.dtype == dt:
            return x
        if x.requires_grad:
            return x.to(dt)
        cast = Tensor._make(x.data.astype(dt))
        cast._is_constant = x._is_constant  # an op's own constant stays drawn inside the op
        return cast
    if isinstance(x, (bool, int, float)):
        return Tensor._constant(np.array(x).astype(dt))
    return Tensor._make(np.asarray(x).astype(dt, copy=False))


def unbroadcast(g: Tensor, shape: tuple) -> Tensor:
    """Sum `g` over the axes that broadcasting added or stretched, back to `shape`."""
    if g.shape == shape:
        return g
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, s in enumerate(shape) if s == 1 and g.shape[lead + i] != 1)
    return g.sum(dim=axes).reshape(shape) if axes else g.reshape(shape)


def broadcasting(op: str, fn, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """fn(a, b); a broadcast failure is a ShapeError naming the op and both shapes."""
    try:
        return fn(a, b)
    except ValueError:
        try:
            np.broadcast_shapes(a.shape, b.shape)
        except ValueError:
            raise ShapeError(f"{op}: shapes {a.shape} and {b.shape} cannot be broadcast together") from None
        raise


def norm_dims(dim, ndim: int, op: str):
    """`dim` (None, int or tuple) as a sorted tuple of non-negative axes. A 0-d tensor accepts
    dim 0 or -1 (as PyTorch does) and has no axes to reduce."""
    dims = (dim,) if isinstance(dim, (int, np.integer)) else None if dim is None else tuple(dim)
    if not dims:  # None, or an empty list of dims: all of them, as PyTorch
        return tuple(range(ndim))
    out = []
    for d in dims:
        d = normalize_dim(d, ndim, op)
        if d in out:
            raise InvalidArgumentError(f"{op}: dim {d} appears more than once in the list of dims {dims}")
        out.append(d)
    return tuple(sorted(out)) if ndim else ()


def keepdim_shape(shape, dims):
    return tuple(1 if i in dims else s for i, s in enumerate(shape))
