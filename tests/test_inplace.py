"""In-place changes and version counters, against PyTorch: each scenario runs in both
libraries, and either both raise or both give the same gradients."""
import os

import numpy as np
import pytest
from helpers import needs_torch, torch
from hypothesis import given, settings
from hypothesis import strategies as st

import tinygrad_cnn as tc
from tinygrad_cnn import Tensor, nn, optim


class Ours:
    """The few names the scenarios use, over tinygrad_cnn."""

    @staticmethod
    def tensor(x, requires_grad=False):
        return Tensor(np.asarray(x, dtype=np.float64), requires_grad=requires_grad)

    no_grad = tc.no_grad
    SGD = optim.SGD


class Torch:
    """The same names over PyTorch."""

    @staticmethod
    def tensor(x, requires_grad=False):
        return torch.tensor(np.asarray(x, dtype=np.float64), requires_grad=requires_grad)

    no_grad = torch.no_grad if torch is not None else None
    SGD = torch.optim.SGD if torch is not None else None


def outcome(scenario, lib):
    """('raises', class) or ('grads', [arrays]) of running scenario(lib)."""
    try:
        grads = scenario(lib)
    except RuntimeError as e:
        return "raises", str(e)
    return "grads", [None if g is None else np.asarray(g.detach().numpy() if hasattr(g, "detach") else g)
                     for g in grads]


def assert_same_outcome(scenario):
    ours, theirs = outcome(scenario, Ours), outcome(scenario, Torch)
    assert ours[0] == theirs[0], f"ours: {ours}, PyTorch: {theirs}"
    if ours[0] == "grads":
        for a, b in zip(ours[1], theirs[1]):
            if a is None or b is None:
                assert a is None and b is None or np.allclose(a if a is not None else b, 0)
            else:
                np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


# ----------------------------------------------------------------------------- named scenarios


def sgd_step_then_backward(lib):  # the issue's example
    w = lib.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = (w * w).sum()
    w.grad = lib.tensor([1.0, 1.0, 1.0])
    lib.SGD([w], lr=1.0).step()
    y.backward()
    return [w.grad]


def saved_input_modified(lib):
    x = lib.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    z = y * y
    y.add_(1)
    z.sum().backward()
    return [x.grad]


def unsaved_input_modified(lib):  # Add reads neither input: PyTorch runs it
    x = lib.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    z = y + 3
    y.mul_(5)
    z.sum().backward()
    return [x.grad]


def exp_output_modified(lib):
    x = lib.tensor([1.0, 2.0], requires_grad=True)
    y = x.exp()
    y.add_(1)
    y.sum().backward()
    return [x.grad]


def relu_output_modified(lib):
    x = lib.tensor([1.0, -2.0], requires_grad=True)
    y = x.relu()
    y.mul_(2)
    y.sum().backward()
    return [x.grad]


def inplace_chain_on_non_leaf(lib):
    x = lib.tensor([1.0, 2.0], requires_grad=True)
    w = lib.tensor([2.0, 3.0], requires_grad=True)
    y = x * 1
    y.mul_(w)
    y.add_(x)
    y.sub_(w, alpha=2)
    y.div_(w)
    (y * y).sum().backward()
    return [x.grad, w.grad]


def consumer_before_inplace(lib):  # z keeps using y's old value in the gradient
    x = lib.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    z = y * 3
    y.mul_(10)
    (z + y).sum().backward()
    return [x.grad]


def leaf_without_grad_becomes_non_leaf(lib):
    w = lib.tensor([2.0, 3.0], requires_grad=True)
    x = lib.tensor([5.0, 7.0])
    x.mul_(w)
    x.sum().backward()
    return [w.grad]


def inplace_with_itself(lib):
    x = lib.tensor([1.5, -2.0], requires_grad=True)
    y = x * 1
    y.mul_(y)
    y.sum().backward()
    return [x.grad]


def clamp_inplace(lib):
    x = lib.tensor([1.0, -2.0, 0.5], requires_grad=True)
    y = x * 2
    y.clamp_(min=0.0, max=1.5)
    y.sum().backward()
    return [x.grad]


