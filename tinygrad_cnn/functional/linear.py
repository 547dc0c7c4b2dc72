"""Layers as functions: `linear`, `dropout`, `flatten`."""
from __future__ import annotations

import numpy as np

from .. import _parallel, kernels
from ..autograd.function import Part
from ..autograd.grad_mode import is_grad_enabled
from ..errors import ShapeError
from ..ops.arithmetic import _transposed
from ..rng import get_rng
from ..tensor import Function, Tensor, op_scope
from ._utils import _same_dtype


class Linear(Function):
    """input (N, in) @ weight (out, in).T + bias (out,) or None -> (N, out), one op (as
    PyTorch's addmm). Backward: g @ weight, g.T @ input (row-major, like the weight) and
    g.sum(0); with create_graph, as Tensor ops. A linear layer took some ten op calls a
    step as a matmul, a transpose and an add (LeNet-5's three layers: about 0.4 ms)."""

    SAVES = {0: (1,), 1: (0,)}

    def forward(self, x, w, b):
        # the input's layout, for backward: the conv features flattened with the batch
        # innermost get their gradient laid out so too
        self.x_transposed = _transposed(x)
        if not self.x_transposed:
            out = _parallel.matmul(x, w.T)
            return out if b is None else np.add(out, b, out=out)
        # such an input is multiplied as w @ x.T, of two row-major operands, and the (out, N)
        # product copied back row-major (with the bias): the MNIST net's (64, 9216) @
        # (9216, 128) took 1.44-1.60 ms as x @ w.T, 1.19-1.29 ms so. Row-major like PyTorch's,
        # the output's reshapes stay views.
        prod = _parallel.matmul(w, x.T).T
        if b is None:
            return np.ascontiguousarray(prod)
        return np.add(prod, b, out=np.empty(prod.shape, dtype=prod.dtype))

    def backward(self, g):
        x, w, _ = self.inputs
        need = self.needs_input_grad
        if is_grad_enabled():  # create_graph: the gradients are recorded
            gx = ((w.mT @ g.mT).mT if self.x_transposed else g @ w) if need[0] else None
            return gx, (g.mT @ x if need[1] else None), (g.sum(0) if need[2] else None)
        gd = g.data
        gx = gw = gb = None
        if need[0]:
            gx = Tensor._make(_parallel.matmul(w.data.T, gd.T).T if self.x_transposed else _parallel.matmul(gd, w.data))
        if need[1]:  # (at batch 1 an outer product, which _parallel.matmul broadcasts)
            gw = Tensor._make(_parallel.matmul(gd.T, x.data))
        if need[2]:
            gb = Tensor._make(gd.sum(axis=0))
        return gx, gw, gb

    def parts(self) -> list:
        """The weight's transpose, a matrix product, the bias added: the steps of the composite."""
        x, w, b = self.inputs
        (n, _), (out, k) = x.shape, w.shape
        parts = [Part("permute", {"dims": (1, 0)}, (("in", 1),), (k, out)),
                 Part("matmul", {}, (("in", 0), ("step", 0)), (n, out))]
        return parts + ([Part("add", {}, (("step", 1), ("in", 2)), (n, out))] if b is not None else [])


def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """input (*, in) @ weight (out, in).T + bias (out,) -> (*, out): one op (`Linear`) for a
    2-D input, a matmul and an add otherwise."""
    if weight.ndim != 2 or input.shape[-1:] != weight.shape[1:]:
        raise ShapeError(f"linear: input {input.shape} does not fit weight {weight.shape} (out, in)")
    _same_dtype("linear", input, weight, bias)
    if input.ndim == 2:
        return Linear.apply(input, weight, bias)
    with op_scope("linear"):
        out = input @ weight.T
        return out if bias is None else out + bias


def dropout(input: Tensor, p=0.5, training=True) -> Tensor:
    """Zero each element with probability p and scale the rest by 1/(1-p); identity when not training."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: p must be in [0, 1], got {p}")
    if not training or p == 0.0:
        return input
    if p == 1.0:
        return input * 0.0
    # drawn in the input's memory order (a conv's batch-innermost output), so that the multiply
    # and its gradient run over matching layouts
    order = kernels.memory_order(input.data)
    keep = _kept(tuple(input.shape[i] for i in order), p).transpose(np.argsort(order)).astype(input.dtype)
    keep /= input.dtype.type(1.0 - p)
    with op_scope("dropout", p=p):
        return input * Tensor._constant(keep)


def _kept(shape, p: float) -> np.ndarray:
    """A bool array of `shape`, each value True with probability 1 - p (0 < p < 1): uniform
    32-bit integers, two from each of the generator's raw 64-bit outputs, at or above
    p * 2**32. 0.65 ms for 590k values, against 1.07 ms for float32 uniforms (`random`);
    p is resolved to 2**-32, finer than float32's 2**-24."""
    n = int(np.prod(shape))
    bits = get_rng().bit_generator.random_raw((n + 1) // 2).view(np.uint32)[:n]
    threshold = round(p * 2.0 ** 32)
    if threshold >= 2 ** 32:  # p within 2**-33 of 1
        return np.zeros(shape, dtype=bool)
    return (bits >= np.uint32(threshold)).reshape(shape)


def flatten(input: Tensor, start_dim=0, end_dim=-1) -> Tensor:
    """input with dims start_dim..end_dim merged: (N, C, H, W), 1 -> (N, C*H*W)."""
    return input.flatten(start_dim, end_dim)
