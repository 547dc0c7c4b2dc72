"""The engine: Tensor, the graph it records, and reverse-mode backward.

Every differentiable op is a `Function` subclass (see `ops.py` and `functional.py`):
`forward` works on numpy arrays, `backward` on Tensors, so that with
`create_graph=True` the backward pass is itself recorded and can be differentiated.
"""
from __future__ import annotations

import contextlib
import functools
import re
import sys
import weakref

import numpy as np

# ----------------------------------------------------------------------------- grad mode

_grad_enabled = True
_module_stack: list = []  # nn.Modules whose forward is running (for graph drawing)
_op_stack: list = []  # composite ops (conv2d, cross_entropy, ...) that are running


class OpScope:
    """A call of a composite op (say conv2d): the Functions it records are drawn as one op."""

    def __init__(self, name: str, attrs: dict):
        self.name, self.attrs = name, attrs


@contextlib.contextmanager
def op_scope(name: str, **attrs):
    """Mark the Functions recorded inside as parts of one call of the composite op `name`."""
    _op_stack.append(OpScope(name, attrs))
    try:
        yield
    finally:
        _op_stack.pop()


def is_grad_enabled() -> bool:
    """True when new ops are recorded in the graph."""
    return _grad_enabled


class _GradMode:
    """Context manager and decorator (`@no_grad()` or `@no_grad`) that sets whether ops are recorded."""

    enabled: bool

    def __new__(cls, fn=None):
        self = super().__new__(cls)
        return self(fn) if fn is not None else self  # bare @no_grad on a function

    def __enter__(self):
        global _grad_enabled
        self._prev = _grad_enabled
        _grad_enabled = self.enabled

    def __exit__(self, *exc):
        global _grad_enabled
        _grad_enabled = self._prev

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with self.__class__():
                return fn(*args, **kwargs)

        return wrapper


class no_grad(_GradMode):
    """Ops run inside `with no_grad():` (or a function decorated with `@no_grad()`) are not recorded."""

    enabled = False


class enable_grad(_GradMode):
    """Turns recording back on inside a `no_grad` block."""

    enabled = True


# ----------------------------------------------------------------------------- Function


class Function:
    """One differentiable op: a node of the graph.

    Subclasses define `forward(self, *arrays, **attrs) -> ndarray` and
    `backward(self, grad) -> Tensor | tuple[Tensor | None, ...]` (one gradient per
    input, written in Tensor ops). `forward` may keep what backward needs on `self`;
    `self.needs_input_grad` says which inputs want a gradient. In `backward`,
    `self.inputs` are the input Tensors and `self.output` the output Tensor, and
    `self.grad_is_free` is True when nothing but the engine refers to `grad` or its
    array: backward may then write its result into `grad.data` and return `grad`.
    """

    _keep = ("inputs", "needs_input_grad", "attrs", "modules", "scope", "freed", "_out")
    grad_is_free = False  # set by the engine just before it calls backward

    @classmethod
    def apply(cls, *inputs, **attrs) -> "Tensor":
        """Run the op on Tensors (None allowed for optional inputs) and record it."""
        fn = cls()
        req = [t is not None and t.requires_grad for t in inputs]
        record = _grad_enabled and any(req)
        fn.needs_input_grad = tuple(req) if record else (False,) * len(inputs)
        data = fn.forward(*[None if t is None else t.data for t in inputs], **attrs)
        out = Tensor._make(data, record)
        if record:
            fn.inputs, fn.attrs, fn.freed = inputs, attrs, False
            fn.modules = tuple(_module_stack)
            fn.scope = _op_stack[0] if _op_stack else None
            fn._out = weakref.ref(out)
            out._ctx = fn
        elif _op_stack:  # an unrecorded step inside a composite op: remember its sources for drawing
            out._sources = [t for t in inputs if t is not None]
        return out

    @property
    def output(self) -> "Tensor":
        """The output Tensor of this node (alive while the graph is)."""
        return self._out()

    @property
    def name(self) -> str:
        """The op's class name, as repr shows it."""
        return type(self).__name__

    @property
    def op_name(self) -> str:
        """The op's functional name: MaxPool2d -> max_pool2d."""
        return getattr(type(self), "OP_NAME", None) or re.sub(r"(?<=[a-z])(?=[A-Z])", "_", self.name).lower()

    def free(self):
        """Drop what forward saved for backward (called after backward unless retain_graph)."""
        for k in list(vars(self)):
            if k not in self._keep:
                delattr(self, k)
        self.freed = True

    def forward(self, *arrays, **attrs):  # pragma: no cover - abstract
        raise NotImplementedError

    def backward(self, grad):  # pragma: no cover - abstract
        raise NotImplementedError


