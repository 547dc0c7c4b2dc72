"""Tensor ops: one `Function` per op, its forward next to its backward.

Backward rules are written in Tensor ops, so the engine can record them when
`create_graph=True` (gradients of gradients). Tensor's methods and operators call these.
`SAVES` says which tensors each backward reads (checked for in-place changes).
"""
from __future__ import annotations

from collections import namedtuple

import numpy as np

from . import dtypes, kernels
from .errors import DTypeError, IndexOutOfRangeError, InvalidArgumentError, ShapeError, dim_out_of_range
from .tensor import Function, Tensor

# ----------------------------------------------------------------------------- helpers

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


def _cast(x, dt) -> Tensor:
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


def _float_scalar(x, like) -> Tensor | None:
    """The common case, a float tensor with a Python number: the number in the tensor's dtype."""
    if type(x) in (float, int) and type(like) is not type(x) and like.data.dtype.kind == "f":
        return Tensor._constant(np.array(x, dtype=like.data.dtype))
    return None


def binary(cls, a, b) -> Tensor:
    """cls.apply(a, b) after PyTorch's type promotion; a or b may be a number, a list or an array."""
    if isinstance(a, (list, tuple)):
        a = Tensor(a)
    if isinstance(b, (list, tuple)):
        b = Tensor(b)
    if isinstance(a, Tensor):
        if isinstance(b, Tensor):
            if a.dtype == b.dtype and (a.dtype.kind == "f" or cls is not Div):
                return cls.apply(a, b)
        elif (c := _float_scalar(b, a)) is not None:
            return cls.apply(a, c)
    elif isinstance(b, Tensor) and (c := _float_scalar(a, b)) is not None:
        return cls.apply(c, b)
    dt = dtypes.result_type(a, b)
    if cls is Div and dt.kind != "f":  # true division of integers gives the default float dtype
        dt = dtypes.get_default_dtype()
    return cls.apply(_cast(a, dt), _cast(b, dt))


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
    n = max(ndim, 1)
    out = []
    for d in dims:
        if not isinstance(d, (int, np.integer)) or not -n <= d < n:
            raise dim_out_of_range(op, d, ndim)
        if int(d) % n in out:
            raise InvalidArgumentError(f"{op}: dim {int(d) % n} appears more than once in the list of dims {dims}")
        out.append(int(d) % n)
    return tuple(sorted(out)) if ndim else ()


def _keepdim_shape(shape, dims):
    return tuple(1 if i in dims else s for i, s in enumerate(shape))


# ----------------------------------------------------------------------------- arithmetic


class Add(Function):
    """a + b with broadcasting; each gradient is summed back to its input's shape."""

    def forward(self, a, b):
        return broadcasting("add", np.add, a, b)

    def backward(self, g):
        a, b = self.inputs
        ga = unbroadcast(g, a.shape) if self.needs_input_grad[0] else None
        gb = unbroadcast(g, b.shape) if self.needs_input_grad[1] else None
        return ga, gb


class Sub(Function):
    """a - b with broadcasting."""

    def forward(self, a, b):
        return broadcasting("sub", np.subtract, a, b)

    def backward(self, g):
        a, b = self.inputs
        ga = unbroadcast(g, a.shape) if self.needs_input_grad[0] else None
        gb = unbroadcast(-g, b.shape) if self.needs_input_grad[1] else None
        return ga, gb


class Mul(Function):
    """a * b with broadcasting."""

    SAVES = {0: (1,), 1: (0,)}

    def forward(self, a, b):
        return broadcasting("mul", np.multiply, a, b)

    def backward(self, g):
        a, b = self.inputs
        ga = unbroadcast(g * b, a.shape) if self.needs_input_grad[0] else None
        gb = unbroadcast(g * a, b.shape) if self.needs_input_grad[1] else None
        return ga, gb


