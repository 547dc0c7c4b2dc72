"""Indexing with PyTorch's rules: x[index], its gradient, x[index] = v, and copy_."""
from __future__ import annotations

import numpy as np

from ..errors import IndexOutOfRangeError, ShapeError
from ..tensor import Function, Tensor
from .helpers import unbroadcast


def _index_item(i):
    """One item of an index, as numpy takes it: Tensors and lists become arrays, a 0-d integer
    array an int (PyTorch selects with it, as with an int)."""
    if isinstance(i, Tensor):
        i = i.data
    elif isinstance(i, list):
        i = np.array([x.data if isinstance(x, Tensor) else x for x in i]) if i else np.zeros(0, np.int64)
    if isinstance(i, np.ndarray):
        if i.dtype.kind not in "biu":
            raise IndexOutOfRangeError(f"tensors used as indices must be integer or bool, got dtype {i.dtype}")
        if i.ndim == 0 and i.dtype.kind != "b":
            return int(i)
        return i.copy()  # the index at forward time, whatever happens to the caller's array later
    return i


def torch_index(index) -> tuple:
    """PyTorch's indexing as numpy indexing steps, applied in turn. They differ when ints and
    arrays are mixed: PyTorch selects with the ints first and then indexes what is left with
    the arrays (x[0, :, idx] has shape (x.shape[1], len(idx))); numpy broadcasts ints with the
    arrays. Without that mix, one step, the index itself."""
    items = [_index_item(i) for i in (index if isinstance(index, tuple) else (index,))]
    arrays = any(isinstance(i, np.ndarray) for i in items)
    ints = any(isinstance(i, (int, np.integer)) and not isinstance(i, bool) for i in items)
    if not (arrays and ints):
        return (tuple(items),)
    select, rest = [], []
    for i in items:
        if isinstance(i, np.ndarray):  # kept for the second step; a k-d bool mask spans k dims
            select.extend([slice(None)] * (i.ndim if i.dtype.kind == "b" else 1))
            rest.append(i)
        elif isinstance(i, (int, np.integer)) and not isinstance(i, bool):
            select.append(i)
        else:  # slice, None, Ellipsis: applied in the first step, spanned by the second
            select.append(i)
            rest.append(Ellipsis if i is Ellipsis else slice(None))
    return tuple(select), tuple(rest)


def _is_basic(step) -> bool:
    return all(i is None or i is Ellipsis or isinstance(i, (int, np.integer, slice)) for i in step)


def index_view(a: np.ndarray, steps: tuple, op: str) -> tuple:
    """(the array that the last step indexes: a view of `a` after the first steps, the last step)."""
    try:
        for step in steps[:-1]:
            a = a[step]
        return a, steps[-1]
    except IndexError as e:
        raise IndexOutOfRangeError(f"{op}: index {steps} is invalid for a tensor of shape {a.shape}: {e}") from None


def _indexed(a: np.ndarray, steps: tuple, op: str) -> np.ndarray:
    view, last = index_view(a, steps, op)
    try:
        return view[last]
    except IndexError as e:
        raise IndexOutOfRangeError(f"{op}: index {last} is invalid for a tensor of shape {view.shape}: {e}") from None


class GetItem(Function):
    """a[index] with PyTorch's rules (see `torch_index`): ints, slices, None, Ellipsis, integer
    and boolean arrays. Basic indexes give a view of the input."""

    HEAVY_ATTRS = ("steps",)

    IS_VIEW = True

    def forward(self, a, steps):
        return _indexed(a, steps, "index")

    def backward(self, g):
        return IndexAdd.apply(g, steps=self.attrs["steps"], shape=self.inputs[0].shape)


class IndexAdd(Function):
    """A zero tensor of `shape` with `g` added at the index `steps` (repeated indices add up)."""

    HEAVY_ATTRS = ("steps",)

    def forward(self, g, steps, shape):
        out = np.zeros(shape, dtype=g.dtype)
        view, last = index_view(out, steps, "index")
        if _is_basic(last):
            view[last] = g
        else:
            np.add.at(view, last, g)
        return out

    def backward(self, gg):
        return GetItem.apply(gg, steps=self.attrs["steps"])


class SetItem(Function):
    """a with a[index] = v (v broadcast to the indexed shape). The gradient to a is zero at the
    index; to v, the gradient at the index summed back to v's shape."""

    HEAVY_ATTRS = ("steps",)

    def forward(self, a, v, steps):
        out = a.copy()
        view, last = index_view(out, steps, "setitem")
        try:
            view[last] = v
        except IndexError as e:
            raise IndexOutOfRangeError(f"setitem: index {last} is invalid for a tensor of shape {view.shape}: {e}") from None
        except ValueError:
            raise ShapeError(f"setitem: a value of shape {v.shape} cannot be broadcast to the indexed shape "
                             f"{view[last].shape}") from None
        return out

    def backward(self, g):
        steps = self.attrs["steps"]
        a, v = self.inputs
        ga = gv = None
        if self.needs_input_grad[0]:
            ga = SetItem.apply(g, Tensor._constant(np.zeros((), dtype=g.dtype)), steps=steps)
        if self.needs_input_grad[1]:
            gv = unbroadcast(GetItem.apply(g, steps=steps), v.shape)
        return ga, gv


class Copy(Function):
    """`dst.copy_(src)`: src broadcast to dst's shape. dst's old values get a zero gradient."""

    def forward(self, dst, src):
        try:
            return np.broadcast_to(src, dst.shape).astype(dst.dtype)
        except ValueError:
            raise ShapeError(f"copy_: a source of shape {src.shape} cannot be broadcast to {dst.shape}") from None

    def backward(self, g):
        gd = Tensor._constant(np.zeros(g.shape, g.dtype)) if self.needs_input_grad[0] else None  # as PyTorch: zeros
        return gd, unbroadcast(g, self.inputs[1].shape) if self.needs_input_grad[1] else None
