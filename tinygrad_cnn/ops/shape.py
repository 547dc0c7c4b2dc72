"""Shape ops: reshape, permute and expand (views), cat, stack and constant padding."""
from __future__ import annotations

import numpy as np

from .. import dtypes
from ..errors import ShapeError, dim_out_of_range
from ..tensor import Function, Tensor
from .helpers import as_tensor, cast_operand, norm_dims, unbroadcast


class Reshape(Function):
    """A new shape for the same elements (a view of the input where numpy can)."""

    IS_VIEW = True

    def forward(self, a, shape):
        try:
            return a.reshape(shape)
        except ValueError:
            raise ShapeError(f"reshape: shape {shape} is invalid for a tensor of shape {a.shape} "
                             f"({a.size} elements)") from None

    def backward(self, g):
        return g.reshape(self.inputs[0].shape)


class Permute(Function):
    """Dimensions reordered (a view); backward applies the inverse permutation."""

    IS_VIEW = True

    def forward(self, a, dims):
        if len(dims) != a.ndim:
            raise ShapeError(f"permute: {len(dims)} dims {dims} given for a tensor with {a.ndim} dimensions {a.shape}")
        for d in dims:
            if not -max(a.ndim, 1) <= d < max(a.ndim, 1):
                raise dim_out_of_range("permute", d, a.ndim)
        if sorted(d % max(a.ndim, 1) for d in dims) != list(range(a.ndim)):
            raise ShapeError(f"permute: dims {dims} are not a permutation of the {a.ndim} dimensions of {a.shape}")
        self.dims = tuple(d % a.ndim for d in dims)
        return a.transpose(self.dims)

    def backward(self, g):
        return g.permute(*np.argsort(self.dims).tolist())


class Expand(Function):
    """Broadcast to a larger shape (a read-only view); backward sums back."""

    IS_VIEW = True

    def forward(self, a, shape):
        try:
            return np.broadcast_to(a, shape)
        except ValueError:
            raise ShapeError(f"expand: a tensor of shape {a.shape} cannot be expanded to {shape}") from None

    def backward(self, g):
        return unbroadcast(g, self.inputs[0].shape)


class Cat(Function):
    """Concatenation along one dim; backward slices the gradient."""

    def forward(self, *arrays, dim=0):
        if not arrays:
            raise ShapeError("cat: needs at least one tensor")
        ref = arrays[0]
        d = norm_dims(dim, ref.ndim, "cat")[0]
        for i, x in enumerate(arrays):
            if x.ndim != ref.ndim or x.shape[:d] + x.shape[d + 1:] != ref.shape[:d] + ref.shape[d + 1:]:
                raise ShapeError(f"cat: tensor {i} has shape {x.shape}, which does not match {ref.shape} "
                                 f"outside dim {d}")
        self.dim = d
        return np.concatenate(arrays, axis=d)

    def backward(self, g):
        grads, start = [], 0
        for t, need in zip(self.inputs, self.needs_input_grad):
            stop = start + t.shape[self.dim]
            idx = (slice(None),) * self.dim + (slice(start, stop),)
            grads.append(g[idx] if need else None)
            start = stop
        return tuple(grads)


class Pad(Function):
    """Constant padding; `pad` lists (before, after) pairs from the last dim backwards, as in PyTorch."""

    def forward(self, a, pad, value=0.0):
        if len(pad) % 2 or len(pad) // 2 > a.ndim:
            raise ShapeError(f"pad: {pad} must have an even length of at most 2*{a.ndim}")
        if any(p < 0 for p in pad):
            raise ValueError(f"pad: negative padding {pad} is not supported")
        widths = [(0, 0)] * a.ndim
        for i in range(len(pad) // 2):
            widths[a.ndim - 1 - i] = (pad[2 * i], pad[2 * i + 1])
        self.crop = tuple(slice(lo, lo + s) for (lo, _), s in zip(widths, a.shape))
        return np.pad(a, widths, constant_values=value)

    def backward(self, g):
        return g[self.crop]


def cat(tensors, dim=0) -> Tensor:
    """Join tensors along an existing dim (in their promoted dtype). Shapes must match elsewhere."""
    tensors = [as_tensor(t) for t in tensors]
    dt = dtypes.result_type(*tensors) if tensors else None
    return Cat.apply(*[cast_operand(t, dt) for t in tensors], dim=dim)


def stack(tensors, dim=0) -> Tensor:
    """Join same-shaped tensors along a new dim."""
    tensors = [as_tensor(t) for t in tensors]
    if not tensors:
        raise ShapeError("stack: needs at least one tensor")
    for i, t in enumerate(tensors):
        if t.shape != tensors[0].shape:
            raise ShapeError(f"stack: tensor {i} has shape {t.shape}, tensor 0 has {tensors[0].shape}")
    return cat([t.unsqueeze(dim) for t in tensors], dim=dim)


def pad(input, pad, mode="constant", value=0.0) -> Tensor:
    """`torch.nn.functional.pad` for mode='constant': pad=(left, right, top, bottom, ...)."""
    if mode != "constant":
        raise ValueError(f"pad: only mode='constant' is supported, got {mode!r}")
    return Pad.apply(input, pad=tuple(int(p) for p in pad), value=value)
