"""Data: an IDX reader, MNIST / Fashion-MNIST loaders with the book's `load_mnist` signature,
checked downloads, and a DataLoader that yields real epochs.

Files on disk are checked against the known SHA-256 of the canonical files once; a small
stamp (`STAMP_NAME` in the data folder, or in the user's cache folder when the data folder
is read-only or under /usr) records the file's size, mtime and inode, so later loads do not
rehash. `verify=False` loads other IDX files (structure still checked).
"""
from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import math
import os
import zlib
from pathlib import Path

import numpy as np

from ._http import MIRROR_FAULTS, DiskError, describe, fetch
from ._io import atomic_open, atomic_write

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

# Uncompressed sizes in bytes (header + data): reading or downloading stops past them.
_CANONICAL_SIZES = {
    "train-images-idx3-ubyte": 16 + 60000 * 28 * 28,
    "train-labels-idx1-ubyte": 8 + 60000,
    "t10k-images-idx3-ubyte": 16 + 10000 * 28 * 28,
    "t10k-labels-idx1-ubyte": 8 + 10000,
}
SIZES = {"mnist": dict(_CANONICAL_SIZES), "fashion-mnist": dict(_CANONICAL_SIZES)}

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
STAMP_NAME = ".tinygrad_cnn-verified.json"

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 20


class DatasetNotFoundError(FileNotFoundError):
    """The data set is not on disk and could not be downloaded. After a failed download,
    `errors` lists (url, reason) for each mirror tried."""

    def __init__(self, message: str, errors=()):
        super().__init__(message)
        self.errors = list(errors)

    def __str__(self):
        return self.args[0]


class ChecksumMismatchError(ValueError):
    """A data file is not the canonical one: its uncompressed SHA-256 (or size) differs."""


# ----------------------------------------------------------------------------- IDX


@contextlib.contextmanager
def _corrupt_is_value_error(name: str | None):
    """Broken gzip or deflate data in file `name` becomes a ValueError that names it."""
    try:
        yield
    except (gzip.BadGzipFile, zlib.error, EOFError) as e:
        where = f"{name}: " if name else ""
        raise ValueError(f"{where}corrupt or truncated gzip stream ({type(e).__name__}: {e})") from None


def _idx_header(head: bytes, name: str) -> tuple[np.dtype, tuple, int]:
    """(dtype, shape, header length) from the start of an IDX file; ValueError if malformed."""
    if len(head) < 4:
        raise ValueError(f"{name}: {len(head)} bytes is too short for an IDX header")
    if head[0] != 0 or head[1] != 0 or head[2] not in _IDX_DTYPES:
        raise ValueError(f"{name}: bad IDX magic number {bytes(head[:4]).hex()} (expected 0000 + type code + ndim)")
    ndim = head[3]
    if ndim == 0 or len(head) < 4 + 4 * ndim:
        raise ValueError(f"{name}: IDX header declares {ndim} dimensions but the file has {len(head)} bytes")
    shape = tuple(int(d) for d in np.frombuffer(head, ">u4", ndim, 4))
    return np.dtype(_IDX_DTYPES[head[2]]), shape, 4 + 4 * ndim


def parse_idx(raw: bytes, name: str = "<bytes>") -> np.ndarray:
    """Parse IDX bytes: magic (0, 0, dtype code, ndim), ndim big-endian uint32 sizes, then data.
    Returns an array of that shape in native byte order; ValueError naming `name` and the fault."""
    dtype, shape, header = _idx_header(raw, name)
    expect = math.prod(shape) * dtype.itemsize  # Python ints: no overflow
    body = len(raw) - header
    if body != expect:
        what = "truncated" if body < expect else "longer than its header says"
        raise ValueError(f"{name}: {what}: dimensions {shape} need {expect} data bytes, found {body}")
    return np.frombuffer(raw, dtype, offset=header).reshape(shape).astype(
        dtype.newbyteorder("="), copy=not isinstance(raw, bytearray))


def _uncompressed(f):
    """A readable stream of the IDX bytes in the binary file `f`: gzip by its magic, not its name."""
    magic = f.read(2)
    f.seek(0)
    return gzip.GzipFile(fileobj=f, mode="rb") if magic == _GZIP_MAGIC else f


