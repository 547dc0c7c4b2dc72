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
    assert repr(result) == "<All keys matched successfully>"  # as torch prints it
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


# ----------------------------------------------------------------------------- buffers and state


class WithStats(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(2, 2)
        self.bn = nn.BatchNorm1d(2)
        self.register_buffer("steps", Tensor(np.array(0, dtype=np.int64)))
        self.register_buffer("scratch", Tensor(np.zeros(2, np.float32)), persistent=False)
        self.register_buffer("nothing", None)


def test_buffers_are_registered_and_saved_like_torchs():
    m = WithStats()
    assert [n for n, _ in m.named_buffers()] == ["steps", "scratch", "bn.running_mean", "bn.running_var",
                                                 "bn.num_batches_tracked"]
    assert [n for n, _ in m.named_buffers(prefix="net", recurse=False)] == ["net.steps", "net.scratch"]
    assert len(list(m.buffers())) == 5 and m.nothing is None
    assert list(m.state_dict()) == ["steps", "lin.weight", "lin.bias", "bn.weight", "bn.bias", "bn.running_mean",
                                    "bn.running_var", "bn.num_batches_tracked"]  # own first; scratch not persistent
    m.steps = Tensor(np.array(5, dtype=np.int64))  # assigning a Tensor to a buffer name replaces the buffer
    assert m.state_dict()["steps"].item() == 5
    with pytest.raises(TypeError, match="as buffer 'steps'"):
        m.steps = 3
    with pytest.raises(TypeError, match="as parameter 'weight'"):
        m.lin.weight = Tensor(np.ones((2, 2)))  # a plain Tensor would silently stop being trained
    with pytest.raises(KeyError, match="already exists"):
        m.register_buffer("lin", Tensor(np.ones(1)))
    with pytest.raises(KeyError, match="be empty or contain"):
        m.register_buffer("a.b", Tensor(np.ones(1)))
    del m.steps
    assert "steps" not in m.state_dict()


@needs_torch
def test_named_parameters_prefix_recurse_and_duplicates_as_torch():
    ours = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
    ours.append(ours[0])
    theirs = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU())
    theirs.append(theirs[0])
    for kw in (dict(), dict(prefix="m"), dict(recurse=False), dict(remove_duplicate=False)):
        assert [n for n, _ in ours.named_parameters(**kw)] == [n for n, _ in theirs.named_parameters(**kw)]
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in theirs.named_modules()]
    assert list(ours.state_dict()) == list(theirs.state_dict())  # a shared module under each of its names


def test_load_state_dict_is_all_or_nothing_and_lists_every_problem():
    m = WithStats()
    before = {k: v.data.copy() for k, v in m.state_dict().items()}
    bad = {k: v.data + 1 for k, v in m.state_dict().items()}
    bad["lin.bias"] = np.zeros(3)  # wrong shape, after lin.weight in the order of writing
    bad["bn.num_batches_tracked"] = np.array(2.5)  # a float into an int64 buffer
    bad["lin.weight"] = np.array([["a", "b"], ["c", "d"]])  # not numeric
    del bad["steps"]
    bad["extra"] = np.ones(1)
    with pytest.raises(nn.module.StateDictError) as e:
        m.load_state_dict(bad)
    msg = str(e.value)
    assert isinstance(e.value, RuntimeError) and isinstance(e.value, ValueError)
    for part in ['Unexpected key(s) in state_dict: "extra"', 'Missing key(s) in state_dict: "steps"',
                 "size mismatch for lin.bias", "dtype mismatch for bn.num_batches_tracked", "dtype mismatch for "
                 "lin.weight", "nothing was loaded"]:
        assert part in msg
    assert all(np.array_equal(v.data, before[k]) for k, v in m.state_dict().items())  # nothing written
    with pytest.raises(ValueError, match="size mismatch for lin.bias"):
        m.load_state_dict(bad, strict=False)  # shapes are checked even when not strict, as torch
    good = {k: v.data + 1 for k, v in m.state_dict().items() if k != "steps"}
    good["extra"] = np.ones(1)
    result = m.load_state_dict(good, strict=False)
    assert result.missing_keys == ["steps"] and result.unexpected_keys == ["extra"]
    np.testing.assert_array_equal(m.lin.weight.data, before["lin.weight"] + 1)
    assert m.bn.num_batches_tracked.dtype == np.int64