class Div(Function):
    """a / b with broadcasting (`binary` gives integer operands the default float dtype first)."""

    SAVES = {0: (1,), 1: (0, 1)}

    def forward(self, a, b):
        with np.errstate(divide="ignore", invalid="ignore"):  # x / 0 is inf or nan, silently, as in PyTorch
            return broadcasting("div", np.true_divide, a, b)

    def backward(self, g):
        a, b = self.inputs
        ga = unbroadcast(g / b, a.shape) if self.needs_input_grad[0] else None
        gb = unbroadcast(-g * a / (b * b), b.shape) if self.needs_input_grad[1] else None
        return ga, gb


class Pow(Function):
    """a ** b with broadcasting. As in PyTorch, d/da is 0 where b == 0 and d/db is 0 where
    a == 0 and b >= 0 (instead of the 0 * inf = nan of the plain formulas)."""

    SAVES = {0: (0, 1), 1: (0, 1, "out")}

    def forward(self, a, b):
        if a.dtype.kind in "iu" and b.dtype.kind in "iu" and np.any(b < 0):
            raise InvalidArgumentError("pow: integers to negative integer powers are not allowed")
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return broadcasting("pow", np.power, a, b)

    def backward(self, g):
        a, b = self.inputs
        zero = Tensor._constant(np.zeros((), dtype=g.dtype))
        ga = gb = None
        with np.errstate(divide="ignore", invalid="ignore"):  # the values where() replaces
            if self.needs_input_grad[0]:
                ga = unbroadcast(where(b.data == 0, zero, g * b * a ** (b - 1)), a.shape)
            if self.needs_input_grad[1]:
                gb = unbroadcast(where((a.data == 0) & (b.data >= 0), zero, g * self.output * a.log()), b.shape)
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
    SAVES = {0: (1,), 1: (0,)}

    def forward(self, a, b):
        if a.ndim == 0 or b.ndim == 0:
            raise ShapeError(f"matmul: both operands need at least 1 dimension, got shapes {a.shape} and {b.shape}")
        if a.dtype != b.dtype:
            raise DTypeError(f"matmul: both operands must have the same dtype, got {a.dtype} and {b.dtype}; "
                             f"cast one with .to()")
        ka = a.shape[-1]
        kb = b.shape[0] if b.ndim == 1 else b.shape[-2]
        if ka != kb:
            raise ShapeError(f"matmul: shapes {a.shape} and {b.shape} cannot be multiplied ({ka} != {kb})")
        try:
            return np.matmul(a, b)
        except ValueError:
            raise ShapeError(f"matmul: batch dimensions of {a.shape} and {b.shape} cannot be broadcast") from None

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

    SAVES = {0: ("out",)}

    def forward(self, a):
        with np.errstate(over="ignore"):  # exp(1000) is inf, silently, as in PyTorch
            return np.exp(a)

    def backward(self, g):
        return g * self.output


class Log(Function):
    """log(a)."""

    SAVES = {0: (0,)}

    def forward(self, a):
        with np.errstate(divide="ignore", invalid="ignore"):  # log(0) = -inf, log(-1) = nan, as in PyTorch
            return np.log(a)

    def backward(self, g):
        return g / self.inputs[0]


class Sqrt(Function):
    """sqrt(a); backward reuses the output."""

    SAVES = {0: ("out",)}

    def forward(self, a):
        with np.errstate(invalid="ignore"):  # sqrt(-1) is nan, silently, as in PyTorch
            return np.sqrt(a)

    def backward(self, g):
        return g / (self.output * 2.0)


class Tanh(Function):
    """tanh(a); backward reuses the output."""

    SAVES = {0: ("out",)}

    def forward(self, a):
        return np.tanh(a)

    def backward(self, g):
        y = self.output
        return g * (1.0 - y * y)


class Sigmoid(Function):
    """1 / (1 + exp(-a)), computed without overflow; backward reuses the output."""

    SAVES = {0: ("out",)}

    def forward(self, a):
        # exp of a non-positive number only: no overflow for large |a|
        e = np.exp(-np.abs(a))
        return np.where(a >= 0, 1 / (1 + e), e / (1 + e)).astype(a.dtype, copy=False)

    def backward(self, g):
        y = self.output
        return g * y * (1.0 - y)


