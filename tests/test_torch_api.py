"""`import tinygrad_cnn as torch`: module paths, tensor factories, the torch.* functions,
devices and save/load, each against PyTorch where it imports."""
import io
import pickle
import subprocess
import sys

import numpy as np
import pytest
from helpers import needs_torch, torch

import tinygrad_cnn as tc
from tinygrad_cnn import Tensor


def test_module_paths_resolve_after_one_import():
    code = ("import tinygrad_cnn as torch\n"
            "names = [torch.nn.Conv2d, torch.nn.functional.conv2d, torch.optim.Adadelta, torch.optim.lr_scheduler.StepLR,"
            " torch.utils.data.DataLoader, torch.flatten, torch.cat, torch.no_grad, torch.manual_seed, torch.save,"
            " torch.load, torch.device, torch.accelerator.is_available, torch.cuda.is_available,"
            " torch.backends.mps.is_available, torch.tensor, torch.float32, torch.long]\n"
            "import tinygrad_cnn.nn.functional as F\n"
            "assert F is torch.nn.functional and not torch.accelerator.is_available()\n"
            "assert torch.accelerator.current_accelerator() is None and not torch.cuda.is_available()\n"
            "print(len(names))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "18"


@needs_torch
@pytest.mark.parametrize("make", [
    lambda m: m.tensor([1, 2]), lambda m: m.tensor([1.5, 2]), lambda m: m.tensor(3.0), lambda m: m.tensor([True]),
    lambda m: m.tensor(np.array([1.0, 2.0])), lambda m: m.zeros(2, 3), lambda m: m.ones((2, 3), dtype=m.int64),
    lambda m: m.full((2,), 7), lambda m: m.full((2,), 7.5), lambda m: m.full((2,), True), lambda m: m.eye(3),
    lambda m: m.eye(2, 3), lambda m: m.arange(5), lambda m: m.arange(1, 4, 0.5), lambda m: m.arange(0, 10, 3),
    lambda m: m.linspace(0, 1, 5), lambda m: m.zeros_like(m.ones(2, dtype=m.float64)),
    lambda m: m.ones_like(m.tensor([1, 2])), lambda m: m.full_like(m.zeros(3), 2.5),
    lambda m: m.from_numpy(np.arange(3, dtype=np.int32)), lambda m: m.as_tensor([1, 2]),
], ids=range(21))
def test_factories_match_pytorch(make):
    ours, theirs = make(tc), make(torch)
    assert ours.shape == tuple(theirs.shape)
    assert ours.dtype == np.dtype(str(theirs.dtype).replace("torch.", ""))
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


def test_random_factories_use_the_framework_generator():
    tc.manual_seed(3)
    a = (tc.rand(2, 3), tc.randn(4), tc.randint(0, 10, (5,)), tc.randperm(6), tc.rand_like(tc.zeros(2)))
    tc.manual_seed(3)
    b = (tc.rand(2, 3), tc.randn(4), tc.randint(0, 10, (5,)), tc.randperm(6), tc.rand_like(tc.zeros(2)))
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.numpy(), y.numpy())
    assert a[0].dtype == np.float32 and a[2].dtype == np.int64 and sorted(a[3].tolist()) == list(range(6))
    assert 0 <= a[0].numpy().min() and a[0].numpy().max() < 1
    w = tc.randn(3, requires_grad=True)
    assert w.requires_grad and w.is_leaf


def test_from_numpy_shares_memory_and_tensor_copies():
    arr = np.zeros(3, np.float32)
    shared, copied = tc.from_numpy(arr), tc.tensor(arr)
    arr[0] = 5
    assert shared[0].item() == 5 and copied[0].item() == 0
    with pytest.raises(TypeError):
        tc.from_numpy([1, 2])


