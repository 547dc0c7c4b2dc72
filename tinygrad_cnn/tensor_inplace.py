"""Tensor's in-place methods, with PyTorch's rules: the result must cast to the tensor's dtype
and fit its shape; a leaf that requires grad refuses them outside `no_grad`; in the graph
they are differentiable and bump the version counter (see `autograd.function.apply_inplace`).
Tensor inherits them from `InPlaceMethods`."""
from __future__ import annotations

from . import dtypes
from .errors import DTypeError


class InPlaceMethods:
    """add_, sub_, mul_, div_ (and +=, -=, *=, /=), zero_, fill_, copy_, clamp_ and x[index] = v."""

    def _inplace(self, cls, other, op: str):
        other = _ops().as_tensor(other, self)
        dt = dtypes.result_type(self, other)
        if not dtypes.can_cast(dt, self.dtype):
            raise DTypeError(f"{op}: result type {dt} can't be cast to the desired output type {self.dtype}")
        if other.dtype != dt and not other.requires_grad:
            other = _constant(other.data.astype(dt))
        return cls.apply_inplace(self, other)

    def add_(self, other, alpha=1):
        """self += alpha * other, in place; returns self."""
        return self._inplace(_ops().Add, other if alpha == 1 else other * alpha, "add_")

    def sub_(self, other, alpha=1):
        """self -= alpha * other, in place; returns self."""
        return self._inplace(_ops().Sub, other if alpha == 1 else other * alpha, "sub_")

    def mul_(self, other):
        """self *= other, in place; returns self."""
        return self._inplace(_ops().Mul, other, "mul_")

    def div_(self, other):
        """self /= other, in place (a floating tensor only); returns self."""
        if self.dtype.kind != "f":
            raise DTypeError(f"div_: result type {dtypes.get_default_dtype()} can't be cast to the desired output "
                             f"type {self.dtype}")
        return self._inplace(_ops().Div, other, "div_")

    __iadd__, __isub__, __imul__, __itruediv__ = add_, sub_, mul_, div_

    def zero_(self):
        """Fill with 0, in place; returns self."""
        return self.fill_(0)

    def fill_(self, value):
        """Fill with `value` (a number or a one-element tensor), in place; returns self."""
        return self.copy_(_ops().as_tensor(value, self).reshape(()).expand(*self.shape))

    def copy_(self, src):
        """Copy `src` (broadcast to self's shape, cast to self's dtype) into self; returns self."""
        src = _ops().as_tensor(src, self)
        if src.dtype != self.dtype:
            src = src.to(self.dtype) if src.requires_grad else _constant(src.data.astype(self.dtype))
        return _ops().Copy.apply_inplace(self, src)

    def clamp_(self, min=None, max=None):
        """Clamp to [min, max] (numbers), in place; returns self."""
        dt = dtypes.result_type(self, *[v for v in (min, max) if v is not None])
        if not dtypes.can_cast(dt, self.dtype):
            raise DTypeError(f"clamp_: result type {dt} can't be cast to the desired output type {self.dtype}")
        return _ops().Clamp.apply_inplace(self, lo=min, hi=max)

    def __setitem__(self, index, value):
        value = _ops().as_tensor(value, self)
        if value.dtype != self.dtype:
            value = value.to(self.dtype) if value.requires_grad else _constant(value.data.astype(self.dtype))
        _ops().SetItem.apply_inplace(self, value, steps=_ops().torch_index(index))


def _ops():
    from . import ops  # ops imports tensor.py, which imports this module: looked up at call time
    return ops


def _constant(arr):
    from .tensor import Tensor
    return Tensor._constant(arr)
