"""Regression tests from an adversarial review of the engine's TensorMeta inputs (a node
holds whole only what its backward reads): each case failed before its fix. Against
PyTorch where it imports: the same gradients, or both raise."""
import threading

import numpy as np
import pytest
from helpers import needs_torch, torch

import tinygrad_cnn as tc
from tinygrad_cnn import _parallel

A = np.random.default_rng(0).standard_normal((3, 4))


def _outcome(lib, fn):
    """fn(lib, leaf) -> tensors; their values as arrays, or "raises"."""
    x = lib.tensor(A, requires_grad=True) if lib is torch else tc.Tensor(A, requires_grad=True)
    try:
        out = fn(lib, x)
    except RuntimeError:
        return "raises"
    return [None if t is None else (t.detach().numpy() if lib is torch else t.data) for t in out]


def assert_same_outcome(fn):
    ours, theirs = _outcome(tc, fn), _outcome(torch, fn)
    assert (ours == "raises") == (theirs == "raises"), (ours, theirs)
    if ours != "raises":
        for a, b in zip(ours, theirs):
            assert (a is None) == (b is None)
            if a is not None:
                np.testing.assert_allclose(a, b, rtol=1e-12)


def _grad(lib):
    return tc.grad if lib is tc else torch.autograd.grad


@pytest.mark.parametrize("view", [lambda h: h.reshape(4, 3).reshape(3, 4), lambda h: h[1:].T[0]])
def test_a_view_of_a_view_that_died_is_refused_after_its_base_changed(view):
    # the view between is held by the graph only as its TensorMeta and dies; the view of it
    # must still learn that its base changed (its gradient path misses the mul_), not give
    # a wrong gradient; refusing is the documented limitation, as with the middle view alive
    x = tc.Tensor(A, requires_grad=True)
    h = x * 2.0
    v = view(h)
    h.mul_(x)
    with pytest.raises(RuntimeError, match="since changed by a recorded in-place"):
        (v * 3.0).sum()


@needs_torch
def test_grad_wrt_an_intermediate_does_not_run_the_freed_graph_below_it():
    def fn(lib, x):
        k = (x * x).tanh()
        k.sum().backward()  # frees x * x and tanh
        return _grad(lib)((k * 3.0).sum(), k)
    assert_same_outcome(fn)


@needs_torch
def test_grad_wrt_an_intermediate_ignores_an_in_place_change_below_it():
    def fn(lib, x):
        h = x.exp()
        h.add_(1.0)  # exp's backward could not run now
        k = h * 2.0
        return _grad(lib)((k * k).sum(), [k, h])
    assert_same_outcome(fn)


@needs_torch
def test_backward_with_inputs_runs_only_the_nodes_that_lead_to_them():
    def fn(lib, x):
        w = lib.tensor(A.T.copy(), requires_grad=True) if lib is torch else tc.Tensor(A.T.copy(), requires_grad=True)
        h = (x * 2.0).exp()
        h.add_(1.0)  # x's branch could not run now
        (h @ w).sum().backward(inputs=[w])
        return w.grad, x.grad
    assert_same_outcome(fn)


@needs_torch
@pytest.mark.parametrize("changed", [False, True])
def test_backward_with_a_non_leaf_input_runs_its_node_as_pytorch_does(changed):
    # PyTorch's backward(inputs=[y2]) runs y2's own node too (grad() does not): both raise
    # when that node's saved tensor was changed, and neither passes a gradient below y2
    def fn(lib, x):
        y = x * 2.0
        y2 = y * y
        if changed:
            y.add_(1.0)
        (y2 * y2).sum().backward(inputs=[y2])
        return y2.grad, x.grad
    assert_same_outcome(fn)


@pytest.mark.skipif(_parallel._set_local is None, reason="numpy's OpenBLAS has no thread control")
def test_overlapping_products_in_two_threads_leave_numpys_openblas_setting_as_it_was():
    # the setting is process-wide: thread 1 enters, thread 2 enters, 1 leaves, 2 leaves;
    # each restoring what it found left every later product of the process on one thread
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()

    def first():
        with _parallel.one_blas_thread():
            first_in.set()
            second_in.wait(10)
        first_out.set()

    def second():
        first_in.wait(10)
        with _parallel.one_blas_thread():
            second_in.set()
            first_out.wait(10)

    before = _parallel._set_local(3)
    try:
        threads = [threading.Thread(target=first), threading.Thread(target=second)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert _parallel._set_local(3) == 3
    finally:
        _parallel._set_local(before)


def test_two_threads_in_one_retained_graph_each_see_their_own_gradient_freedom(monkeypatch):
    # ReLU may mask its incoming gradient in place when nothing else refers to it. Thread A's
    # is free, thread B's is not (B returns it: grad w.r.t. the ReLU's output); B reaches the
    # node first and waits inside, A passes through it: B must not act on A's verdict
    from tinygrad_cnn.ops import Relu
    b_inside, a_done = threading.Event(), threading.Event()
    backward = Relu.backward

    def paused(self, g):
        if threading.current_thread().name == "B":
            b_inside.set()
            a_done.wait(10)
        return backward(self, g)

    monkeypatch.setattr(Relu, "backward", paused)
    x = tc.Tensor(A, requires_grad=True)
    a = (x * 2.0).relu()
    loss = (a * 3.0).sum()
    got = {}

    def run_a():
        b_inside.wait(10)
        tc.grad(loss, [x], retain_graph=True)
        a_done.set()

    def run_b():
        got["a"], got["x"] = tc.grad(loss, [a, x], retain_graph=True)

    threads = [threading.Thread(target=run_a, name="A"), threading.Thread(target=run_b, name="B")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    np.testing.assert_array_equal(got["a"].data, np.full(A.shape, 3.0))
    np.testing.assert_array_equal(got["x"].data, np.where(A > 0, 6.0, 0.0))


@needs_torch
@pytest.mark.parametrize("uses", ["relu", "mul", "relu+mul", "exp"])
def test_detach_in_place_after_use_raises_where_a_node_holds_the_tensor(uses):
    # relu keeps only h's TensorMeta and passes its gradient on (as PyTorch, which did not
    # save h); h * h read h, and gave no gradient through it (zeros) instead of raising
    def fn(lib, x):
        h = x.exp() if uses == "exp" else x * 2.0
        out = h.relu() if "relu" in uses else h * 0.0
        if "mul" in uses or uses == "exp":
            out = out + h * h
        h.detach_()
        out.sum().backward()
        return (x.grad,)
    assert_same_outcome(fn)
