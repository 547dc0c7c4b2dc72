"""Tensor construction, dtypes, properties and bad input."""
import numpy as np
import pytest

from tinygrad_cnn import Tensor, enable_grad, no_grad


def test_from_scalar_list_array_tensor():
    assert Tensor(3.0).dtype == np.float32 and Tensor(3.0).shape == ()
    assert Tensor([[1.0, 2.0]]).shape == (1, 2)
    assert Tensor([[1.0, 2.0]]).dtype == np.float32
    assert Tensor(np.zeros(3, dtype=np.float64)).dtype == np.float64
    assert Tensor(np.zeros(3, dtype=np.float32)).dtype == np.float32
    t = Tensor([1.0, 2.0])
    u = Tensor(t)
    u.data[0] = 5
    assert t.data[0] == 1.0, "Tensor(tensor) copies"


def test_integer_data_stays_integer_and_cannot_require_grad():
    t = Tensor([1, 2, 3])
    assert np.issubdtype(t.dtype, np.integer)
    with pytest.raises(TypeError, match="floating"):
        Tensor([1, 2], requires_grad=True)


def test_dtype_argument():
    assert Tensor([1, 2], dtype=np.float64).dtype == np.float64


def test_non_numeric_data_is_a_type_error():
    with pytest.raises(TypeError):
        Tensor("abc")
    with pytest.raises(TypeError):
        Tensor([[1.0], [2.0, 3.0]])


def test_properties():
    t = Tensor(np.arange(6.0).reshape(2, 3), requires_grad=True, name="w")
    assert t.shape == (2, 3) and t.ndim == 2 and t.size() == (2, 3) and t.size(1) == 3 and t.numel() == 6
    assert t.name == "w" and t.is_leaf and t.grad is None
    assert t.T.shape == (3, 2)
    assert t.numpy() is t.data
    assert t.tolist() == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
    assert Tensor([[2.5]]).item() == 2.5
    with pytest.raises(ValueError, match="one element"):
        t.item()
    assert len(t) == 2


def test_repr_shows_shape_dtype_and_op():
    x = Tensor([1.0, 2.0], requires_grad=True)
    r = repr(x * 2)
    assert "shape=(2,)" in r and "float32" in r and "grad_fn=<Mul>" in r
    assert "requires_grad=True" in repr(x)


def test_python_scalars_never_promote_float32():
    x = Tensor([1.0, 2.0])
    for y in (x + 1.5, 1.5 + x, x * 2.0, 2.0 * x, x / 3.0, 3.0 / x, x - 1.0, 1.0 - x, x ** 2.0, 2.0 ** x,
              x + np.float64(1.0)):
        assert y.dtype == np.float32, y


def test_float64_stays_float64():
    x = Tensor(np.ones(2))
    assert (x * 2.0).dtype == np.float64
    assert (x + Tensor(np.ones(2, dtype=np.float32))).dtype == np.float64


def test_detach_shares_data_and_cuts_graph():
    x = Tensor([1.0, 2.0], requires_grad=True)
    y = (x * 2).detach()
    assert not y.requires_grad and y.is_leaf
    z = x.detach()
    assert z.data is x.data


def test_comparisons_and_argmax_are_not_differentiable():
    x = Tensor([[1.0, 3.0], [4.0, 2.0]], requires_grad=True)
    assert (x > 2).dtype == bool and not (x > 2).requires_grad
    assert (x == 3.0).tolist() == [[False, True], [False, False]]
    assert x.argmax(dim=1).tolist() == [1, 0]
    assert x.argmax().item() == 2
    assert not x.argmax().requires_grad


def test_no_grad_and_enable_grad_as_context_and_decorator():
    x = Tensor([1.0], requires_grad=True)
    with no_grad():
        assert not (x * 2).requires_grad
        with enable_grad():
            assert (x * 2).requires_grad
    assert (x * 2).requires_grad

    @no_grad()
    def f(t):
        return t * 2

    assert not f(x).requires_grad
    assert (x * 2).requires_grad

    @no_grad
    def g(t):
        return t * 2

    assert not g(x).requires_grad and g.__name__ == "g"


def test_shape_errors_name_the_shapes():
    a, b = Tensor(np.ones((2, 3))), Tensor(np.ones((4, 5)))
    for op, name in [(lambda: a + b, "add"), (lambda: a - b, "sub"), (lambda: a * b, "mul"), (lambda: a / b, "div"),
                     (lambda: a ** b, "pow")]:
        with pytest.raises(ValueError, match=name + r": shapes \(2, 3\) and \(4, 5\) cannot be broadcast"):
            op()
    with pytest.raises(ValueError, match=r"where: .*\(2, 3\).*\(4, 5\)"):
        from tinygrad_cnn import where
        where(np.ones((2, 3), dtype=bool), a, b)
    with pytest.raises(ValueError, match=r"matmul.*\(2, 3\).*\(4, 5\)"):
        a @ b
    with pytest.raises(ValueError, match="reshape"):
        a.reshape(4, 2)
    with pytest.raises(ValueError, match="permutation"):
        a.permute(0, 0)
    with pytest.raises(ValueError, match="out of range"):
        a.sum(dim=2)
    with pytest.raises(ValueError, match="cat"):
        from tinygrad_cnn import cat
        cat([a, b], dim=0)
