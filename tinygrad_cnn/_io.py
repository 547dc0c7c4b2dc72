"""Durable file writes and checkpoint files.

`atomic_open` / `atomic_write`: the new contents go to a locked temporary file next to the
target, are flushed and fsynced, then renamed over it (and the folder is fsynced), so a
reader sees the old file or the whole new one. A symlink is written through to its target;
an existing target keeps its permission bits (and owner, where allowed). A temporary file
left by a killed writer (its lock died with it) is removed by the next write to the same
target.

`save_arrays` / `load_arrays`: named arrays in an .npz checkpoint; `load_arrays` finds the
format from the file's first bytes (`CHECKPOINT_FORMATS`), so another format is one entry.
`save_arrays_pickle` writes the lecture book's params.pkl (a pickled dict of numpy arrays);
`load_arrays` reads it back through a restricted unpickler that never runs code from the file.
"""
from __future__ import annotations

import contextlib
import errno
import io
import math
import os
import pickle
import pickletools
import re
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


def write_npz(f, arrays: Mapping[str, np.ndarray]) -> None:
    """Write named arrays to the binary file object f as an uncompressed .npz (what `np.load`
    reads). Object arrays are refused: it holds numbers only."""
    with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as z:
        for name, a in arrays.items():
            with z.open(name + ".npy", "w", force_zip64=True) as entry:
                np.lib.format.write_array(entry, np.asanyarray(a), allow_pickle=False)


def save_arrays(path, arrays: Mapping[str, np.ndarray]) -> None:
    """Save named arrays as an uncompressed .npz (`write_npz`), atomically."""
    with atomic_open(path) as f:
        write_npz(f, arrays)


def _read_npz(path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, ValueError, EOFError, zlib.error, KeyError) as e:
        raise ValueError(f"{path}: a damaged .npz checkpoint ({type(e).__name__}: {e})") from e


# ----------------------------------------------------------------------------- the lecture book's params.pkl
# A pickle names the functions that rebuild its objects, and loading calls them: a plain
# pickle.load can run any code. The restricted unpickler admits only the globals that numpy
# arrays are pickled with, and even those are not handed to numpy: numpy's own __setstate__
# trusts a dtype's flags from the file (a crafted object field becomes a raw pointer and
# crashes the interpreter), so arrays are rebuilt here from plain numeric dtypes and bytes.


class UnsafePickleError(pickle.UnpicklingError, ValueError):
    """A pickle checkpoint names something other than numeric numpy arrays, dicts, lists,
    tuples, numbers and strings (a global that could run code, an object dtype); it is
    refused when met, before it is called."""


class _Refused(Exception):
    """Raised while unpickling; `_read_pkl` adds the file name."""


class _PickledDtype:
    """What `numpy.dtype(name, align, copy)` unpickles to: a plain numeric dtype (bool, int,
    float, complex), its byte order set by BUILD."""

    def __init__(self, name, align=False, copy=True):
        if not (isinstance(name, str) and re.fullmatch(r"[biufc][0-9]{1,2}", name)):  # as numpy writes them
            raise _Refused(f"the dtype {name!r} (only plain numeric dtypes are admitted)")
        try:
            self.dtype = np.dtype(name)
        except TypeError:  # "f3"
            raise _Refused(f"the dtype {name!r} (not a numpy dtype)") from None

    def __setstate__(self, state):
        # (version, byte order, subarray, names, fields, elsize, alignment, flags[, metadata])
        if not (isinstance(state, tuple) and len(state) >= 5 and state[1] in ("<", ">", "|", "=")
                and state[2] is state[3] is state[4] is None):
            raise _Refused(f"the dtype state {state!r} (only plain numeric dtypes are admitted)")
        if state[1] in "<>":
            self.dtype = self.dtype.newbyteorder(state[1])


def _from_bytes(raw, dtype, shape, order="C") -> np.ndarray:
    """A new writable array of `shape` made from exactly as many bytes as it needs."""
    if not isinstance(dtype, _PickledDtype):
        raise _Refused(f"an array of dtype {dtype!r} (only plain numeric dtypes are admitted)")
    if not (isinstance(shape, tuple) and all(isinstance(n, int) and n >= 0 for n in shape)):
        raise _Refused(f"an array of shape {shape!r}")
    count, d = math.prod(shape), dtype.dtype
    if not isinstance(raw, (bytes, bytearray)) or len(raw) != count * d.itemsize:
        raise _Refused(f"array data that is not {count * d.itemsize} bytes (shape {shape}, dtype {d})")
    return np.frombuffer(raw, d, count).reshape(shape, order=order).copy()


class _PickledArray:
    """What numpy's `_reconstruct(numpy.ndarray, ...)` unpickles to; BUILD gives it its data."""
    array = None

    def __setstate__(self, state):
        if not (isinstance(state, tuple) and len(state) in (4, 5)):
            raise _Refused(f"the array state {state!r}")
        shape, dtype, fortran, raw = state[-4:]
        self.array = _from_bytes(raw, dtype, shape, "F" if fortran else "C")


_NDARRAY = object()  # what `numpy.ndarray` unpickles to: a token for _reconstruct, not a callable


def _reconstruct(cls, shape, typecode) -> _PickledArray:
    if cls is not _NDARRAY:
        raise _Refused(f"numpy's _reconstruct of {cls!r} (only numpy.ndarray is admitted)")
    return _PickledArray()


def _frombuffer(buf, dtype, shape, order) -> np.ndarray:  # protocol 5's arrays
    return _from_bytes(buf, dtype, shape, order)


def _scalar(dtype, raw):  # numpy scalars, e.g. np.float64(0.5)
    return _from_bytes(raw, dtype, ())[()]


