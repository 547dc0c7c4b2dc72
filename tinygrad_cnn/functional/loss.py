"""Losses: `nll_loss`, `cross_entropy` (class indices or probabilities), `mse_loss`, `l1_loss`,
`binary_cross_entropy` and `binary_cross_entropy_with_logits`."""
from __future__ import annotations

import warnings

import numpy as np

from ..errors import IndexOutOfRangeError, InvalidArgumentError, ShapeError
from ..ops import where
from ..tensor import Function, Tensor, op_scope
from ._utils import _REDUCTIONS
from .activation import _log_sigmoids, log_softmax


def _class_last(input: Tensor, target=None):
    """(N, C, d1, ...) -> (N*d1*..., C) and the target to match."""
    if input.ndim <= 2:
        return input, target
    perm = (0,) + tuple(range(2, input.ndim)) + (1,)
    flat = input.permute(*perm).reshape(-1, input.shape[1])
    if target is not None:
        if target.ndim == input.ndim - 1:
            target = target.reshape(-1)
        elif isinstance(target, Tensor):
            target = target.permute(*perm).reshape(-1, input.shape[1])
        else:
            target = np.transpose(target, perm).reshape(-1, input.shape[1])
    return flat, target


def _target_array(target) -> np.ndarray:
    return np.asarray(target.data if isinstance(target, Tensor) else target)


def nll_loss(input: Tensor, target, weight=None, ignore_index=-100, reduction="mean") -> Tensor:
    """Negative log-likelihood of class indices: input (N, C) log-probabilities, target (N,) ints."""
    with op_scope("nll_loss", reduction=reduction):
        return _nll_loss(input, target, weight, ignore_index, reduction)


def _nll_loss(input, target, weight, ignore_index, reduction):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"nll_loss: reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    t = _target_array(target)
    logp, t = _class_last(input, t)
    n, c = logp.shape if logp.ndim == 2 else (1, logp.shape[0])
    logp = logp.reshape(n, c)
    t = t.reshape(-1)
    _check_labels("nll_loss", t, n, c, ignore_index)
    valid = t != ignore_index
    safe = np.where(valid, t, 0)
    w = np.ones(c, dtype=logp.dtype) if weight is None else _target_array(weight).astype(logp.dtype)
    wt = np.where(valid, w[safe], 0).astype(logp.dtype)
    loss = NllLoss.apply(logp, target=safe, weight=wt, reduction=reduction)
    if reduction == "none" and input.ndim != 2:  # back to (N, d1, ...), or () for a single unbatched row
        return loss.reshape(input.shape[0], *input.shape[2:]) if input.ndim > 2 else loss.reshape(())
    return loss


class NllLoss(Function):
    """-weight[i] * logp[i, target[i]] for each row i of logp (M, C), then summed, averaged
    over the weights ('mean') or kept (M,) ('none'). Backward: -weight * grad at the targets."""

    HEAVY_ATTRS = ("target", "weight")

    def forward(self, logp, target, weight, reduction):
        loss = -(logp[np.arange(len(target)), target] * weight)
        if reduction == "none":
            return loss
        total = loss.sum(dtype=logp.dtype)
        return np.asarray(total / weight.sum() if reduction == "mean" else total, dtype=logp.dtype)

    def backward(self, g):
        logp = self.inputs[0]
        t, w, reduction = self.attrs["target"], self.attrs["weight"], self.attrs["reduction"]
        coef = np.zeros(logp.shape, dtype=logp.dtype)
        coef[np.arange(len(t)), t] = -w / w.sum() if reduction == "mean" else -w
        return (g.reshape(-1, 1) if reduction == "none" else g) * Tensor._constant(coef)


def _check_labels(name, t, n, c, ignore_index):
    if not np.issubdtype(t.dtype, np.integer):
        raise InvalidArgumentError(f"{name}: class-index target must be integers, got dtype {t.dtype}")
    if t.shape != (n,):
        raise ValueError(f"{name}: target of shape {t.shape} does not match input batch {n}")
    bad = (t != ignore_index) & ((t < 0) | (t >= c))
    if bad.any():
        raise IndexOutOfRangeError(f"{name}: target labels {np.unique(t[bad]).tolist()} are out of range for {c} classes")