def _read_upto(stream, n: int, hasher=None, out: bytearray | None = None, probe=True) -> tuple[int, bool]:
    """Read up to `n` bytes from `stream` into `out` (or discard them), hashing as it goes.
    Returns (bytes read, whether more follow: with `probe`, one more byte is read to tell);
    never decompresses more than n + 1 bytes."""
    got = 0
    while got < n:
        chunk = stream.read(min(n - got, _CHUNK))
        if not chunk:
            return got, False
        got += len(chunk)
        if hasher is not None:
            hasher.update(chunk)
        if out is not None:
            out += chunk
    return got, probe and bool(stream.read(1))


def _read_by_header(stream, name: str) -> bytearray:
    """The whole IDX file, reading no more than its header declares (plus one byte to tell)."""
    raw = bytearray()
    _read_upto(stream, 4, out=raw, probe=False)
    if len(raw) == 4:
        _read_upto(stream, 4 * raw[3], out=raw, probe=False)  # the dimensions
    dtype, shape, header = _idx_header(raw, name)
    expect = math.prod(shape) * dtype.itemsize
    _, more = _read_upto(stream, expect, out=raw)
    if more:
        raise ValueError(f"{name}: longer than its header says: dimensions {shape} need {expect} data bytes, "
                         f"found more")
    return raw


def read_idx(path) -> np.ndarray:
    """Read an IDX file (gzip or raw) into an array shaped as its header says.

    ValueError naming the file and fault if it is malformed, truncated or a corrupt gzip
    stream; decompression stops at the size the header declares. FileNotFoundError and
    PermissionError as `open` raises them (they name the file)."""
    name = os.fspath(path)
    with open(path, "rb") as f, _corrupt_is_value_error(name):
        return parse_idx(_read_by_header(_uncompressed(f), name), name)


# ----------------------------------------------------------------------------- verification stamps


def _cache_root() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tinygrad_cnn"


def _stamp_files(folder: Path) -> list[Path]:
    """Where a folder's stamp may be: in it (unless under /usr), then in the user's cache folder."""
    folder = folder.resolve()
    key = hashlib.sha256(str(folder).encode()).hexdigest()[:16]
    in_cache = _cache_root() / "verified" / f"{key}.json"
    return [in_cache] if folder.is_relative_to("/usr") else [folder / STAMP_NAME, in_cache]


def _read_stamp(path: Path) -> dict:
    try:
        files = json.loads(path.read_text()).get("files", {})
        return files if isinstance(files, dict) else {}
    except (OSError, ValueError, AttributeError):  # missing, unreadable or damaged: rehash
        return {}


def _stamp_entry(st: os.stat_result, sha256: str) -> dict:
    return {"sha256": sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns, "inode": st.st_ino}


def _is_verified(path: Path, st: os.stat_result, sha256: str) -> bool:
    entry = _stamp_entry(st, sha256)
    return any(_read_stamp(s).get(path.name) == entry for s in _stamp_files(path.parent))


def _record_verified(path: Path, sha256: str) -> None:
    """Note in a stamp that `path`, as it is now, hashes to `sha256`. Best effort: without a
    writable place the file is simply hashed again next time."""
    entry = _stamp_entry(path.stat(), sha256)
    for stamp in _stamp_files(path.parent):
        files = _read_stamp(stamp)
        files[path.name] = entry
        body = json.dumps({"format": 1, "folder": str(path.parent.resolve()), "files": files}, indent=1)
        try:
            stamp.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(stamp, body.encode())
            return
        except OSError:  # read-only folder: try the cache folder
            continue


# ----------------------------------------------------------------------------- downloading


def _check_gzip(f, what: str, sha256: str, size: int) -> None:
    """The binary file `f` must hold a gzip of the file with this SHA-256 and size. Decompression
    is streamed in 1 MiB pieces and stops past `size` bytes: a gzip bomb costs no memory."""
    f.seek(0)
    magic = f.read(16)
    if not magic.startswith(_GZIP_MAGIC):
        raise ValueError(f"not a gzip file (it starts with {magic!r})")
    f.seek(0)
    hasher = hashlib.sha256()
    with _corrupt_is_value_error(None):
        got, more = _read_upto(gzip.GzipFile(fileobj=f, mode="rb"), size, hasher)
    if more:
        raise ChecksumMismatchError(f"decompresses to more than {size} bytes, the size of {what}")
    if hasher.hexdigest() != sha256:
        raise ChecksumMismatchError(f"SHA-256 mismatch: got {hasher.hexdigest()} ({got} bytes), expected {sha256} "
                                    f"({what})")


