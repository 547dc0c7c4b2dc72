"""Adadelta, as torch.optim.Adadelta."""
from __future__ import annotations

import numpy as np

from .optimizer import Optimizer


class Adadelta(Optimizer):
    """v = rho v + (1 - rho) g^2; d = sqrt(u + eps) / sqrt(v + eps) * g; u = rho u + (1 - rho) d^2; p -= lr * d.

    weight_decay adds weight_decay * p to the gradient first (L2).
    """

    def __init__(self, params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0):
        if not lr >= 0 or not 0 <= rho <= 1 or not eps >= 0 or not weight_decay >= 0:
            raise ValueError(f"Adadelta: lr={lr}, eps={eps}, weight_decay={weight_decay} must be >= 0 "
                             f"and rho={rho} in [0, 1]")
        super().__init__(params, dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay))

    def _update(self, p, g, state, group):
        rho, eps = group["rho"], group["eps"]
        if group["weight_decay"]:
            g = g + group["weight_decay"] * p
        state["step"] = state.get("step", 0) + 1
        v = self._buffer(state, "square_avg", p)
        u = self._buffer(state, "acc_delta", p)
        v *= rho
        v += (1 - rho) * g * g
        delta = np.sqrt(u + eps) / np.sqrt(v + eps) * g
        u *= rho
        u += (1 - rho) * delta * delta
        p -= group["lr"] * delta
