"""`torch.accelerator`: there is none here (numpy computes on the CPU), so scripts that ask
take their CPU path."""
from __future__ import annotations


def is_available() -> bool:
    """False: no GPU or other accelerator backend exists in tinygrad_cnn."""
    return False


def device_count() -> int:
    """0 accelerators."""
    return 0


def current_accelerator(check_available: bool = False):
    """None: there is no accelerator."""
    return None
