"""Function: one differentiable op, a node of the graph; and what a node keeps of its tensors.

A recorded node holds the input Tensors its backward reads (`SAVES`) and a weak reference
to its output; of every other input it keeps a `TensorMeta` (shape, dtype, name, the node
that made it), as PyTorch keeps only saved tensors, so that ReLU does not keep a conv's
output alive. It notes the version of every tensor its backward will read; an in-place
change bumps a tensor's version, and backward refuses to use a changed tensor, as PyTorch
does. After backward (without retain_graph) the node drops what forward saved and keeps
only `TensorMeta`s of all its inputs: enough to draw the graph, no arrays.
"""
from __future__ import annotations

import re
import weakref
from typing import NamedTuple

import numpy as np

from ..errors import ShapeError
from .grad_mode import state


class VersionCounter:
    """How many in-place changes a tensor's memory has had; shared by a tensor and its views."""

    __slots__ = ("v",)

    def __init__(self):
        self.v = 0


def version_counter(t) -> VersionCounter:
    """The tensor's version counter (made on first use; views and detached aliases share it)."""
    vc = t._vc
    if vc is None:
        vc = t._vc = VersionCounter()
    return vc


def saved_entry(t, what: str) -> tuple:
    """(counter, version now, description, shape, dtype): what backward checks for tensor `t`."""
    vc = version_counter(t)
    return vc, vc.v, what, t.data.shape, t.data.dtype


class TensorMeta:
    """What a freed node keeps of an input tensor: shape, dtype, name and the node that made
    it (so the graph can still be drawn after backward), values only when there are at most
    4 of them, and `.grad` through a weak reference to the tensor while it is alive."""

    __slots__ = ("shape", "dtype", "name", "requires_grad", "_ctx", "_ref", "data", "_sources", "_is_constant",
                 "_retains_grad")

    def __init__(self, t):
        self.shape, self.dtype, self.name, self.requires_grad = t.data.shape, t.data.dtype, t.name, t.requires_grad
        self._ctx, self._ref = t._ctx, weakref.ref(t)
        self.data = t.data.copy() if t.data.size <= 4 else None
        self._sources = t._sources.meta() if t._sources else None
        self._is_constant, self._retains_grad = t._is_constant, t._retains_grad

    ndim = property(lambda self: len(self.shape), doc="Number of dimensions.")
    def numel(self) -> int:
        """Number of elements."""
        return int(np.prod(self.shape))

    is_leaf = property(lambda self: self._ctx is None, doc="True when no recorded op made the tensor.")
    grad_fn = property(lambda self: self._ctx, doc="The node that made the tensor, or None.")

    @property
    def grad(self):
        """The tensor's `.grad`, while the tensor is alive."""
        t = self._ref()
        return None if t is None else t.grad

    def __repr__(self):
        return f"TensorMeta(shape={self.shape}, dtype={self.dtype}" + (f", name={self.name!r})" if self.name else ")")


class Part(NamedTuple):
    """One step that a fused op computes, as the op describes it for drawing (`Function.parts`):
    `op` names it (unfold, matmul, ...), `inputs` are ("in", i) for the fused op's input i or
    ("step", j) for the output of its step j, and `shape` is the step's output shape. The last
    step's output is the fused op's output."""

    op: str
    attrs: dict
    inputs: tuple
    shape: tuple


class Sources(list):
    """The inputs of an op that ran unrecorded (none of them needs a gradient) inside a
    composite op or a backward rule (conv2d's im2col of the images), with the op's class,
    attributes and where it ran: what drawing needs to show the step. Kept on the output
    as `_sources`."""

    __slots__ = ("op", "attrs", "scopes", "modules", "backward_of")

    @classmethod
    def record(cls, op, inputs, attrs, st) -> "Sources":
        """The step of `op` on `inputs` running now (st: the thread's grad-mode state)."""
        src = cls(t for t in inputs if t is not None)
        src.op, src.attrs, src.backward_of = op, attrs, st.backward_of
        src.scopes, src.modules = tuple(st.op_stack), tuple(st.module_stack)
        return src

    def meta(self) -> "Sources":
        """The same step as a freed graph keeps it: TensorMetas, no array attributes."""
        src = Sources(meta(s) for s in self)
        src.op, src.scopes, src.modules, src.backward_of = self.op, self.scopes, self.modules, self.backward_of
        src.attrs = {k: v for k, v in self.attrs.items() if k not in self.op.HEAVY_ATTRS}
        return src


def meta(t):
    """What a graph keeps of `t` where no backward reads its values: a leaf that requires grad
    (a parameter) or holds at most 4 values (a scalar an op made) itself, else a TensorMeta."""
    if t is None or type(t) is TensorMeta or (t._ctx is None and (t.requires_grad or t.data.size <= 4)):
        return t
    m = t._meta
    if m is None or m._ctx is not t._ctx:
        m = t._meta = TensorMeta(t)
    return m


