"""Normalization: `batch_norm` (batch statistics in training, running ones in eval)."""
from __future__ import annotations

import numpy as np

from ..tensor import Tensor, op_scope
from ..utils._inplace import write_


def _check_stat(what, t, c):
    if t is not None and tuple(t.shape) != (c,):
        raise ValueError(f"batch_norm: {what} must have shape ({c},) for {c} channels, got {tuple(t.shape)}")


def batch_norm(input: Tensor, running_mean: Tensor | None, running_var: Tensor | None, weight: Tensor | None = None,
               bias: Tensor | None = None, training=False, momentum=0.1, eps=1e-5) -> Tensor:
    """Normalize each channel of input (N, C, *) to mean 0 and variance 1, then scale by weight (C,)
    and shift by bias (C,).

    training: the batch's statistics over all dims but C (biased variance), with exact
    gradients through them; running_mean / running_var (C,), when given, are updated in
    place: r = (1 - momentum) * r + momentum * batch statistic (the variance unbiased).
    Not training: running_mean and running_var are used and not changed.
    """
    if not isinstance(input, Tensor):
        raise TypeError(f"batch_norm: input must be a Tensor, got {type(input).__name__}")
    if input.ndim < 2:
        raise ValueError(f"batch_norm: input must be (N, C, *), got shape {input.shape}")
    c = input.shape[1]
    for what, t in (("running_mean", running_mean), ("running_var", running_var), ("weight", weight),
                    ("bias", bias)):
        _check_stat(what, t, c)
    dims = (0,) + tuple(range(2, input.ndim))
    shape = (1, c) + (1,) * (input.ndim - 2)
    with op_scope("batch_norm", training=training, eps=eps):
        if training:
            out = _batch_norm_train(input, running_mean, running_var, momentum, eps, dims)
        else:
            if running_mean is None or running_var is None:
                raise ValueError("batch_norm: running_mean and running_var are needed when not training")
            mean = running_mean.data.reshape(shape).astype(input.dtype)
            inv_std = (1.0 / np.sqrt(running_var.data.reshape(shape) + eps)).astype(input.dtype)
            out = (input - Tensor._constant(mean)) * Tensor._constant(inv_std)
        if weight is not None:
            out = out * weight.reshape(shape)
        return out if bias is None else out + bias.reshape(shape)


def _batch_norm_train(input, running_mean, running_var, momentum, eps, dims):
    n = input.numel() // input.shape[1]
    if n <= 1:
        raise ValueError(f"batch_norm: expected more than 1 value per channel when training, got input of shape "
                         f"{input.shape}")
    mean = input.mean(dim=dims, keepdim=True)
    centered = input - mean
    var = (centered * centered).mean(dim=dims, keepdim=True)
    if running_mean is not None:
        write_(running_mean, (1 - momentum) * running_mean.data + momentum * mean.data.reshape(-1))
    if running_var is not None:
        write_(running_var, (1 - momentum) * running_var.data + momentum * var.data.reshape(-1) * (n / (n - 1)))
    return centered / (var + eps).sqrt()
