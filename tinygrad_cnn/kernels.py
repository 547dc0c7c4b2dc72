"""numpy kernels behind the CNN ops: im2col/col2im and pooling windows.

Arrays in, arrays out, no autograd: `functional.py` wraps these in differentiable ops.
Windows are strided views of the (padded) input; the only Python loops run over
kernel offsets (kh * kw of them), never over images or output positions.

Layout: conv2d's columns and output keep the batch as an inner axis in memory (the
columns are (C*KH*KW, OH, OW, N) underneath, the output (OH, OW, N, C), as channels-last
formats do). Their shapes are PyTorch's; only the strides differ. Then conv2d is one
matrix product, and pooling's strided slices run over N*C contiguous values instead of
rows of OW. Kernels that make a new array from one such input give it the same layout
(`empty_as`), so the layout carries through ReLU, pooling and their gradients.
"""
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


def unfold(x, kernel, stride, padding, dilation, out_hw, ones_row=False, batch_inner=False) -> np.ndarray:
    """im2col: (N, C, H, W) -> (N, C*KH*KW, OH*OW), PyTorch's unfold layout.

    Row (c, kh, kw) of sample n holds the input values that kernel offset (kh, kw) of
    channel c meets at every output position, in (oh, ow) order. With `ones_row`, one
    more row of ones follows (N, C*KH*KW + 1, OH*OW): a bias column of the weight
    matrix then adds the bias in the same matrix product. With `batch_inner`, the result
    is a view of a (C*KH*KW [+1], OH*OW, N) array: a matrix of all samples' columns side
    by side, so that a weight matrix multiplies it in one product (see `ops.MatMul`).
    """
    n, c = x.shape[:2]
    ck, length = c * kernel[0] * kernel[1], out_hw[0] * out_hw[1]
    if batch_inner:
        xt = in_order(pad4(x, padding, order=_CHWN), _CHWN).transpose(1, 2, 3, 0)  # (C, Hp, Wp, N)
        out = np.empty((ck + ones_row, out_hw[0], out_hw[1], n), dtype=x.dtype)
        blocks = out[:ck].reshape(c, kernel[0], kernel[1], out_hw[0], out_hw[1], n)
        for i, j, rows, cols in offset_slices(kernel, stride, dilation, out_hw):
            blocks[:, i, j] = xt[:, rows, cols]  # runs of OW*N contiguous values
        if ones_row:
            out[ck] = 1
        return out.reshape(ck + ones_row, length, n).transpose(2, 0, 1)
    win = windows(pad4(x, padding), kernel, stride, dilation, out_hw).transpose(0, 1, 4, 5, 2, 3)
    if not ones_row:
        return win.reshape(n, ck, length)
    out = np.empty((n, ck + 1, length), dtype=x.dtype)
    out[:, :ck].reshape(win.shape)[...] = win
    out[:, ck] = 1
    return out


def fold(cols, input_shape, kernel, stride, padding, dilation, out_hw) -> np.ndarray:
    """col2im, the adjoint of `unfold`: (N, C*KH*KW, OH*OW) -> (N, C, H, W), overlapping
    windows adding up. Loops over kernel offsets only, with slice +=. The result has the
    columns' layout: batch innermost if it is innermost in `cols`."""
    n, c, h, w = input_shape
    (t, b), (left, r) = padding
    g = cols.reshape(n, c, kernel[0], kernel[1], out_hw[0], out_hw[1])
    order = _CHWN if memory_order(cols)[-1] == 0 and n > 1 else (0, 1, 2, 3)
    out = empty_as((n, c, h + t + b, w + left + r), cols.dtype, order, zeros=True)
    for i, j, rows, cols_ in offset_slices(kernel, stride, dilation, out_hw):
        out[:, :, rows, cols_] += g[:, :, i, j]
    return _unpad(out, padding)


def im2col(x, kernel, stride, padding, out_hw) -> np.ndarray:
    """The lecture's layout: (N*OH*OW, C*KH*KW), rows (n, oh, ow), columns (c, kh, kw)."""
    cols = unfold(x, kernel, stride, padding, (1, 1), out_hw)
    return cols.transpose(0, 2, 1).reshape(-1, cols.shape[1])


def col2im(col, input_shape, kernel, stride, padding, out_hw) -> np.ndarray:
    """The adjoint of `im2col`: (N*OH*OW, C*KH*KW) -> (N, C, H, W)."""
    n = input_shape[0]
    cols = col.reshape(n, -1, col.shape[1]).transpose(0, 2, 1)
    return fold(cols, input_shape, kernel, stride, padding, (1, 1), out_hw)


# ----------------------------------------------------------------------------- pooling