# ----------------------------------------------------------------------------- Tensor


def _default_float(arr: np.ndarray, from_python: bool) -> np.ndarray:
    if from_python and arr.dtype == np.float64:
        return arr.astype(np.float32)
    return arr


class Tensor:
    """An n-dimensional array that records the ops applied to it.

    `Tensor(data, requires_grad=False, dtype=None, name=None)`: data is a scalar,
    nested list, ndarray or Tensor (copied). Python floats become float32; a float64
    ndarray stays float64; integer data stays integer and cannot require grad.
    """

    __array_priority__ = 1000  # ndarray op Tensor -> Tensor's reflected op

    def __init__(self, data, requires_grad=False, dtype=None, name=None):
        if isinstance(data, Tensor):
            arr = data.data.copy() if dtype is None else data.data.astype(dtype)
        else:
            from_python = not isinstance(data, (np.ndarray, np.generic))
            try:
                arr = np.array(data, dtype=dtype)
            except (TypeError, ValueError) as e:
                raise TypeError(f"Tensor: cannot make an array from {type(data).__name__}: {e}") from None
            if dtype is None:
                arr = _default_float(arr, from_python)
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"Tensor: data of dtype {arr.dtype} is not numeric (bool, int or float)")
        self.data = arr
        self.grad = None
        self._ctx = None
        self._retains_grad = False
        self.name = name
        self.requires_grad = False
        self.requires_grad_(requires_grad)

    @classmethod
    def _make(cls, data: np.ndarray, requires_grad: bool = False) -> "Tensor":
        t = cls.__new__(cls)
        t.data, t.grad, t._ctx, t._retains_grad, t.name = data, None, None, False, None
        t.requires_grad = requires_grad
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

    @property
    def ndim(self) -> int:
        """Number of dimensions."""
        return self.data.ndim

    @property
    def size(self) -> int:
        """Number of elements (numpy's meaning; PyTorch's `numel()`)."""
        return self.data.size

    def numel(self) -> int:
        """Number of elements."""
        return self.data.size

    @property
    def dtype(self):
        """The numpy dtype of the data."""
        return self.data.dtype

    @property
    def is_leaf(self) -> bool:
        """True for tensors not made by a recorded op (user data, parameters)."""
        return self._ctx is None

    @property
    def grad_fn(self):
        """The Function that made this tensor, or None for a leaf."""
        return self._ctx

    @property
    def T(self) -> "Tensor":
        """All dimensions reversed (the transpose of a matrix)."""
        return self.permute(*reversed(range(self.ndim)))

    @property
    def mT(self) -> "Tensor":
        """The last two dimensions swapped: (..., m, n) -> (..., n, m)."""
        return self.transpose(-2, -1)

    def __len__(self):
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __hash__(self):
        return id(self)

    def __bool__(self):
        if self.size != 1:
            raise ValueError(f"the truth value of a tensor of shape {self.shape} is ambiguous")
        return bool(self.data)

    def __array__(self, dtype=None, copy=None):
        return self.data if dtype is None else self.data.astype(dtype)

    # --- conversion
    def numpy(self) -> np.ndarray:
        """The underlying ndarray (shared, not copied)."""
        return self.data

    def item(self):
        """The value of a one-element tensor as a Python number."""
        if self.size != 1:
            raise ValueError(f"item() needs a tensor with one element, got shape {self.shape}")
        return self.data.item()

    def tolist(self):
        """The data as nested Python lists."""
        return self.data.tolist()

    def detach(self) -> "Tensor":
        """The same data, cut from the graph."""
        return Tensor._make(self.data)

    def requires_grad_(self, requires_grad=True) -> "Tensor":
        """Set requires_grad in place (floating tensors only); returns self."""
        if requires_grad and not np.issubdtype(self.data.dtype, np.floating):
            raise TypeError(f"only floating-point tensors can require grad, got dtype {self.data.dtype}")
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
        return ops.Add.apply(self, ops.as_tensor(other, self))

    def __radd__(self, other):
        return ops.Add.apply(ops.as_tensor(other, self), self)

    def __sub__(self, other):
        return ops.Sub.apply(self, ops.as_tensor(other, self))

    def __rsub__(self, other):
        return ops.Sub.apply(ops.as_tensor(other, self), self)

    def __mul__(self, other):
        return ops.Mul.apply(self, ops.as_tensor(other, self))

    def __rmul__(self, other):
        return ops.Mul.apply(ops.as_tensor(other, self), self)

    def __truediv__(self, other):
        return ops.Div.apply(self, ops.as_tensor(other, self))

    def __rtruediv__(self, other):
        return ops.Div.apply(ops.as_tensor(other, self), self)

    def __pow__(self, other):
        return ops.Pow.apply(self, ops.as_tensor(other, self))

    def __rpow__(self, other):
        return ops.Pow.apply(ops.as_tensor(other, self), self)

    def __neg__(self):
        return ops.Neg.apply(self)

    def __matmul__(self, other):
        return ops.MatMul.apply(self, ops.as_tensor(other))

    def __rmatmul__(self, other):
        return ops.MatMul.apply(ops.as_tensor(other), self)

    def matmul(self, other) -> "Tensor":
        """Matrix product, as `@`: (..., n, k) @ (..., k, m) -> (..., n, m); 1-D operands as vectors."""
        return self @ other

    def add(self, other):
        """self + other, broadcasting."""
        return self + other

    def sub(self, other):
        """self - other, broadcasting."""
        return self - other

    def mul(self, other):
        """self * other, broadcasting."""
        return self * other

    def div(self, other):
        """self / other, broadcasting."""
        return self / other

    def pow(self, exponent):
        """self ** exponent, broadcasting."""
        return self ** exponent

    # --- comparisons: not differentiable, give bool tensors
    def _compare(self, other, fn):
        o = other.data if isinstance(other, Tensor) else other
        return Tensor._make(fn(self.data, o))

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

    # --- elementwise
    def exp(self):
        """e ** x, elementwise; same shape."""
        return ops.Exp.apply(self)

    def log(self):
        """Natural logarithm, elementwise; same shape."""
        return ops.Log.apply(self)

    def sqrt(self):
        """Square root, elementwise; same shape."""
        return ops.Sqrt.apply(self)

    def tanh(self):
        """Hyperbolic tangent, elementwise; same shape."""
        return ops.Tanh.apply(self)

    def sigmoid(self):
        """1 / (1 + exp(-x)), elementwise and finite for any x; same shape."""
        return ops.Sigmoid.apply(self)

    def relu(self):
        """max(x, 0), elementwise (gradient 0 at 0); same shape."""
        return ops.Relu.apply(self)

    def abs(self):
        """|x|, elementwise (gradient 0 at 0); same shape."""
        return ops.Abs.apply(self)

    def to(self, dtype) -> "Tensor":
        """This tensor in `dtype` (differentiable; itself when the dtype already matches)."""
        dtype = np.dtype(dtype)
        return self if dtype == self.dtype else ops.Cast.apply(self, dtype=dtype)

    def float(self):
        """This tensor as float32."""
        return self.to(np.float32)

    def double(self):
        """This tensor as float64."""
        return self.to(np.float64)

    # --- reductions
    def sum(self, dim=None, keepdim=False):
        """Sum over `dim` (an int, a tuple, or None for all); `keepdim` keeps them as size 1."""
        return ops.Sum.apply(self, dim=dim, keepdim=keepdim)

    def mean(self, dim=None, keepdim=False):
        """Mean over `dim` (an int, a tuple, or None for all); `keepdim` keeps them as size 1."""
        dims = ops._norm_dims(dim, self.ndim, "mean")
        count = int(np.prod([self.shape[d] for d in dims])) if self.ndim else 1
        return self.sum(dim=dim, keepdim=keepdim) / count

    def amax(self, dim=None, keepdim=False):
        """Largest value over `dim`; ties share the gradient equally."""
        return ops.Amax.apply(self, dim=dim, keepdim=keepdim)

    def amin(self, dim=None, keepdim=False):
        """Smallest value over `dim`; ties share the gradient equally."""
        return -ops.Amax.apply(-self, dim=dim, keepdim=keepdim)

    def max(self, dim=None, keepdim=False):
        """Without `dim`: the largest element. With `dim`: (values, indices), as in PyTorch."""
        if dim is None:
            return self.amax()
        return self.amax(dim, keepdim), self.argmax(dim, keepdim)

    def min(self, dim=None, keepdim=False):
        """Without `dim`: the smallest element. With `dim`: (values, indices)."""
        if dim is None:
            return self.amin()
        return self.amin(dim, keepdim), Tensor._make(np.argmin(self.data, axis=dim, keepdims=keepdim))

    def argmax(self, dim=None, keepdim=False):
        """Index of the largest element (of the flattened tensor when dim is None). Not differentiable."""
        if dim is None:
            return Tensor._make(np.asarray(np.argmax(self.data)))
        ops._norm_dims(dim, self.ndim, "argmax")
        return Tensor._make(np.argmax(self.data, axis=dim, keepdims=keepdim))

    # --- shapes
    def reshape(self, *shape):
        """The same data in a new shape (one dimension may be -1); a view where numpy can."""
        shape = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
        if shape == self.shape:
            return self
        return ops.Reshape.apply(self, shape=tuple(int(s) for s in shape))

    view = reshape

    def permute(self, *dims):
        """Dimensions reordered: result dim i is input dim dims[i]."""
        dims = tuple(dims[0]) if len(dims) == 1 and isinstance(dims[0], (tuple, list)) else dims
        return ops.Permute.apply(self, dims=tuple(int(d) for d in dims))

    def transpose(self, dim0, dim1):
        """Dimensions dim0 and dim1 swapped."""
        dims = list(range(self.ndim))
        d0, d1 = ops._norm_dims(dim0, self.ndim, "transpose")[0], ops._norm_dims(dim1, self.ndim, "transpose")[0]
        dims[d0], dims[d1] = dims[d1], dims[d0]
        return self.permute(*dims)

    def flatten(self, start_dim=0, end_dim=-1):
        """Dimensions start_dim..end_dim merged into one."""
        if self.ndim == 0:
            return self.reshape(1)
        s = ops._norm_dims(start_dim, self.ndim, "flatten")[0]
        e = ops._norm_dims(end_dim, self.ndim, "flatten")[0]
        if s > e:
            raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim}")
        return self.reshape(*self.shape[:s], -1, *self.shape[e + 1:])

    def squeeze(self, dim=None):
        """Size-1 dimensions removed (all, or those in `dim`)."""
        if dim is None:
            return self.reshape(*[s for s in self.shape if s != 1])
        dims = ops._norm_dims(dim, self.ndim, "squeeze")
        return self.reshape(*[s for i, s in enumerate(self.shape) if not (i in dims and s == 1)])

    def unsqueeze(self, dim):
        """A size-1 dimension inserted at `dim`."""
        d = ops._norm_dims(dim, self.ndim + 1, "unsqueeze")[0]
        return self.reshape(*self.shape[:d], 1, *self.shape[d:])

    def expand(self, *shape):
        """Broadcast to `shape` (-1 keeps a size) without copying; the gradient is summed back."""
        shape = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
        lead = len(shape) - self.ndim
        shape = tuple(self.shape[i - lead] if s == -1 else s for i, s in enumerate(shape))
        return self if shape == self.shape else ops.Expand.apply(self, shape=shape)

    def __getitem__(self, index):
        return ops.GetItem.apply(self, index=ops._index_arrays(index))

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
    def backward(self, gradient=None, retain_graph=False, create_graph=False) -> None:
        """Accumulate d(self)/d(leaf) into every leaf's `.grad`.

        `gradient` (same shape as self) is required unless self has one element.
        """
        backward([self], None if gradient is None else [gradient], retain_graph, create_graph)


