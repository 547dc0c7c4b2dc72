"""A PyTorch-style training script (after PyTorch's examples/mnist/main.py: Conv2d, BatchNorm2d,
Dropout, max_pool2d, log_softmax, nll_loss, Adadelta, StepLR, clip_grad_norm_, a Dataset and
DataLoader, model.to(device), torch.flatten, eq/view_as, torch.save/load of a state_dict) run twice from the same source: once with PyTorch's
imports, once with tinygrad_cnn's. Only the import lines differ; both must learn.

Synthetic data, a few epochs: the script runs in about a second.
"""
import numpy as np
import pytest
from helpers import needs_torch

TORCH_IMPORTS = """
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim
from torch.optim.lr_scheduler import StepLR
from torch.utils.data import DataLoader, Dataset
"""

TINYGRAD_IMPORTS = """
import tinygrad_cnn as torch
import tinygrad_cnn.nn as nn
import tinygrad_cnn.nn.functional as F
import tinygrad_cnn.optim as optim
from tinygrad_cnn.optim.lr_scheduler import StepLR
from tinygrad_cnn.utils.data import DataLoader, Dataset
"""

SCRIPT = """
class Blobs(Dataset):
    # 8x8 images with a bright 3x3 blob in the top-left (class 0) or bottom-right (class 1) quarter
    def __init__(self, n, seed):
        rng = np.random.default_rng(seed)
        self.labels = rng.integers(0, 2, n)
        self.images = rng.normal(0, 0.3, (n, 1, 8, 8)).astype(np.float32)
        for i, c in enumerate(self.labels):
            r, s = rng.integers(0, 2, 2) + 4 * c
            self.images[i, 0, r:r + 3, s:s + 3] += 1.0

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, idx):
        return self.images[idx], int(self.labels[idx])


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, 1)
        self.bn1 = nn.BatchNorm2d(4)
        self.dropout1 = nn.Dropout(0.25)
        self.fc1 = nn.Linear(4 * 3 * 3, 16)
        self.fc2 = nn.Linear(16, 2)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.max_pool2d(x, 2)
        x = self.dropout1(x)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = self.fc2(x)
        return F.log_softmax(x, dim=1)


def train(model, device, train_loader, optimizer, epoch):
    model.train()
    total = 0.0
    for batch_idx, (data, target) in enumerate(train_loader):
        data, target = data.to(device), target.to(device)
        optimizer.zero_grad()
        output = model(data)
        loss = F.nll_loss(output, target)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), max_norm=5.0)
        optimizer.step()
        total += loss.item()
    return total / len(train_loader)


def test(model, device, test_loader):
    model.eval()
    test_loss, correct = 0.0, 0
    with torch.no_grad():
        for data, target in test_loader:
            data, target = data.to(device), target.to(device)
            output = model(data)
            test_loss += F.nll_loss(output, target, reduction="sum").item()
            pred = output.argmax(dim=1, keepdim=True)
            correct += pred.eq(target.view_as(pred)).sum().item()
    return test_loss / len(test_loader.dataset), correct / len(test_loader.dataset)


torch.manual_seed(1)
device = torch.accelerator.current_accelerator() if torch.accelerator.is_available() else torch.device("cpu")
train_loader = DataLoader(Blobs(256, seed=0), batch_size=32, shuffle=True)
test_loader = DataLoader(Blobs(200, seed=1), batch_size=100)
model = Net().to(device)
optimizer = optim.Adadelta(model.parameters(), lr=1.0)
scheduler = StepLR(optimizer, step_size=1, gamma=0.7)
first_loss, _ = test(model, device, test_loader)
train_losses = []
for epoch in range(1, 5):
    train_losses.append(train(model, device, train_loader, optimizer, epoch))
    scheduler.step()
test_loss, accuracy = test(model, device, test_loader)
last_lr = scheduler.get_last_lr()[0]

torch.save(model.state_dict(), checkpoint)
copy = Net()
copy.load_state_dict(torch.load(checkpoint, weights_only=True))
copy.eval()
with torch.no_grad():
    batch = next(iter(test_loader))[0]
    same = float((copy(batch) - model(batch)).abs().max().item())
"""


