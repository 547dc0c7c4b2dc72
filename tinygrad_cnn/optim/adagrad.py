"""AdaGrad: per-element learning rates from the sum of squared gradients, as torch.optim.Adagrad."""
from __future__ import annotations

import numpy as np

from .optimizer import Optimizer


class AdaGrad(Optimizer):
    """sum += g^2; p -= lr_t * g / (sqrt(sum) + eps), lr_t = lr / (1 + (t - 1) * lr_decay)."""

    def __init__(self, params, lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10):
        if lr < 0:
            raise ValueError(f"AdaGrad: lr={lr} must be >= 0")
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value, eps=eps))

    def _update(self, p, g, state, group):
        if "sum" not in state:
            state["sum"] = np.full_like(p, group["initial_accumulator_value"])
            state["step"] = 0
        state["step"] += 1
        if group["weight_decay"]:
            g = g + group["weight_decay"] * p
        clr = group["lr"] / (1 + (state["step"] - 1) * group["lr_decay"])
        s = state["sum"]
        s += g * g
        p -= clr * g / (np.sqrt(s) + group["eps"])


Adagrad = AdaGrad  # PyTorch's spelling
