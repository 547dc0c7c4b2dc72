"""Tensor: an n-dimensional numpy array that records the ops applied to it.

The graph and the backward pass live in `autograd/`; each op's forward and backward live
in `ops.py` (and the CNN ops in `functional.py`). Tensor's methods and operators call
those ops, with PyTorch's names, dtype promotion and error classes.
"""
from __future__ import annotations

import copy

import numpy as np

from . import dtypes
from ._device import device, parse_to  # noqa: F401  (device is re-exported)
from .autograd.function import Function, TensorMeta, version_counter  # noqa: F401  (re-exported)
from .autograd.grad_mode import (enable_grad, inference_mode, is_grad_enabled, no_grad, op_scope,  # noqa: F401
                                 set_grad_enabled)
from .errors import DTypeError, ShapeError, normalize_dim
from .tensor_inplace import InPlaceMethods

def _shape_arg(shape) -> tuple:
    """(2, 3), [2, 3] or 2, 3 as a tuple of ints."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = shape[0]
    return tuple(int(s) for s in shape)


def _dim_arg(dim, axis, keepdim, keepdims):
    """PyTorch accepts numpy's `axis` and `keepdims` for `dim` and `keepdim`."""
    if axis is not None:
        if dim is not None:
            raise TypeError("pass dim or axis, not both")
        dim = axis
    return dim, bool(keepdim if keepdims is None else keepdims)


