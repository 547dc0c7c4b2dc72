"""The torch.* forms of Tensor methods: `torch.flatten(x, 1)` is `x.flatten(1)`, `torch.max(x, 1)`
is `x.max(1)`, and so on; each takes the tensor (or a number or array) first."""
from __future__ import annotations

import numpy as np

from .ops import as_tensor
from .tensor import Tensor

METHODS = ("flatten", "reshape", "squeeze", "unsqueeze", "transpose", "permute", "t", "clone", "detach",
           "sum", "mean", "var", "std", "amax", "amin", "max", "min", "argmax", "argmin",
           "exp", "log", "sqrt", "tanh", "sigmoid", "relu", "abs", "neg", "clamp", "clip", "pow",
           "add", "sub", "mul", "div", "maximum", "minimum", "matmul", "eq", "ne", "lt", "le", "gt", "ge",
           "softmax", "log_softmax", "equal")

__all__ = [*METHODS, "mm", "bmm", "allclose"]


def _from_method(name: str):
    def fn(input, *args, **kwargs):
        return getattr(as_tensor(input), name)(*args, **kwargs)

    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = f"`torch.{name}(input, ...)`, the same as `input.{name}(...)`: " + (getattr(Tensor, name).__doc__ or "")
    return fn


for _name in METHODS:
    globals()[_name] = _from_method(_name)
mm = bmm = globals()["matmul"]


def allclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False) -> bool:
    """True when every |input - other| <= atol + rtol * |other| (as `torch.allclose`)."""
    a = input.data if isinstance(input, Tensor) else np.asarray(input)
    b = other.data if isinstance(other, Tensor) else np.asarray(other)
    return bool(np.allclose(a, b, rtol=rtol, atol=atol, equal_nan=equal_nan))
