"""dtype promotion, values off the happy path, indexing and exception classes, each against PyTorch."""
import numpy as np
import pytest
from helpers import needs_torch, torch

import tinygrad_cnn as tc
import tinygrad_cnn.functional as F
from tinygrad_cnn import Tensor, nn

pytestmark = needs_torch

# ----------------------------------------------------------------------------- type promotion

DTYPES = ["bool", "uint8", "int8", "int16", "int32", "int64", "float16", "float32", "float64"]


def both(value, dtype, zero_dim=False):
    """The same tensor in both libraries."""
    arr = np.asarray(value if not zero_dim else value[0]).astype(dtype)
    return Tensor(arr), torch.from_numpy(np.array(arr))


def values_for(dtype):
    return [True, False] if dtype == "bool" else [1, 3]


OPS = {"add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b, "div": lambda a, b: a / b,
       "radd": lambda a, b: b + a}

SCALARS = [True, 2, 2.5, -3]

PROMOTION_CASES = (
    [(op, d1, d2, z) for op in OPS for d1 in DTYPES for d2 in DTYPES for z in (False, True)
     if not (op == "sub" and "bool" in (d1, d2))]
    + [(op, d1, s, "scalar") for op in OPS for d1 in DTYPES for s in SCALARS
       if not (op == "sub" and (d1 == "bool" or s is True))]
)


@pytest.mark.parametrize("op,d1,d2,kind", PROMOTION_CASES)
def test_binary_promotion_matches_pytorch(op, d1, d2, kind):
    a, ta = both(values_for(d1), d1)
    if kind == "scalar":
        b = tb = d2
    else:
        b, tb = both(values_for(d2), d2, zero_dim=kind is True)
    ours, theirs = OPS[op](a, b), OPS[op](ta, tb)
    assert ours.dtype == np.dtype(str(theirs.dtype).replace("torch.", "")), (ours.dtype, theirs.dtype)
    np.testing.assert_allclose(ours.data.astype(np.float64), theirs.numpy().astype(np.float64), rtol=1e-3)


@pytest.mark.parametrize("dtype", ["bool", "uint8", "int32", "int64"])
@pytest.mark.parametrize("fn", ["sqrt", "exp", "log", "tanh", "sigmoid"])
def test_float_ops_on_integer_tensors_give_the_default_float(fn, dtype):
    a, ta = both([1, 4], dtype)
    ours, theirs = getattr(a, fn)(), getattr(ta, fn)()
    assert ours.dtype == np.float32 and theirs.dtype == torch.float32
    np.testing.assert_allclose(ours.data, theirs.numpy(), rtol=1e-6)


@pytest.mark.parametrize("dtype", ["bool", "uint8", "int8", "int32", "int64"])
def test_integer_sums_are_int64(dtype):
    a, ta = both([1, 1, 0], dtype)
    assert a.sum().dtype == np.int64 and ta.sum().dtype == torch.int64
    assert a.sum().item() == ta.sum().item()


def test_default_dtype():
    try:
        tc.set_default_dtype(tc.float64)
        torch.set_default_dtype(torch.float64)
        assert tc.get_default_dtype() == np.float64
        assert Tensor([1.5]).dtype == np.float64 and (Tensor([1, 2]) + 2.5).dtype == np.float64
        assert (Tensor([1, 2]) / 2).dtype == np.float64 and nn.Linear(2, 2).weight.dtype == np.float64
    finally:
        tc.set_default_dtype(tc.float32)
        torch.set_default_dtype(torch.float32)
    assert Tensor([1.5]).dtype == np.float32 and nn.Linear(2, 2).weight.dtype == np.float32
    with pytest.raises(TypeError):
        tc.set_default_dtype(tc.int64)


def test_leaf_grads_keep_the_leafs_dtype_in_mixed_graphs():
    w32 = Tensor([1.0, 2.0], requires_grad=True)
    w64 = Tensor(np.array([3.0, 4.0]), requires_grad=True)
    (w32 * w64).sum().backward()
    t32 = torch.tensor([1.0, 2.0], requires_grad=True)
    t64 = torch.tensor([3.0, 4.0], dtype=torch.float64, requires_grad=True)
    (t32 * t64).sum().backward()
    assert w32.grad.dtype == np.float32 and w64.grad.dtype == np.float64
    assert t32.grad.dtype == torch.float32 and t64.grad.dtype == torch.float64
    np.testing.assert_allclose(w32.grad.data, t32.grad.numpy())


