"""MNIST and FashionMNIST as torchvision's datasets: `MNIST(root, train=True, transform=None,
target_transform=None, download=False)`, indexable, giving (image, label) pairs.

Without PIL, an image is what `np.asarray(pil_image)` would give: a (28, 28) uint8 array
(a new one each time); `transforms.ToTensor()` makes it a (1, 28, 28) float32 Tensor in
[0, 1]. The label is a Python int. `.data` is the (N, 28, 28) uint8 Tensor of all images,
`.targets` the (N,) int64 labels.

The IDX files (raw or .gz) are read from torchvision's folder layout, `root/MNIST/raw/`
(`root/FashionMNIST/raw/`), or from `root` itself when it holds them directly (as
Debian's /usr/share/datasets/fashion-mnist does). With download=True missing files are
fetched into the raw folder, checked against their known SHA-256 (`data.download`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from . import data
from .data import FILES, DatasetNotFoundError, read_idx
from .ops import as_tensor
from .tensor import Tensor
from .transforms import batched
from .utils.data import Dataset

__all__ = ["MNIST", "FashionMNIST"]


class MNIST(Dataset):
    """The MNIST digits: 60,000 training and 10,000 test images, 28x28, labels 0..9."""

    classes = ["0 - zero", "1 - one", "2 - two", "3 - three", "4 - four", "5 - five", "6 - six", "7 - seven",
               "8 - eight", "9 - nine"]
    _key = "mnist"  # the data set's name in data.SHA256 / data.MIRRORS

    def __init__(self, root, train: bool = True, transform=None, target_transform=None, download: bool = False):
        self.root = Path(root).expanduser()
        self.train, self.transform, self.target_transform = train, transform, target_transform
        images_path, labels_path = self._files(download)
        images, labels = read_idx(images_path), read_idx(labels_path)
        self._check(images, labels, images_path, labels_path)
        self.data = as_tensor(images.astype(np.uint8, copy=False))
        self.targets = as_tensor(labels.astype(np.int64))

    @property
    def raw_folder(self) -> Path:
        """torchvision's folder for the IDX files: root/<ClassName>/raw."""
        return self.root / type(self).__name__ / "raw"

    @property
    def class_to_idx(self) -> dict:
        """Class name -> label."""
        return {c: i for i, c in enumerate(self.classes)}

    def _files(self, download: bool) -> tuple[Path, Path]:
        keys = ("train_img", "train_label") if self.train else ("test_img", "test_label")
        paths = []
        for key in keys:
            name = FILES[key]
            path = self._find(name)
            if path is None and download:
                path = data.download(name, self.raw_folder, data.SHA256[self._key][name], data.MIRRORS[self._key])
            if path is None:
                raise DatasetNotFoundError(
                    f"{type(self).__name__}: {name} (or {name}.gz) not found in {self.raw_folder} or {self.root}. "
                    "Use download=True to download it, or put the IDX files in one of these folders.")
            paths.append(path)
        return paths[0], paths[1]

    def _find(self, name: str) -> Path | None:
        for folder in (self.raw_folder, self.root):
            for fn in (name, name + ".gz"):
                if (folder / fn).is_file():
                    return folder / fn
        return None

    def _check(self, images: np.ndarray, labels: np.ndarray, images_path: Path, labels_path: Path) -> None:
        if images.ndim != 3 or labels.ndim != 1:
            raise ValueError(f"{type(self).__name__}: {images_path} holds {images.shape} and {labels_path} holds "
                             f"{labels.shape}; expected images (N, H, W) and labels (N,)")
        if len(images) != len(labels):
            raise ValueError(f"{type(self).__name__}: {images_path} has {len(images)} images but {labels_path} has "
                             f"{len(labels)} labels")
        bad = (labels < 0) | (labels >= len(self.classes))
        if bad.any():
            raise ValueError(f"{type(self).__name__}: {labels_path} has labels {np.unique(labels[bad])[:5].tolist()} "
                             f"outside 0..{len(self.classes) - 1}")

    def __len__(self):
        return len(self.data)

    def __getitem__(self, index):
        img, target = self.data.data[index].copy(), int(self.targets.data[index])
        if self.transform is not None:
            img = self.transform(img)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return img, target

    @property
    def _fetch_batch(self):
        """Gathers a whole batch at once, through `transforms.batched(transform)`, when there is no
        target_transform and the transform can (see utils.data.DataLoader); else None."""
        tf = None if self.transform is None else batched(self.transform)
        if self.target_transform is not None or (self.transform is not None and tf is None):
            return None

        def fetch(indices):
            images = self.data.data[indices]  # fancy indexing: a new array
            images = as_tensor(images) if tf is None else tf(images)
            return [images if isinstance(images, Tensor) else as_tensor(images), as_tensor(self.targets.data[indices])]
        return fetch

    def __repr__(self):
        lines = [f"Dataset {type(self).__name__}", f"    Number of datapoints: {len(self)}",
                 f"    Root location: {self.root}", f"    Split: {'Train' if self.train else 'Test'}"]
        if self.transform is not None:
            lines.append(f"    Transform: {self.transform!r}")
        return "\n".join(lines)


class FashionMNIST(MNIST):
    """Zalando's Fashion-MNIST: 28x28 images of 10 kinds of clothing, in MNIST's format and sizes."""

    classes = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
               "Ankle boot"]
    _key = "fashion-mnist"
