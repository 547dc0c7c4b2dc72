"""CNN ops: forward against nested-loop references, gradients by gradcheck, errors."""
import sys
from pathlib import Path

import naive
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import tinygrad_cnn as tc

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import lecture_baseline  # noqa: E402  (the lecture's own loop-based im2col, as a reference)
from helpers import arrays, away_from, leaf  # noqa: E402

import tinygrad_cnn.functional as F  # noqa: E402
from tinygrad_cnn import Tensor, gradcheck, gradgradcheck  # noqa: E402


@st.composite
def conv_case(draw):
    groups = draw(st.integers(1, 2))
    n = draw(st.integers(1, 2))
    c = groups * draw(st.integers(1, 2))
    oc = groups * draw(st.integers(1, 2))
    k = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    h = draw(st.integers(1, 6))
    w = draw(st.integers(1, 6))
    assume(all(d * (kk - 1) + 1 <= s + 2 * p for d, kk, s, p in zip(dilation, k, (h, w), padding)))
    x = draw(arrays((n, c, h, w)))
    wt = draw(arrays((oc, c // groups, *k)))
    b = draw(st.none() | arrays((oc,)))
    return x, wt, b, dict(stride=stride, padding=padding, dilation=dilation, groups=groups)


@given(case=conv_case())
def test_conv2d_forward_matches_loops_and_gradients(case):
    x, w, b, kw = case
    out = F.conv2d(Tensor(x), Tensor(w), None if b is None else Tensor(b), **kw)
    np.testing.assert_allclose(out.data, naive.conv2d(x, w, b, **kw), rtol=1e-10, atol=1e-12)
    inputs = [leaf(x), leaf(w)] + ([] if b is None else [leaf(b)])
    assert gradcheck(lambda *t: F.conv2d(t[0], t[1], t[2] if len(t) > 2 else None, **kw), *inputs)


def test_conv2d_gradgradcheck(rng):
    x, w, b = rng.standard_normal((2, 2, 5, 4)), rng.standard_normal((3, 2, 3, 2)), rng.standard_normal(3)
    assert gradgradcheck(lambda x, w, b: F.conv2d(x, w, b, stride=(2, 1), padding=1), leaf(x), leaf(w), leaf(b))
    assert gradgradcheck(lambda x, w: F.conv2d(x, w, dilation=2, padding=2).tanh(), leaf(x), leaf(w))


def test_conv2d_same_and_valid_padding(rng):
    x, w = rng.standard_normal((1, 2, 5, 6)), rng.standard_normal((3, 2, 4, 3))
    assert F.conv2d(Tensor(x), Tensor(w), padding="same").shape == (1, 3, 5, 6)
    assert F.conv2d(Tensor(x), Tensor(w), padding="valid").shape == (1, 3, 2, 4)
    assert gradcheck(lambda x, w: F.conv2d(x, w, padding="same", dilation=(1, 2)), leaf(x), leaf(w))


def test_conv2d_computes_no_input_gradient_when_images_do_not_require_grad(rng, monkeypatch):
    x = Tensor(rng.standard_normal((2, 1, 6, 6)).astype(np.float32))
    w = Tensor(rng.standard_normal((3, 1, 3, 3)).astype(np.float32), requires_grad=True)
    calls = []
    orig = tc.kernels.conv2d_input_grad
    monkeypatch.setattr(tc.kernels, "conv2d_input_grad", lambda *a, **k: calls.append(1) or orig(*a, **k))
    F.conv2d(x, w).sum().backward()
    assert calls == [] and w.grad is not None and x.grad is None
    x.requires_grad_()
    F.conv2d(x, w).sum().backward()
    assert calls == [1] and x.grad is not None


def test_conv2d_keeps_float32(rng):
    x = Tensor(rng.standard_normal((2, 1, 6, 6)), dtype=np.float32)
    w = Tensor(rng.standard_normal((3, 1, 3, 3)), dtype=np.float32, requires_grad=True)
    b = Tensor(np.zeros(3, dtype=np.float32), requires_grad=True)
    out = F.conv2d(x, w, b)
    out.sum().backward()
    assert out.dtype == w.grad.dtype == b.grad.dtype == np.float32


@st.composite
def pool_case(draw, dilation=True):
    k = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = draw(st.none() | st.tuples(st.integers(1, 3), st.integers(1, 3)))
    padding = (draw(st.integers(0, k[0] // 2)), draw(st.integers(0, k[1] // 2)))
    dil = (draw(st.integers(1, 2)), draw(st.integers(1, 2))) if dilation else (1, 1)
    padding = tuple(min(p, (d * (kk - 1) + 1) // 2) for p, d, kk in zip(padding, dil, k))
    h, w = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    assume(all(d * (kk - 1) + 1 <= s + 2 * p for d, kk, s, p in zip(dil, k, (h, w), padding)))
    x = draw(arrays((draw(st.integers(1, 2)), draw(st.integers(1, 2)), h, w), distinct=True))
    return x, dict(kernel_size=k, stride=stride, padding=padding, dilation=dil, ceil_mode=draw(st.booleans()))


@given(case=pool_case())
def test_max_pool2d_forward_matches_loops_and_gradients(case):
    x, kw = case
    stride = kw["stride"] or kw["kernel_size"]
    ref = naive.max_pool2d(x, kw["kernel_size"], stride, kw["padding"], kw["dilation"], kw["ceil_mode"])
    assume(np.isfinite(ref).all())  # a dilated window can fall wholly in the padding: -inf, as in PyTorch
    np.testing.assert_array_equal(F.max_pool2d(Tensor(x), **kw).data, ref)
    assert gradcheck(lambda t: F.max_pool2d(t, **kw), leaf(x))
    assert gradgradcheck(lambda t: F.max_pool2d(t, **kw) ** 2, leaf(x))


@given(case=pool_case())
def test_max_pool2d_without_grad_matches_with_grad(case):
    # no_grad takes another path (no argmax; contiguous passes where the windows tile the input)
    x, kw = case
    x = np.where(np.random.default_rng(0).random(x.shape) < 0.2, 0.0, x)  # ties
    with tc.no_grad():
        fast = F.max_pool2d(Tensor(x), **kw).data
    np.testing.assert_array_equal(fast, F.max_pool2d(leaf(x), **kw).data)
    assert fast.dtype == x.dtype and fast.flags.c_contiguous


def test_max_pool2d_without_grad_on_a_transposed_view_and_nan():
    x = np.arange(2 * 3 * 6 * 4, dtype=np.float32).reshape(2, 3, 6, 4)
    x[0, 1, 2, 3] = np.nan
    view = x.transpose(0, 1, 3, 2)  # not contiguous
    with tc.no_grad():
        got = F.max_pool2d(Tensor._make(view), 2).data
    np.testing.assert_array_equal(got, naive.max_pool2d(view, (2, 2), (2, 2), (0, 0), (1, 1), False))
    assert np.isnan(got[0, 1, 1, 1]) and np.isnan(got).sum() == 1


@given(case=pool_case(dilation=False), include=st.booleans())
def test_avg_pool2d_forward_matches_loops_and_gradients(case, include):
    x, kw = case
    kw.pop("dilation")
    stride = kw["stride"] or kw["kernel_size"]
    ref = naive.avg_pool2d(x, kw["kernel_size"], stride, kw["padding"], kw["ceil_mode"], include)
    out = F.avg_pool2d(Tensor(x), count_include_pad=include, **kw)
    np.testing.assert_allclose(out.data, ref, rtol=1e-12)
    assert gradcheck(lambda t: F.avg_pool2d(t, count_include_pad=include, **kw), leaf(x))
    assert gradgradcheck(lambda t: F.avg_pool2d(t, count_include_pad=include, **kw) ** 2, leaf(x))


def test_avg_pool2d_keeps_the_layout_and_float32_and_refuses_integers(rng):
    x = rng.standard_normal((3, 2, 6, 6)).astype(np.float32)
    view = Tensor._make(np.ascontiguousarray(x.transpose(1, 2, 3, 0)).transpose(3, 0, 1, 2)).requires_grad_()
    out = F.avg_pool2d(view, 2)
    assert out.dtype == np.float32 and tc.kernels.memory_order(out.data) == (1, 2, 3, 0)
    np.testing.assert_allclose(out.data, x.reshape(3, 2, 3, 2, 3, 2).mean(axis=(3, 5)), rtol=1e-6)
    out.sum().backward()
    np.testing.assert_array_equal(view.grad.data, np.full(x.shape, 0.25, np.float32))
    with pytest.raises(TypeError, match="floating"):
        F.avg_pool2d(Tensor(np.arange(16).reshape(1, 1, 4, 4)), 2)


def test_max_pool_gradient_goes_to_first_maximum_and_overlaps_add():
    x = leaf([[[[1.0, 5.0, 5.0], [0.0, 2.0, 1.0]]]])
    F.max_pool2d(x, kernel_size=2, stride=1).sum().backward()
    np.testing.assert_array_equal(x.grad.data, [[[[0, 2, 0], [0, 0, 0]]]])  # tie: the first 5 wins
    y = leaf([[[[3.0, 3.0], [3.0, 3.0]]]])
    F.max_pool2d(y, 2).sum().backward()
    np.testing.assert_array_equal(y.grad.data, [[[[1, 0], [0, 0]]]])
    z = leaf([[[[1.0, 9.0, 2.0], [0.0, 3.0, 4.0]]]])
    F.max_pool2d(z, (2, 2), stride=1).sum().backward()
    np.testing.assert_array_equal(z.grad.data, [[[[0, 2, 0], [0, 0, 0]]]])


def test_max_pool_pads_with_minus_infinity():
    x = Tensor(-np.ones((1, 1, 2, 2)))
    np.testing.assert_array_equal(F.max_pool2d(x, 2, stride=1, padding=1).data, -np.ones((1, 1, 3, 3)))


def test_max_pool_return_indices():
    x = Tensor(np.array([[[[1.0, 2.0], [4.0, 3.0]]]]))
    out, idx = F.max_pool2d(x, 2, return_indices=True)
    assert out.item() == 4.0 and idx.item() == 2


def test_lecture_im2col_example_shapes(rng):
    assert tc.im2col(rng.random((1, 3, 7, 7)), 5, 5, stride=1, pad=0).shape == (9, 75)
    assert tc.im2col(rng.random((10, 3, 7, 7)), 5, 5, stride=1, pad=0).shape == (90, 75)


@pytest.mark.parametrize("stride,pad", [(1, 0), (2, 1), (3, 2)])
def test_im2col_and_col2im_match_the_lecture_layout(rng, stride, pad):
    x = rng.random((2, 3, 7, 6)).astype(np.float32)
    col = tc.im2col(x, 3, 2, stride=stride, pad=pad)
    np.testing.assert_array_equal(col, lecture_baseline.im2col(x, 3, 2, stride, pad))  # the slides' loop version
    assert col.dtype == np.float32
    # col2im is im2col's adjoint: <im2col(x), c> == <x, col2im(c)>
    c = rng.random(col.shape).astype(np.float32)
    back = tc.col2im(c, x.shape, 3, 2, stride=stride, pad=pad)
    assert back.shape == x.shape and back.dtype == np.float32
    np.testing.assert_allclose((col * c).sum(), (x * back).sum(), rtol=1e-5)


def test_unfold_fold_are_differentiable(rng):
    x = rng.standard_normal((1, 2, 4, 4))
    assert F.unfold(Tensor(x), 3, padding=1, stride=2).shape == (1, 18, 4)
    assert gradgradcheck(lambda t: F.unfold(t, 3, padding=1, stride=2) ** 2, leaf(x))
    cols = rng.standard_normal((1, 18, 4))
    assert gradgradcheck(lambda t: F.fold(t, (4, 4), 3, padding=1, stride=2) ** 2, leaf(cols))
    with pytest.raises(ValueError, match="blocks"):
        F.fold(Tensor(cols), (5, 5), 3, padding=1, stride=2)


@given(a=arrays((3, 5), -5, 5))
def test_softmax_and_log_softmax(a):
    for dim in (0, 1, -1):
        s = F.softmax(Tensor(a), dim).data
        np.testing.assert_allclose(s, np.exp(a) / np.exp(a).sum(dim, keepdims=True), rtol=1e-12)
        np.testing.assert_allclose(F.log_softmax(Tensor(a), dim).data, np.log(s), rtol=1e-10, atol=1e-12)
        assert gradgradcheck(lambda t: F.softmax(t, dim), leaf(a))
        assert gradgradcheck(lambda t: F.log_softmax(t, dim), leaf(a))


def test_softmax_is_finite_for_large_logits():
    x = Tensor([[1000.0, -1000.0, 0.0]])
    assert np.isfinite(F.softmax(x, 1).data).all() and np.isfinite(F.log_softmax(x, 1).data).all()


@given(a=arrays((4, 3)), labels=st.lists(st.integers(0, 2), min_size=4, max_size=4),
       reduction=st.sampled_from(["mean", "sum", "none"]), smoothing=st.sampled_from([0.0, 0.1]),
       weighted=st.booleans())
def test_cross_entropy_gradients(a, labels, reduction, smoothing, weighted):
    t = np.array(labels)
    w = np.array([0.5, 1.0, 2.0]) if weighted else None
    fn = lambda x: F.cross_entropy(x, t, weight=w, reduction=reduction, label_smoothing=smoothing)  # noqa: E731
    assert gradcheck(fn, leaf(a))
    assert gradgradcheck(fn, leaf(a))


def test_cross_entropy_values_and_one_hot_targets(rng):
    x = rng.standard_normal((4, 3))
    t = np.array([0, 2, 1, 2])
    logp = x - np.log(np.exp(x).sum(1, keepdims=True))
    expect = -logp[np.arange(4), t].mean()
    assert F.cross_entropy(Tensor(x), t).item() == pytest.approx(expect)
    assert F.cross_entropy(Tensor(x), Tensor(t)).item() == pytest.approx(expect)
    one_hot = np.eye(3)[t]
    assert F.cross_entropy(Tensor(x), one_hot).item() == pytest.approx(expect)
    assert F.nll_loss(F.log_softmax(Tensor(x), 1), t).item() == pytest.approx(expect)
    assert gradcheck(lambda z: F.cross_entropy(z, one_hot, label_smoothing=0.1), leaf(x))


def test_cross_entropy_is_finite_for_logits_of_1000():
    x = Tensor([[1000.0, -1000.0], [-1000.0, 1000.0]], requires_grad=True)
    loss = F.cross_entropy(x, np.array([1, 1]))
    loss.backward()
    assert loss.item() == pytest.approx(1000.0) and np.isfinite(x.grad.data).all()


def test_linear_dropout_flatten_leaky_relu(rng):
    x, w, b = rng.standard_normal((3, 4)), rng.standard_normal((2, 4)), rng.standard_normal(2)
    np.testing.assert_allclose(F.linear(Tensor(x), Tensor(w), Tensor(b)).data, x @ w.T + b)
    assert gradgradcheck(lambda x, w, b: F.linear(x, w, b), leaf(x), leaf(w), leaf(b))
    assert gradcheck(lambda t: F.leaky_relu(t, 0.2), leaf(away_from(x)))
    assert F.flatten(Tensor(np.zeros((2, 3, 4))), 1).shape == (2, 12)
    tc.manual_seed(0)
    d = F.dropout(Tensor(np.ones((1000,), dtype=np.float32)), p=0.3)
    np.testing.assert_allclose(d.data[d.data != 0], 1 / 0.7, rtol=1e-6)
    assert abs((d.data == 0).mean() - 0.3) < 0.05
    assert d.dtype == np.float32
    same = Tensor(np.ones(5))
    assert F.dropout(same, 0.5, training=False) is same



@pytest.mark.parametrize("p", [0.1, 0.25, 0.5, 0.9])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dropout_keeps_each_value_with_probability_one_minus_p(p, dtype):
    """Dropout's mask (32-bit uniforms from the generator's raw output, against p * 2**32):
    the share kept is 1 - p within 5 standard deviations, kept values are scaled by
    1 / (1 - p), the two halves of each raw draw are not tied, and a conv's batch-innermost
    layout gets a mask of the same law, in its layout."""
    tc.manual_seed(1)
    n = 400_000
    d = F.dropout(Tensor(np.ones(n, dtype=dtype)), p=p).data
    kept = d != 0
    assert abs(kept.mean() - (1 - p)) < 5 * np.sqrt(p * (1 - p) / n)
    np.testing.assert_allclose(d[kept], 1 / (1 - p), rtol=1e-6)
    both = (kept[0::2] & kept[1::2]).mean()  # values drawn from one 64-bit output
    assert abs(both - (1 - p) ** 2) < 5 * np.sqrt((1 - p) ** 2 * (1 - (1 - p) ** 2) / (n // 2))
    x = tc.kernels.empty_as((100, 8, 10, 10), dtype, (1, 2, 3, 0))
    x[...] = 1
    y = F.dropout(Tensor(x), p=p).data
    assert tc.kernels.memory_order(y) == (1, 2, 3, 0) and y.dtype == dtype
    assert abs((y != 0).mean() - (1 - p)) < 5 * np.sqrt(p * (1 - p) / y.size)

ERRORS = [
    (lambda: F.conv2d(Tensor(np.ones((1, 3, 5, 5))), Tensor(np.ones((2, 2, 3, 3)))), r"3 channels.*\(2, 2, 3, 3\)"),
    (lambda: F.conv2d(Tensor(np.ones((1, 4, 5, 5))), Tensor(np.ones((3, 2, 3, 3))), groups=2), "groups=2"),
    (lambda: F.conv2d(Tensor(np.ones((1, 1, 2, 2))), Tensor(np.ones((1, 1, 3, 3)))), "larger than the padded input"),
    (lambda: F.conv2d(Tensor(np.ones((1, 1, 5, 5))), Tensor(np.ones((1, 1, 3, 3))), padding=-1), "non-negative"),
    (lambda: F.conv2d(Tensor(np.ones((1, 1, 5, 5))), Tensor(np.ones((1, 1, 3, 3))), stride=0), "positive"),
    (lambda: F.conv2d(Tensor(np.ones((5, 5))), Tensor(np.ones((1, 1, 3, 3)))), r"4-D.*\(5, 5\)"),
    (lambda: F.conv2d(Tensor(np.ones((1, 1, 5, 5))), Tensor(np.ones((1, 1, 3, 3))), stride=2, padding="same"),
     "same"),
    (lambda: F.max_pool2d(Tensor(np.ones((1, 5))), 2), "4-D"),
    (lambda: F.max_pool2d(Tensor(np.ones((1, 1, 5, 5))), 2, padding=2), "at most half"),
    (lambda: F.max_pool2d(Tensor(np.ones((1, 1, 1, 5))), 2), "larger than the padded input"),
    (lambda: F.cross_entropy(Tensor(np.ones((2, 3))), np.array([0, 3])), r"labels \[3\] are out of range"),
    (lambda: F.cross_entropy(Tensor(np.ones((2, 3))), np.array([0, 1, 2])), "does not match"),
    (lambda: F.cross_entropy(Tensor(np.ones((2, 3))), np.ones((2, 2))), "must match input"),
    (lambda: tc.im2col(np.ones((3, 7, 7)), 5, 5), "4-D"),
    (lambda: tc.col2im(np.ones((9, 70)), (1, 3, 7, 7), 5, 5), "expected"),
]


@pytest.mark.parametrize("call,message", ERRORS)
def test_bad_input_gets_a_clear_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


@given(n=st.integers(1, 4), k=st.integers(1, 5), out=st.integers(1, 4), bias=st.booleans(),
       fortran=st.booleans(), seed=st.integers(0, 2**16))
def test_linear_is_one_op_with_exact_gradients_in_every_layout(n, k, out, bias, fortran, seed):
    # F.linear on a 2-D input is one op (Linear): its backward without create_graph is numpy
    # products (batch 1: an outer product), with create_graph Tensor ops; both against
    # finite differences, and the input's gradient laid out as the input is
    rng = np.random.default_rng(seed)
    x, w, b = rng.standard_normal((n, k)), rng.standard_normal((out, k)), rng.standard_normal(out)
    x = np.asfortranarray(x) if fortran else x
    args = (leaf(x), leaf(w)) + ((leaf(b),) if bias else ())
    y = F.linear(*args)
    assert type(y._ctx).__name__ == "Linear"
    np.testing.assert_allclose(y.data, x @ w.T + (b if bias else 0), rtol=1e-12, atol=1e-12)
    assert y.data.flags.c_contiguous  # row-major as in PyTorch, whatever x's layout: views stay views
    with tc.no_grad():
        flat = y.view(-1)
        y.mul_(2)
    np.testing.assert_array_equal(flat.data, y.data.reshape(-1))
    assert gradcheck(lambda *t: F.linear(*t), *args)
    assert gradgradcheck(lambda *t: F.linear(*t).tanh(), *args)
    node = F.linear(Tensor._make(x).requires_grad_(), Tensor(w))._ctx
    g = rng.standard_normal((n, out))
    with tc.no_grad():  # as backward runs it without create_graph
        gx = node.backward(Tensor(g))[0]
    np.testing.assert_allclose(gx.data, g @ w, rtol=1e-12, atol=1e-12)
    assert gx.data.flags.f_contiguous == x.flags.f_contiguous or min(n, k) == 1
