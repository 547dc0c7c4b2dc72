"""HTTP(S) downloads with a total deadline and a byte cap, for `data.download`.

`fetch` streams one URL's body into a file; `describe` says in a few words why a mirror
failed; `MIRROR_FAULTS` are the exceptions that mean "try the next mirror".
"""
from __future__ import annotations

import contextlib
import functools
import http.client
import socket
import threading
import urllib.error
import urllib.request

CHUNK = 1 << 20
# What a failing server or network can raise: reason enough to try the next mirror.
MIRROR_FAULTS = (OSError, http.client.HTTPException, ValueError)


def describe(e: BaseException) -> str:
    """A short account of why one mirror failed."""
    if isinstance(e, urllib.error.HTTPError):
        return f"HTTP {e.code} {e.reason}"
    if isinstance(e, urllib.error.URLError):
        return f"cannot connect: {e.reason}"
    if isinstance(e, http.client.RemoteDisconnected):
        return "the server closed the connection without a response"
    if isinstance(e, http.client.BadStatusLine):
        return f"malformed response: bad status line {e.line!r}"
    if isinstance(e, http.client.IncompleteRead):
        return "the body was cut off in the middle of a chunk"
    if isinstance(e, (TimeoutError, ValueError)):
        return str(e)
    return f"{type(e).__name__}: {e}"


class _Deadline:
    """Shuts down every socket of one download attempt when `seconds` have passed, so the
    whole attempt (connect, headers, body, redirects) ends by then: a total, not per read."""

    def __init__(self, seconds: float):
        self.seconds, self.expired = seconds, False
        self._sockets, self._lock = [], threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self):
        self._timer.start()
        return self

    def __exit__(self, *exc):
        self._timer.cancel()

    def watch(self, sock: socket.socket) -> socket.socket:
        with self._lock:
            self._sockets.append(sock)
            if self.expired:
                _shut(sock)
        return sock

    def _expire(self):
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                _shut(sock)


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


class _Watched:
    """An http.client connection whose sockets a `_Deadline` watches (before any TLS handshake)."""

    def __init__(self, *args, deadline: _Deadline, **kwargs):
        super().__init__(*args, **kwargs)
        self._create_connection = lambda *a, **k: deadline.watch(socket.create_connection(*a, **k))


class _HTTPConnection(_Watched, http.client.HTTPConnection):
    pass


class _HTTPSConnection(_Watched, http.client.HTTPSConnection):
    pass


class _HTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, deadline: _Deadline):
        super().__init__()
        self.deadline = deadline

    def http_open(self, req):
        return self.do_open(functools.partial(_HTTPConnection, deadline=self.deadline), req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, deadline: _Deadline):
        super().__init__()
        self.deadline = deadline

    def https_open(self, req):
        return self.do_open(functools.partial(_HTTPSConnection, deadline=self.deadline), req, context=self._context)


def _opener(deadline: _Deadline) -> urllib.request.OpenerDirector:
    """urllib for http(s) only (no file:// or ftp://, also not by redirect), under `deadline`."""
    opener = urllib.request.OpenerDirector()
    for handler in (urllib.request.ProxyHandler(), urllib.request.UnknownHandler(), _HTTPHandler(deadline),
                    _HTTPSHandler(deadline), urllib.request.HTTPDefaultErrorHandler(),
                    urllib.request.HTTPRedirectHandler(), urllib.request.HTTPErrorProcessor()):
        opener.add_handler(handler)
    return opener


class DiskError(Exception):
    """Writing the download failed locally: not the mirror's fault, so not a reason to try the next."""


def fetch(url: str, out, max_bytes: int, timeout: float) -> None:
    """Write the body at `url` to the binary file `out`: at most `max_bytes`, all within `timeout` s."""
    with _Deadline(timeout) as deadline:
        try:
            with _opener(deadline).open(url, timeout=min(timeout, 30.0)) as r:
                if r.headers.get_content_type() == "text/html":
                    raise ValueError("the server sent an HTML page (Content-Type text/html), not a .gz file")
                length = r.headers.get("Content-Length", "")
                if length.isdigit() and int(length) > max_bytes:
                    raise ValueError(f"the server announces {length} bytes, more than the {max_bytes} "
                                     f"a gzip of this file can be")
                got = 0
                while chunk := r.read(CHUNK):
                    got += len(chunk)
                    if got > max_bytes:
                        raise ValueError(f"the server sent more than {max_bytes} bytes, more than a gzip of "
                                         f"this file can be")
                    try:
                        out.write(chunk)
                    except OSError as e:
                        raise DiskError(e) from e
                if length.isdigit() and got < int(length):
                    raise ValueError(f"the body was cut off after {got} of {length} bytes")
        except MIRROR_FAULTS as e:
            if isinstance(e, urllib.error.HTTPError):
                e.close()  # its response, left open for a handler that is not here
            if deadline.expired:
                raise TimeoutError(f"no complete file within the {timeout:g} s deadline") from e
            raise
        if deadline.expired:
            raise TimeoutError(f"no complete file within the {timeout:g} s deadline")
