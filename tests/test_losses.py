"""The new losses (F and nn forms), activation modules and nn.utils.clip_grad_* against PyTorch;
gradcheck of the losses in float64 over generated shapes."""
import math

import numpy as np
import pytest
from helpers import arrays, leaf, needs_torch, small_shapes, torch
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_cnn.functional as F
from tinygrad_cnn import Tensor, gradcheck, gradgradcheck, nn

REDUCTIONS = ["mean", "sum", "none"]


def _data(seed=0, shape=(4, 3)):
    rng = np.random.default_rng(seed)
    return dict(x=rng.standard_normal(shape), y=rng.standard_normal(shape), p=rng.uniform(0.02, 0.98, shape),
                t=(rng.random(shape) > 0.5).astype(np.float64), w=rng.uniform(0.5, 2, shape[-1]),
                pw=rng.uniform(0.5, 3, shape[-1]), logp=np.log(rng.dirichlet(np.ones(shape[-1]), shape[0])),
                labels=rng.integers(0, shape[-1], shape[0]))


# (our module, torch's module, keyword arguments, input key, target key)
CASES = [
    ("MSELoss", {}, "x", "y"),
    ("L1Loss", {}, "x", "y"),
    ("BCELoss", {}, "p", "t"),
    ("BCELoss", {"weight": "w"}, "p", "t"),
    ("BCEWithLogitsLoss", {}, "x", "t"),
    ("BCEWithLogitsLoss", {"weight": "w", "pos_weight": "pw"}, "x", "p"),
    ("NLLLoss", {}, "logp", "labels"),
    ("NLLLoss", {"weight": "w"}, "logp", "labels"),
]


@needs_torch
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name,kw,xk,tk", CASES, ids=lambda v: str(v))
def test_loss_modules_match_torch(name, kw, xk, tk, reduction):
    d = _data()
    ours = getattr(nn, name)(reduction=reduction, **{k: Tensor(d[v]) for k, v in kw.items()})
    theirs = getattr(torch.nn, name)(reduction=reduction, **{k: torch.tensor(d[v]) for k, v in kw.items()})
    a, b = Tensor(d[xk], requires_grad=True), torch.tensor(d[xk], requires_grad=True)
    la, lb = ours(a, d[tk]), theirs(b, torch.tensor(d[tk]))
    np.testing.assert_allclose(la.data, lb.detach().numpy(), rtol=1e-12, atol=1e-14)
    g = np.random.default_rng(1).standard_normal(la.shape)
    (la * Tensor(g)).sum().backward()
    (lb * torch.tensor(g)).sum().backward()
    np.testing.assert_allclose(a.grad.data, b.grad.numpy(), rtol=1e-10, atol=1e-14)
    assert [k for k, _ in ours.named_buffers()] == [k for k, _ in theirs.named_buffers()]


@needs_torch
def test_losses_in_float32_and_with_a_target_that_requires_grad():
    d = _data(2)
    x, y = Tensor(d["x"].astype(np.float32), requires_grad=True), Tensor(d["y"].astype(np.float32), requires_grad=True)
    loss = F.mse_loss(x, y)
    assert loss.dtype == np.float32
    loss.backward()
    tx, ty = (torch.tensor(v.astype(np.float32), requires_grad=True) for v in (d["x"], d["y"]))
    torch.nn.functional.mse_loss(tx, ty).backward()
    np.testing.assert_allclose(y.grad.data, ty.grad.numpy(), rtol=1e-6)
    bce = F.binary_cross_entropy_with_logits(x, d["t"], pos_weight=d["pw"])  # float64 extras follow the input
    assert bce.dtype == np.float32


@needs_torch
def test_bce_is_finite_at_the_extremes_like_torch():
    x = np.array([-1000.0, -30.0, 0.0, 30.0, 1000.0])
    t = np.array([1.0, 1.0, 0.5, 0.0, 0.0])
    ours = F.binary_cross_entropy_with_logits(leaf(x), t, reduction="none")
    theirs = torch.nn.functional.binary_cross_entropy_with_logits(torch.tensor(x), torch.tensor(t), reduction="none")
    np.testing.assert_allclose(ours.data, theirs.numpy(), rtol=1e-12)
    p = leaf(np.array([0.0, 1.0, 1e-50, 0.5]))
    tp = np.array([1.0, 0.0, 1.0, 1.0])
    loss = F.binary_cross_entropy(p, tp, reduction="none")
    expect = torch.nn.functional.binary_cross_entropy(torch.tensor(p.data), torch.tensor(tp), reduction="none")
    np.testing.assert_allclose(loss.data, expect.numpy())  # logs clamped at -100
    loss.sum().backward()
    assert np.isfinite(p.grad.data).all()


@st.composite
def _pairs(draw):
    shape = draw(small_shapes)
    return draw(arrays(shape)), draw(arrays(shape)), draw(arrays(shape, 0.05, 0.95))


@given(_pairs(), st.sampled_from(REDUCTIONS))
def test_gradcheck_losses(pair, reduction):
    x, y, p = pair
    t = (y > 0).astype(np.float64)
    assert gradcheck(lambda a, b: F.mse_loss(a, b, reduction), leaf(x), leaf(y))
    assert gradcheck(lambda a: F.l1_loss(a, y + np.where(np.abs(x - y) < 0.05, 0.1, 0), reduction), leaf(x))
    assert gradcheck(lambda a: F.binary_cross_entropy(a, p, reduction=reduction), leaf(p))
    assert gradcheck(lambda a, w: F.binary_cross_entropy_with_logits(a, t, weight=w, reduction=reduction,
                                                                     pos_weight=np.full(x.shape[-1:], 2.0)),
                     leaf(x), leaf(p))
    assert gradcheck(lambda a: F.logsigmoid(a), leaf(x))


