"""IDX reading, MNIST loading (checked once against SHA-256, structure checked), DataLoader.
Downloads are in test_download.py."""
import gzip
import hashlib
import json
import os
import types
from pathlib import Path

import numpy as np
import pytest
from data_helpers import fake_arrays, fake_set, idx_bytes, listing, run_unprivileged, write_set

from tinygrad_cnn import data
from tinygrad_cnn.data import (DEBIAN_FASHION_DIR, FILES, STAMP_NAME, ChecksumMismatchError, DataLoader,
                               DatasetNotFoundError, load_fashion_mnist, load_mnist, parse_idx, read_idx)

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist-test"
needs_mnist_test = pytest.mark.skipif(not (SHARED / "t10k-images-idx3-ubyte.gz").exists(),
                                      reason="../shared/data/mnist-test is absent")
needs_fashion = pytest.mark.skipif(not os.path.isdir(DEBIAN_FASHION_DIR),
                                   reason="Debian's dataset-fashion-mnist is not installed")


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """Stamps and downloads go to a cache folder of the test's own."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("TINYGRAD_CNN_DATA", raising=False)
    return tmp_path / "cache"


@pytest.fixture
def canonical(monkeypatch):
    """Make the tiny fake set the canonical MNIST: returns a function writing it to a folder."""
    arrays = fake_arrays()

    def make(folder: Path, gz=True):
        sums, sizes = write_set(folder, arrays, gz)
        monkeypatch.setitem(data.SHA256, "mnist", sums)
        monkeypatch.setitem(data.SIZES, "mnist", sizes)
        return arrays
    return make


def count_hashing(monkeypatch) -> list:
    """Record the names of the files data.py hashes from now on."""
    calls = []
    real = hashlib.sha256

    def sha256(*a):
        if not a:  # a file's hash, not a folder name's
            calls.append(1)
        return real(*a)
    monkeypatch.setattr(data, "hashlib", types.SimpleNamespace(sha256=sha256))
    return calls


# ----------------------------------------------------------------------------- IDX


@needs_mnist_test
def test_reads_the_real_mnist_test_set():
    images = read_idx(SHARED / "t10k-images-idx3-ubyte.gz")
    labels = read_idx(SHARED / "t10k-labels-idx1-ubyte.gz")
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert labels.tolist()[:10] == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert images.max() == 255 and images.min() == 0


def test_idx_round_trip_raw_and_gz(tmp_path):
    a = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "a.idx").write_bytes(idx_bytes(a))
    (tmp_path / "a.idx.gz").write_bytes(gzip.compress(idx_bytes(a)))
    np.testing.assert_array_equal(read_idx(tmp_path / "a.idx"), a)
    np.testing.assert_array_equal(read_idx(tmp_path / "a.idx.gz"), a)
    assert read_idx(tmp_path / "a.idx").flags.writeable
    b = np.array([[1, -2], [3, 400000]], dtype=np.int32)
    np.testing.assert_array_equal(parse_idx(idx_bytes(b)), b)
    (tmp_path / "b.idx").write_bytes(idx_bytes(b))
    np.testing.assert_array_equal(read_idx(tmp_path / "b.idx"), b)


def test_truncated_and_corrupt_files_name_the_file_and_fault(tmp_path):
    good = idx_bytes(np.zeros((4, 5), dtype=np.uint8))
    cases = {
        "short.idx": (good[:-3], r"short.idx: truncated: dimensions \(4, 5\) need 20 data bytes, found 17"),
        "long.idx": (good + b"xx", r"long.idx: longer than its header says: dimensions \(4, 5\) need 20"),
        "magic.idx": (b"\x01\x02" + good[2:], "magic.idx: bad IDX magic"),
        "header.idx": (good[:6], "header.idx: IDX header declares 2 dimensions but the file has 6 bytes"),
        "empty.idx": (b"", "empty.idx: 0 bytes is too short for an IDX header"),
        # dims 65536^4 = 2^64 bytes: no overflow, no numpy error, the file's name
        "huge.idx": (bytes([0, 0, 8, 4]) + np.array([65536] * 4, ">u4").tobytes(),
                     r"huge.idx: truncated: dimensions \(65536, 65536, 65536, 65536\) need 18446744073709551616"),
        "cut.idx.gz": (gzip.compress(good)[:-6], "cut.idx.gz: corrupt or truncated gzip stream"),
        "long.idx.gz": (gzip.compress(good + bytes(10 << 20)), "long.idx.gz: longer than its header says"),
    }
    corrupt = bytearray(gzip.compress(good * 50))
    corrupt[12:20] = b"\xff" * 8
    cases["deflate.idx.gz"] = (bytes(corrupt), r"deflate.idx.gz: corrupt or truncated gzip stream \(error: Error -3")
    for name, (raw, message) in cases.items():
        (tmp_path / name).write_bytes(raw)
        with pytest.raises(ValueError, match=message):
            read_idx(tmp_path / name)


def test_missing_file_is_file_not_found_naming_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.idx"):
        read_idx(tmp_path / "nothing.idx")


def test_unreadable_files_are_permission_errors_naming_them(tmp_path):
    _, sums, sizes = fake_set(tmp_path / "m")
    os.chmod(tmp_path / "m" / "train-labels-idx1-ubyte.gz", 0)
    os.chmod(tmp_path, 0o755)
    proc = run_unprivileged(f"""
        from tinygrad_cnn import data
        path = {str(tmp_path / "m" / "train-labels-idx1-ubyte.gz")!r}
        for load in (lambda: data.read_idx(path), lambda: data.load_mnist(root={str(tmp_path / "m")!r}, verify=False)):
            try:
                load()
            except PermissionError as e:
                print("PermissionError", e.filename)
        """)
    assert proc.stdout.splitlines() == [f"PermissionError {tmp_path}/m/train-labels-idx1-ubyte.gz"] * 2, proc.stderr


# ----------------------------------------------------------------------------- loading


def test_load_mnist_from_root_shapes_and_types(tmp_path, canonical):
    arrays = canonical(tmp_path / "m")
    (x, t), (xt, tt) = load_mnist(root=tmp_path / "m", download=False)
    assert x.shape == (5, 784) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
    np.testing.assert_array_equal(t, arrays["train-labels-idx1-ubyte"])
    assert t.dtype == np.int64 and xt.shape == (5, 784) and tt.shape == (5,)
    (x, t), _ = load_mnist(root=tmp_path / "m", flatten=False, one_hot_label=True, normalize=False)
    assert x.shape == (5, 1, 28, 28) and x.dtype == np.uint8
    assert t.shape == (5, 10) and (t.sum(1) == 1).all()


def test_environment_variable_is_searched(tmp_path, monkeypatch, canonical):
    canonical(tmp_path / "env", gz=False)
    monkeypatch.setenv("TINYGRAD_CNN_DATA", str(tmp_path / "env"))
    (x, _), _ = load_mnist(download=False)
    assert x.shape == (5, 784)


def test_root_is_the_only_folder_searched(tmp_path, monkeypatch, canonical):
    canonical(tmp_path / "env")
    monkeypatch.setenv("TINYGRAD_CNN_DATA", str(tmp_path / "env"))
    with pytest.raises(DatasetNotFoundError, match=r"not found in .*elsewhere\. Put the four"):
        load_mnist(root=tmp_path / "elsewhere", download=False)
    assert not (tmp_path / "elsewhere").exists()


def test_files_are_hashed_once_then_the_stamp_is_trusted(tmp_path, monkeypatch, canonical):
    canonical(tmp_path / "m")
    hashed = count_hashing(monkeypatch)
    load_mnist(root=tmp_path / "m", download=False)
    assert len(hashed) == 4
    stamp = json.loads((tmp_path / "m" / STAMP_NAME).read_text())["files"]
    assert sorted(stamp) == sorted(n + ".gz" for n in FILES.values())
    load_mnist(root=tmp_path / "m", download=False)
    assert len(hashed) == 4  # not hashed again
    path = tmp_path / "m" / "t10k-labels-idx1-ubyte.gz"
    os.utime(path, ns=(1, 1))  # the file changed (as far as the stamp can tell): hash it again
    load_mnist(root=tmp_path / "m", download=False)
    assert len(hashed) == 5


def test_another_data_sets_files_are_refused_naming_file_and_both_hashes(tmp_path, canonical):
    canonical(tmp_path / "unused")
    _, other, _ = fake_set(tmp_path / "m", seed=1)  # e.g. Fashion-MNIST's files in the MNIST folder
    name = "train-images-idx3-ubyte"
    with pytest.raises(ChecksumMismatchError) as info:
        load_mnist(root=tmp_path / "m", download=False)
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'm' / name}.gz: SHA-256 mismatch")
    assert other[name] in message and data.SHA256["mnist"][name] in message and "verify=False" in message
    assert not (tmp_path / "m" / STAMP_NAME).exists()
    (x, _), _ = load_mnist(root=tmp_path / "m", download=False, verify=False)  # the documented way
    assert x.shape == (5, 784)


def test_a_file_larger_than_the_canonical_one_is_not_inflated(tmp_path, canonical):
    canonical(tmp_path / "m")
    name = "train-labels-idx1-ubyte"
    (tmp_path / "m" / (name + ".gz")).write_bytes(gzip.compress(bytes(50 << 20)))
    with pytest.raises(ChecksumMismatchError, match=rf"{name}.gz: holds more than 13 bytes, the size of mnist's"):
        load_mnist(root=tmp_path / "m", download=False)


def test_a_read_only_folder_keeps_its_stamp_in_the_cache(tmp_path):
    _, sums, sizes = fake_set(tmp_path / "ro")
    os.chmod(tmp_path / "ro", 0o555)
    os.chmod(tmp_path, 0o755)
    code = f"""
        import hashlib, types
        from tinygrad_cnn import data
        data.SHA256["mnist"], data.SIZES["mnist"] = {sums!r}, {sizes!r}
        calls = []
        data.hashlib = types.SimpleNamespace(
            sha256=lambda *a: hashlib.sha256(*a) if a else calls.append(1) or hashlib.sha256())
        for _ in range(2):
            data.load_mnist(root={str(tmp_path / "ro")!r}, download=False)
            print(len(calls))
        """
    proc = run_unprivileged(code, env={"XDG_CACHE_HOME": str(tmp_path / "cache")})
    assert proc.stdout.split() == ["4", "4"], proc.stderr  # hashed once, then trusted
    assert STAMP_NAME not in os.listdir(tmp_path / "ro")
    (stamp,) = (tmp_path / "cache" / "tinygrad_cnn" / "verified").iterdir()
    assert json.loads(stamp.read_text())["folder"] == str(tmp_path / "ro")


@needs_fashion
def test_debians_folder_is_verified_once_with_the_stamp_in_the_cache(private_cache, monkeypatch):
    before = sorted(os.listdir(DEBIAN_FASHION_DIR))
    hashed = count_hashing(monkeypatch)
    (x, t), (xt, tt) = load_fashion_mnist(download=False)
    assert x.shape == (60000, 784) and xt.shape == (10000, 784) and len(hashed) == 4
    load_fashion_mnist(download=False)
    assert len(hashed) == 4
    assert sorted(os.listdir(DEBIAN_FASHION_DIR)) == before  # nothing written under /usr
    assert len(list((private_cache / "tinygrad_cnn" / "verified").iterdir())) == 1


def test_inconsistent_files_are_refused_naming_the_file(tmp_path):
    def load_with(**replace):
        folder = tmp_path / str(len(list(tmp_path.iterdir())))
        write_set(folder, {**fake_arrays(), **replace})
        return lambda: load_mnist(root=folder, download=False, verify=False)

    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte.gz has 5 images but .*"
                                         r"train-labels-idx1-ubyte.gz has 3 labels"):
        load_with(**{"train-labels-idx1-ubyte": np.zeros(3, np.uint8)})()
    with pytest.raises(ValueError, match=r"t10k-images-idx3-ubyte.gz: images must be uint8 \(N, 28, 28\); "
                                         r"the file holds uint8 \(5, 56, 14\)"):
        load_with(**{"t10k-images-idx3-ubyte": np.zeros((5, 56, 14), np.uint8)})()
    labels = np.array([1, 2, 200, 3, 4], np.uint8)
    with pytest.raises(ValueError, match=r"t10k-labels-idx1-ubyte.gz: label 200 at index 2 is outside 0..9"):
        load_with(**{"t10k-labels-idx1-ubyte": labels})()
    with pytest.raises(ValueError, match=r"train-labels-idx1-ubyte.gz: labels must be integers \(N,\)"):
        load_with(**{"train-labels-idx1-ubyte": np.zeros((5, 2), np.uint8)})()


def test_offline_error_says_where_to_put_the_files(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=r"not found in .*missing.*Put the four IDX files"):
        load_mnist(root=tmp_path / "missing", mirrors=["http://127.0.0.1:9/"])
    assert not (tmp_path / "missing").exists()
    assert "apt-get install dataset-fashion-mnist" in data._not_found_message("fashion-mnist", "x", [tmp_path])


def test_nothing_is_left_in_a_folder_after_loading_fails(tmp_path, canonical):
    canonical(tmp_path / "m")
    (tmp_path / "m" / "t10k-labels-idx1-ubyte.gz").write_bytes(b"\x1f\x8b garbage")
    before = listing(tmp_path / "m")
    with pytest.raises(ValueError, match="t10k-labels-idx1-ubyte.gz: corrupt or truncated gzip stream"):
        load_mnist(root=tmp_path / "m", download=False)
    assert listing(tmp_path / "m") == sorted(before + [STAMP_NAME])  # the three good files are stamped


# ----------------------------------------------------------------------------- batches


def test_dataloader_real_epochs():
    x = np.arange(10, dtype=np.float32).reshape(10, 1)
    t = np.arange(10)
    loader = DataLoader(x, t, batch_size=3, shuffle=True, seed=1)
    assert len(loader) == 4
    seen = np.concatenate([b[1].data for b in loader])
    assert sorted(seen.tolist()) == list(range(10))
    second = np.concatenate([b[1].data for b in loader])
    assert sorted(second.tolist()) == list(range(10)) and seen.tolist() != second.tolist()
    for xb, tb in loader:
        np.testing.assert_array_equal(xb.data[:, 0], tb.data)
    assert len(DataLoader(x, t, 3, drop_last=True)) == 3
    assert [b[1].tolist() for b in DataLoader(x, t, 4, shuffle=False)] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    with pytest.raises(ValueError, match="10 samples but t has 9"):
        DataLoader(x, t[:9])
