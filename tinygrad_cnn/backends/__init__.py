"""`torch.backends`, for scripts that check for Apple's MPS backend: not available."""
from . import mps

__all__ = ["mps"]
