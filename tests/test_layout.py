"""Memory layout: conv2d's output keeps the batch innermost ((C, H, W, N) in memory), computed a
chunk of output rows at a time; values and gradients equal the contiguous layout's, at any
chunk size, and ReLU, pooling and their gradients keep the layout."""
import threading

import naive
import numpy as np
import pytest
from helpers import arrays, leaf
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_cnn.functional as F
from tinygrad_cnn import Tensor, grad, gradcheck, gradgradcheck, kernels
from tinygrad_cnn.functional._utils import _geometry
from tinygrad_cnn.ops import _max0

CHWN = (1, 2, 3, 0)  # memory order of conv2d's output: (C, H, W, N) outermost to innermost


def chwn(a):
    """The same (N, C, H, W) values laid out as a (C, H, W, N) array."""
    return np.ascontiguousarray(a.transpose(1, 2, 3, 0)).transpose(3, 0, 1, 2)


@pytest.fixture
def one_row_chunks(monkeypatch):
    """Every chunk of output rows is a single row, and the chunks go to all threads: the
    chunk loops run several times, on several threads where OpenBLAS allows it."""
    monkeypatch.setattr(kernels.conv, "CHUNK_BYTES", 1)
    monkeypatch.setattr(kernels.conv, "COL2IM_CHUNK_BYTES", 1)
    monkeypatch.setattr(kernels.conv, "SPLIT_BYTES", 0)


def test_row_chunks_cover_the_rows_evenly(monkeypatch):
    from tinygrad_cnn import _parallel
    monkeypatch.setattr(kernels.conv, "CHUNK_BYTES", 1000)
    monkeypatch.setattr(kernels.conv, "SPLIT_BYTES", 150)
    monkeypatch.setattr(_parallel, "THREADS", 2)
    assert kernels.row_chunks(7, 300) == ([(0, 3), (3, 6), (6, 7)], 2)
    assert kernels.row_chunks(6, 300) == ([(0, 3), (3, 6)], 2)
    assert kernels.row_chunks(5, 5000) == ([(h, h + 1) for h in range(5)], 2)  # one row at least
    assert kernels.row_chunks(4, 100) == ([(0, 2), (2, 4)], 2)  # a chunk for each thread
    assert kernels.row_chunks(4, 1) == ([(0, 4)], 1)  # too little work for two threads
    monkeypatch.setattr(kernels.conv, "SPLIT_BYTES", 10_000)  # a few bytes of columns: one thread ...
    assert kernels.row_chunks(7, 300)[1] == 1
    monkeypatch.setattr(kernels.conv, "SPLIT_OUT_BYTES", 5000)  # ... unless the output is large
    assert kernels.row_chunks(7, 300, out_bytes=4999)[1] == 1
    assert kernels.row_chunks(7, 300, out_bytes=5000) == ([(0, 3), (3, 6), (6, 7)], 2)


@given(x=arrays((3, 2, 7, 6)), w=arrays((4, 2, 3, 2)), b=arrays((4,)),
       stride=st.tuples(st.integers(1, 2), st.integers(1, 2)), padding=st.tuples(st.integers(0, 2), st.integers(0, 1)),
       dilation=st.tuples(st.integers(1, 2), st.integers(1, 2)))
def test_conv2d_in_row_chunks_matches_loops(x, w, b, stride, padding, dilation):
    kw = dict(stride=stride, padding=padding, dilation=dilation)
    expect = naive.conv2d(x, w, b, **kw)
    for chunk_bytes in (1, 400, 1 << 20):
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(kernels.conv, "CHUNK_BYTES", chunk_bytes)
            out = F.conv2d(Tensor(x), Tensor(w), Tensor(b), **kw)
        np.testing.assert_allclose(out.data, expect, rtol=1e-10, atol=1e-12)
        assert kernels.memory_order(out.data) == CHWN