def _make_folders(folder: Path) -> list[Path]:
    """mkdir -p; returns the folders it created, outermost first (none left if it fails)."""
    missing = [p for p in [folder, *folder.parents] if not p.exists()][::-1]
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except BaseException:
        _remove_folders(missing)
        raise
    return missing


def _remove_folders(created: list[Path]) -> None:
    for p in reversed(created):
        try:
            p.rmdir()
        except OSError:  # not empty (someone else's file) or already gone: keep its parents
            return


def download(name: str, dest_dir, sha256: str, mirrors: list[str], timeout: float = 300.0,
             size: int | None = None) -> Path:
    """Fetch <mirror><name>.gz into dest_dir/<name>.gz, trying the http(s) mirrors in turn.

    Any failure at one mirror (HTTP status, malformed or cut-off response, reset, timeout,
    a body larger than a gzip of the file can be, HTML, a corrupt stream, the wrong SHA-256)
    moves on to the next; when all fail, one DatasetNotFoundError lists each mirror and why.
    Each mirror gets `timeout` seconds for the whole file (a stall of 30 s also ends it).
    `size` is the uncompressed size (default: from SIZES, found by `sha256`); decompression
    is streamed, hashed as it goes and stops past it. The file appears only when complete
    and checked; on any failure, Ctrl-C included, no temporary file and no folder made by
    this call is left. Local faults (PermissionError, a full disk) are raised as they are.
    """
    if isinstance(mirrors, (str, bytes)):
        raise TypeError(f"download: mirrors must be a list of URLs, got the string {mirrors!r}")
    dest_dir = Path(dest_dir)
    size = size if size is not None else _known_size(sha256)
    max_bytes = size + size // 100 + 65536  # a gzip never exceeds its data by more
    final = dest_dir / (name + ".gz")
    created = _make_folders(dest_dir)
    errors = []
    try:
        with atomic_open(final, "w+b") as f:
            for mirror in mirrors:
                url = mirror + name + ".gz"
                f.seek(0)
                f.truncate()
                try:
                    fetch(url, f, max_bytes, timeout)
                    _check_gzip(f, name, sha256, size)
                    break
                except MIRROR_FAULTS as e:
                    errors.append((url, describe(e)))
            else:
                tried = "".join(f"\n  {url}: {why}" for url, why in errors) or " (no mirrors given)"
                raise DatasetNotFoundError(f"could not download {name}.gz from any mirror:{tried}", errors)
    except DiskError as e:
        _remove_folders(created)
        raise e.__cause__ from None
    except BaseException:
        _remove_folders(created)
        raise
    _record_verified(final, sha256)
    return final


def _known_size(sha256: str) -> int:
    for sizes, sums in ((SIZES[d], SHA256[d]) for d in SHA256):
        for name, s in sums.items():
            if s == sha256 and name in sizes:
                return sizes[name]
    return 1 << 28  # an unknown file: 256 MiB at most


# ----------------------------------------------------------------------------- loading


def _search_dirs(dataset: str, root) -> list[Path]:
    """`root` alone when given; else $TINYGRAD_CNN_DATA, the user's cache folder, Debian's folder."""
    if root is not None:
        return [Path(root)]
    dirs = []
    if os.environ.get("TINYGRAD_CNN_DATA"):
        dirs.append(Path(os.environ["TINYGRAD_CNN_DATA"]))
    dirs.append(_cache_root() / dataset)
    if dataset == "fashion-mnist":
        dirs.append(Path(DEBIAN_FASHION_DIR))
    return dirs


def _find(name: str, dirs: list[Path]) -> Path | None:
    for d in dirs:
        for fn in (name + ".gz", name):
            if (d / fn).is_file():
                return d / fn
    return None