def _run(imports: str, tmp_path) -> dict:
    ns = {"np": np, "checkpoint": str(tmp_path / "model.pt")}
    exec(compile(imports + SCRIPT, "pytorch_style_script", "exec"), ns)
    return ns


def _check_it_learned(ns):
    assert ns["test_loss"] < 0.5 * ns["first_loss"], (ns["first_loss"], ns["test_loss"])
    assert ns["train_losses"][-1] < ns["train_losses"][0]
    assert ns["accuracy"] >= 0.95
    assert ns["last_lr"] == pytest.approx(0.7 ** 4)
    assert ns["same"] == 0.0  # the state_dict copy computes the same outputs


def test_the_script_learns_with_tinygrad_cnn(tmp_path):
    ns = _run(TINYGRAD_IMPORTS, tmp_path)
    _check_it_learned(ns)
    assert type(ns["model"]).__mro__[1].__module__ == "tinygrad_cnn.nn.module"


@needs_torch
def test_the_same_script_learns_with_pytorch(tmp_path):
    _check_it_learned(_run(TORCH_IMPORTS, tmp_path))


MNIST_SCRIPT = """
import tinygrad_cnn as torch
import tinygrad_cnn.nn as nn
import tinygrad_cnn.nn.functional as F
import tinygrad_cnn.optim as optim
from tinygrad_cnn import datasets, transforms
from tinygrad_cnn.optim.lr_scheduler import StepLR

model = nn.Sequential(nn.Conv2d(1, 8, 3, 1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8 * 13 * 13, 10),
                      nn.LogSoftmax(dim=1))
transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
train_set = datasets.MNIST(root, train=True, download=True, transform=transform)
test_set = datasets.MNIST(root, train=False, transform=transform)
train_loader = torch.utils.data.DataLoader(train_set, batch_size=16, shuffle=True)
test_loader = torch.utils.data.DataLoader(test_set, batch_size=100)
optimizer = optim.Adadelta(model.parameters(), lr=1.0)
scheduler = StepLR(optimizer, step_size=1, gamma=0.7)
for epoch in range(2):
    model.train()
    for data, target in train_loader:
        optimizer.zero_grad()
        loss = F.nll_loss(model(data), target)
        loss.backward()
        optimizer.step()
    scheduler.step()
model.eval()
correct = 0
with torch.no_grad():
    for data, target in test_loader:
        pred = model(data).argmax(dim=1, keepdim=True)
        correct += pred.eq(target.view_as(pred)).sum().item()
accuracy = correct / len(test_loader.dataset)
"""


def _blob_digits(n, seed):
    """MNIST-shaped uint8 images whose class is where a bright 8x5 block sits."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n).astype(np.uint8)
    images = (rng.random((n, 28, 28)) * 60).astype(np.uint8)
    for i, c in enumerate(labels):
        r, s = divmod(int(c), 5)
        images[i, 4 + r * 10:12 + r * 10, 2 + s * 5:7 + s * 5] = 250
    return images, labels


def test_an_mnist_example_style_script_reads_torchvisions_layout_and_learns(tmp_path):
    from data_helpers import write_set

    from tinygrad_cnn.data import FILES
    (xtr, ytr), (xte, yte) = _blob_digits(160, 0), _blob_digits(100, 1)
    write_set(tmp_path / "MNIST" / "raw", {FILES["train_img"]: xtr, FILES["train_label"]: ytr,
                                           FILES["test_img"]: xte, FILES["test_label"]: yte}, gz=False)
    ns = {"root": str(tmp_path)}
    exec(compile(MNIST_SCRIPT, "mnist_example_style", "exec"), ns)
    assert ns["accuracy"] >= 0.9
