"""Grad mode, per thread, as in PyTorch: `no_grad`, `enable_grad`, `set_grad_enabled`,
`inference_mode`; and what a recorded op notes about where it ran (the module whose
forward is running, the composite op it is part of, the backward rule that made it)."""
from __future__ import annotations

import functools
import inspect
import threading


class _State(threading.local):
    """Per-thread engine state: each thread starts with grad mode on and empty stacks."""

    def __init__(self):
        self.grad_enabled = True
        self.module_stack: list = []  # nn.Modules whose forward is running (for graph drawing)
        self.op_stack: list = []  # composite ops (conv2d, cross_entropy, ...) that are running
        self.backward_of = None  # the Function whose backward rule is running under create_graph
        self.free_grad_of = None  # the Function whose backward may overwrite its gradient (engine._run)


state = _State()


def is_grad_enabled() -> bool:
    """True when new ops are recorded in the graph (in this thread)."""
    return state.grad_enabled


class _GradMode:
    """Context manager and decorator (`@no_grad()` or bare `@no_grad`) that sets grad mode
    for the current thread and restores the previous mode on exit, however blocks nest."""

    enabled: bool

    def __new__(cls, fn=None):
        self = super().__new__(cls)
        self._prev = []
        return self(fn) if callable(fn) else self  # bare @no_grad on a function

    def __init__(self, fn=None):
        pass

    def __enter__(self):
        self._prev.append(state.grad_enabled)
        state.grad_enabled = self.enabled

    def __exit__(self, *exc):
        state.grad_enabled = self._prev.pop()

    def _fresh(self) -> "_GradMode":
        """A new context manager with this one's mode (one per call of a decorated function)."""
        new = object.__new__(type(self))
        new._prev, new.enabled = [], self.enabled
        return new

    def __call__(self, fn):
        if inspect.isgeneratorfunction(fn):
            return _wrap_generator(self._fresh, fn)

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with self._fresh():
                return fn(*args, **kwargs)

        return wrapper


def _wrap_generator(make_mode, fn):
    """A decorated generator function: each step of the generator runs in the mode (as PyTorch's)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        gen = fn(*args, **kwargs)
        try:
            with make_mode():
                value = next(gen)
            while True:
                try:
                    sent = yield value
                except GeneratorExit:
                    with make_mode():
                        gen.close()
                    raise
                except BaseException as e:
                    with make_mode():
                        value = gen.throw(e)
                else:
                    with make_mode():
                        value = gen.send(sent)
        except StopIteration as stop:
            return stop.value

    return wrapper


class no_grad(_GradMode):
    """Ops run inside `with no_grad():` (or a function decorated with `@no_grad()`) are not recorded."""

    enabled = False


class enable_grad(_GradMode):
    """Turns recording back on inside a `no_grad` block."""

    enabled = True


class inference_mode(_GradMode):
    """`inference_mode(mode=True)`: like `no_grad` (nothing is recorded) when mode is True."""

    def __new__(cls, mode=True):
        if callable(mode):  # bare @inference_mode
            return super().__new__(cls, mode)
        self = super().__new__(cls)
        self.enabled = not mode
        return self

    enabled = False


class set_grad_enabled:
    """`set_grad_enabled(mode)`: sets grad mode now, as a call or as a context manager that
    restores the previous mode on exit."""

    def __init__(self, mode: bool):
        self._prev = state.grad_enabled
        state.grad_enabled = bool(mode)

    def __enter__(self):
        return None

    def __exit__(self, *exc):
        state.grad_enabled = self._prev

    def __call__(self, fn):
        mode, state.grad_enabled = state.grad_enabled, self._prev  # as a decorator: set only during calls

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with set_grad_enabled(mode):
                return fn(*args, **kwargs)

        return wrapper


class OpScope:
    """A call of a composite op (say conv2d): the Functions it records are drawn as one op.
    `saved` lists (version counter, version, description) of the tensors the op as a whole
    reads in backward, checked like a Function's own saved tensors."""

    __slots__ = ("name", "attrs", "saved")

    def __init__(self, name: str, attrs: dict, saved: tuple = ()):
        self.name, self.attrs, self.saved = name, attrs, saved


class op_scope:
    """`with op_scope("conv2d", stride=...):` marks the Functions recorded inside as parts of
    one call of the composite op; `saved={"weight": w, ...}` names the tensors the op reads in
    backward, checked for in-place changes as a Function's saved tensors are."""

    __slots__ = ("scope",)

    def __init__(self, name: str, saved: dict | None = None, **attrs):
        entries = tuple(saved_entry(t, what) for what, t in saved.items() if t is not None) if saved else ()
        self.scope = OpScope(name, attrs, entries)

    def __enter__(self):
        state.op_stack.append(self.scope)
        return self.scope

    def __exit__(self, *exc):
        state.op_stack.pop()


class module_scope:
    """`with module_scope(m):` records that the ops inside ran in module m's forward."""

    __slots__ = ("module",)

    def __init__(self, module):
        self.module = module

    def __enter__(self):
        state.module_stack.append(self.module)

    def __exit__(self, *exc):
        state.module_stack.pop()


from .function import saved_entry  # noqa: E402  (function.py needs `state` from here)