def _read_verified(path: Path, dataset: str, name: str) -> np.ndarray:
    """Read a data file that must be `dataset`'s canonical `name`: at most its size is
    decompressed, and its SHA-256 is checked unless a stamp says it already was."""
    sha256, size = SHA256[dataset][name], SIZES[dataset][name]
    with open(path, "rb") as f, _corrupt_is_value_error(str(path)):
        hasher = None if _is_verified(path, os.fstat(f.fileno()), sha256) else hashlib.sha256()
        raw = bytearray()
        got, more = _read_upto(_uncompressed(f), size, hasher, raw)
    hint = "; to load other IDX files, pass verify=False"
    if more:
        raise ChecksumMismatchError(f"{path}: holds more than {size} bytes, the size of {dataset}'s {name}, "
                                    f"so it is not that file (SHA-256 {sha256}){hint}")
    if hasher is not None:
        if hasher.hexdigest() != sha256:
            raise ChecksumMismatchError(f"{path}: SHA-256 mismatch: the file's {got} bytes hash to "
                                        f"{hasher.hexdigest()}, {dataset}'s {name} to {sha256}{hint}")
        _record_verified(path, sha256)
    return parse_idx(raw, str(path))


def _check_family(arrays: dict, paths: dict) -> None:
    """MNIST-family structure: uint8 (N, 28, 28) images, integer labels 0..9, matching counts."""
    for split in ("train", "test"):
        x, t = arrays[split + "_img"], arrays[split + "_label"]
        px, pt = paths[split + "_img"], paths[split + "_label"]
        if x.ndim != 3 or x.shape[1:] != (28, 28) or x.dtype != np.uint8:
            raise ValueError(f"{px}: images must be uint8 (N, 28, 28); the file holds {x.dtype} {x.shape}")
        if t.ndim != 1 or t.dtype.kind not in "iu":
            raise ValueError(f"{pt}: labels must be integers (N,); the file holds {t.dtype} {t.shape}")
        bad = np.flatnonzero((t < 0) | (t > 9))
        if bad.size:
            raise ValueError(f"{pt}: label {t[bad[0]]} at index {bad[0]} is outside 0..9 "
                             f"({bad.size} labels are)")
        if len(x) != len(t):
            raise ValueError(f"{px} has {len(x)} images but {pt} has {len(t)} labels")


def _load_arrays(dataset: str, root, download_ok: bool, mirrors=None, verify: bool = True) -> dict:
    dirs = _search_dirs(dataset, root)
    arrays, paths = {}, {}
    for key, name in FILES.items():
        path = _find(name, dirs)
        if path is None and download_ok:
            try:
                path = download(name, dirs[0], SHA256[dataset][name], MIRRORS[dataset] if mirrors is None else mirrors,
                                size=SIZES[dataset][name])
            except DatasetNotFoundError as e:
                raise DatasetNotFoundError(_not_found_message(dataset, name, dirs) + f"\nDownload failed: {e}",
                                           e.errors) from None
        if path is None:
            raise DatasetNotFoundError(_not_found_message(dataset, name, dirs))
        arrays[key] = _read_verified(path, dataset, name) if verify else read_idx(path)
        paths[key] = path
    _check_family(arrays, paths)
    return arrays


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


def load_mnist(normalize=True, flatten=True, one_hot_label=False, root=None, download=True, mirrors=None,
               verify=True):
    """MNIST as ((x_train, t_train), (x_test, t_test)), the book's signature.

    x is float32 in [0, 1] when `normalize` (else uint8), shaped (N, 784) or, with
    flatten=False, (N, 1, 28, 28); t is int64 labels (N,) or one-hot float32 (N, 10).
    Files (`FILES`, `.gz` or raw) are looked for in `root` alone when given, else in
    $TINYGRAD_CNN_DATA and then $XDG_CACHE_HOME/tinygrad_cnn/mnist (~/.cache/...), and
    downloaded (checked) to the first of these when missing and `download`.
    Files on disk must be the canonical ones (SHA-256 checked once, see the module
    docstring): ChecksumMismatchError (a ValueError) names the file and both hashes.
    `verify=False` loads other IDX files; they must still hold uint8 28x28 images, labels
    0..9 and as many labels as images (ValueError naming the file otherwise).
    """
    return _prepare(_load_arrays("mnist", root, download, mirrors, verify), normalize, flatten, one_hot_label)


def load_fashion_mnist(normalize=True, flatten=True, one_hot_label=False, root=None, download=True, mirrors=None,
                       verify=True):
    """Fashion-MNIST, like `load_mnist`; without `root` also found where Debian's
    `dataset-fashion-mnist` puts it (DEBIAN_FASHION_DIR)."""
    return _prepare(_load_arrays("fashion-mnist", root, download, mirrors, verify), normalize, flatten,
                    one_hot_label)


# ----------------------------------------------------------------------------- batches


from .utils.data import DataLoader  # noqa: E402,F401  (also takes the lecture's arrays)