@pytest.mark.parametrize("make", [lambda: nn.Linear(3, 2), lambda: nn.Conv2d(1, 2, 3)])
def test_float64_input_into_a_float32_layer_raises_and_says_what_to_cast(make):
    layer = make()
    x = np.zeros((1, 3) if isinstance(layer, nn.Linear) else (1, 1, 5, 5))
    with pytest.raises(RuntimeError, match=r"float64.*float32.*\.to\(float32\)") as e:
        layer(Tensor(x))
    assert isinstance(e.value, TypeError)
    tlayer = torch.nn.Linear(3, 2) if isinstance(layer, nn.Linear) else torch.nn.Conv2d(1, 2, 3)
    with pytest.raises(RuntimeError):
        tlayer(torch.from_numpy(x))
    assert layer(Tensor(x.astype(np.float32))).dtype == np.float32


# ----------------------------------------------------------------------------- values other projects' tests found


def _grads(lib_tensor, fn, *values):
    xs = [lib_tensor(v) for v in values]
    fn(*xs).sum().backward()
    return [x.grad.detach().numpy() if hasattr(x.grad, "detach") else x.grad.data for x in xs]


def ours(v):
    return Tensor(np.asarray(v, np.float64), requires_grad=True)


def theirs(v):
    return torch.tensor(np.asarray(v, np.float64), requires_grad=True)


@pytest.mark.parametrize("fn", [
    lambda x, y: x ** y,
    lambda x, y: x ** 0 + y,
    lambda x, y: 0 ** x + y,
    lambda x, y: x ** 2 * y,
], ids=["x**y", "x**0", "0**x", "x**2"])
def test_pow_gradients_at_zero_match_pytorch(fn):
    values = ([0.0, 1.0, 0.0, 2.0], [0.0, 0.0, 2.0, 0.5])
    for a, b in zip(_grads(ours, fn, *values), _grads(theirs, fn, *values)):
        np.testing.assert_allclose(a, b)


@pytest.mark.parametrize("call", [
    lambda t: t.sum(0), lambda t: t.sum(-1, keepdim=True), lambda t: t.mean(-1), lambda t: t.amax(0),
    lambda t: t.softmax(0), lambda t: t.log_softmax(-1), lambda t: t.amin(0),
], ids=["sum", "sum-keepdim", "mean", "amax", "softmax", "log_softmax", "amin"])
def test_dim_0_of_a_0d_tensor(call):
    x, tx = ours(3.0), theirs(3.0)
    y, ty = call(x), call(tx)
    assert y.shape == tuple(ty.shape)
    np.testing.assert_allclose(y.data, ty.detach().numpy())
    y.backward()
    ty.backward()
    np.testing.assert_allclose(x.grad.data, tx.grad.numpy())
    with pytest.raises(IndexError):
        x.sum(1)


