"""numpy kernels behind the CNN ops: im2col/col2im and pooling windows.

Arrays in, arrays out, no autograd: `functional.py` wraps these in differentiable ops.
Windows are strided views of the (padded) input; the Python loops run over kernel
offsets (kh * kw of them) and over chunks of a few MB (conv2d's rows of output, pooling's
channels), never over images or output positions.

Layout: conv2d keeps the batch innermost in memory. Its input is read as (C, H, W, N),
its columns are (C*KH*KW, OH, OW, N) and its output and input gradient are (C, H, W, N)
underneath; their shapes are PyTorch's (N, C, H, W), only the strides differ. Then a
chunk of output rows is one matrix product, each kernel offset's slice of the input is
runs of OW*N contiguous values, and one conv's output is the next conv's input without a
transposing copy. Kernels that make a new array from one such input give it the same
layout (`empty_as`), so the layout carries through ReLU, pooling and their gradients.
"""
from __future__ import annotations

import functools
import math

import numpy as np
from numpy.lib.stride_tricks import as_strided

from . import _parallel


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


def unfold(x, kernel, stride, padding, dilation, out_hw) -> np.ndarray:
    """im2col: (N, C, H, W) -> (N, C*KH*KW, OH*OW), PyTorch's unfold layout.

    Row (c, kh, kw) of sample n holds the input values that kernel offset (kh, kw) of
    channel c meets at every output position, in (oh, ow) order.
    """
    n, c = x.shape[:2]
    win = windows(pad4(x, padding), kernel, stride, dilation, out_hw).transpose(0, 1, 4, 5, 2, 3)
    return win.reshape(n, c * kernel[0] * kernel[1], out_hw[0] * out_hw[1])


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


# ----------------------------------------------------------------------------- convolution

# columns per chunk: in L3 (EPYC here: 1 MB L2 per core, 32 MB L3); 4 MB was no faster and held 2-3 MB more
CHUNK_BYTES = 2 << 20
SPLIT_BYTES = 4 << 20  # columns are spread over the threads where each gets this much at least
# ... or where the products come to this many flops: forward and weight gradient on two
# threads against one, the lecture conv at batch 100 (90 MFLOP) 0.87x and 0.77x, DeepConvNet's
# 5th (237 MFLOP, 7.4 MB of columns) 0.61x and 0.60x; LeNet's 2nd (48 MFLOP) forward 1.23x
SPLIT_FLOPS = 64_000_000
# col2im at stride 1 (`_col2im_by_rows`) in chunks of this size: against 2 MB, the MNIST net's
# step 59.2 -> 56.2 ms and LeNet-5's 11.13 -> 10.85 ms (interleaved); 8 MB 11.04 ms
COL2IM_CHUNK_BYTES = 4 << 20
SMALL_PRODUCT = 1 << 20  # M*N*K up to which this OpenBLAS multiplies without packing (see `_product_pieces`)


def _product_pieces(length: int, per_column: int):
    """How to cut a long dimension of `length` into pieces for matrix products that each
    have M*N*K <= SMALL_PRODUCT, `per_column` being the product's size per unit of that
    dimension: the piece length (the longest divisor of `length` that fits, 256 at least),
    or None where no cut is needed or useful. numpy's OpenBLAS runs products of a few
    channels 1.3x (forward) to 2-3.5x (weight gradient) faster in such pieces."""
    limit = SMALL_PRODUCT // max(per_column, 1)
    if length <= limit or limit < 256:
        return None
    return _longest_divisor(length, limit)