# ----------------------------------------------------------------------------- backward


def _topo_order(roots):
    """Tensors that need a gradient, every one after all the tensors it was made from."""
    order, seen = [], set()
    stack = [(r, False) for r in roots]
    while stack:
        t, done = stack.pop()
        if done:
            order.append(t)
            continue
        if id(t) in seen:
            continue
        seen.add(id(t))
        stack.append((t, True))
        if t._ctx is not None:
            for inp in t._ctx.inputs:
                if inp is not None and inp.requires_grad and id(inp) not in seen:
                    stack.append((inp, False))
    return order


def _seed(root: Tensor, gradient) -> Tensor:
    if gradient is None:
        if root.size != 1:
            raise RuntimeError(f"grad can be implicitly created only for scalar outputs, got shape {root.shape}")
        return Tensor._make(np.ones(root.shape, dtype=root.dtype))
    g = gradient if isinstance(gradient, Tensor) else Tensor(np.asarray(gradient, dtype=root.dtype))
    if g.shape != root.shape:
        raise ValueError(f"gradient has shape {g.shape} but the output has shape {root.shape}")
    return g


def _refcounts(g: Tensor) -> tuple:
    """(references to g, references to g.data) as seen from here. A gradient with the counts
    of `_SOLE_REFCOUNTS` is held by the calling frame's local variable alone: no `.grad`, no
    other pending gradient, no saved tensor and no view shares it, so its array may be
    overwritten (CPython reference counts: the test numpy uses to reuse temporaries)."""
    arr = g.data
    return sys.getrefcount(g), sys.getrefcount(arr)


