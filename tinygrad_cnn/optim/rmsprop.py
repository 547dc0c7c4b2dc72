"""RMSprop: gradients scaled by a running RMS of past gradients, as torch.optim.RMSprop."""
from __future__ import annotations

import numpy as np

from .optimizer import Optimizer


class RMSprop(Optimizer):
    """v = alpha v + (1 - alpha) g^2; p -= lr * g / (sqrt(v) + eps) (centered and momentum as in PyTorch)."""

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False):
        if lr < 0 or not 0 <= alpha <= 1:
            raise ValueError(f"RMSprop: lr={lr} must be >= 0 and alpha={alpha} in [0, 1]")
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                                      centered=centered))

    def _update(self, p, g, state, group):
        if group["weight_decay"]:
            g = g + group["weight_decay"] * p
        a = group["alpha"]
        v = self._buffer(state, "square_avg", p)
        v *= a
        v += (1 - a) * g * g
        if group["centered"]:
            m = self._buffer(state, "grad_avg", p)
            m *= a
            m += (1 - a) * g
            avg = np.sqrt(v - m * m) + group["eps"]
        else:
            avg = np.sqrt(v) + group["eps"]
        if group["momentum"] > 0:
            buf = self._buffer(state, "momentum_buffer", p)
            buf *= group["momentum"]
            buf += g / avg
            p -= group["lr"] * buf
        else:
            p -= group["lr"] * g / avg
