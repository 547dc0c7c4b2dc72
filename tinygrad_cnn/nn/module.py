"""Module: the container that layers and models are built from (parameters, buffers, submodules)."""
from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Iterator, NamedTuple

import numpy as np

from ..autograd.grad_mode import module_scope
from ..tensor import Tensor
from .._device import parse_to
from ..utils._inplace import mark_changed, write_, zero_grads_
from .parameter import Parameter

__all__ = ["Module", "Parameter", "IncompatibleKeys", "StateDictError"]

class IncompatibleKeys(NamedTuple):
    """What load_state_dict did not match: missing_keys, unexpected_keys."""
    missing_keys: list
    unexpected_keys: list

    def __repr__(self):
        if not self.missing_keys and not self.unexpected_keys:
            return "<All keys matched successfully>"
        return f"IncompatibleKeys(missing_keys={self.missing_keys}, unexpected_keys={self.unexpected_keys})"


class StateDictError(RuntimeError, ValueError):
    """A state dict that does not fit the module (PyTorch raises RuntimeError; ValueError here too)."""


def _check_name(kind: str, name) -> None:
    if not isinstance(name, str):
        raise TypeError(f"{kind} name should be a string, got {type(name).__name__}")
    if not name or "." in name:
        raise KeyError(f"{kind} name can't be empty or contain \".\", got {name!r}")


def _loadable(key: str, value, target: Tensor):
    """(array to copy into target, None) or (None, what is wrong)."""
    if isinstance(value, Tensor):
        value = value.data
    try:
        a = np.asarray(value)
    except (TypeError, ValueError) as e:
        return None, f"{key}: cannot make an array from {type(value).__name__} ({e})"
    if a.dtype.kind not in "biuf":
        return None, f"dtype mismatch for {key}: the checkpoint has dtype {a.dtype}, which is not numeric"
    if a.shape != target.shape:
        return None, (f"size mismatch for {key}: copying a param with shape {a.shape} from checkpoint, "
                      f"the shape in current model is {target.shape}")
    if target.dtype.kind in "biu" and a.dtype.kind == "f":
        return None, (f"dtype mismatch for {key}: the checkpoint has {a.dtype} but the model holds {target.dtype} "
                      "(floating values would be truncated)")
    return a, None