def _reduce(loss: Tensor, reduction, denom, input, target):
    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        return loss.sum() / float(denom)
    if input.ndim > 2:  # back to (N, d1, ...)
        return loss.reshape(input.shape[0], *input.shape[2:])
    return loss.reshape(()) if input.ndim == 1 else loss


def cross_entropy(input: Tensor, target, weight=None, ignore_index=-100, reduction="mean",
                  label_smoothing=0.0) -> Tensor:
    """Softmax cross-entropy from raw logits, as `torch.nn.functional.cross_entropy`.

    input (N, C) (or (N, C, d1, ...)); target is class indices (N,) or, like the
    lecture's SoftmaxWithLoss, one-hot / probability rows of the input's shape.
    Uses log_softmax, so it is finite for logits of +-1000.
    """
    with op_scope("cross_entropy", reduction=reduction, label_smoothing=label_smoothing):
        return _cross_entropy(input, target, weight, ignore_index, reduction, label_smoothing)


def _cross_entropy(input, target, weight, ignore_index, reduction, label_smoothing):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"cross_entropy: reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    if input.ndim == 0:
        raise ShapeError("cross_entropy: input must have a class dimension, got a scalar")
    cdim = 1 if input.ndim >= 2 else 0
    c = input.shape[cdim]
    logp = log_softmax(input, dim=cdim)
    t = _target_array(target)
    w = None if weight is None else _target_array(weight).astype(input.dtype)
    if w is not None and w.shape != (c,):
        raise ShapeError(f"cross_entropy: weight must have shape ({c},), got {w.shape}")
    if np.issubdtype(t.dtype, np.floating):  # probabilities: a Tensor target gets a gradient too
        if t.shape != input.shape:
            raise ShapeError(f"cross_entropy: probability target of shape {t.shape} must match input {input.shape}")
        tt = target.to(input.dtype) if isinstance(target, Tensor) else Tensor._constant(t.astype(input.dtype))
        if label_smoothing:
            tt = tt * (1 - label_smoothing) + label_smoothing / c
        lp, tt = _class_last(logp, tt)
        lp, tt = lp.reshape(-1, c), tt.reshape(-1, c)
        wt = tt if w is None else tt * Tensor._constant(w)
        loss = -(lp * wt).sum(dim=1)
        return _reduce(loss, reduction, lp.shape[0], input, t)
    nll = nll_loss(logp, t, weight=w, ignore_index=ignore_index, reduction=reduction)
    if not label_smoothing:
        return nll
    # PyTorch's smoothing: (1 - e) * nll + e * mean over classes of -w_c log p_c
    lp, tt = _class_last(logp, t)
    lp, tt = lp.reshape(-1, c), tt.reshape(-1)
    valid = (tt != ignore_index).astype(input.dtype)
    wc = np.ones(c, dtype=input.dtype) if w is None else w
    smooth = -(lp * Tensor._constant(wc)).sum(dim=1) * Tensor._constant(valid) / c
    if reduction == "mean":
        denom = (wc[np.where(tt != ignore_index, tt, 0)] * valid).sum()
        smooth = smooth.sum() / float(denom)
    else:
        smooth = _reduce(smooth, reduction, None, input, t)
    return nll * (1 - label_smoothing) + smooth * label_smoothing


def _operand(x, like: Tensor) -> Tensor:
    """x in like's dtype: a Tensor through a (differentiable) cast, anything else as a constant."""
    if isinstance(x, Tensor):
        return x if x.dtype == like.dtype else x.to(like.dtype)
    return Tensor._constant(np.asarray(x, dtype=like.dtype))