def test_gradgradcheck_bce_with_logits():
    x = np.array([[-2.0, 0.3], [1.5, -0.2]])
    assert gradgradcheck(lambda a: F.binary_cross_entropy_with_logits(a, np.array([[1.0, 0.0], [0.2, 1.0]])),
                         leaf(x))


def test_loss_errors_name_the_shapes():
    x = Tensor(np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"target of shape \(3,\) must have the input's shape \(3, 2\)"):
        F.binary_cross_entropy_with_logits(x, np.zeros(3))
    with pytest.raises(ValueError, match="between 0 and 1.*1.5"):
        F.binary_cross_entropy(Tensor(np.array([0.5, 1.5])), np.array([1.0, 0.0]))
    with pytest.raises(ValueError, match="reduction"):
        nn.MSELoss(reduction="avg")
    with pytest.raises(TypeError, match="input must be a Tensor"):
        F.l1_loss(np.zeros(3), np.zeros(3))
    with pytest.warns(UserWarning, match=r"target of shape \(3, 1\) differs from input of shape \(3,\)"):
        assert F.mse_loss(Tensor(np.zeros(3)), np.ones((3, 1))).item() == 1.0  # broadcast, as torch


@needs_torch
@pytest.mark.parametrize("name,kw", [("Softmax", dict(dim=1)), ("LogSoftmax", dict(dim=0)), ("Sigmoid", {}),
                                     ("Tanh", {}), ("LeakyReLU", dict(negative_slope=0.2)), ("ReLU", {}),
                                     ("Identity", {})])
def test_activation_modules_match_torch(name, kw):
    x = np.random.default_rng(3).standard_normal((3, 4))
    a, b = Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    ya, yb = getattr(nn, name)(**kw)(a), getattr(torch.nn, name)(**kw)(b)
    np.testing.assert_allclose(ya.data, yb.detach().numpy(), rtol=1e-12)
    (ya * ya).sum().backward()
    (yb * yb).sum().backward()
    np.testing.assert_allclose(a.grad.data, b.grad.numpy(), rtol=1e-10, atol=1e-14)


@needs_torch
def test_softmax_without_dim_picks_torchs_implicit_dim():
    x = np.random.default_rng(4).standard_normal((2, 3, 4))
    with pytest.warns(UserWarning, match="pass dim=0"):
        ours = nn.Softmax()(Tensor(x))
    with pytest.warns(UserWarning):
        theirs = torch.nn.Softmax()(torch.tensor(x))
    np.testing.assert_allclose(ours.data, theirs.numpy(), rtol=1e-12)


def _grads(seed, scale=1.0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s) * scale for s in ((3, 4), (5,), (2, 2, 2))]


@needs_torch
@pytest.mark.parametrize("max_norm,norm_type", [(1.0, 2.0), (100.0, 2), (0.5, 1.0), (0.3, math.inf), (2.0, 3.0)])
def test_clip_grad_norm_matches_torch(max_norm, norm_type):
    ours = [Tensor(np.zeros_like(g), requires_grad=True) for g in _grads(0)]
    theirs = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in _grads(0)]
    for p, q, g in zip(ours, theirs, _grads(0)):
        p.grad, q.grad = Tensor(g.copy()), torch.tensor(g.copy())
    extra = nn.Parameter(np.ones(2))  # no gradient: skipped
    total = nn.utils.clip_grad_norm_(ours + [extra], max_norm, norm_type)
    expect = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type)
    assert isinstance(total, Tensor) and total.shape == () and total.item() == pytest.approx(expect.item(), rel=1e-12)
    for p, q in zip(ours, theirs):
        np.testing.assert_allclose(p.grad.data, q.grad.numpy(), rtol=1e-12)


@needs_torch
def test_clip_grad_value_matches_torch():
    ours = [Tensor(np.zeros_like(g), requires_grad=True) for g in _grads(1)]
    theirs = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in _grads(1)]
    for p, q, g in zip(ours, theirs, _grads(1)):
        p.grad, q.grad = Tensor(g.copy()), torch.tensor(g.copy())
    assert nn.utils.clip_grad_value_(iter(ours), 0.5) is None
    torch.nn.utils.clip_grad_value_(theirs, 0.5)
    for p, q in zip(ours, theirs):
        np.testing.assert_array_equal(p.grad.data, q.grad.numpy())


def test_clip_grad_norm_edge_cases():
    p = Tensor(np.zeros(2, np.float32), requires_grad=True)
    assert nn.utils.clip_grad_norm_([p], 1.0).item() == 0.0  # no gradients at all
    p.grad = Tensor(np.array([3.0, 4.0], np.float32))
    data = p.grad.data
    assert nn.utils.clip_grad_norm_(p, 1.0).dtype == np.float32  # a single Tensor works too
    assert p.grad.data is data and np.linalg.norm(data) == pytest.approx(1.0, rel=1e-5)  # scaled in place
    p.grad = Tensor(np.array([np.inf, 1.0], np.float32))
    with pytest.raises(RuntimeError, match="non-finite"):
        nn.utils.clip_grad_norm_([p], 1.0, error_if_nonfinite=True)
