"""Downloads against a local HTTP server that misbehaves in each way: the next mirror is
used or one clear DatasetNotFoundError comes out, and nothing is left on disk."""
import gzip
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from data_helpers import FAULTS, ROOT, FaultyServer, fake_arrays, idx_bytes, listing

from tinygrad_cnn import data
from tinygrad_cnn.data import STAMP_NAME, DatasetNotFoundError, download, load_mnist

NAME = "train-labels-idx1-ubyte"
RAW = idx_bytes(np.arange(300, dtype=np.uint8) % 10)
SHA, SIZE = hashlib.sha256(RAW).hexdigest(), len(RAW)

REASONS = {
    "404": r"HTTP 404", "500": r"HTTP 500", "bad-status": r"bad status line", "reset": r"reset|closed the connection",
    "chunked-cut": r"cut off", "short": r"cut off", "endless": r"more than \d+ bytes",
    "trickle": r"within the 1 s deadline", "bomb": r"announces \d+ bytes, more than the \d+ a gzip of this file can be",
    "small-bomb": r"decompresses to more than 308 bytes", "html": r"HTML page",
    "not-gzip": r"not a gzip file", "corrupt": r"corrupt or truncated gzip stream",
    "wrong-file": r"SHA-256 mismatch: got [0-9a-f]{64} \(11 bytes\), expected " + SHA + r" \(train-labels-idx1-ubyte\)",
    "redirect-file": r"HTTP 302 Found - Redirection to url 'file:///etc/passwd' is not allowed",
}


@pytest.fixture(scope="module")
def server():
    s = FaultyServer({NAME + ".gz": gzip.compress(RAW)})
    yield s
    s.close()


def test_every_fault_has_a_reason():
    assert sorted(REASONS) == sorted(FAULTS)


@pytest.mark.parametrize("fault", FAULTS)
def test_a_faulty_mirror_is_skipped_for_the_next(tmp_path, server, fault):
    dest = tmp_path / "a" / "b"
    path = download(NAME, dest, SHA, [server.url(fault), server.url("good")], timeout=1, size=SIZE)
    assert path == dest / (NAME + ".gz")
    assert gzip.decompress(path.read_bytes()) == RAW
    assert listing(tmp_path) == sorted(["a", "a/b", f"a/b/{NAME}.gz", f"a/b/{STAMP_NAME}"])


def test_all_mirrors_failing_is_one_error_listing_each_and_leaves_nothing(tmp_path, server):
    (tmp_path / "keep").mkdir()
    dest = tmp_path / "keep" / "new" / "deeper"
    mirrors = [server.url(f) for f in FAULTS]
    start = time.perf_counter()
    with pytest.raises(DatasetNotFoundError) as info:
        download(NAME, dest, SHA, mirrors, timeout=1, size=SIZE)
    elapsed = time.perf_counter() - start
    message = str(info.value)
    assert message.startswith(f"could not download {NAME}.gz from any mirror:")
    assert len(message.splitlines()) == 1 + len(FAULTS)
    for (url, reason), fault in zip(info.value.errors, FAULTS):
        assert url == server.url(fault) + NAME + ".gz"
        assert re.search(REASONS[fault], reason), (fault, reason)
        assert f"{url}: {reason}" in message
    assert listing(tmp_path) == ["keep"]  # no .part, no folders made by the attempt
    assert elapsed < 6, elapsed  # the trickle is cut at 1 s; nothing else waits


def test_deadline_is_for_the_whole_file_not_each_read(tmp_path, server):
    start = time.perf_counter()
    with pytest.raises(DatasetNotFoundError, match="deadline"):
        download(NAME, tmp_path, SHA, [server.url("trickle")], timeout=0.5, size=SIZE)
    assert time.perf_counter() - start < 2.0  # the whole file at 50 ms a byte takes 2.5 s and more
    assert listing(tmp_path) == []


def test_load_mnist_downloads_checks_and_stamps(tmp_path, monkeypatch):
    arrays = fake_arrays()
    files = {name + ".gz": gzip.compress(idx_bytes(a)) for name, a in arrays.items()}
    monkeypatch.setitem(data.SHA256, "mnist", {n: hashlib.sha256(idx_bytes(a)).hexdigest() for n, a in arrays.items()})
    monkeypatch.setitem(data.SIZES, "mnist", {n: len(idx_bytes(a)) for n, a in arrays.items()})
    s = FaultyServer(files)
    try:
        dest = tmp_path / "dest"
        (x, t), _ = load_mnist(root=dest, mirrors=[s.url("500"), s.url("html"), s.url("good")])
    finally:
        s.close()
    np.testing.assert_array_equal(t, arrays["train-labels-idx1-ubyte"])
    assert listing(dest) == sorted([STAMP_NAME] + list(files))
    stamp = json.loads((dest / STAMP_NAME).read_text())["files"]
    assert sorted(stamp) == sorted(files) and stamp[NAME + ".gz"]["sha256"] == data.SHA256["mnist"][NAME]