@needs_torch
@pytest.mark.parametrize("call", [
    lambda m, x: m.flatten(x, 1), lambda m, x: m.max(x, 1).values, lambda m, x: m.max(x, 1).indices,
    lambda m, x: m.max(x), lambda m, x: m.sum(x, dim=0), lambda m, x: m.mean(x, 1, keepdim=True),
    lambda m, x: m.exp(x), lambda m, x: m.clamp(x, -0.5, 0.5), lambda m, x: m.maximum(x, m.zeros_like(x)),
    lambda m, x: m.argmax(x, dim=1), lambda m, x: m.softmax(x, 1), lambda m, x: m.transpose(x, 0, 1),
    lambda m, x: m.matmul(x, x.t()), lambda m, x: m.std(x, 1), lambda m, x: m.var(x, 0, unbiased=False),
    lambda m, x: x.view_as(m.zeros(3, 2)), lambda m, x: x.eq(x.clone()), lambda m, x: x.clone().long(),
    lambda m, x: x.double().float(), lambda m, x: x.neg().abs(), lambda m, x: m.cat([x, x], dim=1),
    lambda m, x: m.stack([x, x]), lambda m, x: x.size(), lambda m, x: x.size(1), lambda m, x: x.numel(),
    lambda m, x: x.dim(), lambda m, x: x.clip(min=0.0), lambda m, x: m.minimum(x, x * 2),
], ids=range(28))
def test_torch_functions_and_methods_match_pytorch(call):
    data = np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)
    ours, theirs = call(tc, tc.tensor(data)), call(torch, torch.tensor(data))
    if isinstance(theirs, (int, tuple, torch.Size)):
        assert ours == tuple(theirs) if isinstance(theirs, tuple) else ours == theirs
        return
    assert ours.dtype == np.dtype(str(theirs.dtype).replace("torch.", ""))
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-5, atol=1e-6)


def test_devices():
    x = tc.ones(2)
    assert x.to("cpu") is x and x.cpu() is x and x.to(tc.device("cpu"), tc.float64).dtype == np.float64
    assert str(x.device) == "cpu" and tc.device("cpu") == "cpu"
    assert tc.zeros(2, device="cpu").device == tc.device("cpu")
    for bad in ("cuda", "cuda:0", "mps"):
        with pytest.raises(ValueError, match="not available"):
            x.to(bad)
        with pytest.raises(ValueError, match="not available"):
            tc.nn.Linear(2, 2).to(bad)
    with pytest.raises(ValueError, match="unknown device"):
        x.to("gpu7")


def test_save_and_load_state_dicts_tensors_and_optimizer_state(tmp_path):
    model = tc.nn.Sequential(tc.nn.Linear(3, 4), tc.nn.ReLU(), tc.nn.Linear(4, 2))
    opt = tc.optim.Adam(model.parameters(), lr=0.01)
    model(tc.randn(5, 3)).sum().backward()
    opt.step()
    path = tmp_path / "model.pt"
    tc.save({"model": model.state_dict(), "opt": opt.state_dict(), "epoch": 3, "x": tc.arange(4)}, path)
    back = tc.load(path)
    assert back["epoch"] == 3 and back["x"].tolist() == [0, 1, 2, 3] and back["x"].dtype == np.int64
    fresh = tc.nn.Sequential(tc.nn.Linear(3, 4), tc.nn.ReLU(), tc.nn.Linear(4, 2))
    fresh.load_state_dict(back["model"])
    for (k, a), (_, b) in zip(model.state_dict().items(), fresh.state_dict().items()):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    opt2 = tc.optim.Adam(fresh.parameters(), lr=0.5)
    opt2.load_state_dict(back["opt"])
    assert opt2.param_groups[0]["lr"] == 0.01 and opt2.param_groups[0]["betas"] == (0.9, 0.999)
    buf = io.BytesIO()
    tc.save(tc.tensor([1.5, 2.5], requires_grad=True), buf)
    buf.seek(0)
    t = tc.load(buf, map_location="cpu")
    assert t.tolist() == [1.5, 2.5] and t.requires_grad


def test_save_refuses_objects_and_load_refuses_pickles(tmp_path):
    with pytest.raises(TypeError, match="without pickle"):
        tc.save({"f": lambda: 1}, tmp_path / "bad.pt")
    assert not (tmp_path / "bad.pt").exists()
    evil = tmp_path / "evil.pt"
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    evil.write_bytes(pickle.dumps(Evil()))
    with pytest.raises(ValueError, match="pickle"):
        tc.load(evil)
    assert not marker.exists()
    with pytest.raises(ValueError, match="not available|unknown"):
        tc.load(evil, map_location="cuda")


@needs_torch
def test_a_pytorch_checkpoint_gets_a_clear_error(tmp_path):
    path = tmp_path / "torch.pt"
    torch.save(torch.nn.Linear(2, 2).state_dict(), path)
    with pytest.raises(ValueError, match="PyTorch checkpoint"):
        tc.load(path)


def test_load_of_save_params_npz_is_a_state_dict(tmp_path):
    from tinygrad_cnn.models import SimpleConvNet
    net = SimpleConvNet()
    net.save_params(tmp_path / "p.npz")
    sd = tc.load(tmp_path / "p.npz")
    assert list(sd) == ["W1", "b1", "W2", "b2", "W3", "b3"] and isinstance(sd["W1"], Tensor)
    SimpleConvNet().load_state_dict(sd)
