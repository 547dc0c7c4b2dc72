"""Tensor ops: one `Function` per op, its forward next to its backward.

Backward rules are written in Tensor ops, so the engine can record them when
`create_graph=True` (gradients of gradients). Tensor's methods and operators call these.
"""
from __future__ import annotations

import numpy as np

from . import kernels
from .tensor import Function, Tensor

# ----------------------------------------------------------------------------- helpers


def as_tensor(x, like: Tensor | None = None) -> Tensor:
    """`x` as a Tensor; a Python scalar takes `like`'s floating dtype (no float64 promotion)."""
    if isinstance(x, Tensor):
        return x
    if isinstance(x, (bool, int, float)) and like is not None:
        if np.issubdtype(like.dtype, np.floating):
            return Tensor._constant(np.asarray(x, dtype=like.dtype))
        if isinstance(x, float):
            return Tensor._constant(np.asarray(x, dtype=np.float32))
        return Tensor._constant(np.asarray(x, dtype=like.dtype if not isinstance(x, bool) else bool))
    if isinstance(x, (np.ndarray, np.generic)):
        return Tensor._make(np.asarray(x))
    return Tensor(x)


def unbroadcast(g: Tensor, shape: tuple) -> Tensor:
    """Sum `g` over the axes that broadcasting added or stretched, back to `shape`."""
    if g.shape == shape:
        return g
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, s in enumerate(shape) if s == 1 and g.shape[lead + i] != 1)
    return g.sum(dim=axes).reshape(shape) if axes else g.reshape(shape)


