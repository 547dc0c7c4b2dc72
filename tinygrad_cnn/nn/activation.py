"""Activation modules: ReLU, LeakyReLU, Sigmoid, Tanh, Softmax, LogSoftmax. Each keeps the shape.

`inplace=True` is accepted for PyTorch's signatures; the result is always a new tensor.
"""
from __future__ import annotations

import warnings

from .. import functional as F
from ..ops import as_tensor
from .module import Module


class ReLU(Module):
    """max(x, 0), elementwise."""

    def __init__(self, inplace: bool = False):
        super().__init__()
        self.inplace = inplace

    def forward(self, x):
        return F.relu(as_tensor(x))


class LeakyReLU(Module):
    """x where x > 0, else negative_slope * x."""

    def __init__(self, negative_slope: float = 0.01, inplace: bool = False):
        super().__init__()
        self.negative_slope, self.inplace = negative_slope, inplace

    def forward(self, x):
        return F.leaky_relu(as_tensor(x), self.negative_slope)

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}"


class Sigmoid(Module):
    """1 / (1 + exp(-x)), elementwise."""

    def forward(self, x):
        return F.sigmoid(as_tensor(x))


class Tanh(Module):
    """tanh(x), elementwise."""

    def forward(self, x):
        return F.tanh(as_tensor(x))


def _implicit_dim(name: str, ndim: int) -> int:
    """PyTorch's legacy choice when dim is None: 0 for 0-, 1- and 3-D input, else 1 (with a warning)."""
    dim = 0 if ndim in (0, 1, 3) else 1
    warnings.warn(f"Implicit dimension choice for {name} has been deprecated (as in PyTorch): pass dim={dim}",
                  UserWarning, stacklevel=3)
    return dim


class Softmax(Module):
    """exp(x) / sum(exp(x)) along `dim`."""

    def __init__(self, dim: int | None = None):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        x = as_tensor(x)
        return F.softmax(x, _implicit_dim("softmax", x.ndim) if self.dim is None else self.dim)

    def extra_repr(self):
        return f"dim={self.dim}"


class LogSoftmax(Module):
    """x - logsumexp(x) along `dim`, computed stably."""

    def __init__(self, dim: int | None = None):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        x = as_tensor(x)
        return F.log_softmax(x, _implicit_dim("log_softmax", x.ndim) if self.dim is None else self.dim)

    def extra_repr(self):
        return f"dim={self.dim}"
