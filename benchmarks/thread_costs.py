"""What threads cost on this machine: the measurements behind docs/performance.md's tenth and
eleventh rounds, which decide what `_parallel` spreads over the cores.

- wake: how long a thread blocked on a lock takes to run after another thread releases it,
  by how long the releasing thread was busy before (an idle vCPU may halt, and the host
  must then wake it);
- handoff: a multiply over 8 shares on one thread, through `_parallel.split` (the package's
  pool of threads) and through a worker that waits spinning in libc's `pthread_spin_lock`
  (called through ctypes, which releases the GIL; the main thread waits for it the same
  way). The spinning worker is not in the package: the eleventh round says why;
- bandwidth: an in-place multiply streaming one array per thread, on one thread and on two;
- products: a one-thread 256x256 float32 product, in cache, alone and beside the same
  product on a second thread.

Every time is the median of `--repeats` (wake, handoff) or of 5 (bandwidth, products).

Usage: python benchmarks/thread_costs.py [--repeats 200] [--sizes-mb 1,4,16,64,256] [--json out.json]
"""
import argparse
import ctypes
import ctypes.util
import os
import statistics
import sys
import threading
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from common import write_json  # noqa: E402

from tinygrad_cnn import _parallel  # noqa: E402


def _busy(seconds: float) -> None:
    """Keep this thread busy (not sleeping) for `seconds`."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def wake_latency(idle_ms=(0, 0.1, 1, 5, 10, 50), repeats: int = 200) -> dict:
    """{idle ms: median us until a blocked thread runs after its lock is released}."""
    go, done, stamp = threading.Lock(), threading.Lock(), [0.0]
    go.acquire()
    done.acquire()
    stop = False

    def worker():
        while True:
            go.acquire()
            stamp[0] = time.perf_counter()
            done.release()
            if stop:
                return

    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    out = {}
    for idle in idle_ms:
        waits = []
        for _ in range(repeats):
            _busy(idle / 1e3)
            t0 = time.perf_counter()
            go.release()
            done.acquire()
            waits.append(stamp[0] - t0)
        out[idle] = statistics.median(waits) * 1e6
    stop = True
    go.release()
    thread.join()
    return out


def _spinlocks():
    """libc's (pthread_spin_init, pthread_spin_lock, pthread_spin_unlock), or None."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        fns = libc.pthread_spin_init, libc.pthread_spin_lock, libc.pthread_spin_unlock
    except (OSError, AttributeError):
        return None
    for fn in fns:
        fn.argtypes, fn.restype = [ctypes.c_void_p] + [ctypes.c_int] * (fn is fns[0]), ctypes.c_int
    return fns


class SpinWorker:
    """One thread that waits for its next task spinning in `pthread_spin_lock`, the GIL
    released; `run(task, mine)` hands it `task`, calls `mine()` here, and waits for the
    task the same way. Spins until `close()`: for measuring only."""

    def __init__(self, fns):
        self.init, self.lock, self.unlock = fns
        self.cells = [ctypes.c_int64(0) for _ in range(2)]  # pthread_spinlock_t: an int
        self.go, self.done = (ctypes.byref(c) for c in self.cells)
        for ref in (self.go, self.done):
            self.init(ref, 0)
            self.lock(ref)  # closed until unlocked by the other side
        self.task = None
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        while True:
            self.lock(self.go)
            task, self.task = self.task, None
            if task is None:
                return
            task()
            self.unlock(self.done)

    def run(self, task, mine):
        self.task = task
        self.unlock(self.go)
        mine()
        self.lock(self.done)

    def close(self):
        self.task = None
        self.unlock(self.go)
        self.thread.join()


def _median_us(fn, repeats: int, idle_ms: float) -> float:
    """Median us of fn(), the calling thread busy for `idle_ms` before each call."""
    times = []
    for _ in range(repeats):
        _busy(idle_ms / 1e3)
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e6


