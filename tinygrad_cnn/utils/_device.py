"""Devices as PyTorch names them: "cpu" (the only one numpy computes on), "cuda:0", or a device
object whose .type is one of those names; and the arguments of `to()`."""
from __future__ import annotations

import numpy as np

from ..tensor import Tensor

# PyTorch's device types: the ones we do not have get a clear "not available" error.
DEVICE_TYPES = ("cpu", "cuda", "mps", "xpu", "xla", "meta", "hip", "ipu", "hpu", "mtia", "vulkan", "maia",
                "lazy", "opengl", "opencl", "ideep", "mkldnn", "ve", "fpga", "privateuseone")


def device_type(device) -> str:
    """'cpu' for "cpu", "cpu:0" or a device object whose .type is 'cpu'; a clear error otherwise."""
    kind = getattr(device, "type", device)
    if not isinstance(kind, str):
        raise TypeError(f"to(): expected a device or a dtype, got {device!r}")
    name = kind.split(":")[0]
    if name == "cpu":
        return "cpu"
    if name in DEVICE_TYPES:
        raise ValueError(f"device {str(device)!r} is not available: tinygrad_cnn computes with numpy on the CPU "
                         "only (use 'cpu')")
    raise ValueError(f"unknown device {str(device)!r}: expected one of {', '.join(DEVICE_TYPES)}")


def layer_dtype(device, dtype) -> np.dtype:
    """The dtype of a new layer's tensors (float32 unless given); `device` must be the CPU (or None)."""
    if device is not None:
        device_type(device)
    return np.dtype(np.float32 if dtype is None else dtype)


def is_device(x) -> bool:
    if hasattr(x, "type") and isinstance(getattr(x, "type"), str):
        return True
    return isinstance(x, str) and x.split(":")[0] in DEVICE_TYPES


def parse_to(args, kwargs) -> np.dtype | None:
    """Module.to's arguments: (device), (dtype), (device, dtype), (tensor) or keywords device=, dtype=,
    non_blocking=. Checks the device; returns the dtype (None to keep each tensor's)."""
    unknown = set(kwargs) - {"device", "dtype", "non_blocking", "memory_format"}
    if unknown:
        raise TypeError(f"to() got unexpected keyword arguments {sorted(unknown)}")
    device, dtype = kwargs.get("device"), kwargs.get("dtype")
    args = list(args)
    if args and isinstance(args[-1], bool):  # to(device, dtype, non_blocking)
        args.pop()
    if len(args) > 2:
        raise TypeError(f"to() takes a device, a dtype or a tensor, got {len(args)} arguments")
    for a in args:
        if isinstance(a, Tensor):
            dtype = a.dtype
        elif is_device(a):
            device = a
        else:
            dtype = a
    if device is not None:
        device_type(device)
    if dtype is None:
        return None
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"to(): {dtype!r} is not a device or a dtype") from None
    if dtype.kind != "f":
        raise TypeError(f"Module.to only accepts floating point dtypes, got {dtype}")
    return dtype
