"""BatchNorm1d/2d and F.batch_norm: against PyTorch in train and eval (values, gradients, running
statistics), gradcheck in float64 through the batch statistics, and bad input."""
import numpy as np
import pytest
from helpers import arrays, leaf, needs_torch, torch
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_cnn.functional as F
from tinygrad_cnn import Tensor, gradcheck, gradgradcheck, nn


def _torch_twin(ours, cls):
    theirs = cls(ours.num_features, eps=ours.eps, momentum=ours.momentum, affine=ours.affine,
                 track_running_stats=ours.track_running_stats)
    if ours.affine:
        with torch.no_grad():
            theirs.weight.copy_(torch.tensor(ours.weight.data))
            theirs.bias.copy_(torch.tensor(ours.bias.data))
    return theirs


def _compare_step(ours, theirs, x, g):
    a, b = Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    ya, yb = ours(a), theirs(b)
    np.testing.assert_allclose(ya.data, yb.detach().numpy(), rtol=1e-5, atol=2e-5)
    (ya * Tensor(g)).sum().backward()
    (yb * torch.tensor(g)).sum().backward()
    np.testing.assert_allclose(a.grad.data, b.grad.numpy(), rtol=1e-4, atol=2e-5)
    if ours.affine:
        np.testing.assert_allclose(ours.weight.grad.data, theirs.weight.grad.numpy(), rtol=1e-4, atol=2e-5)
        np.testing.assert_allclose(ours.bias.grad.data, theirs.bias.grad.numpy(), rtol=1e-4, atol=2e-5)
    for (name, buf), (tname, tbuf) in zip(ours.named_buffers(), theirs.named_buffers()):
        assert name == tname
        np.testing.assert_allclose(buf.data, tbuf.numpy(), rtol=1e-5, atol=1e-6)


@needs_torch
@pytest.mark.parametrize("cls,shape", [("BatchNorm2d", (4, 3, 5, 5)), ("BatchNorm1d", (6, 3)),
                                       ("BatchNorm1d", (4, 3, 7))])
@pytest.mark.parametrize("kw", [dict(), dict(momentum=None), dict(momentum=0.3, eps=1e-3, affine=False),
                                dict(track_running_stats=False)], ids=str)
def test_matches_torch_in_train_and_eval(cls, shape, kw):
    rng = np.random.default_rng(0)
    ours = getattr(nn, cls)(3, **kw)
    if ours.affine:
        ours.weight.data[:] = rng.uniform(0.5, 2, 3)
        ours.bias.data[:] = rng.normal(size=3)
    theirs = _torch_twin(ours, getattr(torch.nn, cls))
    for step in range(3):  # three training batches move the running statistics
        x = (rng.standard_normal(shape) * (step + 1) + step).astype(np.float32)
        _compare_step(ours, theirs, x, rng.standard_normal(shape).astype(np.float32))
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.eval(), theirs.eval()
    ours.zero_grad(), theirs.zero_grad()
    _compare_step(ours, theirs, rng.standard_normal(shape).astype(np.float32),
                  rng.standard_normal(shape).astype(np.float32))
    if ours.track_running_stats:
        assert int(ours.num_batches_tracked.data) == 3


def test_cumulative_average_with_momentum_none():
    bn = nn.BatchNorm1d(2, momentum=None)
    xs = [np.array([[0.0, 1.0], [2.0, 5.0]], np.float32) + k for k in range(4)]
    for x in xs:
        bn(x)
    np.testing.assert_allclose(bn.running_mean.data, np.mean([x.mean(0) for x in xs], axis=0), rtol=1e-6)
    np.testing.assert_allclose(bn.running_var.data, np.mean([x.var(0, ddof=1) for x in xs], axis=0), rtol=1e-6)


def test_eval_output_is_the_affine_map_of_the_running_statistics():
    bn = nn.BatchNorm2d(2, eps=0.0).eval()
    bn.running_mean.data[:] = [1.0, -1.0]
    bn.running_var.data[:] = [4.0, 0.25]
    bn.weight.data[:] = [2.0, 3.0]
    x = np.ones((1, 2, 1, 1), np.float32)
    np.testing.assert_allclose(bn(x).data.ravel(), [0.0 * 2 + 0.0, (1 + 1) / 0.5 * 3])
    assert bn.running_mean.data.tolist() == [1.0, -1.0]  # eval does not touch the statistics


@st.composite
def _batch(draw):
    n, c, h = draw(st.integers(2, 4)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    return draw(arrays((n, c, h), -3, 3)), draw(arrays((c,), 0.5, 2)), draw(arrays((c,), -1, 1))


@given(_batch())
def test_gradcheck_through_the_batch_statistics(batch):
    x, w, b = batch
    x = x + np.linspace(0, 1, x.size).reshape(x.shape)  # every channel varies: var > 0
    assert gradcheck(lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True, eps=1e-3),
                     leaf(x), leaf(w), leaf(b))


def test_gradgradcheck_in_train_mode():
    x = np.random.default_rng(1).standard_normal((3, 2, 2))
    assert gradgradcheck(lambda x, w: F.batch_norm(x, None, None, w, None, training=True), leaf(x),
                         leaf(np.array([1.5, 0.5])))


def test_module_in_float64_gradchecks_and_keeps_buffers_as_tensors():
    bn = nn.BatchNorm1d(3).double()
    assert bn.weight.dtype == bn.running_mean.dtype == np.float64 and bn.num_batches_tracked.dtype == np.int64
    x = leaf(np.random.default_rng(2).standard_normal((5, 3)))
    assert gradcheck(lambda x: bn(x), x)


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match="expected 4D input, got 2D"):
        nn.BatchNorm2d(3)(np.ones((2, 3), np.float32))
    with pytest.raises(ValueError, match="expected 2D or 3D input"):
        nn.BatchNorm1d(3)(np.ones((2, 3, 1, 1), np.float32))
    with pytest.raises(ValueError, match=r"BatchNorm1d\(3\): input of shape \(2, 4\) has 4 channels"):
        nn.BatchNorm1d(3)(np.ones((2, 4), np.float32))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        nn.BatchNorm1d(3)(np.ones((1, 3), np.float32))
    nn.BatchNorm1d(3).eval()(np.ones((1, 3), np.float32))  # fine in eval mode
    with pytest.raises(ValueError, match="running_mean must have shape"):
        F.batch_norm(Tensor(np.ones((2, 3))), Tensor(np.zeros(2)), Tensor(np.ones(3)))
    with pytest.raises(ValueError, match="needed when not training"):
        F.batch_norm(Tensor(np.ones((2, 3))), None, None)


def test_reset_and_repr():
    bn = nn.BatchNorm2d(2, momentum=0.5)
    bn(np.random.default_rng(0).standard_normal((3, 2, 2, 2)).astype(np.float32))
    bn.weight.data[:] = 7
    bn.reset_parameters()
    assert bn.running_mean.data.tolist() == [0, 0] and bn.running_var.data.tolist() == [1, 1]
    assert int(bn.num_batches_tracked.data) == 0 and bn.weight.data.tolist() == [1, 1]
    assert repr(bn) == "BatchNorm2d(2, eps=1e-05, momentum=0.5, affine=True, track_running_stats=True)"
