"""Arithmetic: +, -, *, /, ** with broadcasting and PyTorch's type promotion, maximum and
minimum, and the matrix product."""
from __future__ import annotations

import numpy as np

from .. import _parallel, dtypes
from ..errors import DTypeError, InvalidArgumentError, ShapeError
from ..tensor import Function, Tensor
from .elementwise import where
from .helpers import broadcasting, cast_operand, unbroadcast


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
    return cls.apply(cast_operand(a, dt), cast_operand(b, dt))


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


def _transposed(a: np.ndarray) -> bool:
    """True for a 2-D array laid out column-major (and not also row-major)."""
    return a.flags.f_contiguous and not a.flags.c_contiguous


class MatMul(Function):
    """`a @ b` with numpy's rules: 2-D, batched (broadcast batch dims) and 1-D vectors.

    The gradient of a transposed 2-D operand (conv features flattened with the batch
    innermost; nn.Linear's `weight.T`) is computed transposed, so it comes back in the
    operand's layout: the weight's gradient is then C-ordered like the weight, and Adam
    reads it in order (its update of the lecture net's 4320x100 weight, batch 1: 1.37 ms
    with the gradient column-major, 0.70-0.99 ms row-major).
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
        two_d = a.ndim == b.ndim == 2
        try:
            if two_d:  # (an outer product, K = 1, is broadcast there)
                out = _parallel.matmul(a, b)
            elif ka == 1 and a.ndim > 1 and b.ndim > 1:  # a batch of outer products: the same
                out = np.multiply(a, b)
            else:
                with _parallel.one_blas_thread():
                    out = np.matmul(a, b)
        except ValueError:
            raise ShapeError(f"matmul: batch dimensions of {a.shape} and {b.shape} cannot be broadcast") from None
        # the operands' layouts, for backward (the node may not keep a or b)
        self.a_transposed, self.b_transposed = two_d and _transposed(a), two_d and _transposed(b)
        return out

    def backward(self, g):
        a, b = self.inputs  # each is kept only where the other one's gradient reads it
        g2 = g.unsqueeze(-1) if b.ndim == 1 else g
        g2 = g2.unsqueeze(-2) if a.ndim == 1 else g2
        ga = gb = None
        if self.needs_input_grad[0]:
            b2 = b.unsqueeze(-1) if b.ndim == 1 else b
            ga = (b2 @ g2.mT).mT if self.a_transposed else g2 @ b2.mT
            ga = unbroadcast(ga.squeeze(-2) if a.ndim == 1 else ga, a.shape)
        if self.needs_input_grad[1]:
            a2 = a.unsqueeze(0) if a.ndim == 1 else a
            gb = (g2.mT @ a2).mT if self.b_transposed else a2.mT @ g2
            gb = unbroadcast(gb.squeeze(-1) if b.ndim == 1 else gb, b.shape)
        return ga, gb
