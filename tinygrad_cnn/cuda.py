"""`torch.cuda`, for scripts that check for a GPU: none is available."""
from .accelerator import device_count, is_available  # noqa: F401

__all__ = ["is_available", "device_count"]