def test_load_mnist_failing_download_says_where_to_put_the_files(tmp_path, server, monkeypatch):
    monkeypatch.setitem(data.SHA256, "mnist", {n: SHA for n in data.FILES.values()})
    dest = tmp_path / "missing"
    with pytest.raises(DatasetNotFoundError, match=r"(?s)not found in .*missing.*Put the four IDX files.*HTTP 404"):
        load_mnist(root=dest, mirrors=[server.url("404")])
    assert not dest.exists()


def test_local_faults_are_not_mirror_faults(tmp_path, server):
    """A destination that is a file is the caller's problem: raised as is, no mirror is blamed."""
    (tmp_path / "f").write_bytes(b"")
    with pytest.raises(FileExistsError):
        download(NAME, tmp_path / "f", SHA, [server.url("good")])


def _child(code: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT, **kw)


def test_ctrl_c_mid_download_leaves_nothing(tmp_path, server):
    dest = tmp_path / "new" / "dir"
    child = _child(f"""
        from tinygrad_cnn.data import download
        try:
            download({NAME!r}, {str(dest)!r}, {SHA!r}, [{server.url("trickle")!r}], timeout=60)
        except KeyboardInterrupt:
            print("interrupted")
        """)
    deadline = time.monotonic() + 20
    while not (dest.exists() and any(p.name.endswith(".part") for p in dest.iterdir())):
        assert time.monotonic() < deadline and child.poll() is None, child.communicate()
        time.sleep(0.02)
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=20)
    assert out.strip() == "interrupted", err
    assert listing(tmp_path) == []


def test_gzip_bomb_costs_no_memory(tmp_path, server):
    """A 1 MiB gzip that inflates to 1 GiB, served as MNIST's 47 MB training images: the
    download stops inflating past 47 MB and never holds it; peak RSS grows by < 32 MB."""
    name = "train-images-idx3-ubyte"
    child = _child(f"""
        import resource
        from tinygrad_cnn.data import SHA256, DatasetNotFoundError, download
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        try:
            download({name!r}, {str(tmp_path)!r}, SHA256["mnist"][{name!r}], [{server.url("bomb")!r}])
        except DatasetNotFoundError as e:
            print(e.errors[0][1])
        print(before, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
        """)
    out, err = child.communicate(timeout=60)
    reason, rss = out.strip().splitlines()
    before, after = (int(v) for v in rss.split())
    assert reason.startswith("decompresses to more than 47040016 bytes"), err
    print(f"gzip bomb: peak RSS {before} KiB before the download, {after} KiB after")
    assert after - before < 32 * 1024, (before, after)  # ru_maxrss is in KiB on Linux
    assert listing(tmp_path) == []


def test_stale_part_of_a_killed_download_goes_at_the_next(tmp_path, server):
    stale = tmp_path / f".{NAME}.gz.x1y2z3.part"
    stale.write_bytes(b"half a download")
    download(NAME, tmp_path, SHA, [server.url("good")])
    assert not stale.exists()
    assert listing(tmp_path) == sorted([f"{NAME}.gz", STAMP_NAME])


def test_permission_problem_is_a_permission_error(tmp_path, server):
    from data_helpers import run_unprivileged
    folder = tmp_path / "ro"
    folder.mkdir()
    os.chmod(folder, 0o555)
    os.chmod(tmp_path, 0o755)
    proc = run_unprivileged(f"""
        from tinygrad_cnn.data import download
        try:
            download({NAME!r}, {str(folder)!r}, {SHA!r}, [{server.url("good")!r}])
        except PermissionError as e:
            print("PermissionError", e)
        """)
    assert proc.stdout.startswith("PermissionError"), proc.stderr
    assert str(folder) in proc.stdout
    assert listing(folder) == []


def test_a_full_disk_is_raised_as_it_is_not_blamed_on_the_mirror(tmp_path, server, monkeypatch):
    import contextlib
    import errno

    class FullDisk:
        def __getattr__(self, name):
            return lambda *a: 0

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(data, "atomic_open", lambda path, mode: contextlib.nullcontext(FullDisk()))
    with pytest.raises(OSError, match="No space left on device") as info:
        download(NAME, tmp_path / "new", SHA, [server.url("good"), server.url("good")])
    assert not isinstance(info.value, DatasetNotFoundError)
    assert listing(tmp_path) == []


def test_https_goes_through_the_same_watched_connections(tmp_path, server):
    https = server.url("good").replace("http://", "https://")  # TLS to a plain-HTTP server
    with pytest.raises(DatasetNotFoundError, match=r"https://127.*: cannot connect: .*SSL"):
        download(NAME, tmp_path, SHA, [https], timeout=5, size=SIZE)
    assert listing(tmp_path) == []
