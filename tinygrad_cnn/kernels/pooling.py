"""Pooling kernels: max pooling (with the argmax its gradient needs), its gradient
(`pool_scatter`) and adjoint (`pool_gather`), average pooling and its gradient; in the
input's layout, in pieces along N or C that stay in cache, spread over the threads where
large."""
from __future__ import annotations

import functools
import math

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .. import _parallel
from .layout import _unpad, empty_as, in_order, lowest, memory_order, offset_slices, pad4, windows


def _windows_disjoint(kernel, stride, dilation) -> bool:
    return all(s >= d * (k - 1) + 1 for k, s, d in zip(kernel, stride, dilation))


POOL_CHUNK_BYTES = 8 << 20  # the pooling gradients run on pieces of their input of about this size (in L3)
STACK_BYTES = 1 << 20  # pooling copies the window slices of pieces of about this size (in L2: 1 MB per core here)


def _outer_chunks(a, nbytes=None, limit=None) -> list:
    """Indexes that cut the (N, C, ...) array a into pieces along N or C, whichever is
    outermost in its memory, each holding about `limit` (POOL_CHUNK_BYTES by default) of
    `nbytes` (a's size by default), so that the several passes of a pooling kernel over a
    piece run in cache; [...] (all of a) when that fits or neither axis is outermost. With
    the batch innermost and arrays larger than the caches, max-pooling with argmax of a
    (1000, 30, 24, 24) float32 array took 22 ms whole and 14 ms in pieces."""
    nbytes, limit = a.nbytes if nbytes is None else nbytes, POOL_CHUNK_BYTES if limit is None else limit
    axis = memory_order(a)[0]
    if axis > 1 or nbytes <= limit:
        return [(Ellipsis,)]
    n = a.shape[axis]
    step = max(1, n * limit // nbytes)
    return [(slice(None),) * axis + (slice(s, s + step),) for s in range(0, n, step)]


def _offset_stack(xp, kernel, stride, dilation, out_hw, buf) -> np.ndarray:
    """Each kernel offset's slice of the padded (n, C, Hp, Wp) array xp, copied by one call
    into the flat scratch `buf`: (KH*KW, n, C, OH, OW), each offset's plane contiguous and
    laid out as xp. numpy runs the passes that follow 2-4x faster over contiguous planes
    than over the strided slices, whose contiguous runs are short (N values with the batch
    innermost, single values with it outermost)."""
    order = memory_order(xp)
    shape, count = xp.shape[:2] + tuple(out_hw), kernel[0] * kernel[1]
    flat = buf[:count * math.prod(shape)].reshape(count, *(shape[i] for i in order))
    planes = flat.transpose(0, *(1 + int(i) for i in np.argsort(order)))
    win = windows(xp, kernel, stride, dilation, out_hw)  # (n, C, OH, OW, KH, KW)
    np.copyto(planes.reshape(*kernel, *shape), win.transpose(4, 5, 0, 1, 2, 3))
    return planes


POOL_THREAD_BYTES = 4 << 20  # pooling's pieces go to the threads from inputs of this size (1M float32)


def _pool_threads(nbytes: int) -> int:
    """How many threads a pooling kernel over an input of `nbytes` spreads its pieces over."""
    return _parallel.THREADS if nbytes >= POOL_THREAD_BYTES else 1


def _pool_pieces(a) -> tuple:
    """(pieces, threads) for a pooling pass over a: `_outer_chunks` of a, at least one per
    thread."""
    threads = _pool_threads(a.nbytes)
    return _outer_chunks(a, limit=min(POOL_CHUNK_BYTES, -(-a.nbytes // threads))), threads


def max_pool(x, kernel, stride, padding, dilation, out_hw, with_arg=True):
    """Max over each window, padding with -inf: (N, C, H, W) -> (N, C, OH, OW). Returns
    (out, arg): arg is the kernel offset (i*KW + j) of each window's first maximum (None
    unless `with_arg`). Both in x's layout.

    With the argmax (six passes over the windows' slices for 2x2) the slices are copied
    first, a piece at a time (`_offset_stack`); the max alone (three passes) reads the
    strided slices, which was as fast as copying them. The pieces of large inputs go to
    the threads (`_pool_threads`)."""
    xp = pad4(x, padding, lowest(x.dtype))
    if not with_arg and stride == kernel and dilation == (1, 1) and xp.flags.c_contiguous:
        return _max_pool_tiled(xp, kernel, out_hw), None
    order, shape = memory_order(xp), xp.shape[:2] + tuple(out_hw)
    out = empty_as(shape, xp.dtype, order)
    if not with_arg:
        def max_of(pieces):
            for idx in pieces:
                _max_into(_offset_views(xp[idx], kernel, stride, dilation, out_hw), out[idx], None)

        _parallel.split(max_of, *_pool_pieces(xp))
        return out, None
    arg = empty_as(shape, np.uint8 if kernel[0] * kernel[1] < 256 else np.int32, order)
    count = kernel[0] * kernel[1]

    def max_and_arg(pieces):  # on one thread: its own buffer for a piece's stacked slices
        buf = np.empty(count * max(out[idx].size for idx in pieces), dtype=xp.dtype)
        for idx in pieces:
            _max_into(_offset_stack(xp[idx], kernel, stride, dilation, out_hw, buf), out[idx], arg[idx])

    _parallel.split(max_and_arg, _outer_chunks(out, count * out.nbytes, STACK_BYTES), _pool_threads(xp.nbytes))
    if xp is not x:
        _argmax_off_the_padding(out, arg, x.shape[2:], kernel, stride, padding, dilation)
    return out, arg


def _argmax_off_the_padding(out, arg, in_hw, kernel, stride, padding, dilation) -> None:
    """Where a window holds nothing above the padding value (all -inf), its first maximum may
    be a padding position: point it at the window's first position inside the input, as
    PyTorch does (its index starts there and only a larger value or a NaN moves it)."""
    hit = out == lowest(out.dtype)
    if not hit.any():
        return
    in_pad, first = _padding_offsets(kernel, stride, padding, dilation, tuple(in_hw), out.shape[2:])
    n, c, oh, ow = np.nonzero(hit)
    wrong = in_pad[arg[n, c, oh, ow], oh, ow] & ~in_pad[first[oh, ow], oh, ow]  # (a window all padding: kept)
    n, c, oh, ow = n[wrong], c[wrong], oh[wrong], ow[wrong]
    arg[n, c, oh, ow] = first[oh, ow]


@functools.lru_cache(maxsize=64)
def _padding_offsets(kernel, stride, padding, dilation, in_hw, out_hw) -> tuple:
    """(in_pad, first): in_pad[o, oh, ow] is True where kernel offset o of window (oh, ow)
    falls in the padding; first[oh, ow] is the window's first offset inside the input (one
    in the padding for a window that has none inside, as dilation can make)."""
    (t, _), (left, _) = padding
    rows = np.arange(out_hw[0])[:, None] * stride[0] + np.arange(kernel[0])[None, :] * dilation[0] - t  # (OH, KH)
    cols = np.arange(out_hw[1])[:, None] * stride[1] + np.arange(kernel[1])[None, :] * dilation[1] - left
    row_out, col_out = (rows < 0) | (rows >= in_hw[0]), (cols < 0) | (cols >= in_hw[1])
    in_pad = row_out.T[:, None, :, None] | col_out.T[None, :, None, :]  # (KH, KW, OH, OW)
    first = row_out.argmin(axis=1)[:, None] * kernel[1] + col_out.argmin(axis=1)[None, :]
    return in_pad.reshape(-1, *out_hw), first


def _offset_views(xp, kernel, stride, dilation, out_hw) -> list:
    """The (N, C, OH, OW) strided slice of the padded xp that each kernel offset reads."""
    return [xp[:, :, rows, cols] for _, _, rows, cols in offset_slices(kernel, stride, dilation, out_hw)]


def _max_into(planes, out, arg):
    """out = the max over the K arrays `planes`, NaN where any is NaN; arg (unless None) the
    index of the first maximum, or of the last NaN where there is one (as PyTorch's index:
    its scan takes a value greater than the maximum so far, or a NaN)."""
    if len(planes) == 1:
        np.copyto(out, planes[0])
        if arg is not None:
            arg[...] = 0
        return
    np.maximum(planes[0], planes[1], out=out)
    if arg is None:
        for v in planes[2:]:
            np.maximum(out, v, out=out)
        return
    better = np.greater(planes[1], planes[0])  # strict: ties keep the earlier offset
    arg[...] = better  # offset 1 where it beat offset 0
    step, bits = np.empty_like(arg), better.view(np.uint8)
    for o in range(2, len(planes)):
        np.greater(planes[o], out, out=better)
        np.maximum(out, planes[o], out=out)
        # offsets only grow, so the last offset that improved is the largest such offset
        np.maximum(arg, np.multiply(bits, arg.dtype.type(o), out=step), out=arg)
    if out.dtype.kind == "f" and out.size and np.isnan(out.min()):  # rare: point at the last NaN
        for o, v in enumerate(planes):
            np.copyto(arg, o, where=np.isnan(v))


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


def _scatter_target(input_shape, out_hw, kernel, stride, padding, dilation, dtype, order):
    """The padded (N, C, Hp, Wp) array that a pooling gradient is written into, laid out in
    `order`, and whether windows are disjoint (then each offset's slice is written, not added
    to). It is zero-filled unless the windows tile it exactly."""
    n, c, h, w = input_shape
    (t, b), (left, r) = padding
    shape = (n, c, h + t + b, w + left + r)
    disjoint = _windows_disjoint(kernel, stride, dilation)
    covered = disjoint and stride == kernel and all(o * s == size for o, s, size in zip(out_hw, stride, shape[2:]))
    return empty_as(shape, dtype, order, zeros=not covered), disjoint


def pool_scatter(g, arg, input_shape, kernel, stride, padding, dilation):
    """Gradient of max_pool: each output's gradient goes to its window's maximum (adding up
    where windows overlap). g, arg: (N, C, OH, OW) -> (N, C, H, W), in arg's layout."""
    order = memory_order(arg)
    out, disjoint = _scatter_target(input_shape, arg.shape[2:], kernel, stride, padding, dilation, g.dtype, order)
    g = in_order(g, order)  # one layout for all the passes below
    offsets = list(offset_slices(kernel, stride, dilation, arg.shape[2:]))

    def scatter(pieces):
        for idx in pieces:
            piece, gi, ai = out[idx], g[idx], arg[idx]
            hit = np.empty_like(ai, dtype=bool)
            for o, (_, _, rows, cols) in enumerate(offsets):
                np.equal(ai, o, out=hit)
                if disjoint:  # each input position is in one window at most: write, don't add
                    np.multiply(gi, hit, out=piece[:, :, rows, cols])
                else:
                    piece[:, :, rows, cols] += gi * hit

    _parallel.split(scatter, *_pool_pieces(out))
    return _unpad(out, padding)


def pool_gather(x, arg, kernel, stride, padding, dilation):
    """The values of x at the recorded maxima: the adjoint of `pool_scatter`."""
    xp = pad4(x, padding, 0.0)
    out = empty_as(arg.shape, x.dtype, memory_order(arg), zeros=True)
    for o, v in enumerate(_offset_views(xp, kernel, stride, dilation, arg.shape[2:])):
        np.copyto(out, v, where=arg == o)
    return out


def avg_pool(x, kernel, stride, padding, out_hw, count):
    """Mean over each window of the zero-padded x: the window sums divided by `count` (a
    number, or (1, 1, OH, OW) window sizes). (N, C, H, W) -> (N, C, OH, OW), in x's layout."""
    xp = pad4(x, padding)
    slices = _offset_views(xp, kernel, stride, (1, 1), out_hw)
    out = np.add(slices[0], slices[1]) if len(slices) > 1 else np.copy(slices[0], order="K")
    for v in slices[2:]:
        np.add(out, v, out=out)
    return np.divide(out, count, out=out)


def avg_pool_scatter(g, input_shape, kernel, stride, padding, count):
    """Gradient of avg_pool (its adjoint): g (N, C, OH, OW) divided by `count`, added to every
    position of its window. -> (N, C, H, W), in g's layout."""
    share = np.divide(g, count)
    out, disjoint = _scatter_target(input_shape, g.shape[2:], kernel, stride, padding, (1, 1), share.dtype,
                                    memory_order(share))
    for _, _, rows, cols in offset_slices(kernel, stride, (1, 1), g.shape[2:]):
        if disjoint:
            out[:, :, rows, cols] = share
        else:
            out[:, :, rows, cols] += share
    return _unpad(out, padding)
