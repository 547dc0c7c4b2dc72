"""Helpers for the data, download, checkpoint and example tests: tiny IDX data sets, a local
HTTP server that misbehaves on request, and a way to run code without root's file access."""
from __future__ import annotations

import gzip
import hashlib
import http.server
import os
import socket
import struct
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from tinygrad_cnn.data import FILES

ROOT = Path(__file__).resolve().parents[1]


def idx_bytes(arr: np.ndarray) -> bytes:
    """`arr` (uint8 or int32) as an IDX file."""
    code = {np.uint8: 0x08, np.int32: 0x0C}[arr.dtype.type]
    dt = ">i4" if code == 0x0C else np.uint8
    header = bytes([0, 0, code, arr.ndim]) + np.array(arr.shape, ">u4").tobytes()
    return header + arr.astype(dt).tobytes()


def fake_arrays(n=5, seed=0) -> dict:
    """MNIST-shaped random arrays (n images per split) keyed by file name."""
    rng = np.random.default_rng(seed)
    return {
        FILES["train_img"]: rng.integers(0, 256, (n, 28, 28), dtype=np.uint8),
        FILES["train_label"]: rng.integers(0, 10, n).astype(np.uint8),
        FILES["test_img"]: rng.integers(0, 256, (n, 28, 28), dtype=np.uint8),
        FILES["test_label"]: rng.integers(0, 10, n).astype(np.uint8),
    }


def write_set(folder: Path, arrays: dict, gz=True) -> tuple[dict, dict]:
    """Write the arrays as IDX files (`.gz` unless gz=False); returns their uncompressed
    SHA-256s and sizes by file name, in the shape of data.SHA256[...] / data.SIZES[...]."""
    folder.mkdir(parents=True, exist_ok=True)
    sums, sizes = {}, {}
    for name, a in arrays.items():
        raw = idx_bytes(a)
        sums[name], sizes[name] = hashlib.sha256(raw).hexdigest(), len(raw)
        if gz:
            (folder / (name + ".gz")).write_bytes(gzip.compress(raw))
        else:
            (folder / name).write_bytes(raw)
    return sums, sizes


def fake_set(folder: Path, n=5, seed=0, gz=True):
    """A tiny MNIST look-alike in `folder`: (arrays, SHA-256s, sizes)."""
    arrays = fake_arrays(n, seed)
    sums, sizes = write_set(folder, arrays, gz)
    return arrays, sums, sizes


