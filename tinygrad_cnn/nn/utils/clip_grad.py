"""Gradient clipping, in place, as torch.nn.utils.clip_grad_norm_ / clip_grad_value_."""
from __future__ import annotations

import math

import numpy as np

from ...tensor import Tensor
from ...utils._inplace import mark_changed


def _grads(parameters) -> list[Tensor]:
    params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    for p in params:
        if not isinstance(p, Tensor):
            raise TypeError(f"expected Tensors (parameters), got {type(p).__name__}")
    return [p.grad for p in params if p.grad is not None]


def _vector_norm(a: np.ndarray, p: float) -> float:
    if a.size == 0:
        return 0.0
    if p == math.inf:
        return float(np.max(np.abs(a)))
    if p == -math.inf:
        return float(np.min(np.abs(a)))
    if p == 0:
        return float(np.count_nonzero(a))
    if p == 2:
        flat = a.ravel()
        return math.sqrt(float(np.dot(flat, flat)))
    return float(np.sum(np.abs(a) ** p) ** (1.0 / p))


def clip_grad_norm_(parameters, max_norm: float, norm_type: float = 2.0, error_if_nonfinite: bool = False,
                    foreach=None) -> Tensor:
    """Scale the gradients of `parameters` (a Tensor or an iterable) in place so that their joint
    `norm_type`-norm (the norm of the per-gradient norms) is at most `max_norm`.

    The factor is max_norm / (total + 1e-6), capped at 1, as in PyTorch. Returns the total
    norm before clipping, as a 0-d Tensor in the gradients' dtype. A NaN or infinite total
    raises RuntimeError when `error_if_nonfinite`. `foreach` is accepted and ignored.
    """
    grads = _grads(parameters)
    norm_type = float(norm_type)
    if not grads:
        return Tensor(np.array(0.0, dtype=np.float32))
    dtype = np.result_type(*[g.dtype for g in grads])
    total = _vector_norm(np.array([_vector_norm(g.data, norm_type) for g in grads]), norm_type)
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(f"The total norm of order {norm_type} for gradients from `parameters` is non-finite, "
                           "so it cannot be clipped. To disable this error and scale the gradients by the "
                           "non-finite norm anyway, set `error_if_nonfinite=False`")
    coef = min(max_norm / (total + 1e-6), 1.0)
    for g in grads:
        g.data *= g.dtype.type(coef)
        mark_changed(g)
    return Tensor(np.array(total, dtype=dtype))


def clip_grad_value_(parameters, clip_value: float, foreach=None) -> None:
    """Clamp every gradient of `parameters` to [-clip_value, clip_value], in place."""
    clip_value = float(clip_value)
    for g in _grads(parameters):
        np.clip(g.data, -clip_value, clip_value, out=g.data)
        mark_changed(g)
