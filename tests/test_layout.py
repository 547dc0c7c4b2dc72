"""Memory layout: conv2d's batch-inner columns and output give the same values and gradients
as contiguous arrays, and ReLU, pooling and their gradients keep the layout."""
import numpy as np
import pytest
from helpers import arrays, leaf
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_cnn.functional as F
from tinygrad_cnn import Tensor, gradcheck, gradgradcheck, kernels, ops
from tinygrad_cnn.ops import _batch_inner, _chunk, _max0

HWNC = (2, 3, 0, 1)  # memory order of conv2d's output: (OH, OW, N, C) outermost to innermost


def batch_inner(a):
    """The same (N, K, L) values laid out as a (K, L, N) array."""
    return np.ascontiguousarray(a.transpose(1, 2, 0)).transpose(2, 0, 1)


def hwnc(a):
    """The same (N, C, H, W) values laid out as an (H, W, N, C) array."""
    return np.ascontiguousarray(a.transpose(2, 3, 0, 1)).transpose(2, 3, 0, 1)


@given(a=st.integers(1, 4).flatmap(lambda m: arrays((m, 3))), b=arrays((2, 3, 5)))
def test_matmul_of_a_batch_inner_stack_matches_numpy(a, b):
    bi = batch_inner(b)
    assert _batch_inner(bi) and not _batch_inner(b)
    out = Tensor(a) @ Tensor(bi)
    np.testing.assert_allclose(out.data, np.matmul(a, b), rtol=1e-12, atol=1e-12)
    assert kernels.memory_order(out.data)[-1] != 0 or out.shape[1] == 1  # the batch stays inside
    ta, tb = leaf(a), Tensor(bi, requires_grad=True)
    assert gradcheck(lambda x, y: x @ y, ta, tb)
    assert gradgradcheck(lambda x, y: (x @ y).tanh(), ta, tb)


def test_chunk_divides_the_positions():
    assert _chunk(576, 100) == 12 and _chunk(576, 1) == 576 and _chunk(7, 1000) == 1 and _chunk(6, 5) == 6
    assert _chunk(6, 100, target=350) == 3


@pytest.mark.parametrize("chunk", [1, 2, 3, 6])
def test_matmul_gradients_do_not_depend_on_the_layout(rng, monkeypatch, chunk):
    monkeypatch.setattr(ops, "_chunk", lambda length, n: chunk)
    a, b, g = rng.standard_normal((4, 3)), rng.standard_normal((5, 3, 6)), rng.standard_normal((5, 4, 6))
    grads = []
    for bb, gg in ((b, g), (batch_inner(b), hwnc(g[..., None])[..., 0])):
        ta, tb = leaf(a), Tensor(bb, requires_grad=True)
        (ta @ tb).backward(gg)
        grads.append((ta.grad.data, tb.grad.data))
    for u, v in zip(*grads):
        np.testing.assert_allclose(u, v, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("ones_row", [False, True])
def test_unfold_batch_inner_equals_the_standard_layout(rng, ones_row):
    x = rng.standard_normal((3, 2, 7, 6))
    geom = ((3, 2), (2, 1), ((1, 1), (0, 0)), (1, 2), (4, 4))
    std = kernels.unfold(x, *geom, ones_row=ones_row)
    inner = kernels.unfold(x, *geom, ones_row=ones_row, batch_inner=True)
    np.testing.assert_array_equal(inner, std)
    assert _batch_inner(inner)
    g = rng.standard_normal(std[:, :std.shape[1] - ones_row].shape)
    folded = kernels.fold(batch_inner(g), x.shape, *geom)
    np.testing.assert_allclose(folded, kernels.fold(g, x.shape, *geom), rtol=1e-12, atol=1e-12)
    assert kernels.memory_order(folded)[-1] == 0  # the input gradient keeps the batch inner too


def test_conv2d_output_is_batch_inner_with_the_same_values(rng):
    x, w, b = rng.standard_normal((3, 2, 6, 5)), rng.standard_normal((4, 2, 3, 3)), rng.standard_normal(4)
    out = F.conv2d(Tensor(x), Tensor(w), Tensor(b), padding=1)
    assert kernels.memory_order(out.data) == HWNC
    cols = kernels.unfold(x, (3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1), (6, 5))
    expect = np.matmul(w.reshape(4, -1), cols).reshape(3, 4, 6, 5) + b[:, None, None]
    np.testing.assert_allclose(out.data, expect, rtol=1e-12, atol=1e-12)


@given(x=arrays((3, 2, 4, 6), distinct=True), k=st.sampled_from([2, 3]), pad=st.integers(0, 1))
def test_relu_and_max_pool_keep_the_layout_and_their_gradients(x, k, pad):
    outs, grads = [], []
    for data in (x, hwnc(x)):
        t = Tensor(data, requires_grad=True)
        y = F.max_pool2d(t.relu(), k, stride=2, padding=pad)
        if data is not x:
            assert kernels.memory_order(y.data) == HWNC
        g = np.arange(y.numel(), dtype=np.float64).reshape(y.shape)
        y.backward(g)
        outs.append(y.data)
        grads.append(t.grad.data)
    np.testing.assert_array_equal(*outs)
    np.testing.assert_array_equal(*grads)
    unrecorded = F.max_pool2d(Tensor(hwnc(x)).relu(), k, stride=2, padding=pad)  # the path without argmax
    np.testing.assert_array_equal(unrecorded.data, outs[0])


def test_max0_on_permuted_and_strided_arrays(rng):
    a = rng.standard_normal((40, 30, 8, 8)).astype(np.float32)
    a[0, 0, 0, :2] = [np.nan, -0.0]
    for v in (hwnc(a), a[:, :, ::2], a.transpose(1, 0, 2, 3)):
        out = _max0(v)
        np.testing.assert_array_equal(out, np.maximum(v, 0))
    assert kernels.memory_order(_max0(hwnc(a))) == HWNC