def _owner_refcount(arr: np.ndarray) -> int:
    """References to the array that owns a view's memory. With `_SOLE_OWNER_REFCOUNT` only this
    view refers to it (numpy points every view at the owner), so the view's memory is its own;
    -1 when the owner is not a plain ndarray that owns its memory."""
    base = arr.base
    if not isinstance(base, np.ndarray) or base.base is not None:
        return -1
    return sys.getrefcount(base)


def _sole_refcounts() -> tuple:
    g = Tensor._make(np.empty(1))  # held by this local variable only
    return _refcounts(g)


def _run(roots, gradients, retain_graph, create_graph, capture=None):
    for r in roots:
        if not r.requires_grad:
            raise RuntimeError("element 0 of tensors does not require grad and does not have a grad_fn")
    gradients = gradients if gradients is not None else [None] * len(roots)
    grads: dict[int, Tensor] = {}
    for r, g in zip(roots, gradients):
        g = _seed(r, g)
        grads[id(r)] = grads[id(r)] + g if id(r) in grads else g
    captured = {} if capture is None else {id(t): None for t in capture}
    handed_out: set[int] = set()

    def store(t: Tensor, g: Tensor):
        if capture is not None:
            return
        if not create_graph:
            arr = g.data
            if arr.base is not None or id(arr) in handed_out or not arr.flags.writeable:
                arr = arr.copy()
            handed_out.add(id(arr))
            g = Tensor._make(arr)
        t.grad = g if t.grad is None else t.grad + g

    order = _topo_order(roots)
    with (enable_grad() if create_graph else no_grad()):
        for t in reversed(order):
            g = grads.pop(id(t), None)
            if g is None:
                continue
            if id(t) in captured:
                captured[id(t)] = g
            if t._ctx is None or t._retains_grad:
                store(t, g)
            ctx = t._ctx
            if ctx is None:
                continue
            if ctx.freed:
                raise RuntimeError(
                    "Trying to backward through the graph a second time: its saved values were freed "
                    "after the first backward. Pass retain_graph=True to the first backward."
                )
            ctx.grad_is_free = (not create_graph and g.data.flags.writeable and _refcounts(g) == _SOLE_REFCOUNTS
                                and (g.data.base is None or _owner_refcount(g.data) == _SOLE_OWNER_REFCOUNT))
            in_grads = ctx.backward(g)
            if not isinstance(in_grads, tuple):
                in_grads = (in_grads,)
            for inp, gi in zip(ctx.inputs, in_grads):
                if gi is None or inp is None or not inp.requires_grad:
                    continue
                assert gi.shape == inp.shape, f"{ctx.name}.backward gave shape {gi.shape} for input {inp.shape}"
                k = id(inp)
                grads[k] = grads[k] + gi if k in grads else gi
            in_grads = gi = g = None  # hold no gradient past its use (see _refcounts)
            if not retain_graph:
                ctx.free()
    return captured