@pytest.mark.parametrize("dtype", ["int64", "int32", "uint8"])
def test_integer_max_pool_with_padding(dtype):
    x = np.arange(25).reshape(1, 1, 5, 5).astype(dtype)
    ours_out = F.max_pool2d(Tensor(x), 2, padding=1)
    theirs_out = torch.nn.functional.max_pool2d(torch.from_numpy(x.astype(np.int64)), 2, padding=1)
    np.testing.assert_array_equal(ours_out.data, theirs_out.numpy())
    assert ours_out.dtype == np.dtype(dtype)


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_cross_entropy_gives_probability_targets_a_gradient(smoothing):
    rng = np.random.default_rng(0)
    logits, target = rng.standard_normal((4, 3)), rng.dirichlet(np.ones(3), size=4)
    x, t = ours(logits), ours(target)
    tx, tt = theirs(logits), theirs(target)
    F.cross_entropy(x, t, label_smoothing=smoothing).backward()
    torch.nn.functional.cross_entropy(tx, tt, label_smoothing=smoothing).backward()
    np.testing.assert_allclose(t.grad.data, tt.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(x.grad.data, tx.grad.numpy(), rtol=1e-10)


INDEXES = [
    lambda i: (0, slice(None), i), lambda i: (slice(None), 0, i), lambda i: (i, slice(None), 0),
    lambda i: (0, i), lambda i: (Ellipsis, i), lambda i: (i, None, 1), lambda i: (1, i, slice(1, 3)),
    lambda i: (slice(None), i, i), lambda i: i, lambda i: (0, slice(None), np.array([True, False, True, True])),
]


@pytest.mark.parametrize("make_index", INDEXES)
def test_mixed_int_and_array_indexing_follows_pytorch(make_index):
    data = np.arange(2 * 3 * 4, dtype=np.float64).reshape(2, 3, 4)
    idx = np.array([0, 1, 1])
    index = make_index(idx)
    x, tx = ours(data), theirs(data)
    tindex = tuple(torch.from_numpy(i) if isinstance(i, np.ndarray) else i for i in index) \
        if isinstance(index, tuple) else torch.from_numpy(index)
    y, ty = x[index], tx[tindex]
    assert y.shape == tuple(ty.shape)
    np.testing.assert_array_equal(y.data, ty.detach().numpy())
    g = np.arange(y.numel(), dtype=np.float64).reshape(y.shape)
    y.backward(Tensor(g))
    ty.backward(torch.from_numpy(g))
    np.testing.assert_array_equal(x.grad.data, tx.grad.numpy())


# ----------------------------------------------------------------------------- exception classes

ERRORS = [  # (ours, theirs, the class that existing code catches)
    (lambda: Tensor(np.ones((2, 3))).sum(5), lambda: torch.ones(2, 3).sum(5), ValueError),
    (lambda: Tensor(np.ones((2, 3)))[5], lambda: torch.ones(2, 3)[5], ValueError),
    (lambda: Tensor(np.ones((2, 3))).transpose(0, 3), lambda: torch.ones(2, 3).transpose(0, 3), ValueError),
    (lambda: Tensor(np.ones((2, 3))).softmax(2), lambda: torch.ones(2, 3).softmax(2), ValueError),
    (lambda: Tensor(np.ones((2, 3))) @ Tensor(np.ones((4, 5))), lambda: torch.ones(2, 3) @ torch.ones(4, 5),
     ValueError),
    (lambda: Tensor(np.ones((2, 3))).reshape(4), lambda: torch.ones(2, 3).reshape(4), ValueError),
    (lambda: tc.cat([Tensor(np.ones((2, 3))), Tensor(np.ones((2, 4)))]),
     lambda: torch.cat([torch.ones(2, 3), torch.ones(2, 4)]), ValueError),
    (lambda: Tensor(np.ones(2)) + Tensor(np.ones(3)), lambda: torch.ones(2) + torch.ones(3), ValueError),
    (lambda: F.conv2d(Tensor(np.ones((1, 2, 5, 5), np.float32)), Tensor(np.ones((3, 3, 3, 3), np.float32))),
     lambda: torch.nn.functional.conv2d(torch.ones(1, 2, 5, 5), torch.ones(3, 3, 3, 3)), ValueError),
    (lambda: F.linear(Tensor(np.ones((2, 3), np.float32)), Tensor(np.ones((4, 5), np.float32))),
     lambda: torch.nn.functional.linear(torch.ones(2, 3), torch.ones(4, 5)), ValueError),
    (lambda: F.cross_entropy(Tensor(np.ones((2, 3))), np.array([0, 3])),
     lambda: torch.nn.functional.cross_entropy(torch.ones(2, 3), torch.tensor([0, 3])), ValueError),
    (lambda: bool(Tensor([1.0, 2.0])), lambda: bool(torch.tensor([1.0, 2.0])), ValueError),
    (lambda: Tensor([1.0, 2.0]).item(), lambda: torch.tensor([1.0, 2.0]).item(), ValueError),
    (lambda: Tensor([1.0, 2.0]).backward(), lambda: torch.tensor([1.0, 2.0], requires_grad=True).mul(2).backward(),
     RuntimeError),
    (lambda: Tensor([1, 2]).requires_grad_(), lambda: torch.tensor([1, 2]).requires_grad_(), TypeError),
    (lambda: Tensor(np.ones((2, 3))).permute(0, 2), lambda: torch.ones(2, 3).permute(0, 2), ValueError),
    (lambda: Tensor(np.ones((2, 3))).unsqueeze(4), lambda: torch.ones(2, 3).unsqueeze(4), ValueError),
    (lambda: Tensor(np.ones((2, 3))).expand(3, 3), lambda: torch.ones(2, 3).expand(3, 3), ValueError),
    (lambda: Tensor([1, 2]).mean(), lambda: torch.tensor([1, 2]).mean(), TypeError),
]


@pytest.mark.parametrize("ours_call,theirs_call,legacy", ERRORS)
def test_errors_are_pytorchs_class_and_the_legacy_one(ours_call, theirs_call, legacy):
    with pytest.raises(Exception) as theirs_err:
        theirs_call()
    with pytest.raises(Exception) as ours_err:
        ours_call()
    assert isinstance(ours_err.value, type(theirs_err.value)), (ours_err.value, theirs_err.value)
    assert isinstance(ours_err.value, legacy)
    assert "Traceback" not in str(ours_err.value) and len(str(ours_err.value)) > 15
