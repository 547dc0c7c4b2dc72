"""IDX reader, MNIST loading, checked downloads from a local HTTP server, DataLoader."""
import gzip
import hashlib
import http.server
import threading
from pathlib import Path

import numpy as np
import pytest

from tinygrad_cnn import data
from tinygrad_cnn.data import DataLoader, DatasetNotFoundError, load_mnist, parse_idx, read_idx

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist-test"
needs_mnist_test = pytest.mark.skipif(not (SHARED / "t10k-images-idx3-ubyte.gz").exists(),
                                      reason="../shared/data/mnist-test is absent")


def idx_bytes(arr: np.ndarray) -> bytes:
    code = {np.uint8: 0x08, np.int32: 0x0C}[arr.dtype.type]
    dt = ">i4" if code == 0x0C else np.uint8
    header = bytes([0, 0, code, arr.ndim]) + np.array(arr.shape, ">u4").tobytes()
    return header + arr.astype(dt).tobytes()


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
    with gzip.open(tmp_path / "a.idx.gz", "wb") as f:
        f.write(idx_bytes(a))
    np.testing.assert_array_equal(read_idx(tmp_path / "a.idx"), a)
    np.testing.assert_array_equal(read_idx(tmp_path / "a.idx.gz"), a)
    b = np.array([[1, -2], [3, 400000]], dtype=np.int32)
    np.testing.assert_array_equal(parse_idx(idx_bytes(b)), b)


def test_truncated_and_corrupt_files_name_the_file_and_fault(tmp_path):
    good = idx_bytes(np.zeros((4, 5), dtype=np.uint8))
    (tmp_path / "short.idx").write_bytes(good[:-3])
    with pytest.raises(ValueError, match=r"short.idx: truncated: dimensions \(4, 5\) need 20 data bytes, found 17"):
        read_idx(tmp_path / "short.idx")
    (tmp_path / "long.idx").write_bytes(good + b"xx")
    with pytest.raises(ValueError, match="longer than its header"):
        read_idx(tmp_path / "long.idx")
    (tmp_path / "magic.idx").write_bytes(b"\x01\x02" + good[2:])
    with pytest.raises(ValueError, match="magic.idx: bad IDX magic"):
        read_idx(tmp_path / "magic.idx")
    (tmp_path / "header.idx").write_bytes(good[:6])
    with pytest.raises(ValueError, match="declares 2 dimensions"):
        read_idx(tmp_path / "header.idx")
    with gzip.open(tmp_path / "cut.idx.gz", "wb") as f:
        f.write(good * 50)
    raw = (tmp_path / "cut.idx.gz").read_bytes()
    (tmp_path / "cut.idx.gz").write_bytes(raw[:len(raw) // 2])
    with pytest.raises(ValueError, match="cut.idx.gz: cannot read"):
        read_idx(tmp_path / "cut.idx.gz")


def _fake_mnist(folder: Path, n=5):
    """Four small IDX .gz files with MNIST's names; returns their uncompressed SHA-256s."""
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n).astype(np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n).astype(np.uint8),
    }
    folder.mkdir(parents=True, exist_ok=True)
    sums = {}
    for name, a in arrays.items():
        raw = idx_bytes(a)
        sums[name] = hashlib.sha256(raw).hexdigest()
        with gzip.open(folder / (name + ".gz"), "wb") as f:
            f.write(raw)
    return arrays, sums


@pytest.fixture
def server(tmp_path):
    """A local HTTP server on 127.0.0.1 serving tmp_path/www; yields its base URL."""
    www = tmp_path / "www"
    www.mkdir()
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=str(www), **k)  # noqa: E731
    http.server.SimpleHTTPRequestHandler.log_message = lambda *a: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield www, f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


def test_load_mnist_from_root_shapes_and_types(tmp_path):
    arrays, _ = _fake_mnist(tmp_path / "m")
    (x, t), (xt, tt) = load_mnist(root=tmp_path / "m", download=False)
    assert x.shape == (5, 784) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
    np.testing.assert_array_equal(t, arrays["train-labels-idx1-ubyte"])
    (x, t), _ = load_mnist(root=tmp_path / "m", flatten=False, one_hot_label=True, normalize=False)
    assert x.shape == (5, 1, 28, 28) and x.dtype == np.uint8
    assert t.shape == (5, 10) and (t.sum(1) == 1).all()


def test_environment_variable_is_searched(tmp_path, monkeypatch):
    _fake_mnist(tmp_path / "env")
    monkeypatch.setenv("TINYGRAD_CNN_DATA", str(tmp_path / "env"))
    (x, _), _ = load_mnist(download=False)
    assert x.shape == (5, 784)


def test_download_checks_sha256_and_falls_through_mirrors(tmp_path, server, monkeypatch):
    www, base = server
    arrays, sums = _fake_mnist(www / "good")
    (www / "bad").mkdir()
    for name in arrays:  # the first mirror serves corrupt copies
        with gzip.open(www / "bad" / (name + ".gz"), "wb") as f:
            f.write(b"not the right bytes")
    monkeypatch.setitem(data.SHA256, "mnist", sums)
    dest = tmp_path / "dest"
    (x, t), _ = load_mnist(root=dest, mirrors=[base + "bad/", base + "missing/", base + "good/"])
    np.testing.assert_array_equal(t, arrays["train-labels-idx1-ubyte"])
    assert sorted(p.name for p in dest.iterdir()) == sorted(n + ".gz" for n in arrays)


def test_failed_download_leaves_nothing_behind(tmp_path, server, monkeypatch):
    www, base = server
    arrays, sums = _fake_mnist(www / "m")
    monkeypatch.setitem(data.SHA256, "mnist", {k: "0" * 64 for k in sums})  # nothing matches
    dest = tmp_path / "dest"
    with pytest.raises(DatasetNotFoundError, match="SHA-256 mismatch"):
        load_mnist(root=dest, mirrors=[base + "m/"])
    assert list(dest.iterdir()) == []


def test_offline_error_says_where_to_put_the_files(tmp_path, monkeypatch):
    monkeypatch.delenv("TINYGRAD_CNN_DATA", raising=False)
    with pytest.raises(DatasetNotFoundError, match=r"not found in .*missing.*Put the four IDX files"):
        load_mnist(root=tmp_path / "missing", mirrors=["http://127.0.0.1:9/"])
    assert "apt-get install dataset-fashion-mnist" in data._not_found_message("fashion-mnist", "x", [tmp_path])


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
