"""Every Tensor op's gradient against central differences (float64), over generated shapes."""
import numpy as np
import pytest
from helpers import arrays, away_from, leaf, small_shapes
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tinygrad_cnn import Tensor, cat, gradcheck, gradgradcheck, pad, stack, where


@st.composite
def broadcast_pair(draw, positive_b=False):
    shapes = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=3))
    a = draw(arrays(shapes.input_shapes[0]))
    b = draw(arrays(shapes.input_shapes[1], 0.5, 2.0) if positive_b else arrays(shapes.input_shapes[1]))
    return a, b


BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
    "pow": lambda a, b: a ** b,
}


@pytest.mark.parametrize("op", BINARY)
@given(pair=broadcast_pair(positive_b=True))
def test_binary_ops_with_broadcasting(op, pair):
    a, b = pair
    if op == "pow":
        a = np.abs(a) + 0.5  # a ** b needs a > 0 for d/db
    assert gradcheck(BINARY[op], leaf(a), leaf(b))
    assert gradgradcheck(BINARY[op], leaf(a), leaf(b))


@given(a=small_shapes.flatmap(arrays))
def test_reflected_scalar_forms(a):
    x = leaf(a)
    assert gradcheck(lambda x: 2.0 + x, x)
    assert gradcheck(lambda x: 2.0 - x, x)
    assert gradcheck(lambda x: 3.0 * x, x)
    assert gradcheck(lambda x: 1.0 / (x * x + 1.0), x)
    assert gradcheck(lambda x: 2.0 ** x, x)
    assert gradcheck(lambda x: -x, x)
    assert gradcheck(lambda x: (x * x + 1.0) ** 1.5, x)


UNARY = {
    "exp": (lambda x: x.exp(), None),
    "log": (lambda x: x.log(), "positive"),
    "sqrt": (lambda x: x.sqrt(), "positive"),
    "tanh": (lambda x: x.tanh(), None),
    "sigmoid": (lambda x: x.sigmoid(), None),
    "relu": (lambda x: x.relu(), "kink"),
    "abs": (lambda x: x.abs(), "kink"),
}


@pytest.mark.parametrize("op", UNARY)
@given(a=small_shapes.flatmap(arrays))
def test_unary_ops(op, a):
    fn, domain = UNARY[op]
    if domain == "positive":
        a = np.abs(a) + 0.1
    elif domain == "kink":
        a = away_from(a, (0.0,))
    assert gradcheck(fn, leaf(a))
    assert gradgradcheck(fn, leaf(a))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_on_large_arrays_keeps_nan_and_zeroes_minus_inf(dtype):
    # large contiguous arrays take a faster path (rows against a zero row): same values as np.maximum
    x = np.random.default_rng(0).standard_normal(100_003).astype(dtype)
    x[::7], x[::11], x[::13] = np.nan, -np.inf, np.inf
    t = Tensor(x, requires_grad=True)
    y = t.relu()
    np.testing.assert_array_equal(y.data, np.maximum(x, 0))
    assert y.dtype == dtype
    y.backward(np.ones_like(x))
    np.testing.assert_array_equal(t.grad.data, ~(np.maximum(x, 0) <= 0))  # NaN passes, as in PyTorch
    strided = Tensor(np.stack([x, x], axis=1)[:, 0])
    np.testing.assert_array_equal(strided.relu().data, np.maximum(x, 0))


def test_sigmoid_is_finite_for_large_inputs():
    x = Tensor([-1000.0, 0.0, 1000.0])
    np.testing.assert_allclose(x.sigmoid().data, [0.0, 0.5, 1.0])


@st.composite
def array_and_dims(draw, distinct=False):
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4))
    a = draw(arrays(shape, distinct=distinct))
    dim = draw(st.none() | st.integers(-len(shape), len(shape) - 1)
               | st.lists(st.integers(0, len(shape) - 1), min_size=1, max_size=len(shape), unique=True).map(tuple))
    return a, dim, draw(st.booleans())


@pytest.mark.parametrize("op", ["sum", "mean", "amax"])
@given(case=array_and_dims(distinct=True))
def test_reductions(op, case):
    a, dim, keepdim = case
    fn = lambda x: getattr(x, op)(dim=dim, keepdim=keepdim)  # noqa: E731
    out = fn(Tensor(a))
    np.testing.assert_allclose(out.data, getattr(np, {"amax": "amax", "sum": "sum", "mean": "mean"}[op])(
        a, axis=dim, keepdims=keepdim))
    assert gradcheck(fn, leaf(a))
    assert gradgradcheck(fn, leaf(a))


def test_amax_ties_share_the_gradient_and_max_is_full_reduction():
    x = leaf([[1.0, 3.0, 3.0]])
    x.amax(dim=1).sum().backward()
    np.testing.assert_allclose(x.grad.data, [[0.0, 0.5, 0.5]])
    y = leaf([[1.0, 5.0], [2.0, 0.0]])
    assert y.max().item() == 5.0
    values, indices = y.max(dim=1)
    assert values.tolist() == [5.0, 2.0] and indices.tolist() == [1, 0]


