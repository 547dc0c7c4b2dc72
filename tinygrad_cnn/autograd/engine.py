"""Reverse-mode backward: walk the graph from the roots in reverse topological order, call
each node's backward rule, and accumulate the gradients into the leaves' `.grad`."""
from __future__ import annotations

import sys
import threading

import numpy as np

from ..errors import ShapeError
from ..tensor import Tensor
from .function import TensorMeta, resolve
from .grad_mode import state


def _topo_order(roots):
    """Tensors that need a gradient, every one after all the tensors it was made from. A node
    may hold an input as its TensorMeta (`resolve`): the live tensor where there is one."""
    order, seen = [], set()
    stack = [(r, False) for r in roots]
    while stack:
        t, done = stack.pop()
        if done:
            order.append(t)
            continue
        if id(t) in seen:
            continue
        seen.add(id(t))
        stack.append((t, True))
        if t._ctx is not None:
            for inp in t._ctx.inputs:
                if inp is not None and inp.requires_grad:
                    inp = resolve(inp)
                    if id(inp) not in seen:
                        stack.append((inp, False))
    return order


def _leading_to(order, targets) -> tuple:
    """(the tensors of `order` that a gradient flows through to one of `targets` (ids), the ids of
    those whose node must run for it): as in PyTorch, grad() and backward(inputs=...) run only
    the nodes between the outputs and the inputs, so a freed or changed part elsewhere is no error."""
    kept, runs, reach = [], set(), set(targets)
    for t in order:  # every tensor after the tensors it was made from
        if t._ctx is not None and any(i is not None and id(resolve(i)) in reach for i in t._ctx.inputs):
            runs.add(id(t))
            reach.add(id(t))
        if id(t) in reach:
            kept.append(t)
    return kept, runs


def _seed(root: Tensor, gradient) -> Tensor:
    if gradient is None:
        if root.numel() != 1:
            raise RuntimeError(f"grad can be implicitly created only for scalar outputs, got shape {root.shape}")
        return Tensor._make(np.ones(root.shape, dtype=root.dtype))
    g = gradient if isinstance(gradient, Tensor) else Tensor(np.asarray(gradient), dtype=root.dtype)
    if g.shape != root.shape:
        raise ShapeError(f"backward: mismatch in shape: the gradient has shape {g.shape} but the output has "
                         f"shape {root.shape}")
    return g if g.dtype == root.dtype else g.to(root.dtype)


def _refcounts(g: Tensor) -> tuple:
    """(references to g, references to g.data) as seen from here. A gradient with the counts
    of `_SOLE_REFCOUNTS` is held by the calling frame's local variable alone: no `.grad`, no
    other pending gradient, no saved tensor and no view shares it, so its array may be
    overwritten (CPython reference counts: the test numpy uses to reuse temporaries)."""
    arr = g.data
    return sys.getrefcount(g), sys.getrefcount(arr)


def _owner_refcount(arr: np.ndarray) -> int:
    """References to the array that owns a view's memory. With `_SOLE_OWNER_REFCOUNT` only this
    view refers to it (numpy points every view at the owner), so the view's memory is its own;
    -1 when the owner is not a plain ndarray that owns its memory."""
    base = arr.base
    if not isinstance(base, np.ndarray) or base.base is not None:
        return -1
    return sys.getrefcount(base)


def _sole_refcounts() -> tuple:
    g = Tensor._make(np.empty(1))  # held by this local variable only
    return _refcounts(g)


_STORE_LOCK = threading.Lock()  # backward in two threads may store into the same parameter's .grad


class _Grads:
    """Where the gradients of one backward go: the leaves' `.grad`, each its own writable
    array, never the caller's gradient nor another tensor's, in the leaf's dtype."""

    def __init__(self, create_graph: bool, user_arrays: set):
        self.create_graph = create_graph
        self.taken = set(user_arrays)  # ids of arrays a stored gradient must not share

    def store(self, t, g: Tensor) -> None:
        with _STORE_LOCK:
            if t.grad is not None:
                self._accumulate(t, g)
                return
            arr = g.data
            if self.create_graph:  # a copy in the graph: the graph may have saved g itself
                g = g.clone()
            elif id(arr) in self.taken or not arr.flags.writeable or (
                    arr.base is not None and _owner_refcount(arr) != _SOLE_OWNER_REFCOUNT):
                g = Tensor._make(arr.copy())  # a view whose memory is also another array's: copy
            else:
                g = Tensor._make(arr)
            self.taken.add(id(g.data))
            t._grad = g

    def _accumulate(self, t, g: Tensor) -> None:
        old = t.grad
        if self.create_graph or old.requires_grad or old.shape != g.shape or not old.data.flags.writeable:
            t._grad = old + g
            return
        np.add(old.data, g.data, out=old.data, casting="unsafe")  # in place, as PyTorch accumulates
        old._bump_version()