@pytest.mark.parametrize("kw", [dict(padding=1), dict(stride=2, padding=(2, 0)), dict(dilation=(2, 1), stride=(1, 2))])
def test_conv2d_gradients_in_row_chunks(rng, one_row_chunks, kw):
    x, w, b = rng.standard_normal((3, 2, 6, 5)), rng.standard_normal((4, 2, 3, 2)), rng.standard_normal(4)
    assert gradcheck(lambda x, w, b: F.conv2d(x, w, b, **kw), leaf(x), leaf(w), leaf(b))
    assert gradgradcheck(lambda x, w, b: F.conv2d(x, w, b, **kw), leaf(x), leaf(w), leaf(b))
    assert gradgradcheck(lambda x, w: F.conv2d(x, w, **kw).tanh(), leaf(x), leaf(w))


def test_conv2d_gradients_do_not_depend_on_the_layouts_they_meet(rng):
    x, w, b = rng.standard_normal((3, 2, 6, 5)), rng.standard_normal((4, 2, 3, 3)), rng.standard_normal(4)
    g = rng.standard_normal((3, 4, 6, 5))
    grads = []
    for xx, gg in ((x, g), (chwn(x), chwn(g)), (x.transpose(2, 3, 0, 1).copy().transpose(2, 3, 0, 1), g)):
        tx, tw, tb = Tensor._make(xx).requires_grad_(), leaf(w), leaf(b)  # _make keeps xx's layout
        F.conv2d(tx, tw, tb, padding=1).backward(Tensor._make(gg))
        grads.append((tx.grad.data, tw.grad.data, tb.grad.data))
    for other in grads[1:]:
        for u, v in zip(grads[0], other):
            np.testing.assert_allclose(u, v, rtol=1e-12, atol=1e-12)


def test_conv2d_weight_gradient_without_bias_and_only_bias(rng):
    x, w, b = rng.standard_normal((2, 3, 5, 5)), rng.standard_normal((2, 3, 3, 3)), rng.standard_normal(2)
    tw, tb = Tensor(w), leaf(b)  # the weight does not require grad: the bias gradient alone
    F.conv2d(Tensor(x), tw, tb).sum().backward()
    np.testing.assert_allclose(tb.grad.data, np.full(2, 2 * 3 * 3.0))
    assert tw.grad is None


def test_conv2d_in_float32_stays_float32_through_second_derivatives(rng):
    x = Tensor(rng.standard_normal((2, 2, 5, 5)).astype(np.float32), requires_grad=True)
    w = Tensor(rng.standard_normal((3, 2, 3, 3)).astype(np.float32), requires_grad=True)
    out = F.conv2d(x, w, padding=1)
    gx, gw = grad((out * out).sum(), (x, w), create_graph=True)
    assert out.dtype == gx.dtype == gw.dtype == np.float32
    (gx.sum() + gw.sum()).backward()
    assert x.grad.dtype == w.grad.dtype == np.float32


def test_unfold_and_fold_are_adjoint_in_any_layout(rng):
    x = rng.standard_normal((3, 2, 7, 6))
    geom = ((3, 2), (2, 1), ((1, 1), (0, 0)), (1, 2), (4, 4))
    cols = kernels.unfold(x, *geom)
    g = rng.standard_normal(cols.shape)
    folded = kernels.fold(g, x.shape, *geom)
    np.testing.assert_allclose(np.sum(cols * g), np.sum(folded * x), rtol=1e-12)
    np.testing.assert_allclose(kernels.fold(np.asfortranarray(g), x.shape, *geom), folded, rtol=1e-12, atol=1e-12)