def resolve(t):
    """The tensor a graph's entry stands for: for a TensorMeta, its tensor while that is alive
    and still the output of the same node (no in-place op rebased it), else the entry itself.
    The engine and drawings key tensors by `id(resolve(t))`, so a tensor held by one node and
    its TensorMeta held by another are one tensor."""
    if type(t) is TensorMeta:
        alive = t._ref()
        if alive is not None and alive._ctx is t._ctx:
            return alive
    return t


class Function:
    """One differentiable op: a node of the graph.

    Subclasses define `forward(self, *arrays, **attrs) -> ndarray` and
    `backward(self, grad) -> Tensor | tuple[Tensor | None, ...]` (one gradient per
    input, written in Tensor ops). `forward` may keep what backward needs on `self`;
    `self.needs_input_grad` says which inputs want a gradient. In `backward`,
    `self.inputs` are the input Tensors (those that `SAVES` does not name for the
    gradients wanted, as `TensorMeta`: shape and dtype only) and `self.output` the output
    Tensor, and `self.grad_is_free` is True when nothing but the engine refers to `grad` or its
    array: backward may then write its result into `grad.data` and return `grad`.

    `SAVES` maps an input index to the tensors backward reads when that input wants a
    gradient (input indices, or "out" for the output); their versions are checked before
    backward runs. `IS_VIEW` marks ops whose output may share the input's memory.
    `HEAVY_ATTRS` names the attributes (of `apply`'s keyword arguments) that hold arrays
    (masks, indices), which the graph drops after backward. An op that fuses several steps
    for speed (conv2d: im2col and a product per chunk) may define `parts()`, a list of
    `Part`s, so that drawings can show the steps it computes.
    """

    SAVES: dict = {}
    IS_VIEW = False
    HEAVY_ATTRS: tuple = ()  # attributes that may hold arrays as large as an activation: dropped by free()
    _keep = ("inputs", "needs_input_grad", "attrs", "modules", "scope", "nested_scopes", "freed", "_out",
             "backward_of")
    _saved = None  # saved_entry tuples, checked before backward
    backward_of = None  # under create_graph: the node whose backward rule recorded this one
    reads_output = False  # True when backward reads `self.output` (SAVES has "out")
    scope = None  # the outermost composite op (OpScope) this node is part of
    nested_scopes = ()  # composite ops running inside `scope` (cross_entropy's nll_loss), outer to inner

    @classmethod
    def apply(cls, *inputs, **attrs):
        """Run the op on Tensors (None allowed for optional inputs) and record it."""
        fn = cls()
        st = state
        req = [t is not None and t.requires_grad for t in inputs]
        record = st.grad_enabled and any(req)
        fn.needs_input_grad = tuple(req) if record else (False,) * len(inputs)
        data = fn.forward(*[None if t is None else t.data for t in inputs], **attrs)
        if type(data) is not np.ndarray:  # numpy gives scalars for 0-d results; a tensor's memory is an array
            data = np.asarray(data)
        if record and data.dtype.kind != "f":  # an integer or bool result has no gradient (x.long(), x > 0)
            record = False
        out = Tensor._make(data, record)
        if cls.IS_VIEW:
            _link_view(out, inputs[0])
        if record:
            for t in inputs:
                if t is not None and t._stale:
                    raise RuntimeError(_STALE_VIEW.format(op=fn.op_name, shape=t.shape))
            reads = _saved_keys(cls, tuple(req))
            fn.inputs, fn.attrs, fn.freed = _held_inputs(inputs, reads), attrs, False
            if "out" in reads:
                fn.reads_output = True
            fn.modules = tuple(st.module_stack)
            ops = st.op_stack
            scope = fn.scope = ops[0] if ops else None
            if len(ops) > 1:
                fn.nested_scopes = tuple(ops[1:])
            if st.backward_of is not None:
                fn.backward_of = st.backward_of
            fn._out = weakref.ref(out)
            out._ctx = fn
            if cls.SAVES or (scope is not None and scope.saved):
                fn._saved = fn._saved_entries(inputs, out, reads, scope)
            ref = weakref.ref(fn)
            for t in inputs:
                if t is not None and (t._ctx is not None or not t.requires_grad):  # parameters are never rebased
                    _add_weak(t, "_consumers", ref)
        elif st.grad_enabled and (st.op_stack or st.backward_of is not None):
            # no input needs grad, inside a composite op or a create_graph backward rule: kept for drawing
            out._sources = Sources.record(cls, inputs, attrs, st)
        return out

    def _saved_entries(self, inputs, out, reads: tuple, scope) -> list:
        entries = [saved_entry(out, "output") if k == "out" else saved_entry(inputs[k], f"input {k}")
                   for k in reads if k == "out" or inputs[k] is not None]
        if scope is not None:
            entries.extend(scope.saved)
        return entries

    def check_saved(self) -> None:
        """Raise RuntimeError if a tensor that backward reads was changed in place since forward."""
        for vc, v, what, shape, dtype in self._saved:
            if vc.v != v:
                raise RuntimeError(
                    f"{self.op_name} backward: one of the tensors it needs, its {what} of shape {tuple(shape)} "
                    f"({dtype}), was modified by an in-place operation after the forward pass: it is at version "
                    f"{vc.v}, expected version {v}. Change it out of place (or on a .clone()) instead, or run "
                    f"backward before changing it.")

    @property
    def grad_is_free(self) -> bool:
        """True while the engine runs this node's backward, in this thread, with a gradient
        that nothing else refers to (set per thread: threads may run one retained graph)."""
        return state.free_grad_of is self

    @property
    def output(self):
        """The output Tensor of this node (alive while the graph is)."""
        return self._out()

    @property
    def name(self) -> str:
        """The op's class name, as repr shows it."""
        return type(self).__name__

    @property
    def op_name(self) -> str:
        """The op's functional name: MaxPool2d -> max_pool2d."""
        return getattr(type(self), "OP_NAME", None) or re.sub(r"(?<=[a-z])(?=[A-Z])", "_", self.name).lower()

    def free(self):
        """Drop what forward saved, array attributes and the inputs' arrays (called after
        backward unless retain_graph); what drawing needs stays."""
        for k in list(vars(self)):
            if k not in self._keep:
                delattr(self, k)
        if self.HEAVY_ATTRS:
            self.attrs = {k: v for k, v in self.attrs.items() if k not in self.HEAVY_ATTRS}
        self.inputs = tuple(meta(t) for t in self.inputs)
        self.freed = True

    def rebind_output(self, t) -> None:
        """Make `t` this node's output (an in-place op wrote the result into `t`'s memory)."""
        self._out = weakref.ref(t)
        if self._saved:
            self._saved = [saved_entry(t, "output") if e[2] == "output" else e for e in self._saved]

    @classmethod
    def apply_inplace(cls, target, *others, **attrs):
        """Run the op on (target, *others) and write the result into `target`'s memory, as
        PyTorch's in-place ops do. Recorded (target becomes the op's output in the graph)
        when grad mode is on and an operand requires grad. Returns target."""
        record = state.grad_enabled and (target.requires_grad or any(o is not None and o.requires_grad
                                                                     for o in others))
        if not record:
            with _no_recording():
                out = cls.apply(target, *others, **attrs)
            _write_into(target, out.data)
            return target
        _check_rebase(target, cls)
        old, others = _split_history(target, cls, others)
        try:
            out = cls.apply(old, *others, **attrs)
            if out.dtype != target.dtype:
                out = out.to(target.dtype)
            _write_into(target, out.data)
        except BaseException:  # a bad operand, Ctrl-C: target and its graph stay as they were
            _undo_split(target, old)
            raise
        _mark_stale_views(target)
        fn = out._ctx
        target._ctx, target.requires_grad = fn, True
        fn.rebind_output(target)
        return target

    def forward(self, *arrays, **attrs):  # pragma: no cover - abstract
        raise NotImplementedError

    def backward(self, grad):  # pragma: no cover - abstract
        raise NotImplementedError


