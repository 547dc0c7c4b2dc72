"""Chunks of numpy work on a few threads: one per core, each with a one-thread OpenBLAS.

numpy releases the GIL in its copies, ufunc loops and matrix products, so threads that
each take a share of conv2d's row chunks (im2col copy, then the product) run on all
cores at once. While they run, numpy's OpenBLAS is asked for one thread
(`openblas_set_num_threads_local`, OpenBLAS >= 0.3.27), so that the chunks, not
OpenBLAS, share the cores; the caller's setting is restored when they are done. (In
numpy 2.4's OpenBLAS that setting turned out to be process-wide, not per thread: a
worker that set it for itself left every later product of the process on one thread.)
Chunks go to threads in a fixed order (thread k takes chunks k, k + T, ...), so results
that sum over chunks are the same in every run.

Where that OpenBLAS function is not found, or `TINYGRAD_CNN_THREADS=1`, everything runs
on the calling thread. `TINYGRAD_CNN_THREADS=n` sets the number of threads.
"""
from __future__ import annotations

import contextvars
import ctypes
import glob
import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np


def _blas_local_threads():
    """numpy's OpenBLAS `openblas_set_num_threads_local(n) -> previous`, or None."""
    libs = os.path.join(os.path.dirname(os.path.dirname(np.__file__)), "numpy.libs", "*openblas*")
    for path in sorted(glob.glob(libs)):
        try:
            fn = ctypes.CDLL(path).openblas_set_num_threads_local
        except (OSError, AttributeError):
            continue
        fn.argtypes, fn.restype = [ctypes.c_int], ctypes.c_int
        return fn
    return None


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


_set_local = _blas_local_threads()
THREADS = (int(os.environ.get("TINYGRAD_CNN_THREADS", "0")) or _cores()) if _set_local else 1
_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_pool_lock = threading.Lock()


def _get_pool(size: int) -> ThreadPoolExecutor:
    """The worker threads: THREADS - 1 of them (at least `size`), made once, and made anew
    if THREADS grew. The old pool is left to finish, not shut down: another thread may be
    handing it work at this moment."""
    global _pool, _pool_size
    with _pool_lock:
        if _pool_size < size:
            _pool_size = max(size, THREADS - 1)
            _pool = ThreadPoolExecutor(_pool_size, thread_name_prefix="tinygrad_cnn")
        return _pool


def _forget_pool():
    """In a forked child the pool's threads do not exist: start without them, with free
    locks, and with numpy's OpenBLAS setting back as it was before any one_blas_thread
    (another thread of the parent may have been inside one when it forked)."""
    global _pool, _pool_size, _pool_lock, _blas_lock, _blas_inside
    _pool, _pool_size, _pool_lock, _blas_lock = None, 0, threading.Lock(), threading.Lock()
    if _blas_inside and _set_local is not None:
        _set_local(_blas_previous)
    _blas_inside = 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


ROW_SPLIT_ELEMENTS = 1 << 18  # below this, handing half to a thread (~65 us) gains little


def split_rows(work, *arrays, min_elements: int = ROW_SPLIT_ELEMENTS) -> None:
    """work(*blocks) on T blocks of rows (first-axis slices) of same-shaped arrays, one
    block per thread, for elementwise work that each block does alone (an optimizer's
    update of a large weight). One call on all of them when they are small or 1-D."""
    n = arrays[0].shape[0] if arrays[0].ndim > 1 else 1
    t = min(THREADS, n) if arrays[0].size >= min_elements else 1
    if t == 1:
        work(*arrays)
        return
    split(lambda blocks: [work(*(a[lo:hi] for a in arrays)) for lo, hi in blocks], _even_blocks(n, t), t)


