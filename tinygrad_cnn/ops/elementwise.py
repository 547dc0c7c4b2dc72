"""Elementwise ops: exp, log, sqrt, tanh, sigmoid, relu, abs, clamp, casts, copies and where."""
from __future__ import annotations

import numpy as np

from .. import _parallel, dtypes, kernels
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
        out, mask = _max0(a, with_mask=self.needs_input_grad[0])
        if mask is not None:  # a quarter of the output's bytes, read back in backward
            self.mask = mask
        return out

    def backward(self, g):
        if self.grad_is_free:  # mask the gradient in place: no new array for a large activation
            _multiply_by_mask(g.data, self.mask)
            return g
        return g * Tensor._constant(self.mask)  # float * bool keeps g's dtype


_MASK_BLOCK = 1 << 18  # values per block: the block's float copy of the mask (1 MB) stays in L2
THREAD_VALUES = 1 << 20  # ReLU's passes over arrays from this size go to the threads in even pieces


def _pieces(size: int, unit: int) -> list:
    """[(lo, hi), ...]: range(size) in one piece per thread (cut at multiples of `unit`) from
    THREAD_VALUES values on, else one piece."""
    return _parallel._even_blocks(size, _parallel.THREADS if size >= THREAD_VALUES else 1, unit)


def _multiply_by_mask(a: np.ndarray, mask: np.ndarray) -> None:
    """a *= mask in place (mask bool, a's shape). numpy multiplies float by bool through a
    slow casting loop (0.60 ms for 1.7M float32 values); by a float copy of the mask it takes
    0.22 ms, so large dense arrays go in blocks, each with a float copy of its mask (0.34 ms),
    on the threads (`_pieces`)."""
    order = kernels.memory_order(a) if a.size >= 2 * _MASK_BLOCK and a.dtype.kind == "f" else None
    flat_a, flat_m = (_flat(a, order), _flat(mask, order)) if order else (None, None)
    if flat_a is None or flat_m is None:  # small, not floating point, or strided
        np.multiply(a, mask, out=a)
        return

    def work(pieces):  # on one thread: its own float copy of a block of the mask
        buf = np.empty(_MASK_BLOCK, dtype=a.dtype)
        for lo, hi in pieces:
            for s in range(lo, hi, _MASK_BLOCK):
                block = flat_a[s:min(hi, s + _MASK_BLOCK)]
                ones = buf[:block.size]
                np.copyto(ones, flat_m[s:s + block.size])
                np.multiply(block, ones, out=block)

    _parallel.split(work, _pieces(a.size, _MASK_BLOCK))


def _flat(a: np.ndarray, order: tuple):
    """a's values as a 1-D view, taking its axes in `order` (outermost first), or None where
    that is not one contiguous run (a strided array, or one laid out in another order)."""
    dense = a.transpose(order)
    return dense.reshape(-1) if dense.flags.c_contiguous else None


_ZERO_ROW = 16384


_zero_rows: dict = {}


def _zeros_of(dtype) -> np.ndarray:
    """A cached read-only row of 2 * _ZERO_ROW zeros of `dtype`, for `maximum` against zeros."""
    zeros = _zero_rows.get(dtype)
    if zeros is None:
        zeros = _zero_rows[dtype] = np.zeros(2 * _ZERO_ROW, dtype=dtype)
        zeros.flags.writeable = False
    return zeros


def _max0(a: np.ndarray, with_mask=False) -> tuple:
    """(np.maximum(a, 0), out != 0 if with_mask else None), NaN kept, in a's layout. numpy
    (2.4) vectorizes `maximum` only when both operands are arrays, not against a scalar, so
    a float array is compared with a cached row of zeros: from 1,024 values whole where it
    is C-ordered (ReLU of a (100, 120) float32 7.2 -> 4.5 us, of the lecture net's (1, 30,
    24, 24) 9.1 -> 5.2 us; smaller arrays gain nothing, and other layouts against C-ordered
    zeros ran 1.6-2x slower than against the scalar), from 32,768 dense in any layout as
    rows of 16384 (2.4x faster on a (100, 30, 24, 24) float32). The mask (out >= 0 or NaN,
    so "not out <= 0") is made from each piece of the output while it is in cache; large
    arrays go to the threads in pieces (`_pieces`)."""
    if a.dtype.kind == "f" and 1024 <= a.size < 2 * _ZERO_ROW and a.flags.c_contiguous:
        out = np.empty_like(a)
        np.maximum(a, _zeros_of(a.dtype)[:a.size].reshape(a.shape), out=out)
        return out, (out != 0 if with_mask else None)
    order = kernels.memory_order(a) if a.size >= 2 * _ZERO_ROW and a.dtype.kind == "f" else None
    flat = _flat(a, order) if order else None
    if flat is None:  # small, not floating point, or strided
        out = np.maximum(a, a.dtype.type(0))
        return out, (out != 0 if with_mask else None)
    zeros = _zeros_of(a.dtype)
    out = kernels.empty_as(a.shape, a.dtype, order)  # in a's layout (conv2d's batch-innermost output)
    mask = kernels.empty_as(a.shape, np.bool_, order) if with_mask else None
    dst, bits = _flat(out, order), (_flat(mask, order) if with_mask else None)

    def work(pieces):
        for lo, hi in pieces:
            for s in range(lo, hi, _MASK_BLOCK):  # blocks of whole rows but the very last
                e = min(hi, s + _MASK_BLOCK)
                whole = s + (e - s) // _ZERO_ROW * _ZERO_ROW
                np.maximum(flat[s:whole].reshape(-1, _ZERO_ROW), zeros[:_ZERO_ROW],
                           out=dst[s:whole].reshape(-1, _ZERO_ROW))
                np.maximum(flat[whole:e], zeros[:e - whole], out=dst[whole:e])
                if bits is not None:
                    np.not_equal(dst[s:e], 0, out=bits[s:e])

    _parallel.split(work, _pieces(flat.size, _ZERO_ROW))
    return out, mask


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