def setitem_on_non_leaf(lib):
    x = lib.tensor([1.0, -2.0, 3.0], requires_grad=True)
    y = x * 1
    y[0] = x[1] * 5
    y[1:] = y[1:] * x[2]
    (y * y).sum().backward()
    return [x.grad]


def fill_and_zero(lib):
    x = lib.tensor([1.0, -2.0, 3.0], requires_grad=True)
    y = x * 2
    y.zero_()
    z = x * 3
    z.fill_(2.0)
    (y + z + x).sum().backward()
    return [x.grad]


def copy_into_non_leaf(lib):
    x = lib.tensor([1.0, -2.0, 3.0], requires_grad=True)
    w = lib.tensor([4.0], requires_grad=True)
    y = x * 2
    y.copy_(w * w)
    (y * x).sum().backward()
    return [x.grad, w.grad]


def detached_alias_modified(lib):  # detach() shares the version counter
    x = lib.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    z = y * y
    y.detach().zero_()
    z.sum().backward()
    return [x.grad]


def no_grad_inplace_on_leaf(lib):
    w = lib.tensor([1.0, 2.0], requires_grad=True)
    with lib.no_grad():
        w.mul_(3)
        w[0] = 7.0
    (w * w).sum().backward()
    return [w.grad]


def iadd_operator(lib):
    x = lib.tensor([1.0, 2.0], requires_grad=True)
    y = x.exp()
    z = y * 1
    z += x
    z *= 2
    z.sum().backward()
    return [x.grad]


def leaf_requiring_grad_inplace(lib):
    w = lib.tensor([1.0, 2.0], requires_grad=True)
    w.add_(1)
    return [w]


SCENARIOS = [sgd_step_then_backward, saved_input_modified, unsaved_input_modified, exp_output_modified,
             relu_output_modified, inplace_chain_on_non_leaf, consumer_before_inplace,
             leaf_without_grad_becomes_non_leaf, inplace_with_itself, clamp_inplace, setitem_on_non_leaf,
             fill_and_zero, copy_into_non_leaf, detached_alias_modified, no_grad_inplace_on_leaf, iadd_operator,
             leaf_requiring_grad_inplace]


@needs_torch
@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda f: f.__name__)
def test_scenario_matches_pytorch(scenario):
    assert_same_outcome(scenario)


def test_the_issue_example_names_the_op_and_the_shape():
    with pytest.raises(RuntimeError, match=r"mul backward.*input 0 of shape \(3,\).*version 1, expected version 0"):
        sgd_step_then_backward(Ours)


def test_every_framework_write_bumps_the_version():
    lin = nn.Linear(3, 2)
    w = lin.weight
    v = w._version
    nn.init.kaiming_uniform_(w)
    nn.init.zeros_(lin.bias)
    assert w._version == v + 1 and lin.bias._version >= 1
    lin.load_state_dict(lin.state_dict())
    assert w._version == v + 2
    w.grad = Tensor(np.ones((2, 3), np.float32))
    optim.Adam([w]).step()
    assert w._version == v + 3
    t = Tensor([1.0, 2.0])
    t.add_(1)
    t[0] = 5.0
    t.zero_()
    assert t._version == 3
    view = t.reshape(2, 1)
    view.mul_(2)
    assert t._version == 4 and view._version == 4  # a view shares its base's counter


def test_inplace_on_a_recorded_view_is_refused_with_a_clear_error():
    x = Tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = x * 2
    v = y[1:]
    with pytest.raises(RuntimeError, match="view"):
        v.mul_(3)


def test_a_view_of_a_tensor_changed_in_place_is_refused_when_used_later():
    x = Tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = x * 2
    v = y[1:]
    y.mul_(3)  # v's gradient path would miss this
    with pytest.raises(RuntimeError, match="view"):
        (v * 1).sum()


