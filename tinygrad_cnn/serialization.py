"""`save` and `load`, as torch.save / torch.load, without pickle: a state_dict, a tensor, or
nested dicts, lists and tuples of tensors, arrays, numbers and strings (an optimizer's
state_dict too) go into an .npz archive: one array per tensor, plus a JSON description of
the structure. Nothing in the file can run code when it is loaded.
"""
from __future__ import annotations

import json
import os
import zipfile
from collections import OrderedDict

import numpy as np

from ._device import device_type
from ._io import save_arrays, write_npz
from .tensor import Tensor

STRUCTURE = "__structure__"  # the archive member that describes how the arrays nest
_SCALARS = (bool, int, float, str, type(None))


def _encode(obj, arrays: dict, where: str):
    """A JSON-able description of obj; its arrays go into `arrays` under generated names."""
    if isinstance(obj, Tensor):
        arrays[f"a{len(arrays)}"] = obj.data
        return {"tensor": f"a{len(arrays) - 1}", "requires_grad": obj.requires_grad}
    if isinstance(obj, (np.ndarray, np.generic)):
        arr = np.asarray(obj)
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"save: the array at {where} has dtype {arr.dtype}; only numeric arrays can be saved")
        arrays[f"a{len(arrays)}"] = arr
        return {"ndarray": f"a{len(arrays) - 1}"}
    if isinstance(obj, _SCALARS):
        return {"value": obj}
    if isinstance(obj, dict):
        kind = "odict" if isinstance(obj, OrderedDict) else "dict"
        return {kind: [[_encode(k, arrays, f"{where} key"), _encode(v, arrays, f"{where}[{k!r}]")]
                       for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        return {"tuple" if isinstance(obj, tuple) else "list":
                [_encode(v, arrays, f"{where}[{i}]") for i, v in enumerate(obj)]}
    raise TypeError(f"save: cannot save {type(obj).__name__} at {where}: save() writes tensors, arrays, numbers, "
                    "strings and dicts, lists and tuples of them (a model's or optimizer's state_dict), without "
                    "pickle")


def _decode(desc: dict, arrays: dict):
    if "tensor" in desc:
        return Tensor._make(arrays[desc["tensor"]]).requires_grad_(desc.get("requires_grad", False))
    (kind, value), = desc.items()
    if kind == "ndarray":
        return arrays[value]
    if kind == "value":
        return value
    if kind in ("dict", "odict"):
        items = [(_decode(k, arrays), _decode(v, arrays)) for k, v in value]
        return OrderedDict(items) if kind == "odict" else dict(items)
    if kind in ("list", "tuple"):
        items = [_decode(v, arrays) for v in value]
        return items if kind == "list" else tuple(items)
    raise ValueError(f"unknown entry {kind!r}")


def save(obj, f) -> None:
    """Write `obj` (a state_dict, a Tensor, or dicts/lists/tuples of tensors, arrays and numbers)
    to `f`, a path (written atomically) or a binary file object, as an .npz archive."""
    arrays: dict = {}
    structure = json.dumps(_encode(obj, arrays, "the top level"))
    arrays[STRUCTURE] = np.frombuffer(structure.encode(), dtype=np.uint8)
    if hasattr(f, "write"):
        write_npz(f, arrays)
    else:
        save_arrays(f, arrays)


def load(f, map_location=None, weights_only=True, **kwargs):
    """Read what `save` wrote (a path or a binary file object). An .npz of named arrays without
    a structure (what SimpleConvNet.save_params writes) loads as a dict of Tensors, a state_dict.
    `map_location` may only name the CPU. Never unpickles: `weights_only` is always true."""
    if map_location is not None and not callable(map_location) and not isinstance(map_location, dict):
        device_type(map_location)
    name = getattr(f, "name", f if isinstance(f, (str, os.PathLike)) else "<file object>")
    try:
        with np.load(f, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as e:
        if isinstance(e, (FileNotFoundError, PermissionError)):
            raise
        raise ValueError(f"load: {os.fspath(name) if not isinstance(name, str) else name} is not a file that save() "
                         f"wrote (an .npz archive of arrays); {_what(f)}") from None
    if STRUCTURE not in arrays:
        if any(k.startswith("archive/") or k.endswith("data.pkl") for k in arrays):
            raise ValueError(f"load: {name} looks like a PyTorch checkpoint (torch.save), which needs pickle; load it "
                             "with torch and save(model.state_dict()) its arrays with numpy instead")
        return OrderedDict((k, Tensor._make(v)) for k, v in arrays.items())
    structure = json.loads(arrays.pop(STRUCTURE).tobytes().decode())
    try:
        return _decode(structure, arrays)
    except (KeyError, ValueError, TypeError, AttributeError) as e:
        raise ValueError(f"load: {name} has a damaged structure description ({type(e).__name__}: {e})") from None


def _what(f) -> str:
    """A hint at what a file that np.load rejected is."""
    try:
        if hasattr(f, "seek"):
            f.seek(0)
            head = f.read(8)
        else:
            with open(f, "rb") as fh:
                head = fh.read(8)
    except OSError:
        return "it could not be read"
    if head.startswith(b"\x80"):
        return "it is a Python pickle, which load() refuses to run"
    if head.startswith(b"\x93NUMPY"):
        return "it is a single .npy array (np.save): use np.load"
    return f"it starts with {head!r}" if head else "it is empty"


__all__ = ["save", "load"]
