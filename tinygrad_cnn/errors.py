"""Error classes that are both what PyTorch raises and what this project raised before.

PyTorch raises RuntimeError for shape and dtype mismatches and IndexError for dims and
indices out of range, where numpy-style code expects ValueError or TypeError. Each class
here derives from both, so `except RuntimeError` (PyTorch-style) and `except ValueError`
(existing code) catch the same error.
"""
import numpy as np


class InvalidArgumentError(RuntimeError, ValueError):
    """An argument value that PyTorch rejects with RuntimeError (a negative padding, a stride of 0, ...)."""


class ShapeError(InvalidArgumentError):
    """Shapes that do not fit together (matmul, conv2d, reshape, cat, broadcasting, ...)."""


class IndexOutOfRangeError(IndexError, ValueError):
    """A dimension or an index outside the tensor's range."""


class DTypeError(RuntimeError, TypeError):
    """Operands of dtypes that an op does not accept together (PyTorch raises RuntimeError)."""


def normalize_dim(dim, ndim: int, op: str) -> int:
    """`dim` as a non-negative axis of a tensor with `ndim` dimensions (a 0-d tensor takes 0 or -1,
    as PyTorch's do); IndexOutOfRangeError otherwise."""
    n = max(ndim, 1)
    if not isinstance(dim, (int, np.integer)) or not -n <= dim < n:
        raise dim_out_of_range(op, dim, ndim)
    return int(dim) % n


def dim_out_of_range(op: str, dim, ndim: int) -> IndexOutOfRangeError:
    """PyTorch's message for a dim outside [-max(ndim, 1), max(ndim, 1) - 1], prefixed by the op."""
    n = max(ndim, 1)
    return IndexOutOfRangeError(f"{op}: dimension out of range (expected to be in range of [{-n}, {n - 1}], "
                                f"but got {dim}) for a tensor with {ndim} dimensions")