def _windows_disjoint(kernel, stride, dilation) -> bool:
    return all(s >= d * (k - 1) + 1 for k, s, d in zip(kernel, stride, dilation))


def max_pool(x, kernel, stride, padding, dilation, out_hw, with_arg=True):
    """Max over each window, padding with -inf. Returns (out, arg): arg is the kernel offset
    (i*KW + j) of each window's first maximum (None unless `with_arg`)."""
    xp = pad4(x, padding, lowest(x.dtype))
    if not with_arg and stride == kernel and dilation == (1, 1) and xp.flags.c_contiguous:
        return _max_pool_tiled(xp, kernel, out_hw), None
    slices = [xp[:, :, rows, cols] for _, _, rows, cols in offset_slices(kernel, stride, dilation, out_hw)]
    if len(slices) == 1:
        return slices[0].copy(), (np.zeros(slices[0].shape, dtype=np.uint8) if with_arg else None)
    out = np.maximum(slices[0], slices[1])
    if not with_arg:
        for v in slices[2:]:
            np.maximum(out, v, out=out)
        return out, None
    better = np.greater(slices[1], slices[0])  # strict: ties keep the earlier offset
    arg = better.astype(np.uint8 if len(slices) < 256 else np.int32)  # offset 1 where it beat offset 0
    for o, v in enumerate(slices[2:], 2):
        np.greater(v, out, out=better)
        np.maximum(out, v, out=out)
        # offsets only grow, so the last offset that improved is the largest such offset
        np.maximum(arg, np.multiply(better, arg.dtype.type(o)), out=arg)
    return out, arg


def _max_pool_tiled(xp, kernel, out_hw):
    """The max alone (no argmax) where the windows tile the input (stride == kernel, no dilation).

    Two passes over the flat array: the max of KW horizontal neighbours at every position,
    then of KH vertical neighbours of that; then one strided read at the window corners.
    Contiguous passes use numpy's fast loops, which strided slices do not (3-5x slower per
    element), so this is ~1.4x faster than the slice-per-offset loop in `max_pool`.
    """
    n, c, h, w = xp.shape
    (kh, kw), (oh, ow) = kernel, out_hw
    m = np.ascontiguousarray(xp).reshape(-1)
    for step, k in ((1, kw), (w, kh)):
        if k > 1:
            size = m.size - (k - 1) * step
            shifted = np.maximum(m[:size], m[step:step + size])
            for i in range(2, k):
                np.maximum(shifted, m[i * step:i * step + size], out=shifted)
            m = shifted
    s = m.itemsize
    return as_strided(m, shape=(n, c, oh, ow), strides=(c * h * w * s, h * w * s, kh * w * s, kw * s)).copy()


def pool_scatter(g, arg, input_shape, kernel, stride, padding, dilation):
    """Gradient of max_pool: each output's gradient goes to its window's maximum (adding up
    where windows overlap). g, arg: (N, C, OH, OW) -> (N, C, H, W), in arg's layout."""
    n, c, h, w = input_shape
    (t, b), (left, r) = padding
    shape = (n, c, h + t + b, w + left + r)
    disjoint = _windows_disjoint(kernel, stride, dilation)
    covered = disjoint and stride == kernel and all(
        o * s == size for o, s, size in zip(arg.shape[2:], stride, shape[2:]))
    order = memory_order(arg)
    out = empty_as(shape, g.dtype, order, zeros=not covered)
    g = in_order(g, order)  # one layout for all the passes below
    hit = np.empty_like(arg, dtype=bool)
    for o, (_, _, rows, cols) in enumerate(offset_slices(kernel, stride, dilation, arg.shape[2:])):
        np.equal(arg, o, out=hit)
        if disjoint:  # each input position is in one window at most: write, don't add
            np.multiply(g, hit, out=out[:, :, rows, cols])
        else:
            out[:, :, rows, cols] += g * hit
    return _unpad(out, padding)


def pool_gather(x, arg, kernel, stride, padding, dilation):
    """The values of x at the recorded maxima: the adjoint of `pool_scatter`."""
    xp = pad4(x, padding, 0.0)
    out = empty_as(arg.shape, x.dtype, memory_order(arg), zeros=True)
    for o, (_, _, rows, cols) in enumerate(offset_slices(kernel, stride, dilation, arg.shape[2:])):
        np.copyto(out, xp[:, :, rows, cols], where=arg == o)
    return out


def window_sum(x, kernel, stride, dilation, out_hw):
    """Sum over each window of an already padded (N, C, Hp, Wp) array."""
    out = None
    for _, _, rows, cols in offset_slices(kernel, stride, dilation, out_hw):
        v = x[:, :, rows, cols]
        out = v.copy() if out is None else out + v
    return out
