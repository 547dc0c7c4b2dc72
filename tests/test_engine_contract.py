"""PyTorch's autograd contract off the happy path: graph memory after backward, grad mode
per thread, gradients that never alias, Python and numpy protocols."""
import gc
import os
import threading
import weakref

import numpy as np
import pytest
from helpers import needs_torch, torch

import tinygrad_cnn as tc
from tinygrad_cnn import Tensor, grad, no_grad, optim
from tinygrad_cnn.models import SimpleConvNet
from tinygrad_cnn.viz import draw_graph


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


# ----------------------------------------------------------------------------- graph memory


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs Linux's /proc")
def test_keeping_50_losses_of_simpleconvnet_costs_under_10_mb():
    tc.manual_seed(0)
    net = SimpleConvNet()
    opt = optim.Adam(net.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)

    def step(keep):
        loss = net.loss(rng.random((100, 1, 28, 28)).astype(np.float32), rng.integers(0, 10, 100))
        opt.zero_grad()
        loss.backward()
        opt.step()
        keep.append(loss)

    warm = []
    for _ in range(5):
        step(warm)
    del warm
    gc.collect()
    before = rss_mb()
    kept = []
    for _ in range(50):
        step(kept)
    gc.collect()
    assert rss_mb() - before < 10  # before this contract: about 1,000 MB


def test_backward_frees_activations_but_keeps_what_drawing_needs():
    x = Tensor(np.ones((50, 50)), requires_grad=True, name="x")
    h = (x * 2).exp()
    loss = (h * h).sum()
    h_arr = weakref.ref(h.data)
    del h
    loss.backward()
    gc.collect()
    assert h_arr() is None  # only the graph held h
    dot = draw_graph(loss, show_grads=True)
    assert "mul" in dot.source and "exp" in dot.source and "(50, 50) float64" in dot.source
    with pytest.raises(RuntimeError, match="second time"):
        loss.backward()


def _conv_block(x, w1, w2):
    """conv, relu, conv, relu, max-pool, with weak references to the two conv outputs."""
    F = tc.nn.functional
    h1 = F.conv2d(x, w1, padding=1)
    h2 = F.conv2d(F.relu(h1), w2, padding=1)
    return F.max_pool2d(F.relu(h2), 2), weakref.ref(h1), weakref.ref(h2)


def test_a_node_does_not_keep_inputs_its_backward_does_not_read():
    # ReLU's backward reads its own mask, not its input: as in PyTorch, the conv outputs it
    # consumed are freed at once, and only shapes stay in the graph
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((4, 2, 8, 8)))
    w1 = Tensor(rng.standard_normal((3, 2, 3, 3)), requires_grad=True)
    w2 = Tensor(rng.standard_normal((3, 3, 3, 3)), requires_grad=True)
    out, h1, h2 = _conv_block(x, w1, w2)
    gc.collect()
    assert h1() is None and h2() is None
    out.sum().backward()
    # the same gradients with every activation kept by the caller
    w1b, w2b = Tensor(w1.data, requires_grad=True), Tensor(w2.data, requires_grad=True)
    F = tc.nn.functional
    k1 = F.conv2d(x, w1b, padding=1)
    k2 = F.conv2d(F.relu(k1), w2b, padding=1)
    F.max_pool2d(F.relu(k2), 2).sum().backward()
    np.testing.assert_allclose(w1.grad.data, w1b.grad.data, rtol=1e-12)
    np.testing.assert_allclose(w2.grad.data, w2b.grad.data, rtol=1e-12)
    assert "relu" in draw_graph(out).source


@needs_torch
@pytest.mark.parametrize("alive", [True, False])
def test_a_tensor_held_whole_by_one_node_and_as_shape_by_others_gets_one_gradient(alive):
    # y is read by y * y's backward but not by relu's or add's; whether the caller still
    # holds y or not, its gradient is the sum over all three uses, and y's node runs once
    def run(lib):
        a = lib.tensor([[0.5, -1.0, 2.0], [1.5, -0.3, 0.7]], requires_grad=True)
        y = a * 3.0
        u, v = y.relu(), y + 1.0
        w = y * y
        kept = y if alive else None
        del y
        (u * 2.0 + v * v + w).sum().backward()
        return a.grad.numpy() if lib is torch else a.grad.data, kept

    ours, kept = run(tc)
    np.testing.assert_allclose(ours, run(torch)[0], rtol=1e-6)
    if alive:
        assert kept.grad is None  # a non-leaf keeps no .grad unless it retains it


