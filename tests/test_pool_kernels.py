"""max_pool's kernels against a loop over windows, in every layout, with ties and NaN."""
import itertools

import numpy as np
import pytest
from helpers import needs_torch, torch
from hypothesis import assume, given
from hypothesis import strategies as st

import tinygrad_cnn.functional as F
from tinygrad_cnn import Tensor, kernels

LAYOUTS = list(itertools.permutations(range(4)))  # memory orders, (1, 2, 3, 0) being conv2d's output


def reference(x, kernel, stride, padding, dilation, out_hw):
    """Max and argmax window by window as PyTorch's scan: offsets in row-major order, -inf
    padding; a value greater than the maximum so far, or a NaN, takes the max and the index
    (so the max is NaN if any value is, and the index that of the last NaN)."""
    xp = kernels.pad4(x, padding, kernels.lowest(x.dtype))
    out = np.empty(x.shape[:2] + out_hw, dtype=x.dtype)
    arg = np.empty(out.shape, dtype=np.int64)
    for n, c, oh, ow in np.ndindex(out.shape):
        best, at = -np.inf, 0
        for o, (i, j) in enumerate(np.ndindex(kernel)):
            v = xp[n, c, oh * stride[0] + i * dilation[0], ow * stride[1] + j * dilation[1]]
            if v > best or v != v:
                best, at = v, o
        out[n, c, oh, ow], arg[n, c, oh, ow] = best, at
    return out, arg