def _broadcasting(op: str, fn, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """fn(a, b); a broadcast failure is reported with the op's name and both shapes."""
    try:
        return fn(a, b)
    except ValueError:
        try:
            np.broadcast_shapes(a.shape, b.shape)
        except ValueError:
            raise ValueError(f"{op}: shapes {a.shape} and {b.shape} cannot be broadcast together") from None
        raise


def _norm_dims(dim, ndim: int, op: str):
    """`dim` (None, int or tuple) as a sorted tuple of non-negative axes."""
    if dim is None:
        return tuple(range(ndim))
    dims = (dim,) if isinstance(dim, (int, np.integer)) else tuple(dim)
    out = []
    for d in dims:
        if not -max(ndim, 1) <= d < max(ndim, 1):
            raise ValueError(f"{op}: dim {d} is out of range for a tensor with {ndim} dimensions")
        out.append(int(d) % max(ndim, 1))
    return tuple(sorted(set(out)))


def _keepdim_shape(shape, dims):
    return tuple(1 if i in dims else s for i, s in enumerate(shape))


# ----------------------------------------------------------------------------- arithmetic


class Add(Function):
    """a + b with broadcasting; each gradient is summed back to its input's shape."""

    def forward(self, a, b):
        return _broadcasting("add", np.add, a, b)

    def backward(self, g):
        a, b = self.inputs
        ga = unbroadcast(g, a.shape) if self.needs_input_grad[0] else None
        gb = unbroadcast(g, b.shape) if self.needs_input_grad[1] else None
        return ga, gb


class Sub(Function):
    """a - b with broadcasting."""

    def forward(self, a, b):
        return _broadcasting("sub", np.subtract, a, b)

    def backward(self, g):
        a, b = self.inputs
        ga = unbroadcast(g, a.shape) if self.needs_input_grad[0] else None
        gb = unbroadcast(-g, b.shape) if self.needs_input_grad[1] else None
        return ga, gb


class Mul(Function):
    """a * b with broadcasting."""

    def forward(self, a, b):
        return _broadcasting("mul", np.multiply, a, b)

    def backward(self, g):
        a, b = self.inputs
        ga = unbroadcast(g * b, a.shape) if self.needs_input_grad[0] else None
        gb = unbroadcast(g * a, b.shape) if self.needs_input_grad[1] else None
        return ga, gb


class Div(Function):
    """a / b with broadcasting; int / int gives float32."""

    def forward(self, a, b):
        out = _broadcasting("div", np.true_divide, a, b)
        if a.dtype.kind in "iub" and b.dtype.kind in "iub":
            out = out.astype(np.float32)  # int / int is float32, as in PyTorch
        return out

    def backward(self, g):
        a, b = self.inputs
        ga = unbroadcast(g / b, a.shape) if self.needs_input_grad[0] else None
        gb = unbroadcast(-g * a / (b * b), b.shape) if self.needs_input_grad[1] else None
        return ga, gb


class Pow(Function):
    """a ** b with broadcasting; d/db uses log(a), so it needs a > 0 where b requires grad."""

    def forward(self, a, b):
        return _broadcasting("pow", np.power, a, b)

    def backward(self, g):
        a, b = self.inputs
        ga = unbroadcast(g * b * a ** (b - 1), a.shape) if self.needs_input_grad[0] else None
        gb = unbroadcast(g * self.output * a.log(), b.shape) if self.needs_input_grad[1] else None
        return ga, gb


class Neg(Function):
    """-a."""

    def forward(self, a):
        return -a

    def backward(self, g):
        return -g


def _transposed(a: np.ndarray) -> bool:
    """True for a 2-D array laid out column-major (and not also row-major)."""
    return a.flags.f_contiguous and not a.flags.c_contiguous


class MatMul(Function):
    """`a @ b` with numpy's rules: 2-D, batched (broadcast batch dims) and 1-D vectors.

    The gradient of a transposed 2-D `a` (say conv features flattened with the batch
    innermost) is computed transposed, so it comes back in a's layout.
    """

    OP_NAME = "matmul"

    def forward(self, a, b):
        if a.ndim == 0 or b.ndim == 0:
            raise ValueError(f"matmul: both operands need at least 1 dimension, got shapes {a.shape} and {b.shape}")
        ka = a.shape[-1]
        kb = b.shape[0] if b.ndim == 1 else b.shape[-2]
        if ka != kb:
            raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not match ({ka} != {kb})")
        try:
            return np.matmul(a, b)
        except ValueError:
            raise ValueError(f"matmul: batch dimensions of {a.shape} and {b.shape} cannot be broadcast") from None

    def backward(self, g):
        a, b = self.inputs
        a2 = a.unsqueeze(0) if a.ndim == 1 else a
        b2 = b.unsqueeze(-1) if b.ndim == 1 else b
        g2 = g.unsqueeze(-1) if b.ndim == 1 else g
        g2 = g2.unsqueeze(-2) if a.ndim == 1 else g2
        ga = gb = None
        if self.needs_input_grad[0]:
            ga = (b2 @ g2.mT).mT if a.ndim == b.ndim == 2 and _transposed(a.data) else g2 @ b2.mT
            ga = unbroadcast(ga.squeeze(-2) if a.ndim == 1 else ga, a.shape)
        if self.needs_input_grad[1]:
            gb = a2.mT @ g2
            gb = unbroadcast(gb.squeeze(-1) if b.ndim == 1 else gb, b.shape)
        return ga, gb


# ----------------------------------------------------------------------------- elementwise


class Exp(Function):
    """exp(a); backward reuses the output."""

    def forward(self, a):
        return np.exp(a)

    def backward(self, g):
        return g * self.output


class Log(Function):
    """log(a)."""

    def forward(self, a):
        return np.log(a)

    def backward(self, g):
        return g / self.inputs[0]


class Sqrt(Function):
    """sqrt(a); backward reuses the output."""

    def forward(self, a):
        return np.sqrt(a)

    def backward(self, g):
        return g / (self.output * 2.0)


class Tanh(Function):
    """tanh(a); backward reuses the output."""

    def forward(self, a):
        return np.tanh(a)

    def backward(self, g):
        y = self.output
        return g * (1.0 - y * y)


class Sigmoid(Function):
    """1 / (1 + exp(-a)), computed without overflow; backward reuses the output."""

    def forward(self, a):
        # exp of a non-positive number only: no overflow for large |a|
        e = np.exp(-np.abs(a))
        return np.where(a >= 0, 1 / (1 + e), e / (1 + e)).astype(a.dtype, copy=False)

    def backward(self, g):
        y = self.output
        return g * y * (1.0 - y)


class Relu(Function):
    """max(a, 0); the gradient passes where the output is not <= 0 (positive or NaN, as in PyTorch)."""

    def forward(self, a):
        out = _max0(a)
        if self.needs_input_grad[0]:  # a quarter of the output's bytes, read back in backward
            self.mask = out != 0  # out >= 0 or NaN, so this is "not out <= 0" in one pass
        return out

    def backward(self, g):
        if self.grad_is_free:  # mask the gradient in place: no new array for a large activation
            np.multiply(g.data, self.mask, out=g.data)
            return g
        return g * Tensor._constant(self.mask)  # float * bool keeps g's dtype


_ZERO_ROW = 16384
_zero_rows: dict = {}


def _max0(a: np.ndarray) -> np.ndarray:
    """np.maximum(a, 0), NaN kept, in a's layout. numpy (2.4) vectorizes `maximum` only when
    both operands are arrays, not against a scalar, so a large dense float array is compared,
    as rows of 16384, with one cached row of zeros: 2.4x faster on a (100, 30, 24, 24) float32."""
    if a.size < 2 * _ZERO_ROW or a.dtype.kind != "f":
        return np.maximum(a, a.dtype.type(0))
    if not a.flags.c_contiguous:  # a dense array with permuted axes (conv2d's output): work in memory order
        order = kernels.memory_order(a)
        dense = a.transpose(order)
        if not dense.flags.c_contiguous:
            return np.maximum(a, a.dtype.type(0))
        return _max0(dense).transpose(np.argsort(order))
    zeros = _zero_rows.get(a.dtype)
    if zeros is None:
        zeros = _zero_rows[a.dtype] = np.zeros(_ZERO_ROW, dtype=a.dtype)
        zeros.flags.writeable = False
    out = np.empty_like(a)
    flat, dst = a.reshape(-1), out.reshape(-1)
    whole = flat.size - flat.size % _ZERO_ROW
    np.maximum(flat[:whole].reshape(-1, _ZERO_ROW), zeros, out=dst[:whole].reshape(-1, _ZERO_ROW))
    np.maximum(flat[whole:], zeros[:flat.size - whole], out=dst[whole:])
    return out


class Abs(Function):
    """|a|; gradient sign(a) (0 at 0)."""

    def forward(self, a):
        return np.abs(a)

    def backward(self, g):
        return g * Tensor._constant(np.sign(self.inputs[0].data))


class Cast(Function):
    """Change of dtype; the gradient is cast back."""

    def forward(self, a, dtype):
        return a.astype(dtype)

    def backward(self, g):
        return g.to(self.inputs[0].dtype)


class Where(Function):
    """cond ? a : b (cond an attribute, not differentiable)."""

    def forward(self, a, b, cond):
        try:
            return np.where(cond, a, b)
        except ValueError:
            raise ValueError(f"where: condition {cond.shape}, a {a.shape} and b {b.shape} cannot be broadcast "
                             "together") from None

    def backward(self, g):
        a, b = self.inputs
        m = Tensor._constant(self.attrs["cond"].astype(g.dtype))
        ga = unbroadcast(g * m, a.shape) if self.needs_input_grad[0] else None
        gb = unbroadcast(g * (1.0 - m), b.shape) if self.needs_input_grad[1] else None
        return ga, gb


# ----------------------------------------------------------------------------- reductions


class Sum(Function):
    """Sum over dims; backward broadcasts the gradient back."""

    def forward(self, a, dim=None, keepdim=False):
        self.dims = _norm_dims(dim, a.ndim, "sum")
        return np.sum(a, axis=self.dims, keepdims=keepdim)

    def backward(self, g):
        a = self.inputs[0]
        return g.reshape(_keepdim_shape(a.shape, self.dims)).expand(*a.shape)


class Amax(Function):
    """Max over `dim`; ties share the gradient equally (as in PyTorch's amax)."""

    def forward(self, a, dim=None, keepdim=False):
        if a.size == 0:
            raise ValueError(f"amax: tensor of shape {a.shape} is empty")
        self.dims = _norm_dims(dim, a.ndim, "amax")
        out = np.amax(a, axis=self.dims, keepdims=True)
        mask = a == out
        self.share = (mask / mask.sum(axis=self.dims, keepdims=True)).astype(a.dtype)
        return out if keepdim else out.reshape([s for i, s in enumerate(a.shape) if i not in self.dims])

    def backward(self, g):
        a = self.inputs[0]
        return g.reshape(_keepdim_shape(a.shape, self.dims)) * Tensor._constant(self.share)


# ----------------------------------------------------------------------------- shapes


class Reshape(Function):
    """A new shape for the same elements."""

    def forward(self, a, shape):
        try:
            return a.reshape(shape)
        except ValueError:
            raise ValueError(f"reshape: cannot reshape a tensor of shape {a.shape} ({a.size} elements) "
                             f"into {shape}") from None

    def backward(self, g):
        return g.reshape(self.inputs[0].shape)


class Permute(Function):
    """Dimensions reordered; backward applies the inverse permutation."""

    def forward(self, a, dims):
        if sorted(d % max(a.ndim, 1) for d in dims) != list(range(a.ndim)):
            raise ValueError(f"permute: dims {dims} are not a permutation of the {a.ndim} dimensions of {a.shape}")
        self.dims = tuple(d % a.ndim for d in dims)
        return a.transpose(self.dims)

    def backward(self, g):
        return g.permute(*np.argsort(self.dims).tolist())


class Expand(Function):
    """Broadcast to a larger shape; backward sums back."""

    def forward(self, a, shape):
        try:
            return np.broadcast_to(a, shape)
        except ValueError:
            raise ValueError(f"expand: a tensor of shape {a.shape} cannot be expanded to {shape}") from None

    def backward(self, g):
        return unbroadcast(g, self.inputs[0].shape)


def _index_arrays(index):
    """A Tensor-free index: Tensors in it become arrays."""
    if isinstance(index, tuple):
        return tuple(i.data if isinstance(i, Tensor) else i for i in index)
    return index.data if isinstance(index, Tensor) else index


def _is_basic(index) -> bool:
    items = index if isinstance(index, tuple) else (index,)
    return all(i is None or i is Ellipsis or isinstance(i, (int, np.integer, slice)) for i in items)


class GetItem(Function):
    """a[index] for ints, slices, None, Ellipsis, integer and boolean arrays."""

    def forward(self, a, index):
        try:
            return a[index]
        except IndexError as e:
            raise ValueError(f"index {index!r} is invalid for a tensor of shape {a.shape}: {e}") from None

    def backward(self, g):
        return IndexAdd.apply(g, index=self.attrs["index"], shape=self.inputs[0].shape)


class IndexAdd(Function):
    """A zero tensor of `shape` with `g` added at `index` (repeated indices add up)."""

    def forward(self, g, index, shape):
        out = np.zeros(shape, dtype=g.dtype)
        if _is_basic(index):
            out[index] = g
        else:
            np.add.at(out, index, g)
        return out

    def backward(self, gg):
        return gg[self.attrs["index"]]


class Cat(Function):
    """Concatenation along one dim; backward slices the gradient."""

    def forward(self, *arrays, dim=0):
        if not arrays:
            raise ValueError("cat: needs at least one tensor")
        ref = arrays[0]
        d = _norm_dims(dim, ref.ndim, "cat")[0]
        for i, x in enumerate(arrays):
            if x.ndim != ref.ndim or x.shape[:d] + x.shape[d + 1:] != ref.shape[:d] + ref.shape[d + 1:]:
                raise ValueError(f"cat: tensor {i} has shape {x.shape}, which does not match {ref.shape} "
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
            raise ValueError(f"pad: {pad} must have an even length of at most 2*{a.ndim}")
        if any(p < 0 for p in pad):
            raise ValueError(f"pad: negative padding {pad} is not supported")
        widths = [(0, 0)] * a.ndim
        for i in range(len(pad) // 2):
            widths[a.ndim - 1 - i] = (pad[2 * i], pad[2 * i + 1])
        self.crop = tuple(slice(lo, lo + s) for (lo, _), s in zip(widths, a.shape))
        return np.pad(a, widths, constant_values=value)

    def backward(self, g):
        return g[self.crop]


# ----------------------------------------------------------------------------- functions


def cat(tensors, dim=0) -> Tensor:
    """Join tensors along an existing dim. Shapes must match elsewhere."""
    tensors = list(tensors)
    return Cat.apply(*[as_tensor(t) for t in tensors], dim=dim)


def stack(tensors, dim=0) -> Tensor:
    """Join same-shaped tensors along a new dim."""
    tensors = [as_tensor(t) for t in tensors]
    if not tensors:
        raise ValueError("stack: needs at least one tensor")
    for i, t in enumerate(tensors):
        if t.shape != tensors[0].shape:
            raise ValueError(f"stack: tensor {i} has shape {t.shape}, tensor 0 has {tensors[0].shape}")
    return cat([t.unsqueeze(dim) for t in tensors], dim=dim)


def pad(input, pad, mode="constant", value=0.0) -> Tensor:
    """`torch.nn.functional.pad` for mode='constant': pad=(left, right, top, bottom, ...)."""
    if mode != "constant":
        raise ValueError(f"pad: only mode='constant' is supported, got {mode!r}")
    return Pad.apply(input, pad=tuple(int(p) for p in pad), value=value)


def where(condition, input, other) -> Tensor:
    """Elements of `input` where `condition` is true, else of `other` (differentiable in both)."""
    cond = np.asarray(condition.data if isinstance(condition, Tensor) else condition, dtype=bool)
    a = as_tensor(input)
    return Where.apply(a, as_tensor(other, a), cond=cond)
