"""CNN ops against PyTorch: values and gradients (skipped when torch is absent)."""
import numpy as np
import pytest
from helpers import needs_torch, torch

import tinygrad_cnn.functional as F
from tinygrad_cnn import Tensor

pytestmark = needs_torch


def _compare(ours_fn, torch_fn, arrays, rng, rtol=1e-9, atol=1e-11):
    ours = [Tensor(a, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    out, ref = ours_fn(*ours), torch_fn(*theirs)
    np.testing.assert_allclose(out.data, ref.detach().numpy(), rtol=rtol, atol=atol)
    w = rng.standard_normal(out.shape)
    (out * Tensor(w)).sum().backward()
    (ref * torch.tensor(w)).sum().backward()
    for o, t in zip(ours, theirs):
        np.testing.assert_allclose(o.grad.data, t.grad.numpy(), rtol=rtol, atol=atol)


CONV = [
    dict(), dict(stride=2, padding=1), dict(stride=(1, 2), padding=(2, 0), dilation=(2, 1)),
    dict(groups=2, padding="same"), dict(padding="valid", dilation=2),
]


@pytest.mark.parametrize("kw", CONV, ids=str)
def test_conv2d(kw, rng):
    g = kw.get("groups", 1)
    arrays = [rng.standard_normal((2, 4, 7, 6)), rng.standard_normal((6, 4 // g, 3, 2)), rng.standard_normal(6)]
    _compare(lambda x, w, b: F.conv2d(x, w, b, **kw), lambda x, w, b: torch.nn.functional.conv2d(x, w, b, **kw),
             arrays, rng)


POOL = [dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
        dict(kernel_size=(2, 3), stride=1), dict(kernel_size=3, stride=2, ceil_mode=True)]


@pytest.mark.parametrize("kw", POOL, ids=str)
def test_max_pool2d(kw, rng):
    x = rng.permutation(2 * 3 * 7 * 6).reshape(2, 3, 7, 6) * 0.1
    _compare(lambda x: F.max_pool2d(x, **kw), lambda x: torch.nn.functional.max_pool2d(x, **kw), [x], rng)
    _, idx = F.max_pool2d(Tensor(x), return_indices=True, **kw)
    _, tidx = torch.nn.functional.max_pool2d(torch.tensor(x), return_indices=True, **kw)
    np.testing.assert_array_equal(idx.data, tidx.numpy())


def test_max_pool2d_dilation(rng):
    x = rng.permutation(2 * 3 * 7 * 6).reshape(2, 3, 7, 6) * 0.1
    kw = dict(kernel_size=2, stride=1, dilation=2, padding=1)
    _compare(lambda x: F.max_pool2d(x, **kw), lambda x: torch.nn.functional.max_pool2d(x, **kw), [x], rng)


@pytest.mark.parametrize("kw", POOL, ids=str)
@pytest.mark.parametrize("include", [True, False])
def test_avg_pool2d(kw, include, rng):
    x = rng.standard_normal((2, 3, 7, 6))
    _compare(lambda x: F.avg_pool2d(x, count_include_pad=include, **kw),
             lambda x: torch.nn.functional.avg_pool2d(x, count_include_pad=include, **kw), [x], rng)


LOSS = [dict(), dict(reduction="sum"), dict(reduction="none"), dict(label_smoothing=0.2),
        dict(weight=True, label_smoothing=0.1), dict(ignore_index=1, weight=True)]


@pytest.mark.parametrize("kw", LOSS, ids=str)
def test_cross_entropy_with_indices(kw, rng):
    x = rng.standard_normal((6, 4))
    t = np.array([0, 3, 1, 1, 2, 0])
    w = rng.random(4) + 0.5
    ours = {**kw, "weight": w} if kw.get("weight") else kw
    theirs = {**kw, "weight": torch.tensor(w)} if kw.get("weight") else kw
    _compare(lambda x: F.cross_entropy(x, t, **ours),
             lambda x: torch.nn.functional.cross_entropy(x, torch.tensor(t), **theirs), [x], rng)


@pytest.mark.parametrize("kw", [dict(), dict(label_smoothing=0.2, reduction="none")], ids=str)
def test_cross_entropy_with_probabilities(kw, rng):
    x = rng.standard_normal((5, 4))
    p = rng.random((5, 4))
    p /= p.sum(1, keepdims=True)
    _compare(lambda x: F.cross_entropy(x, p, **kw),
             lambda x: torch.nn.functional.cross_entropy(x, torch.tensor(p), **kw), [x], rng)


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_cross_entropy_spatial(rng, reduction):
    x = rng.standard_normal((2, 3, 4, 5))
    t = rng.integers(0, 3, (2, 4, 5))
    _compare(lambda x: F.cross_entropy(x, t, reduction=reduction),
             lambda x: torch.nn.functional.cross_entropy(x, torch.tensor(t), reduction=reduction), [x], rng)


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_nll_loss_of_one_unbatched_row(rng, reduction):
    x = rng.standard_normal(4)
    _compare(lambda x: F.nll_loss(F.log_softmax(x, 0), np.array(2), reduction=reduction),
             lambda x: torch.nn.functional.nll_loss(torch.log_softmax(x, 0), torch.tensor(2), reduction=reduction),
             [x], rng)


def test_activations_and_linear(rng):
    x, w, b = rng.standard_normal((3, 4)), rng.standard_normal((5, 4)), rng.standard_normal(5)
    tf = torch.nn.functional
    _compare(lambda x, w, b: F.linear(x, w, b), lambda x, w, b: tf.linear(x, w, b), [x, w, b], rng)
    _compare(lambda x: F.softmax(x, 1), lambda x: tf.softmax(x, 1), [x], rng)
    _compare(lambda x: F.log_softmax(x, 0), lambda x: tf.log_softmax(x, 0), [x], rng)
    _compare(lambda x: F.leaky_relu(x, 0.1), lambda x: tf.leaky_relu(x, 0.1), [x], rng)
    _compare(lambda x: F.sigmoid(x) + F.tanh(x) + F.relu(x), lambda x: tf.sigmoid(x) + tf.tanh(x) + tf.relu(x),
             [x], rng)


def test_conv_second_derivative(rng):
    from tinygrad_cnn import grad
    x, w = rng.standard_normal((1, 2, 5, 5)), rng.standard_normal((3, 2, 3, 3))
    X, W = Tensor(x, requires_grad=True), Tensor(w, requires_grad=True)
    tX, tW = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    (gx,) = grad((F.conv2d(X, W, padding=1).tanh()).sum(), X, create_graph=True)
    (tgx,) = torch.autograd.grad(torch.nn.functional.conv2d(tX, tW, padding=1).tanh().sum(), tX, create_graph=True)
    (gx * gx).sum().backward()
    (tgx * tgx).sum().backward()
    np.testing.assert_allclose(W.grad.data, tW.grad.numpy(), rtol=1e-9)


@pytest.mark.parametrize("kw", [dict(kernel_size=3), dict(kernel_size=(2, 3), stride=2, padding=1, dilation=(1, 2))],
                         ids=str)
def test_unfold_and_fold(kw, rng):
    x = rng.standard_normal((2, 3, 7, 6))
    _compare(lambda x: F.unfold(x, **kw), lambda x: torch.nn.functional.unfold(x, **kw), [x], rng)
    cols = torch.nn.functional.unfold(torch.tensor(x), **kw).numpy()
    _compare(lambda c: F.fold(c, (7, 6), **kw), lambda c: torch.nn.functional.fold(c, (7, 6), **kw), [cols], rng)
