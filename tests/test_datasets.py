"""datasets.MNIST / FashionMNIST on synthetic IDX files (torchvision's layout and a plain folder), and
transforms: ToTensor, Normalize, RandomCrop, RandomHorizontalFlip, Compose, one image and batched."""
import gzip
from pathlib import Path

import numpy as np
import pytest
from data_helpers import idx_bytes
from helpers import needs_torch, torch

from tinygrad_cnn import Tensor, manual_seed
from tinygrad_cnn import transforms as T
from tinygrad_cnn.data import DatasetNotFoundError
from tinygrad_cnn.datasets import MNIST, FashionMNIST
from tinygrad_cnn.utils.data import DataLoader

MNIST_TEST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist-test"


def _write_split(folder: Path, train: bool, n=12, seed=0, gz=False, labels=None):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, n).astype(np.uint8) if labels is None else np.asarray(labels, np.uint8)
    folder.mkdir(parents=True, exist_ok=True)
    prefix = "train" if train else "t10k"
    for name, arr in ((f"{prefix}-images-idx3-ubyte", images), (f"{prefix}-labels-idx1-ubyte", labels)):
        raw = idx_bytes(arr)
        (folder / (name + ".gz" if gz else name)).write_bytes(gzip.compress(raw) if gz else raw)
    return images, labels


def test_reads_torchvisions_layout_and_gives_pil_like_pairs(tmp_path):
    images, labels = _write_split(tmp_path / "MNIST" / "raw", train=True)
    ds = MNIST(tmp_path, train=True)
    assert len(ds) == 12 and ds.data.shape == (12, 28, 28) and ds.data.dtype == np.uint8
    assert ds.targets.dtype == np.int64 and ds.targets.tolist() == labels.tolist()
    img, label = ds[3]
    assert isinstance(img, np.ndarray) and img.dtype == np.uint8 and img.shape == (28, 28)
    assert type(label) is int and label == labels[3]
    np.testing.assert_array_equal(img, images[3])
    img[...] = 0  # a new array each time: the dataset is untouched
    np.testing.assert_array_equal(ds[3][0], images[3])
    assert "Split: Train" in repr(ds) and ds.class_to_idx["3 - three"] == 3


def test_reads_a_plain_folder_of_gzipped_files_and_the_test_split(tmp_path):
    _, labels = _write_split(tmp_path, train=False, n=5, gz=True)
    ds = FashionMNIST(str(tmp_path), train=False, target_transform=lambda t: ds.classes[t])
    assert len(ds) == 5 and ds[0][1] == FashionMNIST.classes[labels[0]]
    with pytest.raises(DatasetNotFoundError, match=r"train-images-idx3-ubyte \(or .*\.gz\) not found in "
                                                   r".*FashionMNIST/raw or .*download=True"):
        FashionMNIST(tmp_path, train=True)


def test_download_fetches_into_the_raw_folder(tmp_path, monkeypatch):
    calls = []

    def fake_download(name, dest_dir, sha256, mirrors, timeout=30.0):
        calls.append((name, Path(dest_dir), sha256, mirrors))
        src = tmp_path / "src"
        _write_split(src, train=False, n=4)
        return src / name

    monkeypatch.setattr("tinygrad_cnn.data.download", fake_download)
    ds = FashionMNIST(tmp_path / "root", train=False, download=True)
    from tinygrad_cnn import data
    assert len(ds) == 4 and [c[0] for c in calls] == ["t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
    assert calls[0][1] == tmp_path / "root" / "FashionMNIST" / "raw"
    assert calls[0][2] == data.SHA256["fashion-mnist"]["t10k-images-idx3-ubyte"]
    assert calls[0][3] == data.MIRRORS["fashion-mnist"]


def test_inconsistent_files_are_clear_errors(tmp_path):
    _write_split(tmp_path / "a", train=True, labels=[1, 2, 3])  # 12 images, 3 labels
    with pytest.raises(ValueError, match="has 12 images but .*train-labels-idx1-ubyte has 3 labels"):
        MNIST(tmp_path / "a")
    _write_split(tmp_path / "b", train=True, n=3, labels=[1, 200, 3])
    with pytest.raises(ValueError, match=r"labels \[200\] outside 0..9"):
        MNIST(tmp_path / "b")


@pytest.mark.parametrize("transform", [None, T.Compose([T.ToTensor(), T.Normalize((0.1307,), (0.3081,))])])
def test_dataloader_batches_equal_the_collated_samples(tmp_path, transform):
    _write_split(tmp_path, train=True, n=10)
    ds = MNIST(tmp_path, transform=transform)
    x, y = next(iter(DataLoader(ds, batch_size=4, shuffle=False)))  # gathered at once
    items = [ds[i] for i in range(4)]
    expect = np.stack([np.asarray(i[0].data if isinstance(i[0], Tensor) else i[0]) for i in items])
    np.testing.assert_allclose(x.data, expect, rtol=1e-6)
    assert x.dtype == (np.uint8 if transform is None else np.float32) and y.tolist() == [i[1] for i in items]
    slow = DataLoader(ds, batch_size=4, collate_fn=lambda b: b)  # a custom collate_fn sees the samples
    assert len(next(iter(slow))) == 4


@pytest.mark.skipif(not MNIST_TEST.is_dir(), reason="real MNIST test files not present")
def test_real_mnist_test_split():
    ds = MNIST(MNIST_TEST, train=False, transform=T.ToTensor())
    assert len(ds) == 10000 and ds[0][1] == 7
    x, y = next(iter(DataLoader(ds, batch_size=1000)))
    assert x.shape == (1000, 1, 28, 28) and 0.12 < float(x.data.mean()) < 0.14 and y.data[0] == 7


# ----------------------------------------------------------------------------- transforms


@needs_torch
def test_to_tensor_and_normalize_match_torchvisions_definition():
    rng = np.random.default_rng(0)
    hwc = rng.integers(0, 256, (5, 4, 3), dtype=np.uint8)
    t = T.ToTensor()(hwc)
    assert t.shape == (3, 5, 4) and t.dtype == np.float32
    np.testing.assert_allclose(t.data, torch.from_numpy(hwc).permute(2, 0, 1).float().div(255).numpy())
    assert T.ToTensor()(hwc[:, :, 0]).shape == (1, 5, 4)
    assert T.ToTensor()(np.ones((2, 2), np.float64)).dtype == np.float64  # not uint8: values kept, as torchvision
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.5)
    out = T.Normalize(mean, std)(t)
    expect = (torch.from_numpy(t.data) - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]
    np.testing.assert_allclose(out.data, expect.numpy(), rtol=1e-6)
    assert out.dtype == np.float32
    x = Tensor(t.data, requires_grad=True)  # differentiable when it needs to be
    T.Normalize(0.5, 0.5)(x).sum().backward()
    np.testing.assert_allclose(x.grad.data, 2.0)


