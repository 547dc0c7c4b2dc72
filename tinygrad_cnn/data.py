"""Data: an IDX reader, MNIST / Fashion-MNIST loaders with the book's `load_mnist` signature,
checked downloads, and a DataLoader that yields real epochs."""
from __future__ import annotations

import gzip
import hashlib
import os
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np


FILES = {
    "train_img": "train-images-idx3-ubyte",
    "train_label": "train-labels-idx1-ubyte",
    "test_img": "t10k-images-idx3-ubyte",
    "test_label": "t10k-labels-idx1-ubyte",
}

# SHA-256 of the *uncompressed* IDX files: holds whichever gzip wrapper a mirror serves.
SHA256 = {
    "mnist": {
        "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
}

# The original MNIST host is gone; these mirrors serve the same files as <mirror><name>.gz
MIRRORS = {
    "mnist": [
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ],
    "fashion-mnist": [
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    ],
}

DEBIAN_FASHION_DIR = "/usr/share/datasets/fashion-mnist"

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class DatasetNotFoundError(FileNotFoundError):
    """The data set is not on disk and could not be downloaded."""


# ----------------------------------------------------------------------------- IDX


def _read_bytes(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
        return gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw  # gzip by its magic, not its name
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise ValueError(f"{path}: cannot read ({type(e).__name__}: {e}); the file is truncated or corrupt") from None


def parse_idx(raw: bytes, name: str = "<bytes>") -> np.ndarray:
    """Parse IDX bytes: magic (0, 0, dtype code, ndim), ndim big-endian uint32 sizes, then data."""
    if len(raw) < 4:
        raise ValueError(f"{name}: {len(raw)} bytes is too short for an IDX header")
    if raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"{name}: bad IDX magic number {raw[:4].hex()} (expected 0000 + type code + ndim)")
    ndim = raw[3]
    if ndim == 0 or len(raw) < 4 + 4 * ndim:
        raise ValueError(f"{name}: IDX header declares {ndim} dimensions but the file has {len(raw)} bytes")
    shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", ndim, 4))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expect = int(np.prod(shape)) * dtype.itemsize
    body = len(raw) - 4 - 4 * ndim
    if body != expect:
        what = "truncated" if body < expect else "longer than its header says"
        raise ValueError(f"{name}: {what}: dimensions {shape} need {expect} data bytes, found {body}")
    return np.frombuffer(raw, dtype, offset=4 + 4 * ndim).reshape(shape).astype(dtype.newbyteorder("="))


def read_idx(path) -> np.ndarray:
    """Read an IDX file (`.gz` or raw) into an array; ValueError naming the file and fault if it is bad."""
    path = Path(path)
    return parse_idx(_read_bytes(path), str(path))


# ----------------------------------------------------------------------------- finding and downloading


def _candidate_dirs(dataset: str, root) -> list[Path]:
    dirs = []
    if root is not None:
        dirs.append(Path(root))
    if os.environ.get("TINYGRAD_CNN_DATA"):
        dirs.append(Path(os.environ["TINYGRAD_CNN_DATA"]))
    dirs.append(Path.home() / ".cache" / "tinygrad_cnn" / dataset)
    if dataset == "fashion-mnist":
        dirs.append(Path(DEBIAN_FASHION_DIR))
    return dirs


def _find(name: str, dirs: list[Path]) -> Path | None:
    for d in dirs:
        for fn in (name + ".gz", name):
            if (d / fn).is_file():
                return d / fn
    return None


def download(name: str, dest_dir: Path, sha256: str, mirrors: list[str], timeout: float = 30.0) -> Path:
    """Fetch <mirror><name>.gz into dest_dir, trying mirrors in turn.

    Each download goes to a `.part` file, is checked (its uncompressed SHA-256 must be
    `sha256`), and only then renamed into place; a failure leaves nothing behind.
    """
    dest_dir.mkdir(parents=True, exist_ok=True)
    final = dest_dir / (name + ".gz")
    part = dest_dir / (name + ".gz.part")
    errors = []
    for mirror in mirrors:
        url = mirror + name + ".gz"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as r, open(part, "wb") as f:
                while chunk := r.read(1 << 20):
                    f.write(chunk)
            got = hashlib.sha256(_read_bytes(part)).hexdigest()
            if got != sha256:
                raise ValueError(f"SHA-256 mismatch: got {got}, expected {sha256}")
            os.replace(part, final)
            return final
        except (OSError, ValueError, urllib.error.URLError) as e:
            errors.append(f"{url}: {e}")
        finally:
            if part.exists():
                part.unlink()
    raise DatasetNotFoundError(f"could not download {name}.gz:\n  " + "\n  ".join(errors))


def _load_arrays(dataset: str, root, download_ok: bool, mirrors=None) -> dict:
    dirs = _candidate_dirs(dataset, root)
    out = {}
    for key, name in FILES.items():
        path = _find(name, dirs)
        if path is None and download_ok:
            try:
                path = download(name, dirs[0], SHA256[dataset][name], MIRRORS[dataset] if mirrors is None else mirrors)
            except DatasetNotFoundError as e:
                raise DatasetNotFoundError(_not_found_message(dataset, name, dirs) + f"\nDownload failed: {e}") \
                    from None
        if path is None:
            raise DatasetNotFoundError(_not_found_message(dataset, name, dirs))
        out[key] = read_idx(path)
    return out


def _not_found_message(dataset, name, dirs) -> str:
    where = ", ".join(str(d) for d in dirs)
    hint = " (or: apt-get install dataset-fashion-mnist)" if dataset == "fashion-mnist" else ""
    return (f"{dataset}: {name}.gz not found in {where}. Put the four IDX files (.gz or raw) in one of "
            f"these folders, or set TINYGRAD_CNN_DATA{hint}.")


def _prepare(arrays: dict, normalize: bool, flatten: bool, one_hot_label: bool):
    def images(x):
        x = x.reshape(-1, 1, 28, 28) if not flatten else x.reshape(len(x), -1)
        return x.astype(np.float32) / np.float32(255.0) if normalize else x

    def labels(t):
        t = t.astype(np.int64)
        return np.eye(10, dtype=np.float32)[t] if one_hot_label else t

    return ((images(arrays["train_img"]), labels(arrays["train_label"])),
            (images(arrays["test_img"]), labels(arrays["test_label"])))


def load_mnist(normalize=True, flatten=True, one_hot_label=False, root=None, download=True, mirrors=None):
    """MNIST as ((x_train, t_train), (x_test, t_test)), the book's signature.

    x is float32 in [0, 1] when `normalize` (else uint8), shaped (N, 784) or, with
    flatten=False, (N, 1, 28, 28); t is int64 labels (N,) or one-hot float32 (N, 10).
    Files are looked for in `root`, $TINYGRAD_CNN_DATA, then ~/.cache/tinygrad_cnn/mnist,
    and downloaded (checked by SHA-256) to the first of those when missing.
    """
    return _prepare(_load_arrays("mnist", root, download, mirrors), normalize, flatten, one_hot_label)


def load_fashion_mnist(normalize=True, flatten=True, one_hot_label=False, root=None, download=True, mirrors=None):
    """Fashion-MNIST, like `load_mnist`; also found where Debian's `dataset-fashion-mnist` puts it."""
    return _prepare(_load_arrays("fashion-mnist", root, download, mirrors), normalize, flatten, one_hot_label)


# ----------------------------------------------------------------------------- batches


from .utils.data import DataLoader  # noqa: E402,F401  (also takes the lecture's arrays)
