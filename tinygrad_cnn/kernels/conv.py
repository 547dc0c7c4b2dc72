"""Convolution kernels: im2col/col2im (`unfold`, `fold`, the lecture's `im2col`, `col2im`) and
conv2d with its weight and input gradients, a chunk of output rows at a time, the batch
innermost in memory (see the package's docstring), spread over the threads where large."""
from __future__ import annotations

import functools
import math

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .. import _parallel
from .layout import _CHWN, _unpad, batch_last, empty_as, memory_order, offset_slices, pad4, windows


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


# columns per chunk: in L3 (EPYC here: 1 MB L2 per core, 32 MB L3); 4 MB was no faster and
# held 2-3 MB more
CHUNK_BYTES = 2 << 20
SPLIT_BYTES = 4 << 20  # columns are spread over the threads where each gets this much at least
# ... or where the products come to this many flops: forward and weight gradient on two
# threads against one, the lecture conv at batch 100 (90 MFLOP) 0.87x and 0.77x, DeepConvNet's
# 5th (237 MFLOP, 7.4 MB of columns) 0.61x and 0.60x; LeNet's 2nd (48 MFLOP) forward 1.23x
SPLIT_FLOPS = 64_000_000
# ... or where the product's other operand (the output, or g for the weight gradient) holds
# this many bytes: the one-channel first convs, whose products are small but write or read
# a large array. In the MNIST net's step its first conv's forward 1.22 -> 0.88 and 1.22 ->
# 1.03 ms, weight gradient 0.83 -> 0.72 and 0.82 -> 0.81 ms (DeepConvNet's: 1.14 -> 1.15,
# 1.05 -> 0.98 ms)
SPLIT_OUT_BYTES = 4 << 20
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