@given(x=arrays((3, 2, 4, 6), distinct=True), k=st.sampled_from([2, 3]), pad=st.integers(0, 1))
def test_relu_and_max_pool_keep_the_layout_and_their_gradients(x, k, pad):
    outs, grads = [], []
    for data in (x, chwn(x)):
        t = Tensor._make(data).requires_grad_()
        y = F.max_pool2d(t.relu(), k, stride=2, padding=pad)
        if data is not x:
            assert kernels.memory_order(y.data) == CHWN
        g = np.arange(y.numel(), dtype=np.float64).reshape(y.shape)
        y.backward(g)
        outs.append(y.data)
        grads.append(t.grad.data)
    np.testing.assert_array_equal(*outs)
    np.testing.assert_array_equal(*grads)
    unrecorded = F.max_pool2d(Tensor(chwn(x)).relu(), k, stride=2, padding=pad)  # the path without argmax
    np.testing.assert_array_equal(unrecorded.data, outs[0])


def test_max0_on_permuted_and_strided_arrays(rng):
    a = rng.standard_normal((40, 30, 8, 8)).astype(np.float32)
    a[0, 0, 0, :2] = [np.nan, -0.0]
    for v in (chwn(a), a[:, :, ::2], a.transpose(1, 0, 2, 3)):
        out, _ = _max0(v)
        np.testing.assert_array_equal(out, np.maximum(v, 0))
    assert kernels.memory_order(_max0(chwn(a))[0]) == CHWN


@pytest.mark.parametrize("n", [1, 3, 4, 101, 102])  # 324 * n values: 324, 972; 1,296, 32,724; 33,048
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_max0_of_every_size_and_layout_is_maximum_with_zero(rng, n, dtype):
    """ReLU's kernel, small arrays whole against a row of zeros, large ones in rows, smaller
    ones against a scalar: numpy's maximum with 0 (NaN kept) and its mask, in the input's layout."""
    a = rng.standard_normal((n, 4, 9, 9)).astype(dtype)
    a[0, 0, 0, :3] = [np.nan, -0.0, 0.0]
    for v in (a, chwn(a), np.asfortranarray(a), a[:, :, ::2], a.transpose(0, 1, 3, 2)):
        out, mask = _max0(v, with_mask=True)
        np.testing.assert_array_equal(out, np.maximum(v, 0))
        np.testing.assert_array_equal(mask, np.maximum(v, 0) != 0)
        assert out.dtype == dtype and out.shape == v.shape
        assert kernels.memory_order(out) == kernels.memory_order(v)


@pytest.mark.parametrize("layout", ["chwn", "nchw", "strided"])
def test_relu_backward_masks_a_large_gradient_in_blocks_exactly(rng, layout):
    # 640,000 values: relu's backward multiplies the engine's own gradient by a float copy of
    # the mask, block by block, in the gradient's memory order; values must not change
    a = rng.standard_normal((2, 8, 200, 200)).astype(np.float32)
    a[0, 0, 0, :3] = [np.nan, -0.0, 0.0]
    x = {"chwn": chwn(a), "nchw": a, "strided": a[:, :, :, ::2].copy()[:, :, ::2]}[layout]
    c = rng.standard_normal(x.shape).astype(np.float32)
    c[0, 0, 0, 2] = np.nan  # nan * 0 stays nan, as for a float times a bool
    xt = Tensor._make(x).requires_grad_()
    (xt.relu() * Tensor(c)).sum().backward()
    np.testing.assert_array_equal(xt.grad.data, c * (np.maximum(x, 0) != 0))


def test_matmul_gives_a_transposed_operand_its_gradient_in_its_layout(rng, monkeypatch):
    a, b = np.asfortranarray(rng.standard_normal((4, 3))), rng.standard_normal((3, 5))
    assert gradcheck(lambda x, y: x @ y, Tensor._make(a).requires_grad_(), leaf(b))
    assert gradgradcheck(lambda x, y: (x @ y).tanh(), Tensor._make(a).requires_grad_(), leaf(b))
    # conv features flattened with the batch innermost: the pool gradient needs no transposing copy
    seen = []
    scatter = kernels.pool_scatter
    monkeypatch.setattr(kernels, "pool_scatter", lambda g, *r: seen.append(kernels.memory_order(g)) or scatter(g, *r))
    x, w = Tensor(rng.standard_normal((3, 1, 6, 6))), leaf(rng.standard_normal((2, 1, 3, 3)))
    h = F.max_pool2d(F.conv2d(x, w, padding=1), 2).flatten(1)
    (h @ leaf(rng.standard_normal((18, 4)))).sum().backward()
    assert seen == [CHWN]


