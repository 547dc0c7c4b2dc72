"""Shared test helpers: hypothesis strategies and the optional PyTorch import."""
import numpy as np
import pytest
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tinygrad_cnn import Tensor

try:  # PyTorch cross-checks run only where torch imports
    import torch
except ImportError:  # pragma: no cover - depends on the machine
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")

small_shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4)


def arrays(shape, low=-2.0, high=2.0, distinct=False):
    """float64 arrays of `shape`; `distinct` keeps elements apart (no ties for max)."""
    size = int(np.prod(shape))
    if distinct:
        return st.permutations(range(size)).map(
            lambda p: (np.array(p, dtype=np.float64).reshape(shape) - size / 2) * 0.37 + 0.011)
    return hnp.arrays(np.float64, shape, elements=st.floats(low, high, allow_nan=False, width=64))


def away_from(a, points=(0.0,), margin=0.05):
    """`a` with every element moved at least `margin` from each of `points` (kinks)."""
    a = np.array(a, dtype=np.float64)
    for p in points:
        close = np.abs(a - p) < margin
        a[close] = p + np.where(a[close] >= p, margin, -margin)
    return a


def leaf(a, dtype=np.float64):
    return Tensor(np.asarray(a, dtype=dtype), requires_grad=True)
