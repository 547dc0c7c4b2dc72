"""Containers: Sequential, ModuleList, ModuleDict."""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping

from .module import Module


def _checked(owner: str, i, m) -> Module:
    if not isinstance(m, Module):
        raise TypeError(f"{owner}: argument {i} is a {type(m).__name__}, not a Module")
    return m


class _Indexed(Module):
    """Submodules registered as '0', '1', ...: integer indexing, len, iteration, deletion with renumbering."""

    def _index(self, idx) -> int:
        n = len(self._modules)
        try:
            i = int(idx.__index__())
        except AttributeError:
            raise TypeError(f"{type(self).__name__} indices must be integers or slices, "
                            f"not {type(idx).__name__}") from None
        if not -n <= i < n:
            raise IndexError(f"index {i} is out of range for a {type(self).__name__} of {n} modules")
        return i % n

    def _key(self, idx) -> str:
        return list(self._modules)[self._index(idx)]

    def _renumber(self, modules) -> None:
        modules = list(modules)
        self._modules.clear()
        for i, m in enumerate(modules):
            self._modules[str(i)] = m

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __setitem__(self, idx, module: Module) -> None:
        self._modules[self._key(idx)] = _checked(type(self).__name__, idx, module)

    def __delitem__(self, idx) -> None:
        if isinstance(idx, slice):
            doomed = set(list(self._modules)[idx])
        else:
            doomed = {self._key(idx)}
        self._renumber(m for k, m in self._modules.items() if k not in doomed)

    def append(self, module: Module):
        """Add `module` at the end; returns self."""
        self.add_module(str(len(self)), _checked(type(self).__name__, len(self), module))
        return self

    def insert(self, index: int, module: Module) -> None:
        """Put `module` before position `index` (negative counts from the end)."""
        n = len(self)
        i = max(0, min(n, index if index >= 0 else n + index))
        mods = list(self._modules.values())
        mods.insert(i, _checked(type(self).__name__, index, module))
        self._renumber(mods)

    def extend(self, modules):
        """Append each of `modules`; returns self."""
        for m in modules:
            self.append(m)
        return self


class Sequential(_Indexed):
    """Modules applied in order: Sequential(m0, m1, ...) registers them as '0', '1', ...;
    Sequential(OrderedDict(name=module, ...)) under the given names."""

    def __init__(self, *args):
        super().__init__()
        if len(args) == 1 and isinstance(args[0], OrderedDict):
            for name, m in args[0].items():
                self.add_module(name, _checked("Sequential", name, m))
        else:
            for i, m in enumerate(args):
                self.add_module(str(i), _checked("Sequential", i, m))

    def forward(self, input):
        for m in self._modules.values():
            input = m(input)
        return input

    def __getitem__(self, idx):
        if isinstance(idx, slice):
            return Sequential(OrderedDict(list(self._modules.items())[idx]))
        return self._modules[self._key(idx)]


class ModuleList(_Indexed):
    """A list of submodules, registered as '0', '1', ... (for their parameters); no forward of its own."""

    def __init__(self, modules=None):
        super().__init__()
        if modules is not None:
            self.extend(modules)

    def __getitem__(self, idx):
        if isinstance(idx, slice):
            return ModuleList(list(self._modules.values())[idx])
        return self._modules[self._key(idx)]

    def __iadd__(self, modules):
        return self.extend(modules)

    def __add__(self, other):
        return ModuleList(list(self) + list(other))


class ModuleDict(Module):
    """A dict of submodules, registered under their keys (for their parameters); no forward of its own."""

    def __init__(self, modules=None):
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key: str) -> Module:
        return self._modules[key]

    def __setitem__(self, key: str, module: Module) -> None:
        self.add_module(key, _checked("ModuleDict", key, module))

    def __delitem__(self, key: str) -> None:
        del self._modules[key]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules)

    def __contains__(self, key):
        return key in self._modules

    def keys(self):
        """The keys, in insertion order."""
        return self._modules.keys()

    def items(self):
        """(key, module) pairs, in insertion order."""
        return self._modules.items()

    def values(self):
        """The modules, in insertion order."""
        return self._modules.values()

    def pop(self, key: str) -> Module:
        """Remove `key` and return its module."""
        return self._modules.pop(key)

    def clear(self) -> None:
        """Remove every module."""
        self._modules.clear()

    def update(self, modules) -> None:
        """Add (or replace) modules from a mapping or an iterable of (key, module) pairs."""
        pairs = modules.items() if isinstance(modules, (Mapping, ModuleDict)) else modules
        for j, pair in enumerate(pairs):
            if len(pair) != 2:
                raise ValueError(f"ModuleDict.update: element {j} should be a (key, module) pair, got {pair!r}")
            self[pair[0]] = pair[1]