def _pieces_of(a, p: int) -> np.ndarray:
    """a (..., R, L) with its last axis cut into pieces of p values: (..., L/p, R, p), a view."""
    *lead, r, length = a.shape
    *lead_strides, sr, s = a.strides
    return as_strided(a, shape=(*lead, length // p, r, p), strides=(*lead_strides, p * s, sr, s))


def _matmul_by_pieces(a, b, out):
    """out[...] = a (M, K) @ b (..., K, L), a matrix or a stack of them, as products over
    pieces of L where that is faster."""
    (m, k), length = a.shape, b.shape[-1]
    p = _product_pieces(length, m * k)
    if p is None:
        return np.matmul(a, b, out=out)
    np.matmul(a, _pieces_of(b, p), out=_pieces_of(out, p))
    return out


def _contract_by_pieces(a, b):
    """The sum over the leading axes of a (..., M, L) @ b (..., N, L).T: (M, N), a sum of
    products over pieces of L where that is faster (the lecture conv's weight gradient from
    a stack of row slabs: 1.05 -> 0.73 ms a chunk)."""
    (m, length), n = a.shape[-2:], b.shape[-2]
    p = _product_pieces(length, m * n) or max(length, 1)
    return np.matmul(_pieces_of(a, p), np.swapaxes(_pieces_of(b, p), -1, -2)).reshape(-1, m, n).sum(axis=0)



def row_chunks(out_h: int, row_bytes: int, flops: int = 0, chunk_bytes: int = 0,
               out_bytes: int = 0) -> tuple[list, int]:
    """(chunks, threads): output rows in even chunks (h0, h1) whose columns take about
    `chunk_bytes` (default `CHUNK_BYTES`; one row at least), and how many threads to spread them over: one per core
    where each gets `SPLIT_BYTES` of columns at least, or the products (`flops`, for all
    rows) come to `SPLIT_FLOPS` at least, or their other operand (`out_bytes`) to
    `SPLIT_OUT_BYTES` (and then a chunk at least), else one: smaller convolutions ran no
    faster on two threads (see `SPLIT_FLOPS`)."""
    big = (out_h * row_bytes >= SPLIT_BYTES * _parallel.THREADS or flops >= SPLIT_FLOPS
           or out_bytes >= SPLIT_OUT_BYTES)
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
                          2 * m * k * out_hw[0] * out_hw[1] * n,
                          out_bytes=m * out_hw[0] * out_hw[1] * n * np.dtype(dtype).itemsize)

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

    @staticmethod
    def rows_of(a, h0, h1) -> np.ndarray:
        """Rows h0:h1 of an (OC, OH, OW, N) array as `of`'s products give them: (OC, (h1-h0)*OW*N)."""
        return a[:, h0:h1].reshape(a.shape[0], -1)

    @staticmethod
    def weights(wmat, c, kernel, ones_row) -> np.ndarray:
        """conv2d's weight matrix (OC, C*KH*KW [+1]) in `of`'s row order: itself."""
        return wmat

    @staticmethod
    def from_order(m, c, kernel, ones_row) -> np.ndarray:
        """A (rows of `of`, M) matrix in conv2d's row order: itself."""
        return m


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
    (`weights`), the bias in kernel row 0's ones column.
    """

    def __init__(self, xt, geom, ones_row, dtype, chunks: list):
        self.xt, self.geom = xt, geom
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
        if dilation[0] != 1 or c * kh * kw < SLAB_MIN_ROWS or out_w * n < max(1, SLAB_MIN_RUN):
            return None
        k = c * kh * kw + ones_row
        chunks, threads = row_chunks(out_h, (c * kw + ones_row) * out_w * n * np.dtype(dtype).itemsize * sh,
                                     2 * m * k * out_h * out_w * n,
                                     out_bytes=m * out_h * out_w * n * np.dtype(dtype).itemsize)
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

    @staticmethod
    def rows_of(a, h0, h1) -> np.ndarray:
        """Rows h0:h1 of an (OC, OH, OW, N) array as `of`'s products give them: (h1-h0, OC, OW*N)."""
        return a[:, h0:h1].reshape(a.shape[0], h1 - h0, -1).transpose(1, 0, 2)

    @staticmethod
    def weights(wmat, c, kernel, ones_row) -> np.ndarray:
        """conv2d's weight matrix (OC, C*KH*KW [+1]), rows (c, i, j), in `of`'s row order:
        (OC, KH*(C*KW [+1])), rows (i, c, j), the bias (if any) with kernel row 0."""
        oc, (kh, kw) = wmat.shape[0], kernel
        out = np.zeros((oc, kh, c * kw + ones_row), dtype=wmat.dtype)
        out[:, :, :c * kw] = wmat[:, :c * kh * kw].reshape(oc, c, kh, kw).transpose(0, 2, 1, 3).reshape(oc, kh, -1)
        if ones_row:
            out[:, 0, -1] = wmat[:, -1]
        return out.reshape(oc, -1)

    @staticmethod
    def from_order(m, c, kernel, ones_row) -> np.ndarray:
        """The inverse of `weights`'s row order for a (KH*(C*KW [+1]), M) matrix: its rows as
        (c, i, j) [+ the ones row, kernel row 0's]: (C*KH*KW [+1], M)."""
        (kh, kw), m = kernel, m.reshape(kernel[0], c * kernel[1] + ones_row, -1)
        out = m[:, :c * kw].reshape(kh, c, kw, -1).transpose(1, 0, 2, 3).reshape(c * kh * kw, -1)
        return np.concatenate([out, m[0, -1:]]) if ones_row else out


def _im2col_for(xt, geom, ones_row, dtype, m: int) -> tuple:
    """(layout, chunks, threads) of the columns of xt (C, H, W, N) with geometry `geom`, to be
    multiplied with an m-row matrix: `_RowSlabs` where they apply and pay, else `_Columns`."""
    slabs = _RowSlabs.chunks_of(xt, geom, ones_row, dtype, m)
    return (_RowSlabs, *slabs) if slabs is not None else (_Columns, *_Columns.chunks_of(xt, geom, ones_row, dtype, m))


def _zero_padded(x, dtype, geom) -> tuple:
    """(x (N, C, H, W) as a zero-padded (C, H, W, N) array of `dtype`, geom without padding):
    one pass over x, which is KH*KW times smaller than its columns, that also casts it and
    puts its batch innermost where needed (one copy, not two: LeNet-5's first conv 68 -> 33
    us). x's own memory where nothing needs changing: no padding, its dtype, batch innermost."""
    kernel, stride, ((t, b), (left, r)), dilation, out_hw = geom
    unpadded = t == b == left == r == 0
    if unpadded and x.dtype == dtype and memory_order(x) == _CHWN:
        return x.transpose(1, 2, 3, 0), geom
    n, c, h, w = x.shape
    xp = (np.empty if unpadded else np.zeros)((c, h + t + b, w + left + r, n), dtype=dtype)
    xp[:, t:t + h, left:left + w] = x.transpose(1, 2, 3, 0)
    return xp, (kernel, stride, ((0, 0), (0, 0)), dilation, out_hw)


def conv2d(x, wmat, kernel, stride, padding, dilation, out_hw) -> np.ndarray:
    """Cross-correlation: x (N, C, H, W), wmat (OC, C*KH*KW [+1 bias column]) -> (N, OC, OH, OW),
    laid out (OC, OH, OW, N). One matrix product per chunk of output rows, whose columns stay in cache."""
    n, oc = x.shape[0], wmat.shape[0]
    dtype = np.result_type(x, wmat)
    xt, geom = _zero_padded(x, dtype, (kernel, stride, padding, dilation, out_hw))
    ones_row = wmat.shape[1] > x.shape[1] * kernel[0] * kernel[1]
    out = np.empty((oc, *out_hw, n), dtype=dtype)

    layout, chunks, threads = _im2col_for(xt, geom, ones_row, dtype, oc)
    w = layout.weights(wmat, x.shape[1], kernel, ones_row)

    def rows(chunks):  # on one thread: its own columns buffer, disjoint output rows
        cols = layout(xt, geom, ones_row, dtype, chunks)
        for h0, h1 in chunks:
            _matmul_by_pieces(w, cols.of(h0, h1), layout.rows_of(out, h0, h1))

    _parallel.split(rows, chunks, threads)
    return out.transpose(3, 0, 1, 2)


def conv2d_weight_grad(x, g, kernel, stride, padding, dilation, ones_row) -> np.ndarray:
    """The gradient of conv2d's weight matrix: (OC, C*KH*KW [+1]), the sum over images and
    positions of g (N, OC, OH, OW) times x's columns (the last column, with `ones_row`, is
    the bias gradient)."""
    dtype = np.result_type(x, g)
    gt = batch_last(g)
    xt, geom = _zero_padded(x, dtype, (kernel, stride, padding, dilation, gt.shape[1:3]))

    layout, chunks, threads = _im2col_for(xt, geom, ones_row, dtype, g.shape[1])

    def rows(chunks):  # on one thread: the sum over its chunks
        cols = layout(xt, geom, ones_row, dtype, chunks)
        total = 0
        for h0, h1 in chunks:  # columns @ g.T: 1.7x faster than g @ columns.T here (OpenBLAS)
            total = total + _contract_by_pieces(cols.of(h0, h1), layout.rows_of(gt, h0, h1))
        return total

    sums = _parallel.split(rows, chunks, threads)
    for s in sums[1:]:  # in thread order: the same sum in every run
        sums[0] += s
    return layout.from_order(sums[0], x.shape[1], kernel, ones_row).T


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
    convolution, whose products are 1.17x col2im's). So is it where w holds an inf or a
    NaN: the convolution multiplies the zeros around g by every weight, and 0 * inf is NaN
    where PyTorch (and col2im) add nothing.
    """
    n, c, h, wd = input_shape
    reach = [d * (k - 1) for k, d in zip(kernel, dilation)]
    full = tuple((r - lo, r - hi) for r, (lo, hi) in zip(reach, padding))
    oc, out_h, out_w = g.shape[1:]
    smaller = oc * h * wd <= c * out_h * out_w
    same_size = h * wd <= 1.1 * out_h * out_w and oc <= 2 * c
    if stride == (1, 1) and min(min(p) for p in full) >= 0 and (smaller or same_size) and np.isfinite(w).all():
        flipped = w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3).reshape(c, -1)
        return conv2d(g, flipped, kernel, stride, full, dilation, (h, wd))
    return _col2im_input_grad(g, w.reshape(w.shape[0], -1), input_shape, kernel, stride, padding, dilation)


def _col2im_input_grad(g, wmat, input_shape, kernel, stride, padding, dilation) -> np.ndarray:
    """conv2d_input_grad as col2im of wmat.T @ g, a chunk of output rows at a time (any stride).

    Neighbouring chunks add into shared input rows, so the chunks are dealt out in groups of
    consecutive chunks, and the even groups run (each on its own thread), then the odd
    ones: no two threads add into the same rows, and every sum runs in the same order.
    At stride 1 without padding the adds run along whole rows (`_col2im_by_rows`, or
    `_input_grad_by_kernel_rows` where `_kernel_rows_pay`), unless wmat holds an inf or a
    NaN (its product with the zeros there would be NaN).
    """
    n, c, h, w = input_shape
    dtype = np.result_type(g, wmat)
    gt = batch_last(g.astype(dtype, copy=False))
    if stride == (1, 1) and padding == ((0, 0), (0, 0)) and np.isfinite(wmat).all():
        if _kernel_rows_pay(c, gt.shape[0], kernel):
            return _input_grad_by_kernel_rows(gt, wmat.reshape(gt.shape[0], c, *kernel), input_shape, kernel, dilation)
        return _col2im_by_rows(gt, wmat, input_shape, kernel, dilation)
    oc, out_h, out_w = gt.shape[:3]
    ck = c * kernel[0] * kernel[1]
    out = np.zeros((c, h, w, n), dtype=dtype)
    chunks, threads = row_chunks(out_h, ck * out_w * n * np.dtype(dtype).itemsize, 2 * ck * oc * out_h * out_w * n)
    tallest = max(h1 - h0 for h0, h1 in chunks)

    def add(share):  # on one thread: col2im of its chunks
        buf = np.empty(ck * tallest * out_w * n, dtype=dtype)
        for h0, h1 in share:
            part = np.matmul(wmat.T, _Columns.rows_of(gt, h0, h1), out=buf[:ck * (h1 - h0) * out_w * n].reshape(ck, -1))
            blocks = part.reshape(c, *kernel, h1 - h0, out_w, n)
            for i, j, inside, rows, cols in _window_blocks(kernel, stride, padding, dilation, (h, w), h0, h1, out_w):
                out[:, rows, cols] += blocks[:, i, j][inside]  # what lands in the padding is dropped

    _in_two_phases(add, chunks, threads, stride[0], dilation[0] * (kernel[0] - 1))
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

    def add(share):  # on one thread: col2im of its chunks
        g_rows = np.zeros((oc, tallest, w, n), dtype=dtype)  # its columns past OW stay zero
        buf = np.empty(ck * tallest * pitch, dtype=dtype)
        for h0, h1 in share:
            length = (h1 - h0) * pitch
            np.copyto(g_rows[:, :h1 - h0, :out_w], gt[:, h0:h1])
            part = np.matmul(wmat.T, g_rows[:, :h1 - h0].reshape(oc, -1), out=buf[:ck * length].reshape(ck, -1))
            blocks = part.reshape(c, kh * kw, length)
            for i in range(kh):
                for j in range(kw):
                    shift = j * dilation[1] * n
                    start = (h0 + i * dilation[0]) * pitch + shift
                    flat[:, start:start + length - shift] += blocks[:, i * kw + j, :length - shift]

    _in_two_phases(add, chunks, threads, 1, dilation[0] * (kh - 1))
    return out.transpose(3, 0, 1, 2)


def _kernel_rows_pay(c: int, oc: int, kernel) -> bool:
    """Whether `_input_grad_by_kernel_rows` beats `_col2im_by_rows` for C input and OC output
    channels: where its product's output (KH*C rows) and shifted copies of g (OC*KW rows)
    together hold fewer values than col2im's columns (C*KH*KW rows). Alone, at stride 1:
    LeNet-5's second conv (6 -> 16, 5x5) 1.45 -> 1.18 ms, 8 -> 8 5x5 3.7 -> 2.1 ms, 30 -> 30
    3x3 3.0 -> 2.5 ms; where the two are equal, as in the MNIST net's second conv (32 -> 64,
    3x3), col2im was 3% faster (10.6 against 11.0 ms)."""
    (kh, kw) = kernel
    return kh * c + oc * kw < c * kh * kw


def _input_grad_by_kernel_rows(gt, w, input_shape, kernel, dilation) -> np.ndarray:
    """`_col2im_input_grad` at stride 1 without padding, for gt (OC, OH, OW, N) and w (OC, C,
    KH, KW), contracting over (OC, KW) rather than OC alone.

    g's chunk of rows is copied KW times into a buffer with the input's row pitch (W*N
    values a row), copy j shifted right by kernel column j (zeros elsewhere): G, (OC*KW,
    rows*W*N). Then one product (KH*C, OC*KW) @ G gives for each kernel row i the (C,
    rows*W*N) block it adds to the input rows i (dilated) below the chunk's: KH contiguous
    adds, against col2im's KH*KW of a KW times larger product.
    """
    n, c, h, width = input_shape
    dtype, (oc, out_h, out_w) = gt.dtype, gt.shape[:3]
    (kh, kw), pitch = kernel, width * n
    wm = w.astype(dtype, copy=False).transpose(2, 1, 0, 3).reshape(kh * c, oc * kw)  # rows (i, c), columns (oc, j)
    out = np.zeros((c, h, width, n), dtype=dtype)
    flat = out.reshape(c, -1)
    chunks, threads = row_chunks(out_h, oc * kw * pitch * dtype.itemsize, 2 * kh * c * oc * kw * out_h * pitch,
                                 COL2IM_CHUNK_BYTES)
    tallest = max(h1 - h0 for h0, h1 in chunks)

    def add(share):  # on one thread: its chunks
        shifted = np.zeros(oc * kw * tallest * pitch, dtype=dtype)
        part = np.empty(kh * c * tallest * pitch, dtype=dtype)
        zeros_for = None  # the chunk height the zeros in `shifted` are laid out for
        for h0, h1 in share:
            length = (h1 - h0) * pitch
            gs = shifted[:oc * kw * length].reshape(oc, kw, h1 - h0, width, n)
            if zeros_for not in (None, h1 - h0):
                gs.fill(0)
            zeros_for = h1 - h0
            s = gs.strides
            np.copyto(as_strided(gs, shape=(oc, kw, h1 - h0, out_w, n),
                                 strides=(s[0], s[1] + dilation[1] * s[3], s[2], s[3], s[4])), gt[:, None, h0:h1])
            p = np.matmul(wm, gs.reshape(oc * kw, length), out=part[:kh * c * length].reshape(kh * c, length))
            for i, block in enumerate(p.reshape(kh, c, length)):
                start = (h0 + i * dilation[0]) * pitch
                flat[:, start:start + length] += block

    _in_two_phases(add, chunks, threads, 1, dilation[0] * (kh - 1))
    return out.transpose(3, 0, 1, 2)


def _in_two_phases(add, chunks, threads, stride, reach) -> None:
    """add(share of chunks) for col2im's chunks, which add into shared input rows where they
    neighbour: consecutive chunks in groups (`_disjoint_groups`), the even groups on the
    threads at once (a share being the chunks of its groups), then the odd ones."""
    groups = _disjoint_groups(chunks, threads, stride, reach)
    for phase in (groups[0::2], groups[1::2]):
        if phase:
            _parallel.split(lambda share: add([chunk for group in share for chunk in group]), phase, threads)


def _disjoint_groups(chunks, threads, stride, reach) -> list:
    """Consecutive chunks in about 2 * threads groups, each spanning more input rows than
    a window reaches (`reach`), so that groups two apart never add into the same row."""
    count = max(1, min(2 * threads, len(chunks)))
    while count > 1 and min(h1 - h0 for h0, h1 in chunks) * (len(chunks) // count) * stride <= reach:
        count -= 1
    size = -(-len(chunks) // count)
    return [chunks[i:i + size] for i in range(0, len(chunks), size)]
