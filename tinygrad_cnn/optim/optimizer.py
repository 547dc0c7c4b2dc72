"""The optimizer base class: param groups, per-parameter state, `step`, `state_dict`."""
from __future__ import annotations

import copy

import numpy as np

from ..tensor import Tensor, enable_grad
from ..utils._inplace import mark_changed, zero_grads_


class Optimizer:
    """Base class: holds param groups (dicts with 'params' and hyperparameters) and per-parameter state.

    Subclasses define `_update(p, g, state, group)`, which changes the parameter's array
    `p` in place from its gradient array `g` (same shape and dtype); `step` calls it for
    every parameter that has a gradient and marks the parameter as changed in place.
    """

    def __init__(self, params, defaults: dict):
        self.defaults = defaults
        if isinstance(params, Tensor):
            raise TypeError(f"{type(self).__name__}: params must be an iterable of Tensors or dicts, got a Tensor")
        params = list(params)
        if not params:
            raise ValueError(f"{type(self).__name__} got an empty parameter list")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        self.param_groups: list[dict] = []
        self.state: dict[int, dict] = {}  # keyed by id(param)
        for g in groups:
            self.add_param_group(g)

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for i, g in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {v}" for k, v in sorted(g.items()) if k != "params"]
        return "\n".join(lines) + "\n)"

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
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in group["params"]):
            raise ValueError(f"{type(self).__name__}: some parameters appear in more than one parameter group")
        for k, v in self.defaults.items():
            group.setdefault(k, v)
        self.param_groups.append(group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drop every parameter's gradient (or zero it in place with set_to_none=False)."""
        zero_grads_((p for g in self.param_groups for p in g["params"]), set_to_none)

    def step(self, closure=None):
        """Update every parameter that has a gradient. `closure` (optional) recomputes and
        returns the loss before the update; step returns that loss (else None)."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        self._opt_called = True  # lets an lr scheduler warn when it steps first
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad.data
                if g.dtype != p.dtype:
                    g = g.astype(p.dtype)
                self._update(p.data, g, self.state.setdefault(id(p), {}), group)
                mark_changed(p)
        return loss

    def _update(self, p: np.ndarray, g: np.ndarray, state: dict, group: dict) -> None:  # pragma: no cover
        raise NotImplementedError

    @staticmethod
    def _buffer(state: dict, key: str, like: np.ndarray) -> np.ndarray:
        """state[key], created as zeros like `like` on first use."""
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