@given(a=hnp.array_shapes(min_dims=1, max_dims=4, max_side=3).flatmap(arrays), data=st.data())
def test_shape_ops(a, data):
    x = leaf(a)
    perm = data.draw(st.permutations(range(a.ndim)))
    d0 = data.draw(st.integers(-a.ndim, a.ndim - 1))
    d1 = data.draw(st.integers(-a.ndim, a.ndim - 1))
    assert gradcheck(lambda x: x.reshape(-1) * Tensor(np.arange(a.size, dtype=np.float64)), x)
    assert gradcheck(lambda x: x.view(*reversed(a.shape)) ** 2, x)
    assert gradcheck(lambda x: x.permute(*perm) ** 2, x)
    assert x.permute(*perm).shape == tuple(a.shape[p] for p in perm)
    assert gradcheck(lambda x: x.transpose(d0, d1) ** 2, x)
    np.testing.assert_array_equal(x.transpose(d0, d1).data, np.swapaxes(a, d0, d1))
    assert gradcheck(lambda x: x.flatten() ** 2, x)
    if a.ndim >= 2:
        assert x.flatten(1).shape == (a.shape[0], int(np.prod(a.shape[1:])))
    assert gradcheck(lambda x: x.unsqueeze(d0).squeeze() ** 2, x)
    assert gradcheck(lambda x: x.expand(2, *a.shape) ** 2, x)
    assert gradgradcheck(lambda x: x.permute(*perm).reshape(-1) ** 2, x)


INDEXES = [
    1, -1, slice(None, None, 2), (Ellipsis, 0), (None, slice(1, 3)), (slice(None), None, 0),
    np.array([0, 2, 0]), (np.array([1, 1]), np.array([0, 2])), np.array([True, False, True]),
]


@pytest.mark.parametrize("index", INDEXES, ids=repr)
def test_getitem(index, rng):
    a = rng.standard_normal((3, 4))
    x = leaf(a)
    np.testing.assert_array_equal(x[index].data, a[index])
    assert gradcheck(lambda x: x[index] ** 2, x)
    assert gradgradcheck(lambda x: x[index] ** 2, x)


def test_getitem_repeated_integer_indices_add_up():
    x = leaf([1.0, 2.0, 3.0])
    x[np.array([0, 0, 2])].sum().backward()
    np.testing.assert_allclose(x.grad.data, [2.0, 0.0, 1.0])
    y = leaf([1.0, 2.0, 3.0])
    y[Tensor(np.array([True, False, True]))].sum().backward()
    np.testing.assert_allclose(y.grad.data, [1.0, 0.0, 1.0])


@st.composite
def matmul_case(draw):
    kind = draw(st.sampled_from(["2d", "batched", "vec-mat", "mat-vec", "vec-vec", "broadcast"]))
    n, k, m, b = (draw(st.integers(1, 4)) for _ in range(4))
    shapes = {
        "2d": ((n, k), (k, m)), "batched": ((b, n, k), (b, k, m)), "vec-mat": ((k,), (k, m)),
        "mat-vec": ((b, n, k), (k,)), "vec-vec": ((k,), (k,)), "broadcast": ((b, 1, n, k), (2, k, m)),
    }[kind]
    return draw(arrays(shapes[0])), draw(arrays(shapes[1]))


@given(case=matmul_case())
def test_matmul(case):
    a, b = case
    np.testing.assert_allclose((Tensor(a) @ Tensor(b)).data, a @ b)
    assert gradcheck(lambda x, y: x @ y, leaf(a), leaf(b))
    assert gradgradcheck(lambda x, y: x.matmul(y), leaf(a), leaf(b))


@given(a=hnp.array_shapes(min_dims=1, max_dims=3, max_side=3).flatmap(arrays), data=st.data())
def test_cat_stack(a, data):
    dim = data.draw(st.integers(-a.ndim, a.ndim - 1))
    x, y = leaf(a), leaf(a * 2 + 1)
    np.testing.assert_array_equal(cat([x, y], dim).data, np.concatenate([a, a * 2 + 1], dim))
    assert gradcheck(lambda x, y: cat([x, y ** 2, x], dim=dim), x, y)
    assert gradcheck(lambda x, y: stack([x, y ** 2], dim=dim), x, y)
    assert gradgradcheck(lambda x, y: cat([x ** 2, y], dim=dim), x, y)


@given(a=hnp.array_shapes(min_dims=1, max_dims=3, max_side=3).flatmap(arrays), data=st.data())
def test_pad(a, data):
    widths = tuple(data.draw(st.integers(0, 2)) for _ in range(2 * data.draw(st.integers(1, a.ndim))))
    x = leaf(a)
    out = pad(x, widths, value=0.5)
    np_widths = [(0, 0)] * a.ndim
    for i in range(len(widths) // 2):
        np_widths[a.ndim - 1 - i] = (widths[2 * i], widths[2 * i + 1])
    np.testing.assert_array_equal(out.data, np.pad(a, np_widths, constant_values=0.5))
    assert gradcheck(lambda x: pad(x, widths) ** 2, x)


def test_pad_rejects_bad_widths():
    with pytest.raises(ValueError, match="negative"):
        pad(Tensor(np.ones((2, 2))), (-1, 0))
    with pytest.raises(ValueError, match="even"):
        pad(Tensor(np.ones((2, 2))), (1,))


@given(pair=broadcast_pair())
def test_where(pair):
    a, b = pair
    cond = np.broadcast_to(a > 0, np.broadcast_shapes(a.shape, b.shape))
    assert gradcheck(lambda x, y: where(cond, x, y) ** 2, leaf(a), leaf(b))


def test_cast_is_differentiable():
    x = Tensor([1.0, 2.0], requires_grad=True)
    y = x.double()
    assert y.dtype == np.float64
    (y * y).sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_allclose(x.grad.data, [2.0, 4.0])


def test_gradcheck_reports_input_element_and_values():
    from tinygrad_cnn import Function

    class WrongSquare(Function):
        def forward(self, a):
            return a * a

        def backward(self, g):
            return g * self.inputs[0] * 3.0  # wrong: should be 2x

    with pytest.raises(AssertionError, match=r"input 0, element \(0,\): analytical .* vs numerical"):
        gradcheck(lambda x: WrongSquare.apply(x), leaf([1.0, 2.0]))