@functools.lru_cache(maxsize=256)
def _longest_divisor(n: int, limit: int):
    """The largest divisor of n that is at most `limit`, or None if that is under 256."""
    best = max((d for i in range(1, math.isqrt(n) + 1) if n % i == 0 for d in (i, n // i) if d <= limit), default=1)
    return best if best >= 256 else None


def _matmul_by_pieces(a, b, out):
    """out[...] = a (M, K) @ b (K, L), as products over pieces of L where that is faster."""
    (m, k), length = a.shape, b.shape[1]
    p = _product_pieces(length, m * k)
    if p is None:
        return np.matmul(a, b, out=out)
    np.matmul(a, b.reshape(k, -1, p).transpose(1, 0, 2), out=out.reshape(m, -1, p).transpose(1, 0, 2))
    return out


def _contract_by_pieces(a, b):
    """a (M, L) @ b.T for b (N, L): a sum of products over pieces of L where that is faster."""
    (m, length), n = a.shape, b.shape[0]
    p = _product_pieces(length, m * n)
    if p is None:
        return np.matmul(a, b.T)
    return np.matmul(a.reshape(m, -1, p).transpose(1, 0, 2), b.reshape(n, -1, p).transpose(1, 2, 0)).sum(axis=0)


def batch_last(x) -> np.ndarray:
    """The (N, C, H, W) array x as a (C, H, W, N) array: x's own memory when x is laid out so,
    else one copy."""
    return in_order(x, _CHWN).transpose(1, 2, 3, 0)


def row_chunks(out_h: int, row_bytes: int, flops: int = 0, chunk_bytes: int = 0) -> tuple[list, int]:
    """(chunks, threads): output rows in even chunks (h0, h1) whose columns take about
    `chunk_bytes` (default `CHUNK_BYTES`; one row at least), and how many threads to spread them over: one per core
    where each gets `SPLIT_BYTES` of columns at least, or the products (`flops`, for all
    rows) come to `SPLIT_FLOPS` at least (and then a chunk at least), else one: smaller
    convolutions ran no faster on two threads (see `SPLIT_FLOPS`)."""
    big = out_h * row_bytes >= SPLIT_BYTES * _parallel.THREADS or flops >= SPLIT_FLOPS
    threads = min(_parallel.THREADS, out_h) if big else 1
    count = max(threads, -(-out_h // max(1, min(out_h, (chunk_bytes or CHUNK_BYTES) // max(row_bytes, 1)))))
    rows = -(-out_h // count)
    return [(h0, min(out_h, h0 + rows)) for h0 in range(0, out_h, rows)], threads


def _span(lo, hi, offset, step, size):
    """Output positions p in [lo, hi) whose input position p*step + offset lies inside [0, size),
    not in the padding: their range [a, b) and the slice of input positions they read."""
    a = max(lo, -(offset // step))
    b = max(a, min(hi, (size - 1 - offset) // step + 1))
    return a, b, slice(a * step + offset, (b - 1) * step + offset + 1 if b > a else a * step + offset, step)


@functools.lru_cache(maxsize=1024)
def _window_blocks(kernel, stride, padding, dilation, in_hw, h0, h1, out_w) -> tuple:
    """For each kernel offset (i, j) and output rows h0:h1: i, j, the index of the output
    positions (rows relative to h0, columns) whose window meets the input there and not the
    padding, and the input rows and columns they meet. Cached: a network asks for the same
    few chunks at every step."""
    (t, _), (left, _) = padding
    blocks = []
    for i in range(kernel[0]):
        r0, r1, rows = _span(h0, h1, i * dilation[0] - t, stride[0], in_hw[0])
        for j in range(kernel[1]):
            c0, c1, cols = _span(0, out_w, j * dilation[1] - left, stride[1], in_hw[1])
            blocks.append((i, j, (slice(None), slice(r0 - h0, r1 - h0), slice(c0, c1)), rows, cols))
    return tuple(blocks)


class _Columns:
    """im2col of a zero-padded (C, H, W, N) array (`_zero_padded`), a chunk of output rows at
    a time, into one reused buffer.

    `of(h0, h1)` is the (C*KH*KW [+1], (h1-h0)*OW*N) matrix of output rows h0:h1: row
    (c, kh, kw) holds what kernel offset (kh, kw) of channel c meets at each (oh, ow, n);
    with `ones_row`, a last row of ones carries a bias column of the weight matrix.
    """

    def __init__(self, xt, geom, ones_row, dtype, chunks: list):
        self.xt, self.geom = xt, geom
        kernel, out_w = geom[0], geom[4][1]
        self.ck = xt.shape[0] * kernel[0] * kernel[1]
        self.rows = self.ck + ones_row
        tallest = max(h1 - h0 for h0, h1 in chunks)
        self.buf = np.empty(self.rows * tallest * out_w * xt.shape[3], dtype=dtype)

    @staticmethod
    def chunks_of(xt, geom, ones_row, dtype, m: int) -> tuple[list, int]:
        """`row_chunks` for the columns of xt (C, H, W, N) with geometry `geom`, multiplied
        with an m-row matrix."""
        kernel, out_hw = geom[0], geom[4]
        c, n = xt.shape[0], xt.shape[3]
        k = c * kernel[0] * kernel[1] + ones_row
        return row_chunks(out_hw[0], k * out_hw[1] * n * np.dtype(dtype).itemsize,
                          2 * m * k * out_hw[0] * out_hw[1] * n)

    def of(self, h0, h1):
        """One strided copy of the windows (C, KH, KW, h1-h0, OW, N): its inner runs are OW*N
        contiguous values at stride 1. (A copy per kernel offset, padding written as zeros,
        took 1.2-2.9x as long: 33 against 12 us for the lecture conv at batch 1, 97 against
        60 us for a chunk of LeNet's second.)"""
        (c, _, _, n), (kernel, stride, _, dilation, (_, out_w)) = self.xt.shape, self.geom
        cols = self.buf[:self.rows * (h1 - h0) * out_w * n].reshape(self.rows, -1)
        sc, sh, sw, sn = self.xt.strides
        windows = as_strided(self.xt[:, h0 * stride[0]:], shape=(c, *kernel, h1 - h0, out_w, n),
                             strides=(sc, sh * dilation[0], sw * dilation[1], sh * stride[0], sw * stride[1], sn),
                             writeable=False)
        np.copyto(cols[:self.ck].reshape(c, *kernel, h1 - h0, out_w, n), windows)
        if self.rows > self.ck:
            cols[self.ck] = 1
        return cols


# `_RowSlabs` are used where the columns have SLAB_MIN_ROWS rows at least (3x3 kernels on one
# channel, 9 rows: 0.39 -> 0.41 ms, their ones blocks add a third to the products), where output
# rows have SLAB_MIN_RUN values at least (they multiply per output row: batch 1 went 0.25 ->
# 0.28 ms), and where they hold at most SLAB_SHARE of `_Columns`'s bytes
SLAB_MIN_ROWS, SLAB_MIN_RUN, SLAB_SHARE = 16, 256, 0.5


class _RowSlabs:
    """im2col along W only, for kernels whose rows meet adjacent input rows (dilation 1
    along H): the columns of a chunk of output rows in a buffer KH times smaller than
    `_Columns`'s, for one more product call per output row.

    The buffer holds, for each input row the chunk reads, C*KW blocks of OW*N values (block
    (c, j): what kernel column j of channel c meets along that row), [+ a block of ones]. Row
    after row, so output row oh's full columns, rows (i, c, j) [+ ones] for kernel row i,
    are one contiguous slab starting at input row oh*SH: `of(h0, h1)` is the stack of those
    slabs, (h1-h0, KH*(C*KW [+1]), OW*N), a view. The weight matrix takes the same row order
    (`_slab_weights`), the bias in kernel row 0's ones column.
    """

    def __init__(self, xt, geom, ones_row, dtype, chunks: list):
        self.xt, self.geom, self.ones_row = xt, geom, ones_row
        c, n = xt.shape[0], xt.shape[3]
        (kh, kw), sh, out_w = geom[0], geom[1][0], geom[4][1]
        self.blocks, self.run = c * kw + ones_row, out_w * n
        tallest = max(h1 - h0 for h0, h1 in chunks)
        self.buf = np.empty(((tallest - 1) * sh + kh) * self.blocks * self.run, dtype=dtype)
        if ones_row:
            self.buf.reshape(-1, self.blocks, self.run)[:, -1] = 1

    @staticmethod
    def chunks_of(xt, geom, ones_row, dtype, m: int):
        """`row_chunks` for the slabs of xt (C, H, W, N) with geometry `geom`, multiplied with an
        m-row matrix, or None where slabs do not apply (dilation along H), do not pay (see
        SLAB_MIN_ROWS, SLAB_MIN_RUN) or would hold more than SLAB_SHARE of the bytes of
        `_Columns`'s columns (a chunk of R rows reads (R-1)*SH + KH input rows, against R*KH
        rows of columns)."""
        (kh, kw), (sh, _), dilation, (out_h, out_w) = geom[0], geom[1], geom[3], geom[4]
        c, n = xt.shape[0], xt.shape[3]
        if dilation[0] != 1 or c * kh * kw < SLAB_MIN_ROWS or out_w * n < SLAB_MIN_RUN:
            return None
        k = c * kh * kw + ones_row
        chunks, threads = row_chunks(out_h, (c * kw + ones_row) * out_w * n * np.dtype(dtype).itemsize * sh,
                                     2 * m * k * out_h * out_w * n)
        rows = min(h1 - h0 for h0, h1 in chunks)
        return (chunks, threads) if (rows - 1) * sh + kh <= SLAB_SHARE * rows * kh else None

    def of(self, h0, h1):
        """One strided copy of the input rows that output rows h0:h1 read, as (rows, C, KW, OW, N)
        blocks, then the (h1-h0, KH*(C*KW [+1]), OW*N) stack of slabs over them."""
        (c, _, _, n), (kernel, stride, _, dilation, (_, out_w)) = self.xt.shape, self.geom
        rows_in = (h1 - h0 - 1) * stride[0] + kernel[0]
        blocks = self.buf[:rows_in * self.blocks * self.run].reshape(rows_in, self.blocks, self.run)
        sc, sh, sw, sn = self.xt.strides
        windows = as_strided(self.xt[:, h0 * stride[0]:], shape=(rows_in, c, kernel[1], out_w, n),
                             strides=(sh, sc, sw * dilation[1], sw * stride[1], sn), writeable=False)
        np.copyto(blocks[:, :c * kernel[1]].reshape(rows_in, c, kernel[1], out_w, n), windows)
        s = self.buf.itemsize
        return as_strided(self.buf, shape=(h1 - h0, kernel[0] * self.blocks, self.run),
                          strides=(stride[0] * self.blocks * self.run * s, self.run * s, s), writeable=False)


def _slab_weights(wmat, c, kernel, ones_row) -> np.ndarray:
    """conv2d's weight matrix (OC, C*KH*KW [+1]), rows (c, i, j), as `_RowSlabs` order them:
    (OC, KH*(C*KW [+1])), rows (i, c, j), the bias (if any) with kernel row 0."""
    oc, (kh, kw) = wmat.shape[0], kernel
    out = np.zeros((oc, kh, c * kw + ones_row), dtype=wmat.dtype)
    out[:, :, :c * kw] = wmat[:, :c * kh * kw].reshape(oc, c, kh, kw).transpose(0, 2, 1, 3).reshape(oc, kh, -1)
    if ones_row:
        out[:, 0, -1] = wmat[:, -1]
    return out.reshape(oc, -1)


def _from_slab_order(m, c, kernel, ones_row) -> np.ndarray:
    """The inverse of `_slab_weights`'s row order for an (KH*(C*KW [+1]), M) matrix: its rows
    as (c, i, j) [+ the ones row, kernel row 0's]: (C*KH*KW [+1], M)."""
    (kh, kw), m = kernel, m.reshape(kernel[0], c * kernel[1] + ones_row, -1)
    out = m[:, :c * kw].reshape(kh, c, kw, -1).transpose(1, 0, 2, 3).reshape(c * kh * kw, -1)
    return np.concatenate([out, m[0, -1:]]) if ones_row else out


def _contract_stack(a, b) -> np.ndarray:
    """The sum over r of a[r] (M, L) @ b[r].T for stacks a (R, M, L), b (R, N, L): (M, N), as
    products over pieces of L where that is faster (`_product_pieces`): the lecture conv's
    weight gradient from slabs, 1.05 -> 0.73 ms a chunk."""
    (r, m, length), n = a.shape, b.shape[1]
    p = _product_pieces(length, m * n) or length
    ap = as_strided(a, shape=(r, length // p, m, p), strides=(a.strides[0], p * a.strides[2], *a.strides[1:]))
    bp = as_strided(b, shape=(r, length // p, p, n),
                    strides=(b.strides[0], p * b.strides[2], b.strides[2], b.strides[1]))
    return np.matmul(ap, bp).sum(axis=(0, 1))


def _stack_product(a, b, out):
    """out[r] = a (M, K) @ b[r] (K, L) for a stack b (R, K, L), in pieces of L where that
    is faster (`_product_pieces`)."""
    (m, k), (r, _, length) = a.shape, b.shape
    p = _product_pieces(length, m * k)
    if p is None:
        return np.matmul(a, b, out=out)
    pieces = as_strided(b, shape=(r, length // p, k, p), strides=(b.strides[0], p * b.strides[2], *b.strides[1:]))
    into = as_strided(out, shape=(r, length // p, m, p), strides=(out.strides[0], p * out.strides[2], *out.strides[1:]))
    np.matmul(a, pieces, out=into)
    return out


def _zero_padded(xt, geom) -> tuple:
    """(xt zero-padded, geom without padding) for a (C, H, W, N) array; (xt, geom) when there
    is no padding. One pass over the input, which is KH*KW times smaller than its columns."""
    kernel, stride, ((t, b), (left, r)), dilation, out_hw = geom
    if t == b == left == r == 0:
        return xt, geom
    c, h, w, n = xt.shape
    xp = np.zeros((c, h + t + b, w + left + r, n), dtype=xt.dtype)
    xp[:, t:t + h, left:left + w] = xt
    return xp, (kernel, stride, ((0, 0), (0, 0)), dilation, out_hw)


def conv2d(x, wmat, kernel, stride, padding, dilation, out_hw) -> np.ndarray:
    """Cross-correlation: x (N, C, H, W), wmat (OC, C*KH*KW [+1 bias column]) -> (N, OC, OH, OW),
    laid out (OC, OH, OW, N). One matrix product per chunk of output rows, whose columns stay in cache."""
    n, oc = x.shape[0], wmat.shape[0]
    dtype = np.result_type(x, wmat)
    xt = batch_last(x.astype(dtype, copy=False))
    xt, geom = _zero_padded(xt, (kernel, stride, padding, dilation, out_hw))
    ones_row = wmat.shape[1] > x.shape[1] * kernel[0] * kernel[1]
    out = np.empty((oc, *out_hw, n), dtype=dtype)

    slabs = _RowSlabs.chunks_of(xt, geom, ones_row, dtype, oc)
    if slabs is not None:
        wslab = _slab_weights(wmat, x.shape[1], kernel, ones_row)

        def slab_rows(chunks):  # on one thread: its own buffer, disjoint output rows
            rows = _RowSlabs(xt, geom, ones_row, dtype, chunks)
            for h0, h1 in chunks:
                _stack_product(wslab, rows.of(h0, h1), out[:, h0:h1].reshape(oc, h1 - h0, -1).transpose(1, 0, 2))

        _parallel.split(slab_rows, *slabs)
        return out.transpose(3, 0, 1, 2)

    def rows(chunks):  # on one thread: its own columns buffer, disjoint output rows
        cols = _Columns(xt, geom, ones_row, dtype, chunks)
        for h0, h1 in chunks:
            _matmul_by_pieces(wmat, cols.of(h0, h1), out[:, h0:h1].reshape(oc, -1))

    _parallel.split(rows, *_Columns.chunks_of(xt, geom, ones_row, dtype, oc))
    return out.transpose(3, 0, 1, 2)


def _out_rows(g, h0, h1) -> np.ndarray:
    """Rows h0:h1 of a (OC, OH, OW, N) array as an (OC, (h1-h0)*OW*N) matrix."""
    return g[:, h0:h1].reshape(g.shape[0], -1)


def conv2d_weight_grad(x, g, kernel, stride, padding, dilation, ones_row) -> np.ndarray:
    """The gradient of conv2d's weight matrix: (OC, C*KH*KW [+1]), the sum over images and
    positions of g (N, OC, OH, OW) times x's columns (the last column, with `ones_row`, is
    the bias gradient)."""
    dtype = np.result_type(x, g)
    gt = batch_last(g)
    xt = batch_last(x.astype(dtype, copy=False))
    xt, geom = _zero_padded(xt, (kernel, stride, padding, dilation, gt.shape[1:3]))

    slabs = _RowSlabs.chunks_of(xt, geom, ones_row, dtype, g.shape[1])
    if slabs is not None:
        def slab_rows(chunks):  # on one thread: the sum over its chunks, rows (i, c, j) [+ ones]
            rows = _RowSlabs(xt, geom, ones_row, dtype, chunks)
            total = 0
            for h0, h1 in chunks:
                g_rows = gt[:, h0:h1].reshape(g.shape[1], h1 - h0, -1).transpose(1, 0, 2)  # (R, OC, OW*N)
                total = total + _contract_stack(rows.of(h0, h1), g_rows)
            return total

        sums = _parallel.split(slab_rows, *slabs)
        for s in sums[1:]:  # in thread order: the same sum in every run
            sums[0] += s
        return _from_slab_order(sums[0], x.shape[1], kernel, ones_row).T

    def rows(chunks):  # on one thread: the sum over its chunks
        cols = _Columns(xt, geom, ones_row, dtype, chunks)
        total = np.zeros((cols.rows, g.shape[1]), dtype=dtype)
        for h0, h1 in chunks:  # columns @ g.T: 1.7x faster than g @ columns.T here (OpenBLAS)
            total += _contract_by_pieces(cols.of(h0, h1), _out_rows(gt, h0, h1))
        return total

    sums = _parallel.split(rows, *_Columns.chunks_of(xt, geom, ones_row, dtype, g.shape[1]))
    for s in sums[1:]:  # in thread order: the same sum in every run
        sums[0] += s
    return sums[0].T


def conv2d_input_grad(g, w, input_shape, kernel, stride, padding, dilation) -> np.ndarray:
    """The adjoint of conv2d in x: g (N, OC, OH, OW), weight w (OC, C, KH, KW) -> (N, C, H, W),
    laid out (C, H, W, N).

    At stride 1 it is itself a convolution: of g, padded to full overlap, with the flipped
    kernel and the channels swapped (one im2col of g, products contracting over OC*KH*KW).
    That is used where its columns (OC*KH*KW by H*W*N) are no larger than col2im's
    (C*KH*KW by OH*OW*N), which it saves adding up, and for 'same'-size convolutions with
    OC <= 2C (as many products as col2im's; DeepConvNet's 3rd conv 2.1 against 3.0 ms);
    otherwise (also at other strides, or where the padding exceeds the kernel's reach) it
    is col2im of w.T @ g (PyTorch's MNIST net's 2nd conv: 12.8 against 15.3 ms as a
    convolution, whose products are 1.17x col2im's).
    """
    n, c, h, wd = input_shape
    reach = [d * (k - 1) for k, d in zip(kernel, dilation)]
    full = tuple((r - lo, r - hi) for r, (lo, hi) in zip(reach, padding))
    oc, out_h, out_w = g.shape[1:]
    smaller = oc * h * wd <= c * out_h * out_w
    same_size = h * wd <= 1.1 * out_h * out_w and oc <= 2 * c
    if stride == (1, 1) and min(min(p) for p in full) >= 0 and (smaller or same_size):
        flipped = w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3).reshape(c, -1)
        return conv2d(g, flipped, kernel, stride, full, dilation, (h, wd))
    return _col2im_input_grad(g, w.reshape(w.shape[0], -1), input_shape, kernel, stride, padding, dilation)


def _col2im_input_grad(g, wmat, input_shape, kernel, stride, padding, dilation) -> np.ndarray:
    """conv2d_input_grad as col2im of wmat.T @ g, a chunk of output rows at a time (any stride).

    Neighbouring chunks add into shared input rows, so the chunks are dealt out in groups of
    consecutive chunks, and the even groups run (each on its own thread), then the odd
    ones: no two threads add into the same rows, and every sum runs in the same order.
    At stride 1 without padding the adds run along whole rows (`_col2im_by_rows`).
    """
    n, c, h, w = input_shape
    dtype = np.result_type(g, wmat)
    gt = batch_last(g.astype(dtype, copy=False))
    if stride == (1, 1) and padding == ((0, 0), (0, 0)):
        return _col2im_by_rows(gt, wmat, input_shape, kernel, dilation)
    oc, out_h, out_w = gt.shape[:3]
    ck = c * kernel[0] * kernel[1]
    out = np.zeros((c, h, w, n), dtype=dtype)
    chunks, threads = row_chunks(out_h, ck * out_w * n * np.dtype(dtype).itemsize, 2 * ck * oc * out_h * out_w * n)
    tallest = max(h1 - h0 for h0, h1 in chunks)

    def add(groups):  # on one thread: col2im of its groups' chunks
        buf = np.empty(ck * tallest * out_w * n, dtype=dtype)
        for h0, h1 in (chunk for group in groups for chunk in group):
            part = np.matmul(wmat.T, _out_rows(gt, h0, h1), out=buf[:ck * (h1 - h0) * out_w * n].reshape(ck, -1))
            blocks = part.reshape(c, *kernel, h1 - h0, out_w, n)
            for i, j, inside, rows, cols in _window_blocks(kernel, stride, padding, dilation, (h, w), h0, h1, out_w):
                out[:, rows, cols] += blocks[:, i, j][inside]  # what lands in the padding is dropped

    groups = _disjoint_groups(chunks, threads, stride[0], dilation[0] * (kernel[0] - 1))
    for phase in (groups[0::2], groups[1::2]):
        _parallel.split(add, phase, threads)
    return out.transpose(3, 0, 1, 2)


def _col2im_by_rows(gt, wmat, input_shape, kernel, dilation) -> np.ndarray:
    """`_col2im_input_grad` at stride 1 without padding, for gt (OC, OH, OW, N): each kernel
    offset's block is added to the input gradient as one contiguous run per channel.

    g's chunk of rows is first copied into a buffer with the input's row pitch (W*N values,
    zeros past OW), so the product's block for offset (i, j) has the layout of the input
    rows it lands on, shifted by j columns: its values past OW, zeros, wrap into the next
    row's first j columns and add nothing. numpy's ufuncs run 3-4x faster per value over
    contiguous runs than over the strided ones (OW*N values each) that col2im adds otherwise:
    LeNet-5's second conv 2.05 -> 1.71 ms alone.
    """
    n, c, h, w = input_shape
    dtype, (oc, out_h, out_w) = gt.dtype, gt.shape[:3]
    (kh, kw), pitch = kernel, w * n
    ck = c * kh * kw
    out = np.zeros((c, h, w, n), dtype=dtype)
    flat = out.reshape(c, -1)
    chunks, threads = row_chunks(out_h, ck * pitch * dtype.itemsize, 2 * ck * oc * out_h * out_w * n,
                                 COL2IM_CHUNK_BYTES)
    tallest = max(h1 - h0 for h0, h1 in chunks)

    def add(groups):  # on one thread: col2im of its groups' chunks
        g_rows = np.zeros((oc, tallest, w, n), dtype=dtype)  # its columns past OW stay zero
        buf = np.empty(ck * tallest * pitch, dtype=dtype)
        for h0, h1 in (chunk for group in groups for chunk in group):
            length = (h1 - h0) * pitch
            np.copyto(g_rows[:, :h1 - h0, :out_w], gt[:, h0:h1])
            part = np.matmul(wmat.T, g_rows[:, :h1 - h0].reshape(oc, -1), out=buf[:ck * length].reshape(ck, -1))
            blocks = part.reshape(c, kh * kw, length)
            for i in range(kh):
                for j in range(kw):
                    shift = j * dilation[1] * n
                    start = (h0 + i * dilation[0]) * pitch + shift
                    flat[:, start:start + length - shift] += blocks[:, i * kw + j, :length - shift]

    groups = _disjoint_groups(chunks, threads, 1, dilation[0] * (kh - 1))
    for phase in (groups[0::2], groups[1::2]):
        _parallel.split(add, phase, threads)
    return out.transpose(3, 0, 1, 2)


def _disjoint_groups(chunks, threads, stride, reach) -> list:
    """Consecutive chunks in about 2 * threads groups, each spanning more input rows than
    a window reaches (`reach`), so that groups two apart never add into the same row."""
    count = max(1, min(2 * threads, len(chunks)))
    while count > 1 and min(h1 - h0 for h0, h1 in chunks) * (len(chunks) // count) * stride <= reach:
        count -= 1
    size = -(-len(chunks) // count)
    return [chunks[i:i + size] for i in range(0, len(chunks), size)]


# ----------------------------------------------------------------------------- pooling


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
    index of the first maximum before any NaN (0 if the first is NaN)."""
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