def test_load_state_dict_casts_floats_and_marks_tensors_changed(monkeypatch):
    bumped = []
    monkeypatch.setattr(Tensor, "_bump_version", lambda self: bumped.append(self), raising=False)
    lin = nn.Linear(2, 1)
    lin.load_state_dict({"weight": np.array([[1.0, 2.0]]), "bias": Tensor(np.array([3.0]))})  # float64 in
    assert lin.weight.dtype == np.float32 and lin.weight.data.tolist() == [[1.0, 2.0]]
    assert any(t is lin.weight for t in bumped) and any(t is lin.bias for t in bumped)
    with pytest.raises(TypeError, match="dict-like"):
        lin.load_state_dict([("weight", 1)])


@needs_torch
def test_state_dict_loads_into_torch_and_back():
    ours = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(8, 3))
    theirs = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2), torch.nn.Flatten(),
                                 torch.nn.Linear(8, 3))
    ours(np.random.default_rng(0).standard_normal((4, 1, 4, 4)).astype(np.float32))  # moves running stats
    theirs.load_state_dict({k: torch.tensor(v.data) for k, v in ours.state_dict().items()})
    back = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(8, 3))
    back.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    for (k, a), (_, b) in zip(ours.state_dict().items(), back.state_dict().items()):
        np.testing.assert_array_equal(a.data, b.data, err_msg=k)


# ----------------------------------------------------------------------------- dtype, device, apply


def test_to_dtype_and_device_keep_the_same_parameters():
    m = WithStats()
    w = m.lin.weight
    m.lin.weight.grad = Tensor(np.ones((2, 2), np.float32))
    assert m.to(np.float64) is m and m.lin.weight is w
    assert w.dtype == w.grad.dtype == m.bn.running_mean.dtype == m.scratch.dtype == np.float64
    assert m.steps.dtype == np.int64  # integer buffers are left alone, as torch
    assert m.float().lin.weight.dtype == np.float32 and m.double().bn.weight.dtype == np.float64
    assert m.to("cpu") is m and m.to("cpu", np.float32).lin.bias.dtype == np.float32 and m.cpu() is m
    assert m.to(device="cpu:0", dtype="float64").lin.bias.dtype == np.float64
    assert m.to(Tensor(np.ones(1, np.float32))).lin.bias.dtype == np.float32

    class Device:
        type = "cpu"
    assert m.to(Device()) is m
    with pytest.raises(ValueError, match="'cuda' is not available.*CPU only"):
        m.to("cuda")
    with pytest.raises(ValueError, match="unknown device 'gpu0'"):
        m.to(device="gpu0")
    with pytest.raises(TypeError, match="floating point dtypes"):
        m.to(np.int32)
    with pytest.raises(ValueError, match="'mps' is not available"):
        nn.Linear(2, 2, device="mps")
    assert nn.Conv2d(1, 1, 1, dtype=np.float64).weight.dtype == np.float64


def test_apply_requires_grad_and_train_mode():
    m = WithStats()
    seen = []
    assert m.apply(lambda mod: seen.append(type(mod).__name__)) is m
    assert seen == ["Linear", "BatchNorm1d", "WithStats"]  # children first
    m.apply(lambda mod: nn.init.zeros_(mod.weight) if isinstance(mod, nn.Linear) else None)
    assert not m.lin.weight.data.any()
    assert m.requires_grad_(False) is m and not any(p.requires_grad for p in m.parameters())
    m.requires_grad_()
    assert all(p.requires_grad for p in m.parameters())
    assert not m.eval().bn.training and m.train().bn.training
    with pytest.raises(ValueError, match="boolean"):
        m.train("no")


