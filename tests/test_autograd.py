"""Backward semantics: seeding, accumulation, retain_grad, graph freeing, create_graph, memory."""
import gc
import time
import weakref

import numpy as np
import pytest

from tinygrad_cnn import Tensor, grad, no_grad


def test_scalar_output_is_seeded_with_one():
    x = Tensor([1.0, 2.0, 3.0], requires_grad=True)
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.data, [2.0, 4.0, 6.0])
    assert x.grad.dtype == np.float32


def test_non_scalar_without_gradient_raises():
    x = Tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="scalar"):
        (x * 2).backward()
    (x * 2).backward(gradient=Tensor([1.0, 10.0]))
    np.testing.assert_allclose(x.grad.data, [2.0, 20.0])
    with pytest.raises(ValueError, match="shape"):
        (x * 2).backward(gradient=Tensor([1.0, 10.0, 3.0]))


def test_backward_on_tensor_without_grad_raises():
    with pytest.raises(RuntimeError, match="does not require grad"):
        Tensor([1.0]).sum().backward()


def test_reuse_of_a_value_adds_gradients():
    x = Tensor(3.0, requires_grad=True)
    y = x * x + x  # x used three times
    y.backward()
    assert x.grad.item() == pytest.approx(7.0)


def test_gradients_accumulate_across_backward_calls():
    x = Tensor([1.0, 2.0], requires_grad=True)
    (x * 3).sum().backward()
    (x * 3).sum().backward()
    np.testing.assert_allclose(x.grad.data, [6.0, 6.0])


def test_leaf_grads_do_not_alias():
    a = Tensor([1.0, 2.0], requires_grad=True)
    b = Tensor([1.0, 2.0], requires_grad=True)
    (a + b).sum().backward()
    a.grad.data += 1
    np.testing.assert_allclose(b.grad.data, [1.0, 1.0])
    c = Tensor(np.ones((2, 3)), requires_grad=True)
    c.sum().backward()  # sum's backward is a broadcast view: the stored grad must be writable
    c.grad.data[0, 0] = 5


def test_non_leaf_grad_only_with_retain_grad():
    x = Tensor([1.0, 2.0], requires_grad=True)
    h = x * 2
    k = x * 3
    h.retain_grad()
    (h * k).sum().backward()
    np.testing.assert_allclose(h.grad.data, k.data)
    assert k.grad is None


def test_second_backward_through_freed_graph_raises():
    x = Tensor([1.0, 2.0], requires_grad=True)
    y = (x.exp() * 2).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="second time"):
        y.backward()


def test_retain_graph_allows_second_backward():
    x = Tensor([1.0, 2.0], requires_grad=True)
    y = (x.exp() * 2).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad.data, 4 * np.exp([1.0, 2.0]), rtol=1e-6)


def _relu_chain(x):
    h = x * 2.0
    return h, h.relu()


def test_backward_reuses_gradient_buffers_only_the_engine_holds(monkeypatch):
    from tinygrad_cnn import ops
    seen = []
    backward = ops.Relu.backward
    monkeypatch.setattr(ops.Relu, "backward", lambda self, g: seen.append(self.grad_is_free) or backward(self, g))
    x = Tensor(np.array([-1.0, 2.0, 3.0], dtype=np.float32), requires_grad=True)
    _, y = _relu_chain(x)
    (y * 3.0).sum().backward()
    assert seen == [True]  # a fresh gradient (from y * 3): masked in place
    np.testing.assert_array_equal(x.grad.data, [0, 6, 6])


def test_a_view_of_a_fresh_gradient_is_reused(monkeypatch):
    from tinygrad_cnn import ops
    seen = []
    backward = ops.Relu.backward
    monkeypatch.setattr(ops.Relu, "backward", lambda self, g: seen.append(self.grad_is_free) or backward(self, g))
    x = Tensor(np.array([[-1.0, 2.0, 3.0]], dtype=np.float32), requires_grad=True)
    _, y = _relu_chain(x)
    (y.T * 3.0).sum().backward()  # y's gradient is a transposed view of Mul's new array
    assert seen == [True]
    np.testing.assert_array_equal(x.grad.data, [[0, 6, 6]])


def test_a_view_of_a_user_array_is_not_overwritten():
    x = Tensor(np.array([[-1.0, 2.0], [3.0, -4.0]], dtype=np.float32), requires_grad=True)
    _, y = _relu_chain(x)
    g = np.ones((2, 2), dtype=np.float32)
    y.backward(g.T)
    np.testing.assert_array_equal(g, np.ones((2, 2)))
    np.testing.assert_array_equal(x.grad.data, [[0, 2], [2, 0]])


