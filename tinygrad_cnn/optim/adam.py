"""Adam, as torch.optim.Adam (weight_decay as L2 on the gradient, amsgrad)."""
from __future__ import annotations

import functools
import math

import numpy as np

from .. import _parallel
from .optimizer import Optimizer


class Adam(Optimizer):
    """m, v: running moments of g and g^2; p -= lr * m_hat / (sqrt(v_hat) + eps).

    weight_decay adds weight_decay * p to the gradient (L2, as torch.optim.Adam); see AdamW.
    """

    decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False):
        if lr < 0 or not (0 <= betas[0] < 1 and 0 <= betas[1] < 1) or eps < 0:
            raise ValueError(f"{type(self).__name__}: lr={lr}, betas={betas}, eps={eps} out of range")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      amsgrad=amsgrad))

    def _update(self, p, g, state, group):
        lr, (b1, b2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
        if wd and self.decoupled:
            p *= 1 - lr * wd
        elif wd:
            g = g + wd * p
        state["step"] = t = state.get("step", 0) + 1
        m = self._buffer(state, "exp_avg", p)
        v = self._buffer(state, "exp_avg_sq", p)
        tmp = self._buffer(state, "_tmp", p)  # scratch, so a step allocates nothing
        vmax = self._buffer(state, "max_exp_avg_sq", p) if group["amsgrad"] else None
        # p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps), computed as
        # p -= lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps * sqrt(1 - b2^t))
        c2 = math.sqrt(1 - b2 ** t)
        coefs = (b1, b2, eps * c2, lr * c2 / (1 - b1 ** t))
        arrays = (p, g, m, v, tmp) if vmax is None else (p, g, m, v, tmp, vmax)
        _parallel.split_rows(functools.partial(_adam_step, coefs), *arrays)


def _adam_step(coefs, p, g, m, v, tmp, vmax=None) -> None:
    """One Adam update of arrays of one shape, in place (12 passes; `tmp` is scratch):
    m, v <- the moments' running averages; p -= step * m / (sqrt(v or vmax) + eps')."""
    b1, b2, eps, step = coefs
    m *= b1
    np.multiply(g, 1 - b1, out=tmp)
    m += tmp
    v *= b2
    np.multiply(g, g, out=tmp)
    tmp *= 1 - b2
    v += tmp
    if vmax is not None:
        np.maximum(vmax, v, out=vmax)
        v = vmax
    np.sqrt(v, out=tmp)
    tmp += eps
    np.divide(m, tmp, out=tmp)
    tmp *= step
    p -= tmp