class Tensor(InPlaceMethods):
    """An n-dimensional array that records the ops applied to it.

    `Tensor(data, requires_grad=False, dtype=None, name=None)`: data is a scalar, nested
    list, ndarray or Tensor (copied). Python floats become the default float dtype
    (float32), Python ints int64, bools bool; an ndarray keeps its dtype. Only floating
    tensors can require grad.
    """

    __array_priority__ = 1000  # ndarray op Tensor -> Tensor's reflected op
    # defaults; instances set their own when they differ
    _grad = None
    name = None
    _ctx = None
    _retains_grad = False
    _vc = None  # version counter (autograd.function.VersionCounter), made on first use
    _consumers = None  # weak references to the recorded ops that used this tensor
    _views = None  # weak references to the tensors that view this one's memory
    _meta = None  # what a freed graph keeps of this tensor (TensorMeta)
    _sources = None  # inputs of an unrecorded step inside a composite op (for drawing)
    _is_constant = False  # made by an op for its own arithmetic (a mask, a scalar): drawn inside the op
    _is_view = False  # made by a view op and sharing its input's memory
    _view_root = None  # a view's: weak reference to the tensor (not a view) whose memory it shares
    _stale = False  # a view whose base was since changed by a recorded in-place op
    _detached_in_place = False  # a non-leaf cut from the graph by detach_()

    def __init__(self, data, requires_grad=False, dtype=None, name=None):
        dtype = None if dtype is None else dtypes.as_dtype(dtype)
        if isinstance(data, Tensor):
            arr = data.data.copy() if dtype is None else data.data.astype(dtype)
        else:
            from_python = not isinstance(data, (np.ndarray, np.generic))
            try:
                arr = np.array(data, dtype=dtype)
            except (TypeError, ValueError) as e:
                raise TypeError(f"Tensor: cannot make an array from {type(data).__name__}: {e}") from None
            if dtype is None and from_python and arr.dtype == np.float64:
                arr = arr.astype(dtypes.get_default_dtype())
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"Tensor: data of dtype {arr.dtype} is not numeric (bool, int or float)")
        self.data = arr
        self.requires_grad = False
        self.requires_grad_(requires_grad)
        if name is not None:
            self.name = name

    @classmethod
    def _make(cls, data: np.ndarray, requires_grad: bool = False) -> "Tensor":
        t = cls.__new__(cls)
        t.data, t.requires_grad = data, requires_grad
        return t

    @classmethod
    def _constant(cls, data: np.ndarray) -> "Tensor":
        """A tensor that an op makes for its own arithmetic (a mask, a count, a scalar): drawn inside the op."""
        t = cls._make(data)
        t._is_constant = True
        return t

    # --- properties
    @property
    def shape(self) -> tuple:
        """Tuple of dimension sizes."""
        return self.data.shape

    def size(self, dim=None):
        """The shape (PyTorch's `size()`), or the size of dimension `dim`."""
        if dim is None:
            return self.data.shape
        return self.data.shape[self._dim(dim, "size")]

    @property
    def ndim(self) -> int:
        """Number of dimensions."""
        return self.data.ndim

    def dim(self) -> int:
        """Number of dimensions."""
        return self.data.ndim

    def numel(self) -> int:
        """Number of elements."""
        return self.data.size

    nelement = numel

    @property
    def dtype(self) -> np.dtype:
        """The numpy dtype of the data (`tinygrad_cnn.float32` is `np.dtype('float32')`)."""
        return self.data.dtype

    @property
    def device(self) -> str:
        """Where the data lives: always "cpu"."""
        return device("cpu")

    @property
    def grad(self):
        """The gradient backward accumulated here (a leaf's, or a non-leaf's after retain_grad), or None."""
        return self._grad

    @grad.setter
    def grad(self, value):
        if value is not None:
            if not isinstance(value, Tensor):
                raise TypeError(f"assigned grad must be a Tensor or None, got {type(value).__name__}")
            if value.shape != self.shape:
                raise ShapeError(f"assigned grad has shape {value.shape}, but the tensor has shape {self.shape}")
            if value.dtype != self.dtype:
                raise DTypeError(f"assigned grad has dtype {value.dtype}, but the tensor has dtype {self.dtype}")
        self._grad = value

    @property
    def is_leaf(self) -> bool:
        """True for tensors not made by a recorded op (user data, parameters)."""
        return self._ctx is None

    @property
    def grad_fn(self):
        """The Function that made this tensor, or None for a leaf."""
        return self._ctx

    @property
    def retains_grad(self) -> bool:
        """True when `.grad` is kept on this non-leaf tensor (see retain_grad)."""
        return self._retains_grad

    @property
    def _version(self) -> int:
        """How many in-place changes this tensor's memory has had (shared with its views)."""
        return version_counter(self).v

    def _bump_version(self) -> None:
        """Record an in-place change made to `.data` outside the Tensor's in-place methods."""
        version_counter(self).v += 1

    @property
    def T(self) -> "Tensor":
        """All dimensions reversed (the transpose of a matrix)."""
        return self.permute(*reversed(range(self.ndim)))

    @property
    def mT(self) -> "Tensor":
        """The last two dimensions swapped: (..., m, n) -> (..., n, m)."""
        return self.transpose(-2, -1)

    def _dim(self, dim, op: str) -> int:
        return normalize_dim(dim, self.ndim, op)

    # --- Python protocols
    def __len__(self):
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self.shape[0]))

    def __contains__(self, element):
        return bool(np.any(self.data == (element.data if isinstance(element, Tensor) else element)))

    def __hash__(self):
        return id(self)

    def _scalar(self, what: str):
        if self.data.size != 1:
            raise ShapeError(f"{what}: only a tensor with one element has a single value, got shape {self.shape}")
        return self.data.reshape(()).item()

    def __bool__(self):
        return bool(self._scalar("bool()"))

    def __float__(self):
        return float(self._scalar("float()"))

    def __int__(self):
        return int(self._scalar("int()"))

    def __index__(self):
        if self.dtype.kind not in "iub":
            raise TypeError(f"only integer tensors of a single element can be used as an index, got {self.dtype}")
        return int(self._scalar("index"))

    def __format__(self, spec):
        if spec and self.data.size == 1:
            return format(self.data.reshape(()).item(), spec)
        return format(str(self), spec)

    def __array__(self, dtype=None, copy=None):
        arr = self.data if dtype is None else self.data.astype(dtype, copy=False)
        return arr.copy() if copy and arr is self.data else arr

    def __array_function__(self, func, types, args, kwargs):
        """numpy functions (np.max(t, axis=1), np.argmax, np.mean, ...) see the Tensor's array,
        read-only, and return what they return for it. Writing into a Tensor through numpy
        (np.copyto(t, ...), out=t) is refused: it would bypass the version counter."""
        try:
            return func(*_arrays(args), **_arrays(kwargs))
        except ValueError as e:
            if "read-only" not in str(e):
                raise
            raise ValueError(f"np.{func.__name__} would write into a Tensor's memory, which autograd could not see; "
                             f"use the Tensor's in-place methods (copy_, clamp_, add_, ...) or write into "
                             f"t.numpy()") from None

    def __deepcopy__(self, memo):
        if self._ctx is not None:
            raise RuntimeError("only leaf tensors (made by the user, not by a recorded op) can be deep-copied; "
                               "detach() it first")
        new = type(self).__new__(type(self))
        memo[id(self)] = new
        new.data, new.requires_grad = self.data.copy(), self.requires_grad
        for k in ("name", "_grad", "_retains_grad", "_is_constant"):
            if k in self.__dict__:
                setattr(new, k, copy.deepcopy(self.__dict__[k], memo))
        return new

    # --- conversion
    def numpy(self) -> np.ndarray:
        """The underlying ndarray (shared, not copied)."""
        return self.data

    def item(self):
        """The value of a one-element tensor as a Python number."""
        return self._scalar("item()")

    def tolist(self):
        """The data as nested Python lists."""
        return self.data.tolist()

    def detach(self) -> "Tensor":
        """The same data (and version counter), cut from the graph."""
        t = Tensor._make(self.data)
        t._vc = version_counter(self)
        return t

    def detach_(self) -> "Tensor":
        """Cut this tensor from the graph, in place; returns self. A node that holds it whole
        (backward reads it) then refuses to pass it a gradient, as PyTorch's do."""
        if self._ctx is not None:
            self._detached_in_place = True
        self._ctx, self.requires_grad = None, False
        return self

    def requires_grad_(self, requires_grad=True) -> "Tensor":
        """Set requires_grad in place (floating tensors only); returns self."""
        if requires_grad and self.data.dtype.kind != "f":
            raise DTypeError(f"only floating-point tensors can require grad, got dtype {self.data.dtype}")
        if not requires_grad and self._ctx is not None:
            raise RuntimeError("requires_grad_(False) on a non-leaf tensor: use detach() to cut it from the graph")
        self.requires_grad = bool(requires_grad)
        return self

    def retain_grad(self) -> None:
        """Keep `.grad` on this non-leaf tensor after backward."""
        if not self.requires_grad:
            raise RuntimeError("can't retain_grad on a tensor that does not require grad")
        self._retains_grad = True

    def __repr__(self):
        body = np.array2string(self.data, precision=4, threshold=20, separator=", ", prefix="Tensor(")
        extra = f"shape={self.shape}, dtype={self.dtype}"
        if self._ctx is not None:
            extra += f", grad_fn=<{self._ctx.name}>"
        elif self.requires_grad:
            extra += ", requires_grad=True"
        if self.name:
            extra += f", name={self.name!r}"
        return f"Tensor({body}, {extra})"

    # --- arithmetic (ops.py holds each op's forward and backward)
    def __add__(self, other):
        return ops.binary(ops.Add, self, other)

    def __radd__(self, other):
        return ops.binary(ops.Add, other, self)

    def __sub__(self, other):
        return ops.binary(ops.Sub, self, other)

    def __rsub__(self, other):
        return ops.binary(ops.Sub, other, self)

    def __mul__(self, other):
        return ops.binary(ops.Mul, self, other)

    def __rmul__(self, other):
        return ops.binary(ops.Mul, other, self)

    def __truediv__(self, other):
        return ops.binary(ops.Div, self, other)

    def __rtruediv__(self, other):
        return ops.binary(ops.Div, other, self)

    def __pow__(self, other):
        return ops.binary(ops.Pow, self, other)

    def __rpow__(self, other):
        return ops.binary(ops.Pow, other, self)

    def __neg__(self):
        return ops.Neg.apply(self)

    def __matmul__(self, other):
        return ops.MatMul.apply(self, ops.as_tensor(other))

    def __rmatmul__(self, other):
        return ops.MatMul.apply(ops.as_tensor(other), self)

    def matmul(self, other) -> "Tensor":
        """Matrix product, as `@`: (..., n, k) @ (..., k, m) -> (..., n, m); 1-D operands as vectors."""
        return self @ other

    def add(self, other, alpha=1):
        """self + alpha * other, broadcasting."""
        return self + (other if alpha == 1 else other * alpha)

    def sub(self, other, alpha=1):
        """self - alpha * other, broadcasting."""
        return self - (other if alpha == 1 else other * alpha)

    def mul(self, other):
        """self * other, broadcasting."""
        return self * other

    def div(self, other):
        """self / other, broadcasting (true division: integers give the default float dtype)."""
        return self / other

    def pow(self, exponent):
        """self ** exponent, broadcasting."""
        return self ** exponent

    def neg(self):
        """-self."""
        return -self

    def maximum(self, other):
        """Elementwise max of two tensors (ties share the gradient), broadcasting."""
        return ops.binary(ops.Maximum, self, other)

    def minimum(self, other):
        """Elementwise min of two tensors (ties share the gradient), broadcasting."""
        return ops.binary(ops.Minimum, self, other)

    # --- comparisons: not differentiable, give bool tensors
    def _compare(self, other, fn):
        o = other.data if isinstance(other, Tensor) else other
        return Tensor._make(ops.broadcasting(fn.__name__, fn, self.data, np.asarray(o)))

    def __lt__(self, other):
        return self._compare(other, np.less)

    def __le__(self, other):
        return self._compare(other, np.less_equal)

    def __gt__(self, other):
        return self._compare(other, np.greater)

    def __ge__(self, other):
        return self._compare(other, np.greater_equal)

    def __eq__(self, other):
        return self._compare(other, np.equal)

    def __ne__(self, other):
        return self._compare(other, np.not_equal)

    lt, le, gt, ge, eq, ne = __lt__, __le__, __gt__, __ge__, __eq__, __ne__

    def equal(self, other) -> bool:
        """True when other has the same shape and the same values."""
        o = other.data if isinstance(other, Tensor) else np.asarray(other)
        return self.shape == o.shape and bool(np.array_equal(self.data, o))

    def __invert__(self):
        if self.dtype.kind not in "biu":
            raise DTypeError(f"~ needs a bool or integer tensor, got {self.dtype}")
        return Tensor._make(~self.data)

    def __and__(self, other):
        return self._compare(other, np.bitwise_and)

    def __or__(self, other):
        return self._compare(other, np.bitwise_or)

    def __xor__(self, other):
        return self._compare(other, np.bitwise_xor)

    def any(self, dim=None, keepdim=False):
        """True where any element (along dim) is nonzero; a bool tensor."""
        return Tensor._make(np.any(self.data, axis=None if dim is None else self._dim(dim, "any"), keepdims=keepdim))

    def all(self, dim=None, keepdim=False):
        """True where every element (along dim) is nonzero; a bool tensor."""
        return Tensor._make(np.all(self.data, axis=None if dim is None else self._dim(dim, "all"), keepdims=keepdim))

    # --- elementwise (integer and bool inputs give the default float dtype, as in PyTorch)
    def _floating(self) -> "Tensor":
        if self.data.dtype.kind == "f":
            return self
        return Tensor._make(self.data.astype(dtypes.get_default_dtype()))

    def exp(self):
        """e ** x, elementwise; same shape."""
        return ops.Exp.apply(self._floating())

    def log(self):
        """Natural logarithm, elementwise; same shape."""
        return ops.Log.apply(self._floating())

    def sqrt(self):
        """Square root, elementwise; same shape."""
        return ops.Sqrt.apply(self._floating())

    def tanh(self):
        """Hyperbolic tangent, elementwise; same shape."""
        return ops.Tanh.apply(self._floating())

    def sigmoid(self):
        """1 / (1 + exp(-x)), elementwise and finite for any x; same shape."""
        return ops.Sigmoid.apply(self._floating())

    def relu(self):
        """max(x, 0), elementwise (gradient 0 at 0); same shape."""
        return ops.Relu.apply(self)

    def abs(self):
        """|x|, elementwise (gradient 0 at 0); same shape."""
        return ops.Abs.apply(self)

    def clamp(self, min=None, max=None):
        """Elementwise clamp to [min, max] (numbers or tensors, either may be None); the gradient
        passes where the value was inside the range."""
        if min is None and max is None:
            raise ValueError("clamp: at least one of min and max must be given")
        if isinstance(min, Tensor) or isinstance(max, Tensor):  # the gradient goes where each value came from
            out = self if min is None else ops.where((self < min).data, min, self)
            return out if max is None else ops.where((out > max).data, max, out)
        dt = dtypes.result_type(self, *[v for v in (min, max) if v is not None])
        return ops.Clamp.apply(self if dt == self.dtype else self.to(dt), lo=min, hi=max)

    clip = clamp

    def to(self, *args, **kwargs) -> "Tensor":
        """This tensor on a device ("cpu") and/or in a dtype: `to(dtype)`, `to("cpu")`,
        `to(device, dtype)`, `to(other_tensor)`; differentiable; itself when nothing changes."""
        dtype = parse_to(args, kwargs)
        if dtype is None or dtype == self.dtype:
            return self
        return ops.Cast.apply(self, dtype=dtype)

    def cpu(self) -> "Tensor":
        """Itself: the data is already in host memory."""
        return self

    def type_as(self, other) -> "Tensor":
        """This tensor in other's dtype."""
        return self.to(other.dtype)

    def float(self):
        """This tensor as float32."""
        return self.to(np.float32)

    def double(self):
        """This tensor as float64."""
        return self.to(np.float64)

    def half(self):
        """This tensor as float16."""
        return self.to(np.float16)

    def long(self):
        """This tensor as int64 (not differentiable)."""
        return self.to(np.int64)

    def int(self):
        """This tensor as int32 (not differentiable)."""
        return self.to(np.int32)

    def bool(self):
        """This tensor as bool (not differentiable)."""
        return self.to(np.bool_)

    def clone(self) -> "Tensor":
        """A copy with its own memory; differentiable (the gradient passes through)."""
        return ops.Clone.apply(self)

    def contiguous(self) -> "Tensor":
        """Itself (the ops here do not need a contiguous layout)."""
        return self

    # --- reductions
    def sum(self, dim=None, keepdim=False, *, axis=None, keepdims=None, dtype=None):
        """Sum over `dim` (an int, a tuple, or None for all); `keepdim` keeps them as size 1.
        Integer and bool tensors sum to int64, as in PyTorch."""
        dim, keepdim = _dim_arg(dim, axis, keepdim, keepdims)
        x = self if dtype is None else self.to(dtype)
        return ops.Sum.apply(x, dim=dim, keepdim=keepdim)

    def mean(self, dim=None, keepdim=False, *, axis=None, keepdims=None, dtype=None):
        """Mean over `dim` (an int, a tuple, or None for all); `keepdim` keeps them as size 1."""
        dim, keepdim = _dim_arg(dim, axis, keepdim, keepdims)
        x = self if dtype is None else self.to(dtype)
        if x.dtype.kind != "f":
            raise DTypeError(f"mean(): input dtype must be floating point, got {x.dtype}; use .float() first")
        dims = ops.norm_dims(dim, x.ndim, "mean")
        count = int(np.prod([x.shape[d] for d in dims]))
        return x.sum(dim=dim, keepdim=keepdim) / count

    def var(self, dim=None, unbiased=None, keepdim=False, *, correction=None, axis=None, keepdims=None):
        """Variance over `dim` with Bessel's correction (correction=1, or unbiased=False for 0)."""
        dim, keepdim = _dim_arg(dim, axis, keepdim, keepdims)
        corr = correction if correction is not None else (0 if unbiased is False else 1)
        dims = ops.norm_dims(dim, self.ndim, "var")
        count = int(np.prod([self.shape[d] for d in dims]))
        d = self - self.mean(dim=dims, keepdim=True)
        return (d * d).sum(dim=dims, keepdim=keepdim) / max(count - corr, 0)

    def std(self, dim=None, unbiased=None, keepdim=False, *, correction=None, axis=None, keepdims=None):
        """Standard deviation: sqrt of `var` with the same arguments."""
        return self.var(dim, unbiased, keepdim, correction=correction, axis=axis, keepdims=keepdims).sqrt()

    def amax(self, dim=None, keepdim=False, *, axis=None, keepdims=None):
        """Largest value over `dim`; ties share the gradient equally."""
        dim, keepdim = _dim_arg(dim, axis, keepdim, keepdims)
        return ops.Amax.apply(self, dim=dim, keepdim=keepdim)

    def amin(self, dim=None, keepdim=False, *, axis=None, keepdims=None):
        """Smallest value over `dim`; ties share the gradient equally."""
        dim, keepdim = _dim_arg(dim, axis, keepdim, keepdims)
        return ops.Amin.apply(self, dim=dim, keepdim=keepdim)

    def max(self, dim=None, keepdim=False, *, axis=None, keepdims=None):
        """Without `dim`: the largest element (ties share the gradient). With `dim`: (values,
        indices), the gradient going to the indices, as in PyTorch. With a Tensor: the elementwise maximum."""
        if isinstance(dim, Tensor):
            return self.maximum(dim)
        dim, keepdim = _dim_arg(dim, axis, keepdim, keepdims)
        if dim is None:
            return self.amax()
        return ops.max_along(self, dim, keepdim)

    def min(self, dim=None, keepdim=False, *, axis=None, keepdims=None):
        """Without `dim`: the smallest element. With `dim`: (values, indices). With a Tensor: elementwise."""
        if isinstance(dim, Tensor):
            return self.minimum(dim)
        dim, keepdim = _dim_arg(dim, axis, keepdim, keepdims)
        if dim is None:
            return self.amin()
        return ops.max_along(self, dim, keepdim, largest=False)

    def argmax(self, dim=None, keepdim=False, *, axis=None, keepdims=None):
        """Index of the largest element (of the flattened tensor when dim is None); int64, not differentiable."""
        dim, keepdim = _dim_arg(dim, axis, keepdim, keepdims)
        return self._arg(np.argmax, dim, keepdim, "argmax")

    def argmin(self, dim=None, keepdim=False, *, axis=None, keepdims=None):
        """Index of the smallest element (of the flattened tensor when dim is None); int64."""
        dim, keepdim = _dim_arg(dim, axis, keepdim, keepdims)
        return self._arg(np.argmin, dim, keepdim, "argmin")

    def _arg(self, fn, dim, keepdim, op):
        if self.data.size == 0 and (dim is None or self.ndim == 0 or self.shape[self._dim(dim, op)] == 0):
            raise ShapeError(f"{op}: cannot take {op} over an empty dimension of a tensor of shape {self.shape}")
        if dim is None or self.ndim == 0:
            out = np.asarray(fn(self.data))
            if dim is not None:
                self._dim(dim, op)
            return Tensor._make(out.reshape((1,) * self.ndim) if keepdim else out)
        return Tensor._make(fn(self.data, axis=self._dim(dim, op), keepdims=keepdim).astype(np.int64))

    # --- shapes
    def reshape(self, *shape):
        """The same data in a new shape (one dimension may be -1); a view where numpy can."""
        shape = _shape_arg(shape)
        if shape == self.shape:
            return self
        return ops.Reshape.apply(self, shape=shape)

    view = reshape

    def view_as(self, other) -> "Tensor":
        """This tensor in other's shape."""
        return self.reshape(other.shape)

    reshape_as = view_as

    def permute(self, *dims):
        """Dimensions reordered: result dim i is input dim dims[i]."""
        return ops.Permute.apply(self, dims=_shape_arg(dims))

    def transpose(self, dim0, dim1):
        """Dimensions dim0 and dim1 swapped."""
        dims = list(range(self.ndim))
        d0, d1 = self._dim(dim0, "transpose"), self._dim(dim1, "transpose")
        if self.ndim < 2:
            return self
        dims[d0], dims[d1] = dims[d1], dims[d0]
        return self.permute(*dims)

    def t(self) -> "Tensor":
        """The transpose of a tensor of at most 2 dimensions."""
        if self.ndim > 2:
            raise ShapeError(f"t() expects a tensor with <= 2 dimensions, got shape {self.shape}")
        return self.T

    def flatten(self, start_dim=0, end_dim=-1):
        """Dimensions start_dim..end_dim merged into one."""
        if self.ndim == 0:
            return self.reshape(1)
        s, e = self._dim(start_dim, "flatten"), self._dim(end_dim, "flatten")
        if s > e:
            raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim}")
        return self.reshape(*self.shape[:s], -1, *self.shape[e + 1:])

    def squeeze(self, dim=None):
        """Size-1 dimensions removed (all, or those in `dim`)."""
        if dim is None:
            return self.reshape(*[s for s in self.shape if s != 1])
        dims = ops.norm_dims(dim, self.ndim, "squeeze")
        return self.reshape(*[s for i, s in enumerate(self.shape) if not (i in dims and s == 1)])

    def unsqueeze(self, dim):
        """A size-1 dimension inserted at `dim`."""
        d = normalize_dim(dim, self.ndim + 1, "unsqueeze")
        return self.reshape(*self.shape[:d], 1, *self.shape[d:])

    def expand(self, *shape):
        """Broadcast to `shape` (-1 keeps a size) without copying; the gradient is summed back."""
        shape = _shape_arg(shape)
        lead = len(shape) - self.ndim
        shape = tuple(self.shape[i - lead] if s == -1 else s for i, s in enumerate(shape))
        return self if shape == self.shape else ops.Expand.apply(self, shape=shape)

    def expand_as(self, other) -> "Tensor":
        """Broadcast to other's shape."""
        return self.expand(*other.shape)

    def __getitem__(self, index):
        return ops.GetItem.apply(self, steps=ops.torch_index(index))

    # --- nn conveniences (defined in functional.py)
    def softmax(self, dim):
        """Softmax along `dim` (see functional.softmax)."""
        from . import functional as F
        return F.softmax(self, dim)

    def log_softmax(self, dim):
        """Log-softmax along `dim` (see functional.log_softmax)."""
        from . import functional as F
        return F.log_softmax(self, dim)

    # --- autograd
    def backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None) -> None:
        """Accumulate d(self)/d(leaf) into every leaf's `.grad` (as `torch.Tensor.backward`).

        `gradient` (same shape as self) is required unless self has one element.
        """
        _engine.backward([self], None if gradient is None else [gradient], retain_graph, create_graph, inputs)


def _arrays(x):
    """Tensors inside args (lists, tuples, dicts) replaced by read-only views of their arrays, for numpy functions."""
    if isinstance(x, Tensor):
        view = x.data.view()
        view.flags.writeable = False
        return view
    if isinstance(x, (list, tuple)):
        return type(x)(_arrays(v) for v in x)
    if isinstance(x, dict):
        return {k: _arrays(v) for k, v in x.items()}
    return x


from . import ops  # noqa: E402  (ops needs Tensor defined above)
from .autograd import engine as _engine  # noqa: E402  (the engine needs Tensor)
from .autograd.engine import backward, grad  # noqa: E402,F401  (re-exported)
