"""The thread helpers: products split over threads equal numpy's, and numpy's own OpenBLAS
setting is left as the caller had it."""
import threading
import warnings

import numpy as np
import pytest

import tinygrad_cnn.functional as F
from tinygrad_cnn import Tensor, _parallel

needs_blas_control = pytest.mark.skipif(_parallel._set_local is None, reason="numpy's OpenBLAS has no thread control")


@pytest.mark.parametrize("shape", [(100, 4320, 100), (4320, 100, 100), (100, 100, 4320), (7, 3000, 1601)])
@pytest.mark.parametrize("orders", ["CC", "FC", "CF", "FF"])
def test_matmul_on_threads_equals_numpys(monkeypatch, shape, orders):
    monkeypatch.setattr(_parallel, "THREADS", 2)
    m, k, n = shape
    rng = np.random.default_rng(0)
    a = np.asarray(rng.standard_normal((m, k)), order=orders[0], dtype=np.float32)
    b = np.asarray(rng.standard_normal((k, n)), order=orders[1], dtype=np.float32)
    assert 2 * m * k * n >= _parallel.MATMUL_SPLIT_FLOPS
    out = _parallel.matmul(a, b)
    assert out.flags.c_contiguous and out.dtype == np.float32
    np.testing.assert_allclose(out, a.astype(np.float64) @ b, rtol=1e-4, atol=1e-3)


@needs_blas_control
def test_threads_leave_numpys_openblas_setting_as_the_caller_had_it(monkeypatch):
    # numpy's OpenBLAS keeps one thread count for the whole process: every use of the
    # framework's threads must give it back (it once stayed at 1 after the first conv)
    monkeypatch.setattr(_parallel, "THREADS", 2)
    monkeypatch.setattr(_parallel, "_pool", None)  # a new pool: its threads start in this test
    monkeypatch.setattr(_parallel, "_pool_size", 0)
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((64, 16, 28, 28)).astype(np.float32), requires_grad=True)
    w = Tensor(rng.standard_normal((32, 16, 3, 3)).astype(np.float32), requires_grad=True)
    before = _parallel._set_local(3)
    try:
        F.conv2d(x, w, padding=1).sum().backward()
        _parallel.split_rows(lambda *a: None, np.zeros((4, 300_000), np.float32))
        (Tensor(rng.standard_normal((100, 4320)).astype(np.float32)) @ Tensor(np.ones((4320, 100), np.float32)))
        assert _parallel._set_local(3) == 3
    finally:
        _parallel._set_local(before)


def test_even_blocks_cut_at_multiples_of_a_unit_and_cover_the_range():
    assert _parallel._even_blocks(10, 3) == [(0, 3), (3, 6), (6, 10)]
    assert _parallel._even_blocks(100, 3, unit=16) == [(0, 32), (32, 64), (64, 100)]
    assert _parallel._even_blocks(40, 2, unit=16) == [(0, 16), (16, 40)]
    assert _parallel._even_blocks(20, 4, unit=16) == [(0, 20)]  # cuts that round to 0: empty blocks dropped


def test_matmul_of_an_outer_product_is_the_product_row_major():
    a, b = np.asfortranarray(np.arange(5.0).reshape(5, 1)), np.arange(4.0).reshape(1, 4)
    out = _parallel.matmul(a, b)
    np.testing.assert_array_equal(out, a @ b)
    assert out.flags.c_contiguous


@needs_blas_control
@pytest.mark.parametrize("setting, expect", [("raise", FloatingPointError), ("ignore", None), ("warn", RuntimeWarning)])
def test_work_on_the_threads_follows_the_callers_errstate(monkeypatch, setting, expect):
    # numpy's errstate is per thread: the workers must take the caller's, not their own
    monkeypatch.setattr(_parallel, "THREADS", 2)
    big = np.full(4, 3e38, np.float32)

    def overflow(items):  # on the worker thread only, so that only the worker can raise or warn
        list(items)
        return [] if threading.current_thread() is threading.main_thread() else [big * np.float32(10)]

    with np.errstate(over=setting):
        if expect is FloatingPointError:
            with pytest.raises(FloatingPointError):
                _parallel.split(overflow, [0, 1])
        elif expect is RuntimeWarning:
            with pytest.warns(RuntimeWarning, match="overflow"):
                _parallel.split(overflow, [0, 1])
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                out = _parallel.split(overflow, [0, 1])
            assert np.isinf(out[1][0]).all()


@needs_blas_control
def test_work_on_the_threads_calls_the_callers_errstate_handler(monkeypatch):
    # errstate(call=...) lives in the caller's context too: a worker's overflow reaches it
    monkeypatch.setattr(_parallel, "THREADS", 2)
    big, seen = np.full(4, 3e38, np.float32), []

    def overflow(items):
        list(items)
        return [] if threading.current_thread() is threading.main_thread() else [big * np.float32(10)]

    with np.errstate(over="call", call=lambda kind, flag: seen.append(kind)):
        _parallel.split(overflow, [0, 1])
    assert seen == ["overflow"]