def test_init_marks_tensors_changed(monkeypatch):
    bumped = []
    monkeypatch.setattr(Tensor, "_bump_version", lambda self: bumped.append(self), raising=False)
    w = nn.Parameter(np.zeros((3, 3), np.float32))
    nn.init.kaiming_uniform_(w)
    nn.init.constant_(w, 2.0)
    assert len(bumped) == 2 and (w.data == 2).all()


# ----------------------------------------------------------------------------- containers


def test_sequential_from_ordered_dict_and_list_methods():
    from collections import OrderedDict
    seq = nn.Sequential(OrderedDict([("conv", nn.Conv2d(1, 2, 3)), ("act", nn.ReLU())]))
    assert [n for n, _ in seq.named_parameters()] == ["conv.weight", "conv.bias"] and seq.conv is seq[0]
    assert isinstance(seq[-1], nn.ReLU) and list(seq[:1]._modules) == ["conv"]
    seq.append(nn.Flatten())
    seq.insert(0, nn.Identity())
    assert [type(m).__name__ for m in seq] == ["Identity", "Conv2d", "ReLU", "Flatten"] and len(seq) == 4
    assert list(seq._modules) == ["0", "1", "2", "3"]  # renumbered, as torch's insert
    seq[0] = nn.Sigmoid()
    del seq[0]
    assert [type(m).__name__ for m in seq] == ["Conv2d", "ReLU", "Flatten"]
    assert seq(np.ones((1, 1, 4, 4), np.float32)).shape == (1, 8)
    with pytest.raises(IndexError, match="index 5 is out of range"):
        seq[5]
    with pytest.raises(TypeError, match="not a Module"):
        seq.append(len)


def test_module_list_and_dict_register_their_modules():
    layers = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
    layers += [nn.Linear(2, 1)]
    assert len(layers) == 4 and len(list(layers.parameters())) == 8 and isinstance(layers[1:], nn.ModuleList)
    assert [n for n, _ in layers.named_parameters()][-1] == "3.bias"
    layers.insert(1, nn.ReLU())
    del layers[0]
    assert isinstance(layers[0], nn.ReLU) and len(layers + layers) == 8
    with pytest.raises(NotImplementedError):
        layers(np.ones(2))
    heads = nn.ModuleDict({"a": nn.Linear(2, 3), "b": nn.Linear(2, 1)})
    heads["c"] = nn.Tanh()
    assert list(heads) == ["a", "b", "c"] and "a" in heads and len(heads) == 3
    assert [n for n, _ in heads.named_parameters()] == ["a.weight", "a.bias", "b.weight", "b.bias"]
    assert isinstance(heads.pop("c"), nn.Tanh) and list(heads.keys()) == ["a", "b"]
    heads.update([("d", nn.ReLU())])
    assert [k for k, _ in heads.items()] == ["a", "b", "d"]
    with pytest.raises(TypeError, match="not a Module"):
        heads["e"] = 3
    with pytest.raises(KeyError, match="already exists"):
        heads["update"] = nn.ReLU()  # would shadow a method, as torch refuses


def test_nn_package_paths():
    import tinygrad_cnn.nn.functional as nnF
    from tinygrad_cnn import functional
    from tinygrad_cnn.nn.batchnorm import BatchNorm2d
    from tinygrad_cnn.nn.module import Module, Parameter
    from tinygrad_cnn.nn.utils import clip_grad_norm_
    assert nnF is functional and nn.functional is functional and nn.BatchNorm2d is BatchNorm2d
    assert nn.Module is Module and nn.Parameter is Parameter and nn.utils.clip_grad_norm_ is clip_grad_norm_
