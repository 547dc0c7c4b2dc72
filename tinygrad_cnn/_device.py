"""Devices as PyTorch names them: "cpu" (the only one numpy computes on), "cuda:0", or a device
object whose .type is one of those names; `device`; and the arguments of `to()`."""
from __future__ import annotations

import numpy as np

from . import dtypes

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
                         "only (use 'cpu'; tinygrad_cnn.accelerator.is_available() is False)")
    raise ValueError(f"unknown device {str(device)!r}: expected one of {', '.join(DEVICE_TYPES)}")


class device:
    """`torch.device`: device("cpu") (or "cpu:0"); a device we do not have raises a clear error."""

    def __init__(self, type="cpu", index=None):
        if isinstance(type, device):
            type, index = type.type, type.index
        device_type(type)
        self.type, self.index = "cpu", index

    def __eq__(self, other):
        return isinstance(other, (device, str)) and str(self) == str(other).split(":")[0]

    def __hash__(self):
        return hash(str(self))

    def __str__(self):
        return self.type

    def __repr__(self):
        return f"device(type={self.type!r})"


def layer_dtype(device, dtype) -> np.dtype:
    """The dtype of a new layer's tensors (the default float dtype unless given); `device` must be the CPU."""
    if device is not None:
        device_type(device)
    return dtypes.get_default_dtype() if dtype is None else dtypes.as_dtype(dtype)


def is_device(x) -> bool:
    """True for a device object or a device name such as "cpu" or "cuda:0"."""
    if isinstance(getattr(x, "type", None), str):
        return True
    return isinstance(x, str) and x.split(":")[0] in DEVICE_TYPES


def _is_dtype_name(name: str) -> bool:
    try:
        np.dtype(name)
        return True
    except TypeError:
        return False


def parse_to(args, kwargs) -> np.dtype | None:
    """`to()`'s arguments: (device), (dtype), (device, dtype), (tensor) or keywords device=, dtype=,
    non_blocking=, copy=. Checks the device; returns the dtype (None to keep each tensor's)."""
    unknown = set(kwargs) - {"device", "dtype", "non_blocking", "memory_format", "copy"}
    if unknown:
        raise TypeError(f"to() got unexpected keyword arguments {sorted(unknown)}")
    device, dtype = kwargs.get("device"), kwargs.get("dtype")
    args = list(args)
    if args and isinstance(args[-1], bool):  # to(device, dtype, non_blocking)
        args.pop()
    if len(args) > 2:
        raise TypeError(f"to() takes a device, a dtype or a tensor, got {len(args)} arguments")
    for a in args:
        if isinstance(getattr(a, "data", None), np.ndarray):  # a Tensor: its dtype
            dtype = a.dtype
        elif is_device(a) or (isinstance(a, str) and not _is_dtype_name(a)):
            device = a
        else:
            dtype = a
    if device is not None:
        device_type(device)
    if dtype is None:
        return None
    try:
        return dtypes.as_dtype(dtype)
    except TypeError:
        raise TypeError(f"to(): {dtype!r} is not a device or a dtype") from None