@pytest.mark.parametrize("how", ["retain_grad", "grad", "shared", "user array", "user tensor", "retain_graph"])
def test_a_gradient_someone_else_sees_is_not_overwritten(how):
    x = Tensor(np.array([-1.0, 2.0, 3.0], dtype=np.float32), requires_grad=True)
    h, y = _relu_chain(x)
    z = y * 3.0
    expect = [0, 6, 6]
    if how == "retain_grad":
        y.retain_grad()
        z.sum().backward()
        np.testing.assert_array_equal(y.grad.data, [3, 3, 3])  # d z.sum() / dy, not masked by relu
    elif how == "grad":
        gy, gx = grad(z.sum(), [y, x])
        np.testing.assert_array_equal(gy.data, [3, 3, 3])
        x.grad = gx
    elif how == "shared":  # Add hands the same gradient to both of its inputs
        y2 = h * 5.0
        (y + y2).backward(np.ones(3, dtype=np.float32), retain_graph=True)
        (y2 + y).backward(np.ones(3, dtype=np.float32))
        expect = [20, 24, 24]
    elif how == "user array":
        g = np.ones(3, dtype=np.float32)
        y.backward(g)
        np.testing.assert_array_equal(g, [1, 1, 1])
        expect = [0, 2, 2]
    elif how == "user tensor":
        g = Tensor(np.ones(3, dtype=np.float32))
        y.backward(g)
        np.testing.assert_array_equal(g.data, [1, 1, 1])
        expect = [0, 2, 2]
    else:
        z.sum().backward(retain_graph=True)
        z.sum().backward()
        expect = [0, 12, 12]
    np.testing.assert_array_equal(x.grad.data, expect)


def test_long_chain_does_not_hit_recursion_limit():
    x = Tensor(1.0, requires_grad=True)
    y = x
    for _ in range(100_000):
        y = y * 1.0 + 0.0
    t = time.perf_counter()
    y.backward()
    assert x.grad.item() == 1.0
    print(f"backward of 200,000 ops: {time.perf_counter() - t:.2f}s")


def test_no_reference_cycle_keeps_arrays_alive():
    gc.collect()
    gc.disable()
    try:
        x = Tensor(np.ones((50, 50)), requires_grad=True)
        h = (x * 2).exp()
        loss = (h * h).sum()
        ref = weakref.ref(h)
        arr_ref = weakref.ref(h.data)
        del h
        loss.backward(retain_graph=True)
        assert ref() is not None  # a retained graph still holds h
        del loss
        assert ref() is None and arr_ref() is None, "a cycle keeps the graph alive"
    finally:
        gc.enable()


def test_create_graph_gives_differentiable_gradients():
    x = Tensor(2.0, requires_grad=True)
    y = x ** 3
    (gx,) = grad(y, x, create_graph=True)
    assert gx.item() == pytest.approx(12.0)
    (gxx,) = grad(gx, x)
    assert gxx.item() == pytest.approx(12.0)  # 6x


def test_backward_create_graph_then_backward_of_grad():
    x = Tensor([1.0, 2.0], requires_grad=True)
    y = (x.tanh() * x).sum()
    y.backward(create_graph=True)
    g = x.grad
    assert g.requires_grad
    x.grad = None
    g.sum().backward()
    t = np.tanh(np.array([1.0, 2.0]))
    d2 = 2 * (1 - t**2) - 2 * np.array([1.0, 2.0]) * t * (1 - t**2)
    np.testing.assert_allclose(x.grad.data, d2, rtol=1e-5)


def test_grad_does_not_touch_dot_grad_and_reports_unused():
    x = Tensor([1.0], requires_grad=True)
    z = Tensor([1.0], requires_grad=True)
    (g,) = grad((x * 5).sum(), x)
    assert g.item() == 5.0 and x.grad is None
    with pytest.raises(RuntimeError, match="not used"):
        grad((x * 5).sum(), [x, z])
    gx, gz = grad((x * 5).sum(), [x, z], allow_unused=True)
    assert gz is None


def test_no_grad_records_nothing():
    x = Tensor([1.0], requires_grad=True)
    with no_grad():
        y = x * 2
    assert y.grad_fn is None and not y.requires_grad


def test_ops_on_non_requiring_inputs_record_nothing():
    x = Tensor([1.0])
    assert (x * 2).grad_fn is None


def test_chain_of_10000_ops_timing():
    """Not an assertion on time: prints the figure reported in the closing note."""
    x = Tensor(np.ones(10), requires_grad=True)
    t = time.perf_counter()
    y = x
    for _ in range(10_000):
        y = y * 1.0001
    y.sum().backward()
    print(f"forward+backward of a 10,000-op chain: {(time.perf_counter() - t) * 1000:.0f} ms")
    assert x.grad is not None