def backward(tensors, grad_tensors=None, retain_graph=False, create_graph=False) -> None:
    """Accumulate the gradients of `tensors` (weighted by `grad_tensors`) into the leaves' `.grad`."""
    _run(list(tensors), grad_tensors, retain_graph or create_graph, create_graph)


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False, allow_unused=False):
    """Return d(outputs)/d(inputs) as a tuple of Tensors without touching any `.grad`.

    Like `torch.autograd.grad`. With `create_graph=True` the results are differentiable.
    """
    outputs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    if grad_outputs is not None and isinstance(grad_outputs, Tensor):
        grad_outputs = [grad_outputs]
    retain = create_graph if retain_graph is None else retain_graph
    got = _run(outputs, grad_outputs, retain, create_graph, capture=inputs)
    result = []
    for i, t in enumerate(inputs):
        g = got[id(t)]
        if g is None and not allow_unused:
            raise RuntimeError(f"input {i} (shape {t.shape}) was not used to compute the outputs; "
                               "pass allow_unused=True")
        result.append(g)
    return tuple(result)


_SOLE_REFCOUNTS = _sole_refcounts()
_SOLE_OWNER_REFCOUNT = _owner_refcount(np.empty((2, 2)).T)  # a transposed view of a fresh array

from . import ops  # noqa: E402  (ops needs Tensor and Function defined above)