def _latin1(text, encoding):  # how protocols 0-2 store bytes
    if not isinstance(text, str) or encoding != "latin1":
        raise _Refused(f"_codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


def _empty_bytes(*args):  # how protocols 0-2 store b"" (an empty array's data)
    if args:
        raise _Refused(f"bytes{args!r} (only bytes() is admitted)")
    return b""


_PICKLE_GLOBALS = {
    ("numpy", "ndarray"): _NDARRAY, ("numpy", "dtype"): _PickledDtype, ("_codecs", "encode"): _latin1,
    ("__builtin__", "bytes"): _empty_bytes, ("builtins", "bytes"): _empty_bytes,
    **{(f"{core}.{module}", name): f  # numpy 1 and numpy 2 names
       for core in ("numpy.core", "numpy._core")
       for module, name, f in (("multiarray", "_reconstruct", _reconstruct), ("multiarray", "scalar", _scalar),
                               ("numeric", "_frombuffer", _frombuffer))},
}


class _ArrayUnpickler(pickle.Unpickler):
    """Admits only the globals in _PICKLE_GLOBALS; dicts, lists, tuples, numbers, strings
    and bytes need none."""

    def find_class(self, module, name):
        found = _PICKLE_GLOBALS.get((module, name))
        if found is None:
            raise _Refused(f"the global {module}.{name}")
        return found

    def persistent_load(self, pid):
        raise _Refused(f"the persistent id {pid!r}")


def _read_pkl(path) -> dict[str, np.ndarray]:
    """The book's params.pkl: a pickled dict of name -> numpy array, read without running code."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        _prescan(data)
        obj = _ArrayUnpickler(io.BytesIO(data)).load()
    except _Refused as e:
        raise UnsafePickleError(f"{os.fspath(path)}: refused {e}: a pickle checkpoint may hold only numpy arrays of "
                                f"numbers, dicts, lists, tuples, numbers and strings") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            OverflowError) as e:
        raise ValueError(f"{os.fspath(path)}: a damaged pickle checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{os.fspath(path)}: a pickle of a {type(obj).__name__}, not a dict of named arrays")
    return {_name(path, k): _pickled_value(path, k, v) for k, v in obj.items()}


def _prescan(data: bytes) -> None:
    """Walk the opcodes before unpickling: every length field within the file (pickletools
    checks) and every memo index below the file's size, so that the unpickler allocates
    nothing that the file does not hold. ValueError otherwise."""
    for op, arg, _ in pickletools.genops(data):
        if op.name.endswith(("PUT", "GET")) and arg > len(data):
            raise ValueError(f"memo index {arg} in a pickle of {len(data)} bytes")


def _name(path, key) -> str:
    if not isinstance(key, str):
        raise ValueError(f"{os.fspath(path)}: the key {key!r} is a {type(key).__name__}, not a name")
    return key


def _pickled_value(path, key: str, value) -> np.ndarray:
    """An unpickled value as an array: a numeric array or a number qualifies."""
    if isinstance(value, _PickledArray):
        value = value.array  # None if the file never gave it data
    if isinstance(value, (bool, int, float, complex, np.generic)):
        value = np.asarray(value)
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "biufc":
        raise ValueError(f"{os.fspath(path)}: {key!r} holds a {type(value).__name__}, not an array of numbers")
    return value


def save_arrays_pickle(path, arrays: Mapping[str, np.ndarray]) -> None:
    """Save named arrays (arrays or Tensors) as the book's params.pkl: a pickled dict of numpy
    arrays (protocol 4, which Python 3.4 and later read), written atomically. Arrays must hold
    numbers (bool, int, float, complex), as `load_arrays` reads only those back."""
    plain = {name: np.asarray(a) for name, a in arrays.items()}  # a Tensor or ndarray subclass -> ndarray
    for name, a in plain.items():
        if a.dtype.kind not in "biufc":
            raise ValueError(f"{name!r}: arrays of dtype {a.dtype} cannot be saved to a checkpoint (numbers only)")
    with atomic_open(path) as f:
        pickle.dump(plain, f, protocol=4)


def _is_pickle(head: bytes) -> bool:
    """Protocol 2-5 pickles start with PROTO n; protocol 0 and 1 dicts with MARK DICT or EMPTY_DICT."""
    return head[:2] in (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05") or head.startswith((b"(dp", b"}q"))


# Format name -> (test on the file's first 8 bytes, reader returning name -> array)
CHECKPOINT_FORMATS: dict[str, tuple[Callable[[bytes], bool], Callable[..., dict]]] = {
    "npz": (lambda head: head[:4] in (b"PK\x03\x04", b"PK\x05\x06"), _read_npz),
    "pkl": (_is_pickle, _read_pkl),
}

_NOT_CHECKPOINTS = [  # what else a file might be, for the error message
    (b"\x93NUMPY", "a single .npy array (np.save), not named arrays"),
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
    damaged; UnsafePickleError (a ValueError) naming the file and the refused global if a
    pickle holds more than numeric arrays, dicts, lists, tuples, numbers and strings;
    FileNotFoundError / PermissionError as `open` raises them."""
    with open(path, "rb") as f:
        head = f.read(8)
    for sniff, read in CHECKPOINT_FORMATS.values():
        if sniff(head):
            return read(path)
    formats = ", ".join(CHECKPOINT_FORMATS)
    raise ValueError(f"{os.fspath(path)}: not a checkpoint ({_describe(head)}); expected one of: {formats} "
                     f"(an .npz archive of named arrays, or the book's pickled dict of numpy arrays, as save_params "
                     f"writes)")
