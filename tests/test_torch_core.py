"""Values and gradients of the Tensor ops against PyTorch (skipped when torch is absent)."""
import numpy as np
import pytest
from helpers import needs_torch, torch

from tinygrad_cnn import Tensor, cat, pad, stack

pytestmark = needs_torch

CASES = {
    "arith": (lambda x, y: ((x + y) * x - y / (x * x + 1)) ** 2, [(3, 4), (4,)]),
    "rpow": (lambda x, y: 2.0 ** x - 1.5 / (y * y + 1), [(2, 3), (2, 1)]),
    "matmul": (lambda x, y: x @ y, [(2, 3, 4), (4, 5)]),
    "matvec": (lambda x, y: x @ y, [(3, 4), (4,)]),
    "unary": (lambda x, y: x.exp() + (y * y + 1).log() + (x * x + 1).sqrt() + x.tanh() + y.sigmoid()
              + x.relu() + y.abs(), [(3, 4), (3, 4)]),
    "reduce": (lambda x, y: x.sum(dim=1, keepdim=True) * y.mean(dim=0) + x.amax(dim=(0, 1)), [(3, 4), (2, 4)]),
    "shape": (lambda x, y: x.permute(2, 0, 1).reshape(4, -1).transpose(0, 1).flatten() * y.unsqueeze(0).expand(6, 1, 4)
              .squeeze().flatten(), [(2, 3, 4), (1, 4)]),
    "index": (lambda x, y: x[1:, ::2] * y[None, 0, [0, 0]], [(3, 4), (2, 2)]),
}


def test_cat_and_stack_match_pytorch(rng):
    a, b = rng.standard_normal((2, 3)), rng.standard_normal((2, 1))
    x, y = Tensor(a, requires_grad=True), Tensor(b, requires_grad=True)
    tx, ty = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    out = (cat([x, y * 2], dim=1) * stack([x, x], 1).sum(1).amax()).sum()
    ref = (torch.cat([tx, ty * 2], dim=1) * torch.stack([tx, tx], 1).sum(1).amax()).sum()
    np.testing.assert_allclose(out.data, ref.detach().numpy())
    out.backward()
    ref.backward()
    np.testing.assert_allclose(x.grad.data, tx.grad.numpy())
    np.testing.assert_allclose(y.grad.data, ty.grad.numpy())


@pytest.mark.parametrize("n", [7, 100_003])  # small arrays, and large ones (compared against a zero row)
def test_relu_at_nan_inf_and_zero_matches_pytorch(n):
    x = np.resize(np.array([np.nan, -np.inf, np.inf, 0.0, -0.0, -2.0, 3.0], dtype=np.float32), n)
    g = np.arange(1, n + 1, dtype=np.float32)
    t, tx = Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    y, ty = t.relu(), torch.relu(tx)
    np.testing.assert_array_equal(y.data, ty.detach().numpy())
    y.backward(g)
    ty.backward(torch.tensor(g))
    np.testing.assert_array_equal(t.grad.data, tx.grad.numpy())


@pytest.mark.parametrize("case", CASES)
def test_values_and_gradients_match_pytorch(case, rng):
    fn, shapes = CASES[case]
    arrays = [rng.standard_normal(s) + 0.05 for s in shapes]
    ours = [Tensor(a, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    out, ref = fn(*ours), fn(*theirs)
    np.testing.assert_allclose(out.data, ref.detach().numpy(), rtol=1e-10, atol=1e-12)
    w = rng.standard_normal(out.shape)
    (out * Tensor(w)).sum().backward()
    (ref * torch.tensor(w)).sum().backward()
    for o, t in zip(ours, theirs):
        np.testing.assert_allclose(o.grad.data, t.grad.numpy(), rtol=1e-9, atol=1e-12)


def test_pad_matches_pytorch(rng):
    a = rng.standard_normal((2, 3, 4))
    out = pad(Tensor(a), (1, 2, 0, 1), value=0.5)
    ref = torch.nn.functional.pad(torch.tensor(a), (1, 2, 0, 1), value=0.5)
    np.testing.assert_array_equal(out.data, ref.numpy())


def test_second_derivative_matches_pytorch(rng):
    from tinygrad_cnn import grad
    a = rng.standard_normal((3,))
    x, tx = Tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    (g,) = grad((x.tanh() * x.exp()).sum(), x, create_graph=True)
    (tg,) = torch.autograd.grad((tx.tanh() * tx.exp()).sum(), tx, create_graph=True)
    (g * g).sum().backward()
    (tg * tg).sum().backward()
    np.testing.assert_allclose(x.grad.data, tx.grad.numpy(), rtol=1e-10)


def test_float32_defaults_match_pytorch():
    assert Tensor([1.0]).dtype == np.dtype(str(torch.tensor([1.0]).dtype).replace("torch.", ""))