def test_grad_of_an_intermediate_that_its_consumers_hold_as_shape():
    x = Tensor(np.array([1.0, -2.0, 3.0]), requires_grad=True)
    h = x * 2.0
    h.retain_grad()
    y = (h.relu() + h.sigmoid()).sum()  # relu and add keep only h's shape
    (gh,) = grad(y, [h], retain_graph=True)
    s = 1 / (1 + np.exp(-h.data))
    np.testing.assert_allclose(gh.data, (h.data > 0) + s * (1 - s))
    y.backward()
    np.testing.assert_allclose(h.grad.data, gh.data)
    np.testing.assert_allclose(x.grad.data, 2 * gh.data)


def test_the_graph_of_a_kept_loss_holds_no_array_of_the_batch():
    net = SimpleConvNet()
    x = np.random.default_rng(0).random((8, 1, 28, 28)).astype(np.float32)
    loss = net.loss(x, np.arange(8) % 10)
    loss.backward()
    seen, arrays, stack = set(), [], [loss._ctx]
    while stack:
        fn = stack.pop()
        if fn is None or id(fn) in seen:
            continue
        seen.add(id(fn))
        for t in fn.inputs:
            if t is None:
                continue
            data = getattr(t, "data", None)
            if isinstance(data, np.ndarray) and not t.requires_grad:
                arrays.append(data.size)
            stack.append(t._ctx)
    assert all(size <= 4 for size in arrays)  # nothing but small constants
    assert len(seen) > 10


# ----------------------------------------------------------------------------- grad mode


def test_grad_mode_is_per_thread():
    started, stop = threading.Event(), threading.Event()

    def inference():
        with no_grad():
            started.set()
            stop.wait(5)

    th = threading.Thread(target=inference)
    th.start()
    started.wait(5)
    try:
        x = Tensor([1.0, 2.0], requires_grad=True)
        y = (x * x).sum()  # recorded although another thread is in no_grad
        assert y.requires_grad and tc.is_grad_enabled()
        y.backward()
        assert x.grad.tolist() == [2.0, 4.0]
    finally:
        stop.set()
        th.join()