@pytest.fixture
def row_slabs(monkeypatch):
    """conv2d and its weight gradient multiply `_RowSlabs` wherever those apply (dilation 1
    along H, kernels taller than one row), at any batch and chunk size."""
    monkeypatch.setattr(kernels.conv, "SLAB_MIN_RUN", 0)
    monkeypatch.setattr(kernels.conv, "SLAB_MIN_ROWS", 0)
    monkeypatch.setattr(kernels.conv, "SLAB_SHARE", float("inf"))


@given(n=st.integers(1, 3), c=st.integers(1, 3), oc=st.integers(1, 3),
       kernel=st.tuples(st.integers(2, 4), st.integers(1, 3)), stride=st.tuples(st.integers(1, 2), st.integers(1, 2)),
       dw=st.integers(1, 2),
       padding=st.tuples(st.integers(0, 2), st.integers(0, 2)), extra=st.tuples(st.integers(0, 5), st.integers(0, 3)),
       bias=st.booleans(), chunk_bytes=st.sampled_from([1, 300, 3000, 1 << 22]), threads=st.integers(1, 3),
       data=st.data())
def test_row_slabs_give_the_columns_products(n, c, oc, kernel, stride, dw, padding, extra, bias, chunk_bytes, threads,
                                            data):
    """conv2d and its weight gradient from `_RowSlabs` (im2col along W only, each output row's
    columns a contiguous slab) equal the naive convolution and the columns' contraction, for
    any kernel, stride, padding, W dilation, chunk size and thread count."""
    from tinygrad_cnn import _parallel
    h, w = kernel[0] + extra[0], dw * (kernel[1] - 1) + 1 + extra[1]
    x, wt, b = data.draw(arrays((n, c, h, w))), data.draw(arrays((oc, c, *kernel))), data.draw(arrays((oc,)))
    geom = _geometry("conv2d", x.shape, kernel, stride, padding, (1, dw))
    g = data.draw(arrays((n, oc, *geom[-1])))
    wmat = np.concatenate([wt.reshape(oc, -1), b[:, None]], axis=1) if bias else wt.reshape(oc, -1)
    with pytest.MonkeyPatch.context() as mp:
        for name, value in (("SLAB_MIN_RUN", 0), ("SLAB_MIN_ROWS", 0), ("SLAB_SHARE", float("inf")),
                            ("CHUNK_BYTES", chunk_bytes), ("SPLIT_BYTES", 0)):
            mp.setattr(kernels.conv, name, value)
        mp.setattr(_parallel, "THREADS", threads)
        xt, g0 = kernels.conv._zero_padded(x, x.dtype, geom)
        assert kernels.conv._RowSlabs.chunks_of(xt, g0, bias, x.dtype, oc) is not None
        out = kernels.conv2d(x, wmat, *geom)
        wg = kernels.conv2d_weight_grad(x, g, *geom[:4], ones_row=bias)
    ref = naive.conv2d(x, wt, b if bias else None, stride=geom[1], padding=(geom[2][0][0], geom[2][1][0]),
                       dilation=geom[3])
    np.testing.assert_allclose(out, ref, rtol=1e-10, atol=1e-10)
    assert kernels.memory_order(out) == CHWN or n == 1
    expect = np.einsum("nol,nkl->ok", g.reshape(n, oc, -1), kernels.unfold(x, *geom))
    if bias:
        expect = np.concatenate([expect, g.sum(axis=(0, 2, 3))[:, None]], axis=1)
    np.testing.assert_allclose(wg, expect, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("kw", [dict(padding=2), dict(stride=2, padding=(2, 0)), dict(dilation=(1, 2), stride=(2, 1))])
def test_conv2d_gradients_through_row_slabs(rng, row_slabs, kw):
    x, w, b = rng.standard_normal((3, 2, 7, 5)), rng.standard_normal((4, 2, 3, 2)), rng.standard_normal(4)
    geom = _geometry("conv2d", x.shape, (3, 2), kw.get("stride", 1), kw.get("padding", 0), kw.get("dilation", 1))
    xt, geom = kernels.conv._zero_padded(x, x.dtype, geom)
    assert kernels.conv._RowSlabs.chunks_of(xt, geom, True, x.dtype, 4) is not None
    assert gradcheck(lambda x, w, b: F.conv2d(x, w, b, **kw), leaf(x), leaf(w), leaf(b))
    assert gradgradcheck(lambda x, w, b: F.conv2d(x, w, b, **kw), leaf(x), leaf(w), leaf(b))


@given(n=st.integers(1, 3), c=st.integers(1, 3), oc=st.integers(1, 3),
       kernel=st.tuples(st.integers(1, 3), st.integers(1, 3)), dilation=st.tuples(st.integers(1, 2), st.integers(1, 2)),
       extra=st.tuples(st.integers(0, 4), st.integers(0, 4)),
       chunk_bytes=st.sampled_from([1, 300, 1 << 22]), threads=st.integers(1, 3), by_kernel_rows=st.booleans(),
       data=st.data())
def test_col2im_by_rows_adds_what_fold_adds(n, c, oc, kernel, dilation, extra, chunk_bytes, threads, by_kernel_rows,
                                           data):
    """Stride 1, no padding: the input gradient added along the input's rows (with g's rows
    widened to the input's pitch), by either route (`_col2im_by_rows`,
    `_input_grad_by_kernel_rows`), equals col2im (`fold`) of the product, for any kernel,
    dilation, chunk size and thread count."""
    from tinygrad_cnn import _parallel
    h, w = (d * (k - 1) + 1 + e for k, d, e in zip(kernel, dilation, extra))
    geom = _geometry("conv2d", (n, c, h, w), kernel, 1, 0, dilation)
    g = data.draw(arrays((n, oc, *geom[-1])))
    wt = data.draw(arrays((oc, c, *kernel)))
    expect = kernels.fold(np.matmul(wt.reshape(oc, -1).T, g.reshape(n, oc, -1)), (n, c, h, w), *geom)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(kernels.conv, "COL2IM_CHUNK_BYTES", chunk_bytes)
        mp.setattr(kernels.conv, "SPLIT_BYTES", 0)
        mp.setattr(_parallel, "THREADS", threads)
        mp.setattr(kernels.conv, "_kernel_rows_pay", lambda *_: by_kernel_rows)
        got = kernels.conv._col2im_input_grad(g, wt.reshape(oc, -1), (n, c, h, w), *geom[:4])
    np.testing.assert_allclose(got, expect, rtol=1e-12, atol=1e-12)
    assert kernels.memory_order(got) == CHWN or n == 1


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # padding * inf in the forward is NaN, as in PyTorch
@pytest.mark.parametrize("shape, kernel, padding", [((1, 1, 4, 5), (1, 2), 0), ((1, 1, 2, 20), (1, 2), 0),
                                                     ((2, 2, 6, 6), (3, 3), 1), ((2, 3, 7, 5), (2, 3), 0)])
def test_input_gradient_with_an_infinite_weight_adds_only_where_it_reaches(shape, kernel, padding):
    """A weight of inf reaches the input positions its kernel column meets and no others, as
    in PyTorch and col2im: neither the stride-1 convolution (g padded with zeros) nor the
    row-wise col2im (zeros past OW) may multiply it by a zero (NaN)."""
    x = Tensor(np.ones(shape), requires_grad=True)
    w = np.ones((2, shape[1], *kernel))
    w[:, :, 0, -1] = np.inf
    F.conv2d(x, Tensor(w), padding=padding).sum().backward()
    geom = _geometry("conv2d", shape, kernel, 1, padding, 1)
    g = np.ones((shape[0], 2, *geom[-1]))
    with np.errstate(invalid="ignore"):
        expect = kernels.fold(np.matmul(w.reshape(2, -1).T, g.reshape(shape[0], 2, -1)), shape, *geom)
    np.testing.assert_array_equal(x.grad.data, expect)
    assert np.isfinite(x.grad.data[..., :1]).all()  # the first column: kernel column 0 only


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("kw", [dict(stride=2, padding=1), dict(stride=1, padding=1), dict(stride=(1, 2), dilation=2),
                                dict(stride=1, padding=(3, 0), dilation=(1, 2)), dict(stride=1),
                                dict(dilation=(2, 3))])  # the last two: along rows, by either route
@pytest.mark.parametrize("by_kernel_rows", [False, True])
def test_conv2d_input_gradient_in_chunks_on_threads_matches_col2im(rng, monkeypatch, one_row_chunks, threads, kw,
                                                                   by_kernel_rows):
    from tinygrad_cnn import _parallel
    monkeypatch.setattr(_parallel, "THREADS", threads)
    monkeypatch.setattr(kernels.conv, "_kernel_rows_pay", lambda *_: by_kernel_rows)
    x, w = rng.standard_normal((3, 2, 21, 7)), rng.standard_normal((4, 2, 3, 3))
    geom = _geometry("conv2d", x.shape, (3, 3), kw.get("stride", 1), kw.get("padding", 0), kw.get("dilation", 1))
    g = rng.standard_normal((3, 4, *geom[-1]))
    cols = np.matmul(w.reshape(4, -1).T, g.reshape(3, 4, -1))  # (N, C*KH*KW, L), the standard layout
    expect = kernels.fold(cols, x.shape, *geom)
    for got in (kernels.conv2d_input_grad(g, w, x.shape, *geom[:4]),
                kernels.conv._col2im_input_grad(g, w.reshape(4, -1), x.shape, *geom[:4])):
        np.testing.assert_allclose(got, expect, rtol=1e-12, atol=1e-12)
        assert kernels.memory_order(got) == CHWN
    out = kernels.conv2d(x, w.reshape(4, -1), *geom)
    ref = naive.conv2d(x, w, stride=geom[1], padding=(geom[2][0][0], geom[2][1][0]), dilation=geom[3])
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-12)
    wg = kernels.conv2d_weight_grad(x, g, *geom[:4], ones_row=True)
    np.testing.assert_allclose(wg[:, :-1], np.einsum("nol,nkl->ok", g.reshape(3, 4, -1), kernels.unfold(x, *geom)),
                               rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(wg[:, -1], g.sum(axis=(0, 2, 3)), rtol=1e-12)


def test_split_deals_items_to_threads_in_a_fixed_order(monkeypatch):
    from tinygrad_cnn import _parallel
    monkeypatch.setattr(_parallel, "THREADS", 3)
    names = []

    def work(items):
        names.append(threading.current_thread().name)
        return list(items)

    parts = _parallel.split(work, list(range(8)))
    if _parallel._set_local is None:  # no thread-local OpenBLAS setting: everything on this thread
        assert parts == [list(range(8))]
        return
    assert parts == [[0, 3, 6], [1, 4, 7], [2, 5]] and "MainThread" in names and len(set(names)) > 1
    assert _parallel.split(work, [1, 2], threads=1) == [[1, 2]]
    with pytest.raises(ZeroDivisionError):
        _parallel.split(lambda items: [1 / i for i in items], [1, 0, 2])


def test_products_in_pieces_give_the_same_conv_and_weight_gradient(rng, monkeypatch):
    assert kernels.conv._longest_divisor(3192, 300) == 266
    assert kernels.conv._longest_divisor(3191, 3000) is None  # prime
    assert kernels.conv._product_pieces(3192, 20) is None  # small enough as one product
    monkeypatch.setattr(kernels.conv, "SMALL_PRODUCT", 20 * 300)
    assert kernels.conv._product_pieces(3192, 20) == 266
    x, w, g = rng.standard_normal((3, 1, 40, 30)), rng.standard_normal((2, 1, 3, 3)), rng.standard_normal((3, 2, 38, 28))
    geom = ((3, 3), (1, 1), ((0, 0), (0, 0)), (1, 1), (38, 28))
    out = kernels.conv2d(x, np.concatenate([w.reshape(2, -1), np.ones((2, 1))], axis=1), *geom)
    np.testing.assert_allclose(out, naive.conv2d(x, w, np.ones(2)), rtol=1e-12, atol=1e-12)
    wg = kernels.conv2d_weight_grad(x, g, *geom[:4], ones_row=True)
    expect = np.einsum("nol,nkl->ok", g.reshape(3, 2, -1), kernels.unfold(x, *geom))
    np.testing.assert_allclose(wg[:, :-1], expect, rtol=1e-12, atol=1e-12)


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs fork")
def test_split_works_in_a_forked_child(monkeypatch):
    import os
    import signal
    import time

    from tinygrad_cnn import _parallel
    monkeypatch.setattr(_parallel, "THREADS", 2)
    assert _parallel.split(list, [1, 2, 3, 4]) in ([[1, 3], [2, 4]], [[1, 2, 3, 4]])  # the pool exists now
    pid = os.fork()
    if pid == 0:  # child: a wrong result exits 1, a deadlock is killed below
        os._exit(0 if _parallel.split(list, [1, 2, 3, 4]) in ([[1, 3], [2, 4]], [[1, 2, 3, 4]]) else 1)
    for _ in range(200):  # up to 10 s
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.05)
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        pytest.fail("split deadlocked in a forked child")
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs fork")
def test_a_child_forked_inside_one_blas_thread_gets_the_setting_back():
    # a thread of the parent inside one_blas_thread when it forks (here the forking thread
    # itself): the child must not stay on one OpenBLAS thread for good
    import os

    from tinygrad_cnn import _parallel
    if _parallel._set_local is None:
        pytest.skip("numpy's OpenBLAS has no thread control")
    before = _parallel._set_local(2)
    try:
        with _parallel.one_blas_thread():
            pid = os.fork()
            if pid == 0:
                ok = _parallel._set_local(2) == 2 and _parallel._blas_inside == 0
                os._exit(0 if ok else 1)
        _, status = os.waitpid(pid, 0)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
        assert _parallel._set_local(2) == 2  # the parent's own block restored it too
    finally:
        _parallel._set_local(before)


