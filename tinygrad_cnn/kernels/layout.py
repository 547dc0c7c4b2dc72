"""Memory layout, padding and window views of (N, C, H, W) arrays, for the conv and pooling
kernels: which axis lies where in memory (`memory_order`), new arrays in a given layout
(`empty_as`), padding (`pad4`), and the strided views of windows and kernel offsets."""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided


def pair(v, name: str) -> tuple[int, int]:
    """An int or a pair of ints as a pair of ints."""
    if isinstance(v, (int, np.integer)):
        return int(v), int(v)
    try:
        a, b = v
        return int(a), int(b)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an int or a pair of ints, got {v!r}") from None


def output_size(size: int, k: int, s: int, lo: int, hi: int, d: int = 1, ceil_mode: bool = False) -> int:
    """Number of window positions along one axis (PyTorch's rule, ceil_mode included)."""
    span = size + lo + hi - d * (k - 1) - 1
    if ceil_mode:
        n = -(-span // s) + 1
        if (n - 1) * s >= size + lo:  # the last window must start inside the input or left padding
            n -= 1
        return n
    return span // s + 1


def memory_order(a: np.ndarray) -> tuple:
    """The axes of `a` from outermost to innermost in memory (by stride, ties in axis order)."""
    return tuple(sorted(range(a.ndim), key=lambda i: -abs(a.strides[i])))


def empty_as(shape, dtype, order: tuple, zeros=False) -> np.ndarray:
    """A new array of `shape` whose axes lie in memory in `order` (outermost first)."""
    base = (np.zeros if zeros else np.empty)(tuple(shape[i] for i in order), dtype=dtype)
    return base.transpose(np.argsort(order))


def in_order(a: np.ndarray, order: tuple) -> np.ndarray:
    """`a` itself if its axes already lie in `order`, else a copy laid out so."""
    if memory_order(a) == order:
        return a
    out = empty_as(a.shape, a.dtype, order)
    out[...] = a
    return out


def lowest(dtype) -> float | int | bool:
    """The value below every other of `dtype`: -inf, the integer minimum, or False."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return -np.inf
    return np.iinfo(dtype).min if dtype.kind in "iu" else False


def pad4(x: np.ndarray, padding, value=0.0, order=None) -> np.ndarray:
    """Pad H and W of an (N, C, H, W) array by ((top, bottom), (left, right)); x itself when
    there is no padding. The padded array is laid out in `order` (default: x's layout)."""
    (t, b), (left, r) = padding
    if t == b == left == r == 0:
        return x
    out = empty_as(x.shape[:2] + (x.shape[2] + t + b, x.shape[3] + left + r), x.dtype,
                   memory_order(x) if order is None else order, zeros=value == 0)
    if value != 0:
        out.fill(value)
    out[:, :, t:t + x.shape[2], left:left + x.shape[3]] = x
    return out


def _unpad(xp: np.ndarray, padding) -> np.ndarray:
    """The inverse of `pad4`'s placement: the (N, C, H, W) interior, as a view, or xp itself."""
    (t, b), (left, r) = padding
    if t == b == left == r == 0:
        return xp
    return xp[:, :, t:xp.shape[2] - b, left:xp.shape[3] - r]


def windows(xp: np.ndarray, kernel, stride, dilation, out_hw) -> np.ndarray:
    """Read-only view (N, C, OH, OW, KH, KW) of the windows of a padded (N, C, Hp, Wp) array."""
    n, c = xp.shape[:2]
    sn, sc, sh, sw = xp.strides
    return as_strided(
        xp,
        shape=(n, c, out_hw[0], out_hw[1], kernel[0], kernel[1]),
        strides=(sn, sc, sh * stride[0], sw * stride[1], sh * dilation[0], sw * dilation[1]),
        writeable=False,
    )


def offset_slices(kernel, stride, dilation, out_hw):
    """For each kernel offset (i, j): i, j and the (rows, cols) slices of the padded input it reads."""
    for i in range(kernel[0]):
        for j in range(kernel[1]):
            r0, c0 = i * dilation[0], j * dilation[1]
            yield (i, j, slice(r0, r0 + stride[0] * (out_hw[0] - 1) + 1, stride[0]),
                   slice(c0, c0 + stride[1] * (out_hw[1] - 1) + 1, stride[1]))


_CHWN = (1, 2, 3, 0)  # memory order of (N, C, H, W) axes with the batch innermost


def batch_last(x) -> np.ndarray:
    """The (N, C, H, W) array x as a (C, H, W, N) array: x's own memory when x is laid out so,
    else one copy."""
    return in_order(x, _CHWN).transpose(1, 2, 3, 0)