def listing(folder: Path) -> list[str]:
    """Every path under `folder` (hidden files included), relative, sorted."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


# ----------------------------------------------------------------------------- a misbehaving server

_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
_EMPTY_STORED_BLOCK = b"\x00\x00\x00\xff\xff"  # deflate: a non-final stored block of 0 bytes
_bomb = None


def gzip_bomb() -> bytes:
    """About 1 MiB of gzip (many members) that inflates to 1 GiB of zeros."""
    global _bomb
    if _bomb is None:
        _bomb = gzip.compress(bytes(10 << 20), 9) * 103
    return _bomb


class FaultyHandler(http.server.BaseHTTPRequestHandler):
    """GET /<fault>/<file>: `good` serves `files[file]`; every other fault misbehaves its way."""

    protocol_version = "HTTP/1.1"
    files: dict = {}

    def log_message(self, *args):
        pass

    def do_GET(self):
        fault, _, name = self.path.lstrip("/").partition("/")
        try:
            getattr(self, "fault_" + fault.replace("-", "_"), self.fault_404)(name)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up, as it should

    def _headers(self, status=200, length=None, ctype="application/gzip", extra=()):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        if length is not None:
            self.send_header("Content-Length", str(length))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()

    def fault_good(self, name):
        if name not in self.files:
            return self.fault_404(name)
        body = self.files[name]
        self._headers(length=len(body))
        self.wfile.write(body)

    def fault_404(self, name):
        self.send_error(404)

    def fault_500(self, name):
        self.send_error(500)

    def fault_bad_status(self, name):
        self.wfile.write(b"HTTP/9 nonsense\r\n\r\n")
        self.close_connection = True

    def fault_reset(self, name):
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True  # closing with linger 0 sends a RST

    def fault_chunked_cut(self, name):
        self._headers(extra=[("Transfer-Encoding", "chunked")])
        self.wfile.write(b"1000\r\n" + self.files.get(name, b"x" * 100)[:100])
        self.close_connection = True

    def fault_short(self, name):
        body = self.files.get(name, b"")
        self._headers(length=len(body) + 1000)
        self.wfile.write(body[: len(body) // 2])
        self.close_connection = True

    def fault_endless(self, name):
        """Valid gzip that never ends and never inflates to anything."""
        self._headers(extra=[("Connection", "close")])
        self.wfile.write(_GZIP_HEADER)
        while True:
            self.wfile.write(_EMPTY_STORED_BLOCK * 4096)

    def fault_trickle(self, name):
        body = self.files.get(name, b"x" * 4000)
        self._headers(length=len(body))
        for i in range(len(body)):
            self.wfile.write(body[i:i + 1])
            self.wfile.flush()
            time.sleep(0.05)

    def fault_bomb(self, name):
        body = gzip_bomb()
        self._headers(length=len(body))
        self.wfile.write(body)

    def fault_small_bomb(self, name):
        body = gzip_bomb()[:len(gzip_bomb()) // 103]  # one member: 10 KiB that inflate to 10 MiB
        self._headers(length=len(body))
        self.wfile.write(body)

    def fault_html(self, name):
        body = b"<!DOCTYPE html><html><body>Please log in</body></html>"
        self._headers(length=len(body), ctype="text/html; charset=utf-8")
        self.wfile.write(body)

    def fault_not_gzip(self, name):
        body = b"\x00\x00\x08\x01" + b"\x00" * 60
        self._headers(length=len(body), ctype="application/octet-stream")
        self.wfile.write(body)

    def fault_corrupt(self, name):
        body = bytearray(self.files[name])
        body[12:20] = b"\xff" * 8  # inside the deflate data
        self._headers(length=len(body))
        self.wfile.write(bytes(body))

    def fault_wrong_file(self, name):
        body = gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x03abc")
        self._headers(length=len(body))
        self.wfile.write(body)

    def fault_redirect_file(self, name):
        self._headers(302, length=0, extra=[("Location", "file:///etc/passwd")])


FAULTS = ["404", "500", "bad-status", "reset", "chunked-cut", "short", "endless", "trickle", "bomb", "small-bomb",
          "html", "not-gzip", "corrupt", "wrong-file", "redirect-file"]


class FaultyServer:
    """A threaded HTTP server on 127.0.0.1; `url(fault)` is a mirror misbehaving that way."""

    def __init__(self, files: dict):
        handler = type("Handler", (FaultyHandler,), {"files": files})
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, fault: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{fault}/"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


# ----------------------------------------------------------------------------- without root's file access

_DROP_DAC = """
import ctypes, os
if os.geteuid() == 0:  # root: give up CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH, so file modes apply
    libc = ctypes.CDLL(None, use_errno=True)
    class _Hdr(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]
    class _Caps(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]
    hdr, caps = _Hdr(0x20080522, 0), (_Caps * 2)()
    ok = libc.capget(ctypes.byref(hdr), caps) == 0
    caps[0].effective &= ~0b110
    caps[0].permitted &= ~0b110
    if not (ok and libc.capset(ctypes.byref(hdr), caps) == 0):
        raise SystemExit(77)
"""


def run_unprivileged(code: str, env=None, timeout=60) -> subprocess.CompletedProcess:
    """Run `code` in a Python subprocess that file permissions apply to, even as root.
    Skips the test where root cannot give up its file access."""
    proc = subprocess.run([sys.executable, "-c", _DROP_DAC + textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})}, cwd=ROOT)
    if proc.returncode == 77:
        pytest.skip("cannot drop root's file access here")
    return proc
