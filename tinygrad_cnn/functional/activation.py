"""Activations: relu, leaky_relu, sigmoid, tanh, softmax, log_softmax, logsigmoid."""
from __future__ import annotations

import numpy as np

from ..errors import normalize_dim
from ..ops import stack, where
from ..tensor import Function, Tensor, op_scope


def relu(input: Tensor) -> Tensor:
    """max(x, 0), elementwise; gradient 0 at 0, as in PyTorch."""
    return input.relu()


def leaky_relu(input: Tensor, negative_slope=0.01) -> Tensor:
    """x where x > 0, else negative_slope * x."""
    with op_scope("leaky_relu", negative_slope=negative_slope):
        return where(input.data > 0, input, input * negative_slope)


def sigmoid(input: Tensor) -> Tensor:
    """1 / (1 + exp(-x)), finite for any x."""
    return input.sigmoid()


def tanh(input: Tensor) -> Tensor:
    """Hyperbolic tangent, elementwise; same shape."""
    return input.tanh()


class LogSoftmax(Function):
    """x - logsumexp(x) along a dim; backward g - softmax * sum(g)."""

    SAVES = {0: ("out",)}

    def forward(self, x, dim):
        dim = dim if x.ndim else None
        z = x - x.max(axis=dim, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=dim, keepdims=True))

    def backward(self, g):
        dim = self.attrs["dim"]
        return g - self.output.exp() * g.sum(dim=dim, keepdim=True)


class Softmax(Function):
    """exp(x) / sum(exp(x)) along a dim; backward y * (g - sum(g * y))."""

    SAVES = {0: ("out",)}

    def forward(self, x, dim):
        dim = dim if x.ndim else None
        e = np.exp(x - x.max(axis=dim, keepdims=True))
        return e / e.sum(axis=dim, keepdims=True)

    def backward(self, g):
        y = self.output
        return y * (g - (g * y).sum(dim=self.attrs["dim"], keepdim=True))


def softmax(input: Tensor, dim: int) -> Tensor:
    """exp(x) / sum(exp(x)) along `dim` (shifted by the max: no overflow)."""
    return Softmax.apply(input, dim=normalize_dim(dim, input.ndim, "softmax"))


def log_softmax(input: Tensor, dim: int) -> Tensor:
    """x - logsumexp(x) along `dim`, computed stably."""
    return LogSoftmax.apply(input, dim=normalize_dim(dim, input.ndim, "log_softmax"))


def _log_sigmoids(input: Tensor) -> tuple:
    """(log sigmoid(x), log sigmoid(-x)), finite for any x: log_softmax over the pair (0, x)."""
    pair = log_softmax(stack([Tensor._constant(np.zeros(input.shape, input.dtype)), input]), dim=0)
    return pair[1], pair[0]


def logsigmoid(input: Tensor) -> Tensor:
    """log(1 / (1 + exp(-x))), elementwise and finite for any x."""
    with op_scope("logsigmoid"):
        return _log_sigmoids(input)[0]