def _run(roots, gradients, retain_graph, create_graph, capture=None, store_captured=False):
    """The backward pass. Leaves' gradients go to their `.grad`; with `capture` (a list of
    tensors), only those tensors' gradients are collected and returned, and stored into
    their `.grad` too when `store_captured` (backward(inputs=...)); only the nodes between
    the roots and those tensors run (`_leading_to`)."""
    for r in roots:
        if not r.requires_grad:
            raise RuntimeError("element 0 of tensors does not require grad and does not have a grad_fn")
    gradients = gradients if gradients is not None else [None] * len(roots)
    if len(gradients) != len(roots):
        raise ShapeError(f"backward: {len(roots)} outputs but {len(gradients)} gradients")
    grads: dict[int, Tensor] = {}
    user_arrays = set()
    for r, g in zip(roots, gradients):
        if g is not None:
            user_arrays.add(id(g.data) if isinstance(g, Tensor) else id(g))
        g = _seed(r, g)
        user_arrays.add(id(g.data))
        grads[id(r)] = grads[id(r)] + g if id(r) in grads else g
    captured = {} if capture is None else {id(t): None for t in capture}
    sink = _Grads(create_graph, user_arrays)
    order, runs = _topo_order(roots), None
    if capture is not None:
        order, runs = _leading_to(order, captured)
        if store_captured:  # PyTorch's backward(inputs=...) also runs the inputs' own nodes (their results unused)
            runs.update(captured)
    prev_mode, prev_of, prev_free = state.grad_enabled, state.backward_of, state.free_grad_of
    state.grad_enabled = create_graph
    try:
        for t in reversed(order):
            g = grads.pop(id(t), None)
            if g is None:
                continue
            if id(t) in captured:
                captured[id(t)] = g
            if capture is None and (t._ctx is None or t._retains_grad) and type(t) is not TensorMeta:
                sink.store(t, g)  # (a TensorMeta's tensor is gone: nobody can read its .grad)
            ctx = t._ctx
            if ctx is None or (runs is not None and id(t) not in runs):
                continue
            if ctx.freed:
                raise RuntimeError(
                    "Trying to backward through the graph a second time: its saved values were freed "
                    "after the first backward. Pass retain_graph=True to the first backward.")
            if ctx._saved:
                ctx.check_saved()
            free = (not create_graph and g.data.flags.writeable and _refcounts(g) == _SOLE_REFCOUNTS
                    and (g.data.base is None or _owner_refcount(g.data) == _SOLE_OWNER_REFCOUNT))
            state.free_grad_of = ctx if free else None  # ctx.grad_is_free, in this thread only
            if create_graph:
                state.backward_of = ctx
            in_grads = ctx.backward(g)
            if not isinstance(in_grads, tuple):
                in_grads = (in_grads,)
            for inp, gi in zip(ctx.inputs, in_grads):
                if gi is None or inp is None:
                    continue
                if not inp.requires_grad:
                    if type(inp) is not TensorMeta and inp._detached_in_place:
                        raise RuntimeError(
                            f"{ctx.op_name} backward: one of its inputs, of shape {inp.shape}, was detached in place "
                            f"(detach_()) after the op used it, so its gradient path is cut; use detach() instead")
                    continue
                gd, d = gi.data, (inp if type(inp) is TensorMeta else inp.data)
                assert gd.shape == d.shape, f"{ctx.name}.backward gave shape {gd.shape} for input {d.shape}"
                if gd.dtype != d.dtype:  # every gradient in its tensor's dtype
                    gi = gi.to(d.dtype)
                k = id(resolve(inp))
                grads[k] = grads[k] + gi if k in grads else gi
            in_grads = gi = gd = g = None  # hold no gradient past its use (see _refcounts)
            if not retain_graph:
                ctx.free()
        if store_captured:
            for t in capture:
                if captured[id(t)] is not None:
                    sink.store(t, captured[id(t)])
    finally:
        state.grad_enabled, state.backward_of, state.free_grad_of = prev_mode, prev_of, prev_free
    return captured


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False, inputs=None) -> None:
    """Accumulate the gradients of `tensors` (weighted by `grad_tensors`) into the leaves' `.grad`.

    As `torch.autograd.backward`: retain_graph defaults to create_graph; with `inputs`,
    only those tensors' `.grad` are filled.
    """
    tensors = [tensors] if isinstance(tensors, Tensor) else list(tensors)
    if grad_tensors is not None and isinstance(grad_tensors, Tensor):
        grad_tensors = [grad_tensors]
    retain = create_graph if retain_graph is None else retain_graph
    if inputs is None:
        _run(tensors, grad_tensors, retain, create_graph)
        return
    inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    _run(tensors, grad_tensors, retain, create_graph, capture=inputs, store_captured=True)


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False, allow_unused=False):
    """Return d(outputs)/d(inputs) as a tuple of Tensors without touching any `.grad`.

    Like `torch.autograd.grad`. With `create_graph=True` the results are differentiable.
    """
    outputs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    if grad_outputs is not None and isinstance(grad_outputs, Tensor):
        grad_outputs = [grad_outputs]
    retain = create_graph if retain_graph is None else retain_graph
    got = _run(outputs, grad_outputs, retain, create_graph, capture=inputs)
    result = []
    for i, t in enumerate(inputs):
        g = got[id(t)]
        if g is None and not allow_unused:
            raise RuntimeError(f"input {i} (shape {t.shape}) was not used to compute the outputs; "
                               "pass allow_unused=True")
        result.append(g)
    return tuple(result)


_SOLE_REFCOUNTS = _sole_refcounts()
_SOLE_OWNER_REFCOUNT = _owner_refcount(np.empty((2, 2)).T)  # a transposed view of a fresh array