def test_training_and_inference_threads_both_correct():
    errors = []

    def train():
        try:
            for _ in range(200):
                w = Tensor([3.0], requires_grad=True)
                (w * w).sum().backward()
                assert w.grad.item() == 6.0
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    def infer():
        try:
            for _ in range(200):
                with no_grad():
                    assert not (Tensor([1.0], requires_grad=True) * 2).requires_grad
        except Exception as e:  # pragma: no cover
            errors.append(e)

    threads = [threading.Thread(target=f) for f in (train, infer, train, infer)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def test_overlapping_and_reused_blocks_restore_the_mode():
    a, b = no_grad(), tc.enable_grad()
    with a:
        with b:
            assert tc.is_grad_enabled()
            with a:  # the same object entered twice
                assert not tc.is_grad_enabled()
            assert tc.is_grad_enabled()
        assert not tc.is_grad_enabled()
    assert tc.is_grad_enabled()
    tc.set_grad_enabled(False)
    assert not tc.is_grad_enabled()
    tc.set_grad_enabled(True)
    with tc.set_grad_enabled(False):
        assert not tc.is_grad_enabled()
    with tc.inference_mode():
        assert not (Tensor([1.0], requires_grad=True) * 2).requires_grad
    with tc.inference_mode(False):
        assert tc.is_grad_enabled()

    @no_grad
    def f():
        return tc.is_grad_enabled()

    assert f() is False and tc.is_grad_enabled()


# ----------------------------------------------------------------------------- .grad never aliases


def test_grad_is_not_the_callers_gradient():
    a = Tensor([1.0, 2.0, 3.0], requires_grad=True)
    g = Tensor([1.0, 1.0, 1.0])
    a.backward(g)
    assert a.grad is not g and not np.shares_memory(a.grad.data, g.data)
    a.grad.data[0] = 5.0
    assert g.tolist() == [1.0, 1.0, 1.0]


@pytest.mark.parametrize("create_graph", [False, True])
def test_grads_of_two_leaves_are_separate_writable_arrays(create_graph):
    a = Tensor([1.0, 2.0], requires_grad=True)
    b = Tensor([3.0, 4.0], requires_grad=True)
    (a + b).sum().backward(create_graph=create_graph)
    assert a.grad is not b.grad and not np.shares_memory(a.grad.data, b.grad.data)
    assert a.grad.data.flags.writeable and b.grad.data.flags.writeable
    a.grad.data[0] = 7.0
    assert b.grad.tolist() == [1.0, 1.0]


def test_accumulation_is_in_place_and_in_the_leafs_dtype():
    w = Tensor([1.0, 2.0], requires_grad=True)  # float32
    (w.double() * Tensor(np.array([2.0, 2.0]))).sum().backward()
    g = w.grad
    assert g.dtype == np.float32
    (w * w).sum().backward()
    assert w.grad is g and w.grad.tolist() == [4.0, 6.0]  # accumulated into the same tensor, as PyTorch


def test_create_graph_grads_stay_differentiable():
    x = Tensor([1.0, 2.0], requires_grad=True)
    y = (x * x * x).sum()
    y.backward(create_graph=True)
    (gg,) = grad(x.grad.sum(), x)
    assert gg.tolist() == [6.0, 12.0]


# ----------------------------------------------------------------------------- Python and numpy protocols


def test_iteration_unpacking_and_scalars():
    t = Tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    rows = list(t)
    assert len(rows) == 2 and rows[1].tolist() == [3.0, 4.0]
    a, b = t
    (a.sum() * 2 + b.sum()).backward()
    assert t.grad.tolist() == [[2.0, 2.0], [1.0, 1.0]]
    loss = Tensor(0.123456)
    assert f"{loss:.4f}" == "0.1235" and float(loss) == pytest.approx(0.123456) and int(Tensor([2.7])) == 2
    assert bool(Tensor([1])) and not bool(Tensor(0.0))
    assert 3.0 in Tensor([1.0, 3.0]) and 5 not in Tensor([1, 2])
    assert list(range(Tensor(3))) == [0, 1, 2]
    with pytest.raises(TypeError, match="0-d"):
        iter(Tensor(1.0))
    with pytest.raises(RuntimeError, match="one element") as e:
        bool(Tensor([1.0, 2.0]))
    assert isinstance(e.value, ValueError)
    with pytest.raises(IndexError):
        t[2]
    x, y = Tensor([5, 6])
    assert (int(x), int(y)) == (5, 6)


def test_numpy_functions_see_the_array():
    y = Tensor(np.array([[1.0, 5.0, 2.0], [7.0, 0.0, 3.0]], np.float32))
    np.testing.assert_array_equal(np.max(y, axis=1), [5.0, 7.0])
    np.testing.assert_array_equal(np.argmax(y, axis=1), [1, 0])
    assert np.mean(y) == pytest.approx(3.0) and np.sum(y, axis=0).tolist() == [8.0, 5.0, 5.0]
    losses = [Tensor(0.5), Tensor(0.25), Tensor(0.125)]
    np.testing.assert_allclose(np.array(losses), [0.5, 0.25, 0.125])
    assert float(np.mean(losses)) == pytest.approx(0.875 / 3)
    assert y.sum(axis=1).tolist() == [8.0, 10.0] and y.mean(axis=0, keepdims=True).shape == (1, 3)
    assert y.max(axis=1).values.tolist() == [5.0, 7.0] and y.argmax(axis=1).tolist() == [1, 0]


def test_a_list_of_loss_tensors_plots():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots()
    (line,) = ax.plot([Tensor(0.5), Tensor(0.25), Tensor(0.125)])
    np.testing.assert_allclose(line.get_ydata(), [0.5, 0.25, 0.125])
    plt.close(fig)


@needs_torch
def test_deepcopy_of_a_leaf_and_refusal_of_a_non_leaf():
    import copy
    w = Tensor([1.0, 2.0], requires_grad=True)
    w.grad = Tensor([0.5, 0.5])
    w2 = copy.deepcopy(w)
    assert w2.requires_grad and w2.grad.tolist() == [0.5, 0.5] and not np.shares_memory(w.data, w2.data)
    with pytest.raises(RuntimeError, match="leaf"):
        copy.deepcopy(w * 2)
    with pytest.raises(RuntimeError):
        copy.deepcopy(torch.ones(2, requires_grad=True) * 2)


def test_a_view_gradient_nothing_else_holds_is_adopted_and_stays_private():
    lin = tc.nn.Linear(3, 2)
    x = Tensor(np.ones((4, 3), np.float32))
    lin(x).sum().backward()  # weight.T's gradient, transposed back: a view of a fresh array
    g = lin.weight.grad
    assert g.data.flags.writeable and g.shape == (2, 3)
    np.testing.assert_allclose(g.data, 4.0)
    lin(x).sum().backward()
    assert lin.weight.grad is g and np.allclose(g.data, 8.0)  # accumulated into the same tensor
    other = Tensor(np.zeros((3, 2), np.float32), requires_grad=True)
    (other.T * 1.0).sum().backward()
    assert not np.shares_memory(other.grad.data, lin.weight.grad.data)
