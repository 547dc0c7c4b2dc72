"""Reductions: sum, amax / amin (ties share the gradient), and max / min along a dim (the
gradient to the returned index)."""
from __future__ import annotations

import numpy as np

from ..errors import ShapeError
from ..tensor import Function, Tensor
from .helpers import MinMax, keepdim_shape, norm_dims


class Sum(Function):
    """Sum over dims; backward broadcasts the gradient back."""

    def forward(self, a, dim=None, keepdim=False):
        self.dims = norm_dims(dim, a.ndim, "sum")
        return np.sum(a, axis=self.dims, keepdims=keepdim, dtype=np.int64 if a.dtype.kind in "biu" else None)

    def backward(self, g):
        a = self.inputs[0]
        return g.reshape(keepdim_shape(a.shape, self.dims)).expand(*a.shape)


class Amax(Function):
    """Max over `dim`; ties share the gradient equally (as in PyTorch's amax)."""

    SAVES = {0: (0, "out")}
    REDUCE = staticmethod(np.amax)

    def forward(self, a, dim=None, keepdim=False):
        self.dims = norm_dims(dim, a.ndim, self.op_name)
        if a.size == 0 and (a.ndim == 0 or any(a.shape[d] == 0 for d in self.dims)):
            raise ShapeError(f"{self.op_name}: cannot reduce over an empty dimension of a tensor of shape {a.shape}")
        out = self.REDUCE(a, axis=self.dims, keepdims=True)
        mask = a == out
        self.share = (mask / mask.sum(axis=self.dims, keepdims=True)).astype(a.dtype)
        return out if keepdim else out.reshape([s for i, s in enumerate(a.shape) if i not in self.dims])

    def backward(self, g):
        a = self.inputs[0]
        return g.reshape(keepdim_shape(a.shape, self.dims)) * Tensor._constant(self.share)


class Amin(Amax):
    """Min over `dim`; ties share the gradient equally (as in PyTorch's amin)."""

    REDUCE = staticmethod(np.amin)


class TakeAlongDim(Function):
    """a's values at `indices` along `dim` (np.take_along_axis): max(dim)'s values, whose
    gradient goes to the returned index alone, as PyTorch's. Backward: `PutAlongDim`."""

    HEAVY_ATTRS = ("indices",)

    def forward(self, a, indices, dim):
        return np.take_along_axis(a, indices, axis=dim)

    def backward(self, g):
        return PutAlongDim.apply(g, indices=self.attrs["indices"], dim=self.attrs["dim"], shape=self.inputs[0].shape)


class PutAlongDim(Function):
    """Zeros of `shape` with g added at `indices` along `dim`: TakeAlongDim's adjoint."""

    HEAVY_ATTRS = ("indices",)

    def forward(self, g, indices, dim, shape):
        out = np.zeros(shape, dtype=g.dtype)
        np.put_along_axis(out, indices, g, axis=dim)
        return out

    def backward(self, gg):
        return TakeAlongDim.apply(gg, indices=self.attrs["indices"], dim=self.attrs["dim"])


def max_along(x: Tensor, dim, keepdim: bool, largest: bool = True) -> MinMax:
    """(values, indices) of the largest (or smallest) element along `dim`, as torch.max(x, dim)."""
    d = x._dim(dim, "max" if largest else "min")
    if x.ndim == 0:
        return MinMax(x, Tensor._make(np.zeros((), np.int64)))
    if x.shape[d] == 0:
        raise ShapeError(f"{'max' if largest else 'min'}: dimension {d} of the tensor of shape {x.shape} is empty")
    idx = (np.argmax if largest else np.argmin)(x.data, axis=d, keepdims=True)
    values = TakeAlongDim.apply(x, indices=idx, dim=d)
    if not keepdim:
        values, idx = values.squeeze(d), idx.squeeze(d)
    return MinMax(values, Tensor._make(idx.astype(np.int64)))