def test_transform_errors():
    with pytest.raises(ValueError, match="2 or 3 dimensional|should be"):
        T.ToTensor()(np.ones(3, np.uint8))
    with pytest.raises(TypeError, match="got a Tensor"):
        T.ToTensor()(Tensor(np.ones((2, 2))))
    with pytest.raises(TypeError, match="use ToTensor first"):
        T.Normalize(0.5, 0.5)(np.ones((1, 2, 2)))
    with pytest.raises(ValueError, match="division by zero"):
        T.Normalize((0.5,), (0.0,))
    with pytest.raises(ValueError, match="need 1 or 3 values"):
        T.Normalize((0.5, 0.5), (1, 1))(Tensor(np.ones((3, 2, 2), np.float32)))
    with pytest.raises(ValueError, match="larger than"):
        T.RandomCrop(5)(np.ones((4, 4), np.uint8))
    with pytest.raises(TypeError, match="not callable"):
        T.Compose([T.ToTensor(), 3])


def test_random_crop_pads_and_crops_windows_of_the_image():
    img = np.arange(36, dtype=np.uint8).reshape(6, 6)
    padded = np.pad(img, 2)
    manual_seed(0)
    for _ in range(20):
        out = T.RandomCrop(6, padding=2)(img)
        hits = [(i, j) for i in range(5) for j in range(5) if np.array_equal(padded[i:i + 6, j:j + 6], out)]
        assert out.shape == (6, 6) and hits
    chw = Tensor(np.stack([img, img + 100]).astype(np.float32))
    out = T.RandomCrop((3, 4), padding=(1, 2), padding_mode="edge")(chw)
    assert isinstance(out, Tensor) and out.shape == (2, 3, 4) and (out.data[1] - out.data[0] == 100).all()
    assert T.RandomCrop(8, pad_if_needed=True, fill=255)(img).shape == (8, 8)


def test_horizontal_flip_and_batched_transforms_agree_with_single_images():
    img = np.arange(12, dtype=np.uint8).reshape(3, 4)
    np.testing.assert_array_equal(T.RandomHorizontalFlip(1.0)(img), img[:, ::-1])
    np.testing.assert_array_equal(T.RandomHorizontalFlip(0.0)(img), img)
    batch = np.stack([img] * 50)
    flipped = T.batched(T.RandomHorizontalFlip())(batch)
    kinds = {bool(np.array_equal(f, img[:, ::-1])) for f in flipped}
    assert kinds == {True, False} and all(np.array_equal(f, img) or np.array_equal(f, img[:, ::-1]) for f in flipped)
    crops = T.batched(T.RandomCrop(2))(batch)
    assert crops.shape == (50, 2, 2) and len({c.tobytes() for c in crops}) > 1  # each image its own window
    pipe = T.Compose([T.ToTensor(), T.Normalize(0.5, 0.25)])
    together = T.batched(pipe)(batch[:3])
    np.testing.assert_allclose(together.data, np.stack([pipe(i).data for i in batch[:3]]), rtol=1e-6)
    assert T.batched(T.Compose([T.Lambda(lambda x: x), T.ToTensor()])) is None  # Lambda: image by image
