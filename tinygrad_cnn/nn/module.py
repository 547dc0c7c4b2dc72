"""Module and Parameter: the containers that layers and models are built from."""
from __future__ import annotations

from collections import OrderedDict
from typing import Iterator, NamedTuple

import numpy as np

from ..autograd.grad_mode import module_scope
from ..tensor import Tensor


class Parameter(Tensor):
    """A Tensor that a Module registers as a learnable parameter (requires grad by default)."""

    def __init__(self, data, requires_grad=True, dtype=None, name=None):
        super().__init__(data, requires_grad=requires_grad, dtype=dtype, name=name)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()


class IncompatibleKeys(NamedTuple):
    """What load_state_dict did not match: missing_keys, unexpected_keys."""
    missing_keys: list
    unexpected_keys: list


class Module:
    """Base class of layers and models.

    Assigning a Parameter or a Module to an attribute registers it, in assignment
    order. Subclasses define `forward`; calling the module calls it.
    """

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__}.__init__ must call super().__init__() before assigning {name}")
        self._parameters.pop(name, None)
        self._modules.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name):
        d = self.__dict__
        if name in d.get("_parameters", {}):
            return d["_parameters"][name]
        if name in d.get("_modules", {}):
            return d["_modules"][name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __delattr__(self, name):
        if name in self._parameters:
            del self._parameters[name]
        elif name in self._modules:
            del self._modules[name]
        else:
            object.__delattr__(self, name)

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Register `param` under `name` (None removes it)."""
        if param is None:
            self._parameters.pop(name, None)
        else:
            setattr(self, name, param)

    def add_module(self, name: str, module: "Module") -> None:
        """Register `module` as a submodule under `name`."""
        setattr(self, name, module)

    # --- calling
    def forward(self, *args, **kwargs):
        """The computation; subclasses define it."""
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args, **kwargs):
        with module_scope(self):  # lets viz group the ops by module
            return self.forward(*args, **kwargs)

    # --- traversal
    def named_children(self) -> Iterator[tuple[str, "Module"]]:
        """(name, module) for the direct submodules, in registration order."""
        yield from self._modules.items()

    def children(self) -> Iterator["Module"]:
        """The direct submodules, in registration order."""
        for _, m in self.named_children():
            yield m

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, "Module"]]:
        """This module (name `prefix`) and every submodule, with dotted names, depth first."""
        seen, stack = set(), [(prefix, self)]
        while stack:
            name, m = stack.pop()
            if id(m) in seen:
                continue
            seen.add(id(m))
            yield name, m
            kids = [(f"{name}.{k}" if name else k, c) for k, c in m._modules.items()]
            stack.extend(reversed(kids))

    def modules(self) -> Iterator["Module"]:
        """This module and every submodule, depth first."""
        for _, m in self.named_modules():
            yield m

    def named_parameters(self, prefix: str = "", recurse: bool = True) -> Iterator[tuple[str, Parameter]]:
        """(dotted name, parameter) pairs, each parameter once, in registration order."""
        seen = set()
        mods = self.named_modules(prefix) if recurse else [(prefix, self)]
        for mname, m in mods:
            for pname, p in m._parameters.items():
                if id(p) not in seen:
                    seen.add(id(p))
                    yield (f"{mname}.{pname}" if mname else pname), p

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        """Every parameter once, in registration order (submodules' too unless recurse=False)."""
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    # --- state
    def state_dict(self) -> "OrderedDict[str, np.ndarray]":
        """Dotted parameter names -> copies of their arrays."""
        return OrderedDict((k, p.data.copy()) for k, p in self.named_parameters())

    def load_state_dict(self, state_dict, strict: bool = True) -> IncompatibleKeys:
        """Copy arrays into the parameters of the same names.

        Returns the missing and unexpected keys; with `strict` (default) any of them, or a
        shape mismatch, is a ValueError that lists them, and nothing is loaded.
        """
        own = dict(self.named_parameters())
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        if strict and (missing or unexpected):
            raise ValueError(f"load_state_dict: missing keys {missing}, unexpected keys {unexpected}")
        arrays = {}
        for k, p in own.items():
            if k in state_dict:
                v = state_dict[k]
                a = np.asarray(v.data if isinstance(v, Tensor) else v)
                if a.shape != p.shape:
                    raise ValueError(f"load_state_dict: {k} has shape {a.shape} in the state dict, "
                                     f"but the parameter has shape {p.shape}")
                arrays[k] = a
        for k, a in arrays.items():
            own[k].data[...] = a
            own[k]._bump_version()
        return IncompatibleKeys(missing, unexpected)

    def train(self, mode: bool = True) -> "Module":
        """Set training mode (Dropout active) on this module and its submodules; returns self."""
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self) -> "Module":
        """Set evaluation mode (Dropout off); returns self."""
        return self.train(False)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drop every parameter's gradient (or zero it in place with set_to_none=False)."""
        for p in self.parameters():
            if set_to_none or p.grad is None:
                p.grad = None
            else:
                p.grad.data[...] = 0

    # --- repr
    def extra_repr(self) -> str:
        """Extra text for repr (layer settings)."""
        return ""

    def __repr__(self):
        lines = []
        for name, m in self._modules.items():
            sub = repr(m).replace("\n", "\n  ")
            lines.append(f"  ({name}): {sub}")
        extra = self.extra_repr()
        if not lines:
            return f"{type(self).__name__}({extra})"
        head = f"{type(self).__name__}(" + (extra if extra else "")
        return head + "\n" + "\n".join(lines) + "\n)"