@st.composite
def pool_input(draw):
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = tuple((p, p) for p in (draw(st.integers(0, k // 2)) for k in kernel))
    shape = (draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 7)), draw(st.integers(1, 7)))
    out_hw = tuple(kernels.output_size(s, k, st_, p, p, d)
                   for s, k, st_, (p, _), d in zip(shape[2:], kernel, stride, padding, dilation))
    assume(min(out_hw) >= 1)
    dtype = draw(st.sampled_from([np.float32, np.float64, np.int16]))
    values = np.random.default_rng(draw(st.integers(0, 2**32 - 1))).integers(-3, 3, shape)  # many ties
    x = values.astype(dtype)
    if dtype != np.int16 and draw(st.booleans()):
        x[np.random.default_rng(len(x.flat)).random(shape) < 0.1] = np.nan
    x = kernels.in_order(x, draw(st.sampled_from(LAYOUTS)))
    return x, (kernel, stride, padding, dilation, out_hw)


@given(case=pool_input())
def test_max_pool_matches_the_window_loop_in_every_layout(case):
    x, geom = case
    out, arg = kernels.max_pool(x, *geom)
    want, want_arg = reference(x, *geom)
    np.testing.assert_array_equal(out, want)
    np.testing.assert_array_equal(arg, want_arg)
    assert out.dtype == x.dtype and kernels.memory_order(out) == kernels.memory_order(arg)
    np.testing.assert_array_equal(kernels.max_pool(x, *geom, with_arg=False)[0], want)


@pytest.mark.parametrize("layout", [(0, 1, 2, 3), (1, 2, 3, 0)])
def test_max_pool_stacked_in_pieces_matches_the_whole(rng, monkeypatch, layout):
    x = kernels.in_order(rng.integers(-2, 2, (6, 5, 8, 6)).astype(np.float32), layout)  # ties
    x[0, 1, 2, 3] = np.nan
    geom = ((3, 2), (2, 2), ((1, 1), (0, 0)), (1, 1), (4, 3))
    whole = kernels.max_pool(x, *geom)
    monkeypatch.setattr(kernels.pooling, "STACK_BYTES", 3 * whole[0].nbytes // 4)
    assert len(kernels.pooling._outer_chunks(whole[0], 6 * whole[0].nbytes, kernels.pooling.STACK_BYTES)) > 1
    pieces = kernels.max_pool(x, *geom)
    for a, b in zip(pieces, whole):
        np.testing.assert_array_equal(a, b)
        assert kernels.memory_order(a) == layout


@pytest.mark.parametrize("threads", [2, 3])
@pytest.mark.parametrize("layout", [(0, 1, 2, 3), (1, 2, 3, 0)])
@pytest.mark.parametrize("geom", [((2, 2), (2, 2), ((0, 0), (0, 0)), (1, 1), (4, 3)),  # disjoint windows
                                  ((3, 2), (2, 1), ((1, 1), (0, 0)), (1, 1), (4, 5))])  # overlapping
def test_pooling_in_pieces_on_threads_matches_one_thread(rng, monkeypatch, threads, layout, geom):
    from tinygrad_cnn import _parallel
    x = kernels.in_order(rng.integers(-2, 2, (6, 5, 8, 6)).astype(np.float32), layout)  # ties
    x[0, 1, 2, 3] = np.nan
    g = rng.standard_normal((6, 5, *geom[-1])).astype(np.float32)
    one = kernels.max_pool(x, *geom), kernels.max_pool(x, *geom, with_arg=False)[0]
    scattered = kernels.pool_scatter(g, one[0][1], x.shape, *geom[:4])
    monkeypatch.setattr(_parallel, "THREADS", threads)
    monkeypatch.setattr(kernels.pooling, "POOL_THREAD_BYTES", 0)
    monkeypatch.setattr(kernels.pooling, "STACK_BYTES", 64)  # pieces of a channel or an image each
    monkeypatch.setattr(kernels.pooling, "POOL_CHUNK_BYTES", 256)
    (out, arg), alone = kernels.max_pool(x, *geom), kernels.max_pool(x, *geom, with_arg=False)[0]
    np.testing.assert_array_equal(out, one[0][0])
    np.testing.assert_array_equal(arg, one[0][1])
    np.testing.assert_array_equal(alone, one[1])
    np.testing.assert_array_equal(kernels.pool_scatter(g, arg, x.shape, *geom[:4]), scattered)
    assert kernels.memory_order(out) == kernels.memory_order(arg) == layout


@needs_torch
@pytest.mark.parametrize("shape", [(100, 30, 24, 24), (1, 30, 24, 24), (7, 4, 9, 11)])
def test_max_pool2d_on_conv_layout_matches_pytorch_with_ties_and_nan(rng, shape):
    x = kernels.in_order(rng.integers(-3, 3, shape).astype(np.float32), (1, 2, 3, 0))
    out, idx = F.max_pool2d(Tensor(x, requires_grad=True), 2, return_indices=True)
    t_out, t_idx = torch.nn.functional.max_pool2d(torch.tensor(x), 2, return_indices=True)
    np.testing.assert_array_equal(out.data, t_out.numpy())
    np.testing.assert_array_equal(idx.data, t_idx.numpy())  # the first maximum, as PyTorch's
    x[0, 0, :2, :2] = [[np.nan, 1], [2, np.nan]]
    x[-1, -1, :2, :2] = [[1, np.nan], [5, 2]]
    out, idx = F.max_pool2d(Tensor(x), 2, return_indices=True)
    t_out, t_idx = torch.nn.functional.max_pool2d(torch.tensor(x), 2, return_indices=True)
    np.testing.assert_array_equal(out.data, t_out.numpy())
    np.testing.assert_array_equal(idx.data, t_idx.numpy())  # the last NaN of a window, as PyTorch's


@needs_torch
@pytest.mark.parametrize("layout", [(0, 1, 2, 3), (1, 2, 3, 0)])
@pytest.mark.parametrize("geom", [dict(kernel_size=2), dict(kernel_size=3, stride=1, padding=1)])
def test_max_pool2d_sends_the_gradient_to_a_windows_nan_as_pytorch(rng, layout, geom):
    a = rng.integers(-3, 3, (2, 3, 6, 6)).astype(np.float32)  # ties
    a[rng.random(a.shape) < 0.1] = np.nan
    x = Tensor._make(kernels.in_order(a, layout)).requires_grad_()
    out = F.max_pool2d(x, **geom)
    g = rng.standard_normal(out.shape).astype(np.float32)
    out.backward(Tensor(g))
    tx = torch.tensor(a, requires_grad=True)
    torch.nn.functional.max_pool2d(tx, **geom).backward(torch.tensor(g))
    np.testing.assert_allclose(x.grad.data, tx.grad.numpy(), rtol=1e-6, atol=1e-6)  # overlaps add in another order


@needs_torch
@pytest.mark.parametrize("layout", [(0, 1, 2, 3), (1, 2, 3, 0)])
@pytest.mark.parametrize("geom", [dict(kernel_size=3, stride=2, padding=1), dict(kernel_size=3, stride=1, padding=1),
                                  dict(kernel_size=3, stride=2, padding=1, dilation=2),
                                  dict(kernel_size=2, stride=2, padding=1, ceil_mode=True)])
def test_windows_of_minus_inf_at_the_padding_point_inside_as_pytorch(rng, layout, geom):
    # nothing in such a window is above the padding value: the index (and the gradient)
    # goes to the window's first position inside the input, not to a padding position
    a = rng.standard_normal((2, 2, 7, 6)).astype(np.float32)
    a[0], a[1, :, :3] = -np.inf, -np.inf
    x = Tensor._make(kernels.in_order(a, layout)).requires_grad_()
    out, idx = F.max_pool2d(x, return_indices=True, **geom)
    g = rng.standard_normal(out.shape).astype(np.float32)
    out.backward(Tensor(g))
    tx = torch.tensor(a, requires_grad=True)
    tout, tidx = torch.nn.functional.max_pool2d(tx, return_indices=True, **geom)
    tout.backward(torch.tensor(g))
    np.testing.assert_array_equal(out.data, tout.detach().numpy())
    np.testing.assert_array_equal(idx.data, tidx.numpy())
    np.testing.assert_allclose(x.grad.data, tx.grad.numpy(), rtol=1e-6, atol=1e-6)  # overlapping windows add up
