"""nn: Module registration, state_dict, train/eval, layers and init."""
import math

import numpy as np
import pytest
from helpers import needs_torch, torch

from tinygrad_cnn import Tensor, manual_seed, nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)
        self.scale = nn.Parameter(np.ones(1, dtype=np.float32))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(2 * 4 * 4, 3))
        self.drop = nn.Dropout(0.5)

    def forward(self, x):
        return self.head(self.drop(self.conv(x).relu() * self.scale))


def test_registration_order_and_dotted_names():
    net = Net()
    names = [n for n, _ in net.named_parameters()]
    assert names == ["scale", "conv.weight", "conv.bias", "head.1.weight", "head.1.bias"]  # own first, as PyTorch
    assert [type(m).__name__ for m in net.children()] == ["Conv2d", "Sequential", "Dropout"]
    assert [n for n, _ in net.named_modules()] == ["", "conv", "head", "head.0", "head.1", "drop"]
    assert len(list(net.parameters())) == 5


def test_shared_parameter_is_listed_once():
    lin = nn.Linear(2, 2)
    seq = nn.Sequential(lin, nn.ReLU(), lin)
    assert len(list(seq.parameters())) == 2


def test_state_dict_round_trip():
    manual_seed(0)
    a, b = Net(), Net()
    sd = a.state_dict()
    assert list(sd) == [n for n, _ in a.named_parameters()]
    result = b.load_state_dict(sd)
    assert result.missing_keys == [] and result.unexpected_keys == []
    for (_, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        np.testing.assert_array_equal(p.data, q.data)
    assert all(type(v) is Tensor and not v.requires_grad for v in sd.values())  # detached Tensors, as torch
    sd["conv.weight"].data[...] = 7  # a copy: the model is untouched
    assert not (a.conv.weight.data == 7).any()


def test_load_state_dict_reports_missing_and_unexpected_keys():
    net = Net()
    sd = net.state_dict()
    del sd["scale"]
    sd["extra"] = np.zeros(1)
    with pytest.raises(ValueError, match=r'Unexpected key\(s\) in state_dict: "extra".\n\tMissing key\(s\) '
                                         r'in state_dict: "scale"'):
        net.load_state_dict(sd)
    result = net.load_state_dict(sd, strict=False)
    assert result.missing_keys == ["scale"] and result.unexpected_keys == ["extra"]
    bad = net.state_dict()
    bad["conv.bias"] = np.zeros(5)
    with pytest.raises(RuntimeError, match=r"size mismatch for conv.bias: copying a param with shape \(5,\)"):
        net.load_state_dict(bad)


def test_train_eval_and_dropout():
    net = Net()
    x = np.ones((2, 1, 6, 6), dtype=np.float32)
    net.eval()
    assert not net.drop.training and not net.head.training
    np.testing.assert_array_equal(net(x).data, net(x).data)
    net.train()
    assert net.drop.training


def test_zero_grad_and_call_runs_forward():
    net = Net()
    out = net(np.ones((2, 1, 6, 6), dtype=np.float32))
    assert out.shape == (2, 3) and out.dtype == np.float32
    out.sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_repr_is_readable():
    r = repr(Net())
    assert "(conv): Conv2d(1, 2, kernel_size=(3, 3)" in r and "(1): Linear(in_features=32, out_features=3" in r


def test_module_without_super_init_is_a_clear_error():
    class Bad(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(np.ones(1))

    with pytest.raises(AttributeError, match="super"):
        Bad()


def test_sequential_indexing():
    seq = nn.Sequential(nn.ReLU(), nn.Flatten(), nn.ReLU())
    assert len(seq) == 3 and isinstance(seq[1], nn.Flatten) and len(seq[1:]) == 2
    with pytest.raises(TypeError):
        nn.Sequential(nn.ReLU(), lambda x: x)


def test_layers_shapes():
    x = Tensor(np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32))
    assert nn.Conv2d(3, 6, 3, stride=2, padding=1)(x).shape == (2, 6, 4, 4)
    assert nn.Conv2d(3, 6, 3, groups=3, bias=False)(x).shape == (2, 6, 6, 6)
    assert nn.MaxPool2d(2)(x).shape == (2, 3, 4, 4)
    assert nn.AvgPool2d(3, stride=1, padding=1)(x).shape == (2, 3, 8, 8)
    assert nn.Flatten()(x).shape == (2, 192)
    assert nn.Linear(8, 5)(x).shape == (2, 3, 8, 5)
    with pytest.raises(ValueError, match="groups"):
        nn.Conv2d(3, 4, 3, groups=2)


@pytest.mark.parametrize("fn,expected_std", [
    (lambda w: nn.init.normal_(w, std=0.05), 0.05),
    (lambda w: nn.init.kaiming_normal_(w, nonlinearity="relu"), math.sqrt(2 / 400)),
    (lambda w: nn.init.xavier_normal_(w), math.sqrt(2 / (400 + 100))),
    (lambda w: nn.init.kaiming_uniform_(w, nonlinearity="relu"), math.sqrt(2 / 400)),
    (lambda w: nn.init.xavier_uniform_(w), math.sqrt(2 / (400 + 100))),
])
def test_init_stds(fn, expected_std):
    w = nn.Parameter(np.zeros((100, 400), dtype=np.float32))
    fn(w)
    assert w.dtype == np.float32
    assert abs(w.data.std() / expected_std - 1) < 0.03


def test_init_fans_of_conv_weights():
    w = nn.Parameter(np.zeros((30, 3, 5, 5), dtype=np.float32))
    assert nn.init._calculate_fan_in_and_fan_out(w) == (75, 750)
    with pytest.raises(ValueError):
        nn.init._calculate_fan_in_and_fan_out(nn.Parameter(np.zeros(3)))


@needs_torch
def test_layers_match_pytorch():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    conv, tconv = nn.Conv2d(3, 4, 3, padding=1), torch.nn.Conv2d(3, 4, 3, padding=1)
    lin, tlin = nn.Linear(4 * 8 * 8, 5), torch.nn.Linear(4 * 8 * 8, 5)
    with torch.no_grad():
        tconv.weight.copy_(torch.tensor(conv.weight.data))
        tconv.bias.copy_(torch.tensor(conv.bias.data))
        tlin.weight.copy_(torch.tensor(lin.weight.data))
        tlin.bias.copy_(torch.tensor(lin.bias.data))
    ours = lin(nn.Flatten()(nn.MaxPool2d(2, 1, 1)(conv(x)).relu()[:, :, :8, :8]))
    theirs = tlin(torch.nn.Flatten()(torch.nn.MaxPool2d(2, 1, 1)(tconv(torch.tensor(x))).relu()[:, :, :8, :8]))
    np.testing.assert_allclose(ours.data, theirs.detach().numpy(), rtol=1e-4, atol=1e-5)
    ours.sum().backward()
    theirs.sum().backward()
    np.testing.assert_allclose(conv.weight.grad.data, tconv.weight.grad.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(lin.bias.grad.data, tlin.bias.grad.numpy(), rtol=1e-5)
    assert set(dict(lin.named_parameters())) == set(dict(tlin.named_parameters()))