def handoff(share_values=(5_000, 50_000, 500_000), repeats: int = 200, idle_ms: float = 0.1) -> dict:
    """{share size: {way: median us}} for a multiply over 8 shares of `share_values`
    float32 each, the main thread busy for `idle_ms` before each call. The spinning worker
    exists only while its own way is timed."""
    fns, out = _spinlocks(), {}
    for size in share_values:
        a = np.random.default_rng(0).random(8 * size, dtype=np.float32)
        b = np.empty_like(a)
        shares = [(i * size, (i + 1) * size) for i in range(8)]

        def work(items):
            for lo, hi in items:
                np.multiply(a[lo:hi], 1.5, out=b[lo:hi])

        out[size] = {"one thread": _median_us(lambda: work(shares), repeats, idle_ms),
                     "split (pool)": _median_us(lambda: _parallel.split(work, shares, 2), repeats, idle_ms)}
        if fns is not None:
            spinner = SpinWorker(fns)
            try:
                out[size]["spinning worker"] = _median_us(
                    lambda: spinner.run(lambda: work(shares[1::2]), lambda: work(shares[0::2])), repeats, idle_ms)
            finally:
                spinner.close()
    return out


def _on_threads(fns, repeats: int = 5) -> float:
    """Median seconds to run every fn() at once, one thread each (the first here)."""
    times = []
    for _ in range(repeats):
        others = [threading.Thread(target=f) for f in fns[1:]]
        t0 = time.perf_counter()
        for t in others:
            t.start()
        fns[0]()
        for t in others:
            t.join()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bandwidth(sizes_mb=(1, 4, 16, 64, 256), target_mb: int = 400) -> dict:
    """{MB per thread: (GB/s on one thread, GB/s in total on two)}, an in-place multiply
    read and written `target_mb` MB at least per thread."""
    out = {}
    for mb in sizes_mb:
        arrays = [np.random.default_rng(k).random(mb << 18, dtype=np.float32) for k in range(2)]
        passes = max(1, target_mb // mb)

        def stream(x):
            def run():
                for _ in range(passes):
                    np.multiply(x, 1.0001, out=x)
            return run

        moved = 2 * arrays[0].nbytes * passes / 1e9
        out[mb] = (moved / _on_threads([stream(arrays[0])]), 2 * moved / _on_threads([stream(x) for x in arrays]))
    return out


PRODUCT_CALLS = 400


def products_beside(calls: int = PRODUCT_CALLS) -> dict:
    """{'alone', 'beside another': ms for `calls` one-thread 256x256 float32 products}."""
    rng = np.random.default_rng(0)
    mats = [(rng.random((256, 256), dtype=np.float32), np.empty((256, 256), np.float32)) for _ in range(2)]

    def product(m):
        def run():
            for _ in range(calls):
                np.matmul(m[0], m[0], out=m[1])
        return run

    with _parallel.one_blas_thread():
        return {"alone": _on_threads([product(mats[0])]) * 1e3,
                "beside another": _on_threads([product(m) for m in mats]) * 1e3}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=200)
    p.add_argument("--sizes-mb", default="1,4,16,64,256", help="array sizes per thread for the bandwidth table")
    p.add_argument("--json")
    args = p.parse_args(argv)
    result = {"wake_us": wake_latency(repeats=args.repeats), "handoff_us": handoff(repeats=args.repeats),
              "bandwidth_gb_s": bandwidth([int(s) for s in args.sizes_mb.split(",")]),
              "products_ms": products_beside()}

    print("| busy before | " + " | ".join(f"{k} ms" for k in result["wake_us"]) + " |")
    print("|---" * (len(result["wake_us"]) + 1) + "|")
    print("| wake | " + " | ".join(f"{v:.0f} us" for v in result["wake_us"].values()) + " |\n")
    ways = list(next(iter(result["handoff_us"].values())))
    print("| values per share (8 shares) | " + " | ".join(ways) + " |")
    print("|---" * (len(ways) + 1) + "|")
    for size, row in result["handoff_us"].items():
        print(f"| {size:,} | " + " | ".join(f"{row[w]:.0f} us" for w in ways) + " |")
    print("\n| MB per thread | one thread | two threads, total |\n|---|---|---|")
    for mb, (one, two) in result["bandwidth_gb_s"].items():
        print(f"| {mb} | {one:.0f} GB/s | {two:.0f} GB/s |")
    pr = result["products_ms"]
    print(f"\n256x256 products, {PRODUCT_CALLS} calls on one thread: {pr['alone']:.1f} ms alone, "
          f"{pr['beside another']:.1f} ms beside the same on another thread")
    if args.json:
        write_json(args.json, {k: {str(a): b for a, b in v.items()} for k, v in result.items()})
    return result


if __name__ == "__main__":
    main()
