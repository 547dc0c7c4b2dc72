"""Elementwise ops: exp, log, sqrt, tanh, sigmoid, relu, abs, clamp, casts, copies and where."""
from __future__ import annotations

import numpy as np

from .. import dtypes, kernels
from ..errors import ShapeError
from ..tensor import Function, Tensor
from .helpers import cast_operand, unbroadcast


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
            _multiply_by_mask(g.data, self.mask)
            return g
        return g * Tensor._constant(self.mask)  # float * bool keeps g's dtype


_MASK_BLOCK = 1 << 18  # values per block: the block's float copy of the mask (1 MB) stays in L2


def _multiply_by_mask(a: np.ndarray, mask: np.ndarray) -> None:
    """a *= mask in place (mask bool, a's shape). numpy multiplies float by bool through a
    slow casting loop (0.60 ms for 1.7M float32 values); by a float copy of the mask it takes
    0.22 ms, so large dense arrays go in blocks, each with a float copy of its mask (0.34 ms)."""
    order = kernels.memory_order(a) if a.size >= 2 * _MASK_BLOCK and a.dtype.kind == "f" else None
    flat_a, flat_m = (_flat(a, order), _flat(mask, order)) if order else (None, None)
    if flat_a is None or flat_m is None:  # small, not floating point, or strided
        np.multiply(a, mask, out=a)
        return
    buf = np.empty(_MASK_BLOCK, dtype=a.dtype)
    for s in range(0, a.size, _MASK_BLOCK):
        block = flat_a[s:s + _MASK_BLOCK]
        ones = buf[:block.size]
        np.copyto(ones, flat_m[s:s + _MASK_BLOCK])
        np.multiply(block, ones, out=block)


def _flat(a: np.ndarray, order: tuple):
    """a's values as a 1-D view, taking its axes in `order` (outermost first), or None where
    that is not one contiguous run (a strided array, or one laid out in another order)."""
    dense = a.transpose(order)
    return dense.reshape(-1) if dense.flags.c_contiguous else None


_ZERO_ROW = 16384


_zero_rows: dict = {}


def _max0(a: np.ndarray) -> np.ndarray:
    """np.maximum(a, 0), NaN kept, in a's layout. numpy (2.4) vectorizes `maximum` only when
    both operands are arrays, not against a scalar, so a large dense float array is compared,
    as rows of 16384, with one cached row of zeros: 2.4x faster on a (100, 30, 24, 24) float32."""
    if a.size < 2 * _ZERO_ROW or a.dtype.kind != "f":
        return np.maximum(a, a.dtype.type(0))
    order = kernels.memory_order(a)
    flat = _flat(a, order)
    if flat is None:  # strided
        return np.maximum(a, a.dtype.type(0))
    zeros = _zero_rows.get(a.dtype)
    if zeros is None:
        zeros = _zero_rows[a.dtype] = np.zeros(_ZERO_ROW, dtype=a.dtype)
        zeros.flags.writeable = False
    out = kernels.empty_as(a.shape, a.dtype, order)  # in a's layout (conv2d's batch-innermost output)
    dst = _flat(out, order)
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


class Clone(Function):
    """A copy with its own memory; the gradient passes through."""

    def forward(self, a):
        return a.copy()

    def backward(self, g):
        return g


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


def where(condition, input, other) -> Tensor:
    """Elements of `input` where `condition` is true, else of `other` (differentiable in both)."""
    cond = np.array(condition.data if isinstance(condition, Tensor) else condition, dtype=bool)  # a copy
    dt = dtypes.result_type(input, other)
    return Where.apply(cast_operand(input, dt), cast_operand(other, dt), cond=cond)