_STALE_VIEW = ("{op}: an input of shape {shape} is a view of a tensor that was since changed by a recorded in-place "
               "operation, so its gradient would be wrong here; take the view again after the in-place change, or "
               "clone() before changing")


_SAVED_KEYS: dict = {}


def _held_inputs(inputs: tuple, reads: tuple) -> tuple:
    """The inputs as a new node holds them: as they are where its backward reads them or the
    node that made them reads its output (Exp's backward reads `self.output`, which only its
    consumers keep alive), else as `meta` (shape and dtype are all a backward reads of them).
    `reads`: the input indices (and "out") that backward reads, from `_saved_keys`."""
    return tuple(t if t is None or i in reads or (t._ctx is not None and t._ctx.reads_output) else meta(t)
                 for i, t in enumerate(inputs))


def _saved_keys(cls, req: tuple) -> tuple:
    """What cls's backward reads when the inputs flagged in `req` want gradients (cached)."""
    keys = _SAVED_KEYS.get((cls, req))
    if keys is None:
        found = set()
        for i, need in enumerate(req):
            if need:
                found.update(cls.SAVES.get(i, ()))
        keys = _SAVED_KEYS[cls, req] = tuple(sorted(found, key=str))
    return keys


def _link_view(out, inp) -> None:
    """`out` shares `inp`'s memory: the same version counter, marked as a view, and listed
    (weakly) among inp's views and, when inp is itself a view, among those of the tensor the
    views started from (a view of a view outlives the view between, which a graph keeps only
    as its TensorMeta). (No strong reference to `inp`: the engine's reuse of gradient
    buffers counts references.)"""
    base = out.data.base
    if base is not None and (base is inp.data or base is inp.data.base) or out.data is inp.data:
        out._vc, out._is_view = version_counter(inp), True
        ref = weakref.ref(out)
        _add_weak(inp, "_views", ref)
        if inp._is_view:
            out._view_root = inp._view_root
            root = inp._view_root()
            if root is not None:
                _add_weak(root, "_views", ref)
        else:
            out._view_root = weakref.ref(inp)


