"""`torch.backends.mps`: not available."""
from ..accelerator import is_available


def is_built() -> bool:
    """False: tinygrad_cnn has no MPS backend."""
    return False


__all__ = ["is_available", "is_built"]