def _check_loss_args(name, input, reduction):
    if not isinstance(input, Tensor):
        raise TypeError(f"{name}: input must be a Tensor, got {type(input).__name__}")
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{name}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def _reduce_elementwise(loss: Tensor, reduction) -> Tensor:
    return loss.mean() if reduction == "mean" else loss.sum() if reduction == "sum" else loss


def _broadcast_target(name, input, target) -> Tensor:
    """The target as a Tensor; a shape other than input's broadcasts with a warning, as in PyTorch."""
    t = _operand(target, input)
    if t.shape != input.shape:
        warnings.warn(f"{name}: target of shape {t.shape} differs from input of shape {input.shape}; they are "
                      "broadcast together, which is likely not what you want (as in PyTorch)", UserWarning,
                      stacklevel=3)
    return t


def mse_loss(input: Tensor, target, reduction="mean") -> Tensor:
    """(input - target)^2, averaged ('mean'), summed ('sum') or kept ('none')."""
    _check_loss_args("mse_loss", input, reduction)
    with op_scope("mse_loss", reduction=reduction):
        d = input - _broadcast_target("mse_loss", input, target)
        return _reduce_elementwise(d * d, reduction)


def l1_loss(input: Tensor, target, reduction="mean") -> Tensor:
    """|input - target| (gradient 0 where equal), averaged ('mean'), summed ('sum') or kept ('none')."""
    _check_loss_args("l1_loss", input, reduction)
    with op_scope("l1_loss", reduction=reduction):
        return _reduce_elementwise((input - _broadcast_target("l1_loss", input, target)).abs(), reduction)


def _same_shape_target(name, input, target) -> Tensor:
    t = _operand(target, input)
    if t.shape != input.shape:
        raise ValueError(f"{name}: target of shape {t.shape} must have the input's shape {input.shape}")
    return t


def _clamped_log(x: Tensor) -> Tensor:
    """max(log(x), -100) as PyTorch's binary_cross_entropy, with a zero (not NaN) gradient where x <= 0."""
    pos = x.data > 0
    lx = where(pos, x, 1.0).log()
    return where(pos & (lx.data > -100), lx, -100.0)


def binary_cross_entropy(input: Tensor, target, weight=None, reduction="mean") -> Tensor:
    """-weight * (t log(p) + (1 - t) log(1 - p)) for probabilities p in [0, 1] (logs clamped at -100)."""
    _check_loss_args("binary_cross_entropy", input, reduction)
    t = _same_shape_target("binary_cross_entropy", input, target)
    inside = (input.data >= 0) & (input.data <= 1)  # False for NaN too
    if not inside.all():
        bad = input.data[~inside]
        raise ValueError(f"binary_cross_entropy: all elements of input should be between 0 and 1, found "
                         f"{bad.ravel()[:5].tolist()} (use binary_cross_entropy_with_logits for raw scores)")
    with op_scope("binary_cross_entropy", reduction=reduction):
        loss = -(t * _clamped_log(input) + (1.0 - t) * _clamped_log(1.0 - input))
        if weight is not None:
            loss = loss * _operand(weight, input)
        return _reduce_elementwise(loss, reduction)


def binary_cross_entropy_with_logits(input: Tensor, target, weight=None, reduction="mean",
                                     pos_weight=None) -> Tensor:
    """binary_cross_entropy(sigmoid(x), t) computed stably from logits x:
    -weight * (pos_weight * t * log sigmoid(x) + (1 - t) * log sigmoid(-x)).

    pos_weight (broadcast along the last dim, e.g. (C,)) weights the positive targets.
    """
    _check_loss_args("binary_cross_entropy_with_logits", input, reduction)
    t = _same_shape_target("binary_cross_entropy_with_logits", input, target)
    with op_scope("binary_cross_entropy_with_logits", reduction=reduction):
        log_p, log_not_p = _log_sigmoids(input)
        positive = t * log_p if pos_weight is None else _operand(pos_weight, input) * t * log_p
        loss = -(positive + (1.0 - t) * log_not_p)
        if weight is not None:
            loss = loss * _operand(weight, input)
        return _reduce_elementwise(loss, reduction)