class Module:
    """Base class of layers and models.

    Assigning a Parameter or a Module to an attribute registers it, in assignment
    order; `register_buffer` registers a Tensor that is state but not learnable (running
    statistics). Subclasses define `forward`; calling the module calls it.
    """

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent_buffers_set", set())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    # --- registration
    def __setattr__(self, name, value):
        d = self.__dict__
        if "_parameters" not in d:
            raise AttributeError(f"{type(self).__name__}.__init__ must call super().__init__() before assigning {name}")
        if isinstance(value, Parameter):
            self._forget(name)
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._forget(name)
            self._modules[name] = value
        elif name in self._parameters:
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__} as parameter {name!r} "
                                "(nn.Parameter or None expected)")
            self._parameters[name] = None
        elif name in self._modules:
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__} as child module {name!r} "
                                "(nn.Module or None expected)")
            self._modules[name] = None
        elif name in self._buffers:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"cannot assign {type(value).__name__} as buffer {name!r} (Tensor or None expected)")
            self._buffers[name] = value
        else:
            object.__setattr__(self, name, value)

    def _forget(self, name: str) -> None:
        self.__dict__.pop(name, None)
        for table in (self._parameters, self._buffers, self._modules):
            table.pop(name, None)
        self._non_persistent_buffers_set.discard(name)

    def __getattr__(self, name):
        d = self.__dict__
        for table in ("_parameters", "_buffers", "_modules"):
            if name in d.get(table, {}):
                return d[table][name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __delattr__(self, name):
        if name in self._parameters or name in self._buffers or name in self._modules:
            self._forget(name)
        else:
            object.__delattr__(self, name)

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Register `param` under `name`; None registers the name with no parameter (as `bias=False`)."""
        _check_name("parameter", name)
        if hasattr(self, name) and name not in self._parameters:
            raise KeyError(f"attribute {name!r} already exists")
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"cannot assign {type(param).__name__} as parameter {name!r} "
                            "(nn.Parameter or None expected)")
        self._parameters[name] = param

    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        """Register `tensor` as state that is not a parameter (saved in state_dict unless not `persistent`)."""
        _check_name("buffer", name)
        if hasattr(self, name) and name not in self._buffers:
            raise KeyError(f"attribute {name!r} already exists")
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"cannot assign {type(tensor).__name__} as buffer {name!r} (Tensor or None expected)")
        self._buffers[name] = tensor
        if persistent:
            self._non_persistent_buffers_set.discard(name)
        else:
            self._non_persistent_buffers_set.add(name)

    def add_module(self, name: str, module: "Module | None") -> None:
        """Register `module` as a submodule under `name`."""
        _check_name("module", name)
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(module).__name__} is not a Module subclass")
        if hasattr(self, name) and name not in self._modules:
            raise KeyError(f"attribute {name!r} already exists")
        self._modules[name] = module

    register_module = add_module

    # --- calling
    def forward(self, *args, **kwargs):
        """The computation; subclasses define it."""
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args, **kwargs):
        with module_scope(self):  # lets viz group the ops by module
            return self.forward(*args, **kwargs)

    # --- traversal
    def named_children(self) -> Iterator[tuple[str, "Module"]]:
        """(name, module) for the direct submodules, in registration order, each once."""
        seen = set()
        for name, m in self._modules.items():
            if m is not None and id(m) not in seen:
                seen.add(id(m))
                yield name, m

    def children(self) -> Iterator["Module"]:
        """The direct submodules, in registration order."""
        for _, m in self.named_children():
            yield m

    def named_modules(self, memo: set | None = None, prefix: str = "",
                      remove_duplicate: bool = True) -> Iterator[tuple[str, "Module"]]:
        """This module (name `prefix`) and every submodule, with dotted names, depth first
        (a module reachable twice is listed once unless not `remove_duplicate`)."""
        memo = set() if memo is None else memo
        if id(self) in memo:
            return
        if remove_duplicate:
            memo.add(id(self))
        yield prefix, self
        for name, m in self._modules.items():
            if m is not None:
                yield from m.named_modules(memo, f"{prefix}.{name}" if prefix else name, remove_duplicate)

    def modules(self) -> Iterator["Module"]:
        """This module and every submodule, depth first."""
        for _, m in self.named_modules():
            yield m

    def _named_members(self, table: str, prefix: str, recurse: bool, remove_duplicate: bool):
        seen = set()
        mods = self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate) if recurse else [(prefix, self)]
        for mname, m in mods:
            for name, t in getattr(m, table).items():
                if t is None or (remove_duplicate and id(t) in seen):
                    continue
                seen.add(id(t))
                yield (f"{mname}.{name}" if mname else name), t

    def named_parameters(self, prefix: str = "", recurse: bool = True,
                         remove_duplicate: bool = True) -> Iterator[tuple[str, Parameter]]:
        """(dotted name, parameter) pairs in registration order, each parameter once (unless not
        `remove_duplicate`); only this module's own with recurse=False. Names start with `prefix`."""
        return self._named_members("_parameters", prefix, recurse, remove_duplicate)

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        """Every parameter once, in registration order (submodules' too unless recurse=False)."""
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "", recurse: bool = True,
                      remove_duplicate: bool = True) -> Iterator[tuple[str, Tensor]]:
        """(dotted name, buffer) pairs, as named_parameters."""
        return self._named_members("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        """Every buffer once, in registration order (submodules' too unless recurse=False)."""
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def apply(self, fn: Callable[["Module"], object]) -> "Module":
        """Call fn on every submodule (children first) and then on this module; returns self."""
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    # --- state
    def state_dict(self, *, destination=None, prefix: str = "", keep_vars: bool = False) -> "OrderedDict[str, Tensor]":
        """Dotted names -> parameters and persistent buffers, as detached copies (the live tensors
        with keep_vars=True). A shared tensor appears under each of its names, as in PyTorch."""
        out = OrderedDict() if destination is None else destination
        for name, p in self._parameters.items():
            if p is not None:
                out[prefix + name] = p if keep_vars else Tensor(p.data)  # Tensor(array) copies
        for name, b in self._buffers.items():
            if b is not None and name not in self._non_persistent_buffers_set:
                out[prefix + name] = b if keep_vars else Tensor(b.data)
        for name, m in self._modules.items():
            if m is not None:
                m.state_dict(destination=out, prefix=f"{prefix}{name}.", keep_vars=keep_vars)
        return out

    def load_state_dict(self, state_dict, strict: bool = True) -> IncompatibleKeys:
        """Copy the values of `state_dict` (Tensors, arrays or numbers) into the parameters and
        buffers of the same names, all or nothing.

        Every key, shape and dtype is checked before anything is written; a value whose
        shape differs, or that is not numeric (or floating for an integer buffer), is an
        error. With `strict` (default) missing and unexpected keys are errors too;
        otherwise they are only returned. Errors raise StateDictError (a RuntimeError, as
        in PyTorch, and a ValueError) listing every problem. Values are cast to the
        target's dtype, as PyTorch's copy_.
        """
        if not hasattr(state_dict, "keys") or not hasattr(state_dict, "__getitem__"):
            raise TypeError(f"Expected state_dict to be dict-like, got {type(state_dict).__name__}")
        own = self.state_dict(keep_vars=True)
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict.keys() if k not in own]
        errors, arrays = [], {}
        if strict and unexpected:
            errors.append("Unexpected key(s) in state_dict: " + ", ".join(f'"{k}"' for k in unexpected) + ".")
        if strict and missing:
            errors.append("Missing key(s) in state_dict: " + ", ".join(f'"{k}"' for k in missing) + ".")
        for k, t in own.items():
            if k in state_dict:
                a, err = _loadable(k, state_dict[k], t)
                if err:
                    errors.append(err)
                else:
                    arrays[k] = a
        if errors:
            counts = (f"missing keys: {len(missing)}, unexpected keys: {len(unexpected)}, "
                      f"mismatched values: {len(own) - len(missing) - len(arrays)}; nothing was loaded")
            raise StateDictError(f"Error(s) in loading state_dict for {type(self).__name__} ({counts}):\n\t"
                                 + "\n\t".join(errors))
        for k, a in arrays.items():
            write_(own[k], a)
        return IncompatibleKeys(missing, unexpected)

    # --- modes, dtype and device
    def train(self, mode: bool = True) -> "Module":
        """Set training mode (Dropout active, BatchNorm on batch statistics) here and below; returns self."""
        if not isinstance(mode, bool):
            raise ValueError(f"training mode is expected to be boolean, got {mode!r}")
        object.__setattr__(self, "training", mode)
        for m in self.children():
            m.train(mode)
        return self

    def eval(self) -> "Module":
        """Set evaluation mode (Dropout off, BatchNorm on running statistics); returns self."""
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> "Module":
        """Set requires_grad on every parameter (False freezes them); returns self."""
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drop every parameter's gradient (or zero it in place with set_to_none=False)."""
        zero_grads_(self.parameters(), set_to_none)

    def to(self, *args, **kwargs) -> "Module":
        """`to(device)`, `to(dtype)`, `to(device, dtype)` or `to(tensor)`, as PyTorch. The device must
        be the CPU ("cpu" or a device object of type 'cpu'); a floating dtype converts the floating
        parameters (with their gradients) and buffers in place, keeping the same Tensor objects."""
        dtype = parse_to(args, kwargs)
        if dtype is not None and dtype.kind != "f":
            raise TypeError(f"Module.to only accepts floating point dtypes, got {dtype}")
        if dtype is not None:
            for t in list(self.parameters()) + list(self.buffers()):
                _cast_(t, dtype)
        return self

    def cpu(self) -> "Module":
        """Itself: everything is on the CPU."""
        return self

    def float(self) -> "Module":
        """Floating parameters and buffers to float32; returns self."""
        return self.to(np.float32)

    def double(self) -> "Module":
        """Floating parameters and buffers to float64; returns self."""
        return self.to(np.float64)

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


def _cast_(t: Tensor, dtype: np.dtype) -> None:
    """Convert a floating tensor (and its gradient) to dtype in place."""
    if t.dtype.kind != "f" or t.dtype == dtype:
        return
    t.data = t.data.astype(dtype)
    mark_changed(t)
    if t.grad is not None:
        t.grad.data = t.grad.data.astype(dtype)
        mark_changed(t.grad)
