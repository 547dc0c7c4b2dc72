"""Durable file writes and checkpoint files.

`atomic_open` / `atomic_write`: the new contents go to a locked temporary file next to the
target, are flushed and fsynced, then renamed over it (and the folder is fsynced), so a
reader sees the old file or the whole new one. A symlink is written through to its target;
an existing target keeps its permission bits (and owner, where allowed). A temporary file
left by a killed writer (its lock died with it) is removed by the next write to the same
target.

`save_arrays` / `load_arrays`: named arrays in an .npz checkpoint; `load_arrays` finds the
format from the file's first bytes (`CHECKPOINT_FORMATS`), so another format is one entry.
"""
from __future__ import annotations

import contextlib
import errno
import os
import tempfile
import zipfile
import zlib
from typing import BinaryIO, Callable, Iterator, Mapping

import numpy as np

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no locks, so stale temporary files stay
    fcntl = None

TEMP_SUFFIX = ".part"


def _umask() -> int:
    """The process umask, read without changing it where /proc allows."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # the portable way briefly sets it
    os.umask(mask)
    return mask


def _temp_prefix(target: str) -> str:
    return "." + os.path.basename(target) + "."


def _is_temp_of(name: str, target: str) -> bool:
    return name.startswith(_temp_prefix(target)) and name.endswith(TEMP_SUFFIX)


def remove_stale_temps(target) -> list[str]:
    """Delete temporary files of earlier writes to `target` whose writer is gone (unlocked).
    Returns the paths removed. A live writer holds its lock, so its file is left alone."""
    if fcntl is None:
        return []
    target = os.path.realpath(target)
    folder = os.path.dirname(target)
    removed = []
    try:
        entries = [e.path for e in os.scandir(folder) if _is_temp_of(e.name, target)]
    except OSError:
        return []
    for path in entries:
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                os.unlink(path)
                removed.append(path)
        except OSError:  # locked by a live writer, or already gone
            pass
        finally:
            os.close(fd)
    return removed


def _locked_temp(target: str) -> tuple[int, str]:
    """A new temporary file next to `target`, locked for as long as its descriptor is open."""
    folder = os.path.dirname(target)
    if not os.path.isdir(folder):
        raise FileNotFoundError(errno.ENOENT, "no such folder", folder)
    while True:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=_temp_prefix(target), suffix=TEMP_SUFFIX)
        if fcntl is None:
            return fd, tmp
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            if os.stat(tmp).st_ino == os.fstat(fd).st_ino:
                return fd, tmp
        except FileNotFoundError:  # a cleaner took it between mkstemp and flock: take another name
            pass
        os.close(fd)


def _fsync_folder(folder: str) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems cannot fsync a folder
        pass
    finally:
        os.close(fd)


def _copy_ownership(fd: int, target: str) -> None:
    """Give the new file the old one's permission bits and, where allowed, its owner."""
    try:
        st = os.stat(target)
    except FileNotFoundError:
        os.fchmod(fd, 0o666 & ~_umask())
        return
    os.fchmod(fd, st.st_mode & 0o7777)
    mine = os.fstat(fd)
    if (mine.st_uid, mine.st_gid) != (st.st_uid, st.st_gid):
        with contextlib.suppress(OSError):
            os.fchown(fd, st.st_uid, st.st_gid)
            os.fchmod(fd, st.st_mode & 0o7777)  # chown may clear setuid/setgid bits


@contextlib.contextmanager
def atomic_open(path, mode: str = "wb") -> Iterator[BinaryIO]:
    """A new binary file to write (`mode` "wb", or "w+b" to read it back too); when the block
    ends normally its contents replace `path` (through symlinks, keeping the target's
    permissions, fsynced). If the block raises (Ctrl-C included), `path` is untouched and
    the temporary file is removed."""
    if mode not in ("wb", "w+b"):
        raise ValueError(f"atomic_open: mode must be 'wb' or 'w+b', got {mode!r}")
    target = os.path.realpath(os.fspath(path))
    if os.path.isdir(target):
        raise IsADirectoryError(errno.EISDIR, "is a folder", os.fspath(path))
    remove_stale_temps(target)
    fd, tmp = _locked_temp(target)
    f = os.fdopen(fd, mode)
    done = False
    try:
        yield f
        f.flush()
        _copy_ownership(f.fileno(), target)
        os.fsync(f.fileno())
        os.replace(tmp, target)  # while still locked: a cleaner never sees a finished temp file
        done = True
    finally:
        if not done:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        f.close()
    _fsync_folder(os.path.dirname(target))


def atomic_write(path, data: bytes) -> None:
    """Write `data` to `path` so that readers see the old file or the whole new one, never
    part of it; on failure nothing is left behind. A new file gets the umask permissions,
    an existing one keeps its own; a symlink keeps pointing at the (new) target."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"atomic_write: data must be bytes, got {type(data).__name__}")
    with atomic_open(path) as f:
        f.write(data)


# ----------------------------------------------------------------------------- checkpoints


def save_arrays(path, arrays: Mapping[str, np.ndarray]) -> None:
    """Save named arrays as an uncompressed .npz (what `np.load` reads), atomically.
    Object arrays are refused: a checkpoint holds numbers only."""
    with atomic_open(path) as f, zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as z:
        for name, a in arrays.items():
            with z.open(name + ".npy", "w", force_zip64=True) as entry:
                np.lib.format.write_array(entry, np.asanyarray(a), allow_pickle=False)


def _read_npz(path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, ValueError, EOFError, zlib.error, KeyError) as e:
        raise ValueError(f"{path}: a damaged .npz checkpoint ({type(e).__name__}: {e})") from e


# Format name -> (test on the file's first 8 bytes, reader returning name -> array)
CHECKPOINT_FORMATS: dict[str, tuple[Callable[[bytes], bool], Callable[..., dict]]] = {
    "npz": (lambda head: head[:4] in (b"PK\x03\x04", b"PK\x05\x06"), _read_npz),
}

_NOT_CHECKPOINTS = [  # what else a file might be, for the error message
    (b"\x93NUMPY", "a single .npy array (np.save), not named arrays"),
    (b"\x80", "a Python pickle"),
    (b"\x1f\x8b", "a gzip file"),
]


def _describe(head: bytes) -> str:
    if not head:
        return "the file is empty"
    for magic, what in _NOT_CHECKPOINTS:
        if head.startswith(magic):
            return f"it is {what}"
    return f"it starts with {head!r}"


def load_arrays(path) -> dict[str, np.ndarray]:
    """Named arrays from a checkpoint file, its format found from its first bytes.

    ValueError naming the file and the expected format if it is not a checkpoint or is
    damaged; FileNotFoundError / PermissionError as `open` raises them."""
    with open(path, "rb") as f:
        head = f.read(8)
    for sniff, read in CHECKPOINT_FORMATS.values():
        if sniff(head):
            return read(path)
    formats = ", ".join(CHECKPOINT_FORMATS)
    raise ValueError(f"{os.fspath(path)}: not a checkpoint ({_describe(head)}); expected one of: {formats} "
                     f"(an .npz archive of named arrays, as save_params writes)")