def _add_weak(t, attr: str, ref) -> None:
    """Append a weak reference to the list t.<attr> (`_consumers` or `_views`), dropping dead ones as it grows."""
    refs = getattr(t, attr)
    if refs is None:
        setattr(t, attr, [ref])
        return
    refs.append(ref)
    if len(refs) >= 16 and not len(refs) & (len(refs) - 1):  # at 16, 32, 64, ...
        refs[:] = [r for r in refs if r() is not None]


def _consumers(t):
    return [fn for fn in (r() for r in t._consumers or ()) if fn is not None and not fn.freed]


class _no_recording:
    """grad mode off for one step, without the cost of the public context manager."""

    def __enter__(self):
        self.prev, state.grad_enabled = state.grad_enabled, False

    def __exit__(self, *exc):
        state.grad_enabled = self.prev


def _write_into(target, result: np.ndarray) -> None:
    """Copy an in-place op's result into target's memory and bump its version."""
    if result.shape != target.shape:
        raise ShapeError(f"in-place op: the result has shape {result.shape}, which does not fit the tensor's "
                         f"shape {target.shape} (broadcasting may not grow the tensor changed in place)")
    if not target.data.flags.writeable:
        raise RuntimeError(f"in-place op on a read-only tensor of shape {target.shape} (an expand() view, or "
                           f"memory shared with a read-only array); clone() it first")
    np.copyto(target.data, result, casting="unsafe")
    version_counter(target).v += 1


def _check_rebase(target, cls) -> None:
    if target._ctx is None and target.requires_grad:
        raise RuntimeError(f"{cls.__name__.lower()}_: a leaf tensor that requires grad (shape {target.shape}) is "
                           "being used in an in-place operation; do it inside `with no_grad():` (as an optimizer "
                           "step does), or on a copy")
    if target._is_view:
        raise RuntimeError(f"{cls.__name__.lower()}_: in-place changes to a view (shape {target.shape}) that are "
                           "recorded for autograd are not supported; change the tensor it views, or clone() the view "
                           "first")


def _split_history(target, cls, others) -> tuple:
    """Give target's past (its node and the ops that already used it) to a new tensor `old`,
    so that target can become the in-place op's output; returns (old, others with target
    replaced). `old` holds a copy of the values when the op's backward reads them, as
    PyTorch keeps the original self. Where target is also another operand that backward
    reads (x.mul_(x)), that operand shares target's version, so backward refuses, as PyTorch's does."""
    req = (target.requires_grad, *(o is not None and (o is target or o.requires_grad) for o in others))
    reads = _saved_keys(cls, req)
    old = Tensor._make(target.data.copy()) if 0 in reads else target.detach()  # detach: same memory, same version
    old._ctx, old.name, old.requires_grad = target._ctx, target.name, target.requires_grad
    if old._ctx is not None:
        old._ctx._out = weakref.ref(old)
    for fn in _consumers(target):
        fn.inputs = tuple(old if resolve(t) is target else t for t in fn.inputs)
    old._consumers, target._consumers = target._consumers, None
    return old, [target.detach() if o is target and i + 1 in reads else old if o is target else o
                 for i, o in enumerate(others)]


def _undo_split(target, old) -> None:
    """Give target back the past that _split_history moved to `old` (the in-place op failed)."""
    for fn in _consumers(old):
        fn.inputs = tuple(target if t is old else t for t in fn.inputs)
    target._consumers = old._consumers
    if target._ctx is not None:
        target._ctx._out = weakref.ref(target)


def _mark_stale_views(base) -> None:
    """The views of `base` (recorded or not, and views of them) after a recorded in-place op
    on it: their values changed but their gradient paths miss the op, so Function.apply
    refuses to record a use of them (PyTorch rebuilds their history; we say so instead)."""
    for ref in base._views or ():
        view = ref()
        if view is not None and not view._stale:
            view._stale = True
            _mark_stale_views(view)


from ..tensor import Tensor  # noqa: E402  (tensor.py needs Function defined above)