def _even_blocks(n: int, t: int, unit: int = 1) -> list:
    """[(lo, hi), ...]: range(n) cut into t blocks of about equal size, inner cuts at
    multiples of `unit` (blocks left empty by that are dropped)."""
    bounds = [n * k // t // unit * unit for k in range(t)] + [n]
    return [(lo, hi) for lo, hi in zip(bounds, bounds[1:]) if hi > lo]


_blas_lock = threading.Lock()
_blas_inside = 0  # threads (and nested blocks) inside one_blas_thread now
_blas_previous = None  # the setting before the first of them entered


class one_blas_thread:
    """Within: numpy's OpenBLAS multiplies on one thread; the previous setting after.
    The framework's products run so, spread over cores by `split` where they are large:
    after a product on several threads, OpenBLAS's idle threads spin for a while and took
    the second core from `split`'s thread (a conv's forward 2.0 -> 3.2 ms, Adam 1.8 ->
    2.5 ms in the lecture net's step). The setting is process-wide, so blocks are counted
    over all threads: the first in saves it, the last out restores it (two threads each
    restoring what it found left the process on one OpenBLAS thread)."""

    def __enter__(self):
        global _blas_inside, _blas_previous
        if _set_local is not None:
            with _blas_lock:
                if _blas_inside == 0:
                    _blas_previous = _set_local(1)
                _blas_inside += 1

    def __exit__(self, *exc):
        global _blas_inside
        if _set_local is not None:
            with _blas_lock:
                _blas_inside = max(0, _blas_inside - 1)  # (a forked child starts from 0)
                if _blas_inside == 0:
                    _set_local(_blas_previous)


def split(work, items: list, threads: int | None = None) -> list:
    """[work(items[0::T]), ..., work(items[T-1::T])] with T = min(threads, len(items)), each
    call on its own thread (the first on the calling thread), each product in it on one
    OpenBLAS thread and under the caller's np.errstate. `work` is called once per thread,
    so it can hold scratch buffers for its share. T = 1: one call, here."""
    t = max(1, min(THREADS if threads is None else threads, len(items)))
    with one_blas_thread():
        if t == 1 or _set_local is None:
            return [work(items)]
        pool = _get_pool(t - 1)
        # each share in a copy of the caller's context: numpy's errstate (modes and handler)
        # lives in a context variable, which a worker thread would otherwise not see
        futures = [pool.submit(contextvars.copy_context().run, work, items[k::t]) for k in range(1, t)]
        try:
            first = work(items[0::t])
        finally:
            wait(futures)  # none left running, even when work raised here
        return [first] + [f.result() for f in futures]


MATMUL_SPLIT_FLOPS = 32_000_000  # 2-D products from this size go to the threads in halves


def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a (M, K) @ b (K, N) -> (M, N) C-ordered, on one OpenBLAS thread per product: large
    ones in row blocks of a (or column blocks of b, the longer side) on the threads. With
    the conv ops' products also on one OpenBLAS thread, no OpenBLAS thread spins beside
    `split`'s. The lecture net's step (batch 100) 20.8 -> 18.6 ms, PyTorch's MNIST net's
    55.0 -> 52.2 ms, against these products unsplit on one thread (interleaved runs)."""
    m, n = a.shape[0], b.shape[1]
    if a.shape[1] == 1:  # an outer product (a batch-1 layer's weight gradient): OpenBLAS's GEMM
        return np.multiply(a, b)  # took 474 us for (100, 1) @ (1, 4320), broadcasting 36 us
    if 2 * m * n * a.shape[1] < MATMUL_SPLIT_FLOPS or max(m, n) < 2 * THREADS:
        with one_blas_thread():
            return np.matmul(a, b)
    out = np.empty((m, n), dtype=np.result_type(a, b))
    cut_rows = m >= n

    def work(blocks):
        for lo, hi in blocks:
            rows, cols = (slice(lo, hi), slice(None)) if cut_rows else (slice(None), slice(lo, hi))
            np.matmul(a[rows], b[:, cols], out=out[rows, cols])

    split(work, _even_blocks(max(m, n), THREADS))
    return out