def test_inplace_dtype_and_shape_rules():
    t = Tensor([1, 2])
    with pytest.raises(RuntimeError, match="can't be cast") as e:
        t.add_(1.5)
    assert isinstance(e.value, TypeError)
    with pytest.raises(RuntimeError, match="can't be cast"):
        t.div_(2)
    f = Tensor([1.0, 2.0])
    f.add_(Tensor(np.array([0.5, 0.5])))  # float64 into float32: cast, as PyTorch
    assert f.dtype == np.float32 and f.tolist() == [1.5, 2.5]
    with pytest.raises(ValueError, match=r"\(2,\)"):
        f.add_(Tensor(np.ones((3, 2), np.float32)))
    with pytest.raises(RuntimeError, match="read-only"):
        Tensor([1.0]).expand(3).add_(1)


def test_setitem_follows_pytorch_indexing():
    t = Tensor(np.zeros((2, 3, 4), np.float32))
    t[0, :, [0, 1]] = Tensor(np.arange(6, dtype=np.float32).reshape(3, 2))
    expect = np.zeros((2, 3, 4), np.float32)
    expect[0][:, [0, 1]] = np.arange(6).reshape(3, 2)
    np.testing.assert_array_equal(t.data, expect)
    with pytest.raises(IndexError):
        t[5] = 1.0


# ----------------------------------------------------------------------------- random graphs

UNARY = ["exp", "tanh", "sigmoid", "relu", "neg", "square"]
BINARY = ["add", "sub", "mul", "div"]
INPLACE = ["add_", "sub_", "mul_", "mul_t", "clamp_", "zero_", "setitem"]


def _unary(lib, name, t):
    return {"exp": lambda: (t * 0.5).exp(), "tanh": t.tanh, "sigmoid": t.sigmoid, "relu": t.relu,
            "neg": lambda: -t, "square": lambda: t * t}[name]()


def _binary(lib, name, a, b):
    if name == "div":
        return a / (b * b + 1)
    return {"add": a + b, "sub": a - b, "mul": a * b}[name]


def _inplace(lib, name, t, other, k):
    if name == "add_":
        t.add_(k)
    elif name == "sub_":
        t.sub_(other)
    elif name == "mul_":
        t.mul_(k)
    elif name == "mul_t":
        t.mul_(other)
    elif name == "clamp_":
        t.clamp_(min=-0.5, max=0.7)
    elif name == "zero_":
        t.zero_()
    else:
        t[1] = other[0] * k


step = st.one_of(
    st.tuples(st.just("u"), st.sampled_from(UNARY), st.integers(0, 50), st.just(0), st.just(0.0)),
    st.tuples(st.just("b"), st.sampled_from(BINARY), st.integers(0, 50), st.integers(0, 50), st.just(0.0)),
    st.tuples(st.just("i"), st.sampled_from(INPLACE), st.integers(0, 50), st.integers(0, 50),
              st.floats(-2, 2, allow_nan=False)),
)


def random_graph(steps, values):
    """A scenario: leaves a, b (require grad) and c (data); each step makes a new tensor from
    the pool or changes a non-leaf (or c) in place; the loss sums every non-leaf."""
    def scenario(lib):
        a = lib.tensor(values[0], requires_grad=True)
        b = lib.tensor(values[1], requires_grad=True)
        c = lib.tensor(values[2])
        pool = [a, b, c]
        for kind, name, i, j, k in steps:
            x, y = pool[i % len(pool)], pool[j % len(pool)]
            if kind == "u":
                pool.append(_unary(lib, name, x))
            elif kind == "b":
                pool.append(_binary(lib, name, x, y))
            else:
                targets = [t for t in pool[2:]]  # c and the non-leaves (leaves that require grad refuse)
                _inplace(lib, name, targets[i % len(targets)], y, k)
        loss = sum((t * t).sum() for t in pool[3:]) if len(pool) > 3 else (a * b).sum()
        loss.backward()
        return [a.grad, b.grad]

    return scenario


values = st.lists(st.floats(-1.5, 1.5, allow_nan=False), min_size=9, max_size=9).map(
    lambda v: [v[0:3], v[3:6], v[6:9]])


@needs_torch
@settings(max_examples=int(os.environ.get("INPLACE_EXAMPLES", "150")))
@given(st.lists(step, min_size=1, max_size=10), values)
def test_random_graphs_with_inplace_changes_match_pytorch(steps, vals):
    assert_same_outcome(random_graph(steps, vals))