class Relu(Function):
    """max(a, 0); the gradient passes where the output is not <= 0 (positive or NaN, as in PyTorch).
    Backward reads a mask kept from forward; like PyTorch (which reads the output) it refuses
    to run if the output was changed in place."""

    SAVES = {0: ("out",)}

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

    SAVES = {0: (0,)}

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

    HEAVY_ATTRS = ("cond",)

    def forward(self, a, b, cond):
        try:
            return np.where(cond, a, b)
        except ValueError:
            raise ShapeError(f"where: condition {cond.shape}, a {a.shape} and b {b.shape} cannot be broadcast "
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
        self.dims = norm_dims(dim, a.ndim, "sum")
        return np.sum(a, axis=self.dims, keepdims=keepdim, dtype=np.int64 if a.dtype.kind in "biu" else None)

    def backward(self, g):
        a = self.inputs[0]
        return g.reshape(_keepdim_shape(a.shape, self.dims)).expand(*a.shape)


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
        return g.reshape(_keepdim_shape(a.shape, self.dims)) * Tensor._constant(self.share)


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


# ----------------------------------------------------------------------------- shapes


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


class Clone(Function):
    """A copy with its own memory; the gradient passes through."""

    def forward(self, a):
        return a.copy()

    def backward(self, g):
        return g


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


class Clamp(Function):
    """a clamped to [lo, hi] (numbers, either may be None); the gradient passes where lo <= a <= hi."""

    SAVES = {0: (0,)}

    def forward(self, a, lo=None, hi=None):
        out = a
        if lo is not None:
            out = np.maximum(out, np.asarray(lo).astype(a.dtype))
        if hi is not None:
            out = np.minimum(out, np.asarray(hi).astype(a.dtype))
        return out.copy() if out is a else out

    def backward(self, g):
        a, lo, hi = self.inputs[0].data, self.attrs.get("lo"), self.attrs.get("hi")
        keep = np.ones(a.shape, dtype=bool)
        if lo is not None:
            keep &= a >= lo
        if hi is not None:
            keep &= a <= hi
        return g * Tensor._constant(keep)


class Maximum(Function):
    """Elementwise max of a and b with broadcasting; where they tie, each gets half the gradient."""

    SAVES = {0: (0, 1), 1: (0, 1)}
    PICK, WINS = staticmethod(np.maximum), staticmethod(np.greater)

    def forward(self, a, b):
        return broadcasting(self.op_name, self.PICK, a, b)

    def backward(self, g):
        a, b = self.inputs
        share = np.where(self.WINS(a.data, b.data), 1.0, np.where(a.data == b.data, 0.5, 0.0)).astype(g.dtype)
        ga = unbroadcast(g * Tensor._constant(share), a.shape) if self.needs_input_grad[0] else None
        gb = unbroadcast(g * Tensor._constant(1 - share), b.shape) if self.needs_input_grad[1] else None
        return ga, gb


class Minimum(Maximum):
    """Elementwise min of a and b with broadcasting; where they tie, each gets half the gradient."""

    PICK, WINS = staticmethod(np.minimum), staticmethod(np.less)


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


# ----------------------------------------------------------------------------- functions


def cat(tensors, dim=0) -> Tensor:
    """Join tensors along an existing dim (in their promoted dtype). Shapes must match elsewhere."""
    tensors = [as_tensor(t) for t in tensors]
    dt = dtypes.result_type(*tensors) if tensors else None
    return Cat.apply(*[_cast(t, dt) for t in tensors], dim=dim)


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


def where(condition, input, other) -> Tensor:
    """Elements of `input` where `condition` is true, else of `other` (differentiable in both)."""
    cond = np.array(condition.data if isinstance(condition, Tensor) else condition, dtype=bool)  # a copy
    dt = dtypes.result_type(input, other)
    return Where.apply(_cast(input, dt), _cast(other, dt), cond=cond)
