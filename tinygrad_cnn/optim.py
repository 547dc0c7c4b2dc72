"""Optimizers with `torch.optim`'s update rules: SGD (momentum, nesterov), AdaGrad, RMSprop,
Adam, AdamW. Parameters are updated in place, in their own dtype, with per-parameter
buffers that are reused from step to step."""
from __future__ import annotations

import copy
import math

import numpy as np

from .tensor import Tensor


class Optimizer:
    """Base class: holds param groups (dicts with 'params' and hyperparameters) and per-parameter state."""

    def __init__(self, params, defaults: dict):
        self.defaults = defaults
        params = list(params)
        if not params:
            raise ValueError(f"{type(self).__name__} got an empty parameter list")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        self.param_groups: list[dict] = []
        self.state: dict[int, dict] = {}  # keyed by id(param)
        for g in groups:
            self.add_param_group(g)

    def add_param_group(self, group: dict) -> None:
        """Add a dict with 'params' (and hyperparameters that override the defaults)."""
        group = dict(group)
        ps = group["params"]
        group["params"] = [ps] if isinstance(ps, Tensor) else list(ps)
        for p in group["params"]:
            if not isinstance(p, Tensor):
                raise TypeError(f"{type(self).__name__}: parameters must be Tensors, got {type(p).__name__}")
            if not p.requires_grad:
                raise ValueError(f"{type(self).__name__}: a parameter of shape {p.shape} does not require grad")
        for k, v in self.defaults.items():
            group.setdefault(k, v)
        self.param_groups.append(group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drop every parameter's gradient (or zero it in place with set_to_none=False)."""
        for g in self.param_groups:
            for p in g["params"]:
                if set_to_none or p.grad is None:
                    p.grad = None
                else:
                    p.grad.data[...] = 0

    def step(self) -> None:
        """Update every parameter that has a gradient."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad.data
                if g.dtype != p.dtype:
                    g = g.astype(p.dtype)
                self._update(p.data, g, self.state.setdefault(id(p), {}), group)
                p._bump_version()  # an in-place change: a graph that saved p refuses to backward

    def _update(self, p: np.ndarray, g: np.ndarray, state: dict, group: dict) -> None:  # pragma: no cover
        raise NotImplementedError

    @staticmethod
    def _buffer(state: dict, key: str, like: np.ndarray) -> np.ndarray:
        if key not in state:
            state[key] = np.zeros_like(like)
        return state[key]

    def state_dict(self) -> dict:
        """{'state': {index: {name: array or number}}, 'param_groups': [hyperparameters, 'params': indices]}."""
        index, groups = {}, []
        for g in self.param_groups:
            ids = []
            for p in g["params"]:
                index.setdefault(id(p), len(index))
                ids.append(index[id(p)])
            groups.append({**{k: v for k, v in g.items() if k != "params"}, "params": ids})
        state = {index[k]: {n: copy.deepcopy(x) for n, x in v.items() if not n.startswith("_")}
                 for k, v in self.state.items() if k in index}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore hyperparameters and per-parameter state saved by `state_dict`."""
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups) or any(
                len(a["params"]) != len(b["params"]) for a, b in zip(groups, self.param_groups)):
            raise ValueError("load_state_dict: the saved param groups do not match this optimizer's")
        params = [p for g in self.param_groups for p in g["params"]]
        for g, saved in zip(self.param_groups, groups):
            g.update({k: v for k, v in saved.items() if k != "params"})
        self.state = {id(params[int(i)]): copy.deepcopy(s) for i, s in state_dict["state"].items()}


class SGD(Optimizer):
    """p -= lr * d, where d is the gradient (+ weight decay), through momentum / Nesterov if set."""

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
        if lr < 0 or momentum < 0 or weight_decay < 0:
            raise ValueError(f"SGD: lr={lr}, momentum={momentum}, weight_decay={weight_decay} must be >= 0")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: nesterov needs momentum > 0 and dampening 0")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                                      nesterov=nesterov))

    def _update(self, p, g, state, group):
        if group["weight_decay"]:
            g = g + group["weight_decay"] * p
        mu = group["momentum"]
        if mu:
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = g.copy()
            else:
                buf = state["momentum_buffer"]
                buf *= mu
                buf += (1 - group["dampening"]) * g
            buf = state["momentum_buffer"]
            g = g + mu * buf if group["nesterov"] else buf
        p -= group["lr"] * g


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
        m *= b1
        np.multiply(g, 1 - b1, out=tmp)
        m += tmp
        v *= b2
        np.multiply(g, g, out=tmp)
        tmp *= 1 - b2
        v += tmp
        if group["amsgrad"]:
            vmax = self._buffer(state, "max_exp_avg_sq", p)
            np.maximum(vmax, v, out=vmax)
            v = vmax
        # p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps), computed as
        # p -= lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps * sqrt(1 - b2^t))
        c2 = math.sqrt(1 - b2 ** t)
        np.sqrt(v, out=tmp)
        tmp += eps * c2
        np.divide(m, tmp, out=tmp)
        tmp *= lr * c2 / (1 - b1 ** t)
        p -= tmp


class AdamW(Adam):
    """Adam with decoupled weight decay: p *= 1 - lr * weight_decay before the Adam step."""

    decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad)