def test_a_grown_pool_leaves_the_old_one_working(monkeypatch):
    # another thread may be handing work to the old pool while one grows it
    from tinygrad_cnn import _parallel
    monkeypatch.setattr(_parallel, "_pool", None)
    monkeypatch.setattr(_parallel, "_pool_size", 0)
    monkeypatch.setattr(_parallel, "THREADS", 2)
    old = _parallel._get_pool(1)
    monkeypatch.setattr(_parallel, "THREADS", 4)
    new = _parallel._get_pool(2)
    assert new is not old and new._max_workers == 3  # THREADS - 1 at once, not 2 then 3
    assert old.submit(lambda: 7).result() == 7 and _parallel._get_pool(3) is new


@pytest.mark.parametrize("layout", [(0, 1, 2, 3), CHWN])
def test_max_pool_and_its_gradient_in_pieces_match_the_whole(rng, monkeypatch, layout):
    x = kernels.in_order(rng.standard_normal((4, 5, 6, 6)), layout)
    geom = ((2, 2), (2, 2), ((0, 0), (0, 0)), (1, 1), (3, 3))
    whole, arg = kernels.max_pool(x, *geom)
    g = rng.standard_normal(whole.shape)
    grad = kernels.pool_scatter(g, arg, x.shape, *geom[:4])
    monkeypatch.setattr(kernels.pooling, "POOL_CHUNK_BYTES", x.nbytes // 4)  # pieces along N or C
    assert len(kernels.pooling._outer_chunks(x)) > 1
    pieces, arg2 = kernels.max_pool(x, *geom)
    np.testing.assert_array_equal(pieces, whole)
    np.testing.assert_array_equal(arg2, arg)
    np.testing.assert_array_equal(kernels.pool_scatter(g, arg2, x.shape, *geom[:4]), grad)
    assert kernels.memory_order(pieces) == layout


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("layout", ["chwn", "nchw"])
def test_relu_in_pieces_on_threads_matches_numpy_exactly(rng, monkeypatch, threads, layout):
    # ReLU's forward (max and mask) and backward go to the threads in pieces from THREAD_VALUES
    # on; pieces end at multiples of a row of zeros, and a last piece has a tail
    from tinygrad_cnn import _parallel
    from tinygrad_cnn.ops import elementwise
    monkeypatch.setattr(_parallel, "THREADS", threads)
    monkeypatch.setattr(elementwise, "THREAD_VALUES", 1 << 15)
    monkeypatch.setattr(elementwise, "_MASK_BLOCK", 1 << 14)  # backward's blocks too
    a = rng.standard_normal((3, 7, 61, 67)).astype(np.float32)  # 85,827 values: not a multiple of a row
    a[0, 0, 0, :3], a[2, 6, 60, -1] = [np.nan, -0.0, 0.0], np.nan
    x = chwn(a) if layout == "chwn" else a
    assert elementwise._pieces(x.size, elementwise._ZERO_ROW)[-1][1] == x.size
    out, mask = _max0(x, with_mask=True)
    np.testing.assert_array_equal(out, np.maximum(x, 0))
    np.testing.assert_array_equal(mask, np.maximum(x, 0) != 0)
    assert kernels.memory_order(out) == kernels.memory_order(mask) == kernels.memory_order(x)
    c = rng.standard_normal(x.shape).astype(np.float32)
    xt = Tensor._make(x).requires_grad_()
    (xt.relu() * Tensor(c)).sum().backward()
    np.testing.assert_array_equal(xt.grad.data, c * (np.maximum(x, 0) != 0))


@pytest.mark.parametrize("padding", [((0, 0), (0, 0)), ((2, 2), (2, 2)), ((1, 0), (0, 3))])
@pytest.mark.parametrize("batch_innermost", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_zero_padded_input_is_cast_batch_last_and_padded_in_one(rng, padding, batch_innermost, dtype):
    """conv2d's padded input: x as (C, H, W, N) of the product's dtype, zeros around it, with
    the padding gone from the geometry; x's own memory where nothing needs changing."""
    x = rng.standard_normal((3, 2, 5, 4))
    if batch_innermost:
        x = np.ascontiguousarray(x.transpose(1, 2, 3, 0)).transpose(3, 0, 1, 2)
    geom = ((3, 3), (1, 1), padding, (1, 1), (9, 9))
    xp, g = kernels.conv._zero_padded(x, dtype, geom)
    (t, b), (left, r) = padding
    expect = np.pad(x, ((0, 0), (0, 0), (t, b), (left, r))).transpose(1, 2, 3, 0).astype(dtype)
    np.testing.assert_array_equal(xp, expect)
    assert xp.dtype == dtype and xp.flags.c_contiguous and g[2] == ((0, 0), (0, 0)) and g[:2] == geom[:2]
    unchanged = batch_innermost and dtype == np.float64 and padding == ((0, 0), (0, 0))
    assert np.shares_memory(xp, x) == unchanged
