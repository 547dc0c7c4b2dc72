"""The pooling kernels against another version of them (by default main's), interleaved.

For each shape the networks pool (float32, laid out as conv2d's output: batch innermost,
(C, H, W, N) in memory, unless marked NCHW): max_pool with and without argmax, its
gradient (pool_scatter), and for LeNet-5's shapes avg_pool and its gradient. The old and
the new call take turns, one call each, many times; prints the minimum and median ms of
each and new/old of the medians, and checks that both give the same arrays.

With `--step NETWORK` (one of bench_models.py's), it times that network's training step
instead, with the old and the new pooling kernels swapped in turn (blocks of 5 steps):
the median step and the median time per step spent in the pooling kernels.
Usage: python benchmarks/bench_pool_kernels.py [--old FILE | --ref GITREF] [--rounds N] [--json out.json]
       python benchmarks/bench_pool_kernels.py --step lecture [--batch 100] [--rounds 40]
"""
import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import write_json  # noqa: E402

from tinygrad_cnn import kernels as new  # noqa: E402

# (name, (N, C, H, W), kind, layout): kind "max" or "avg"; 2x2 windows, stride 2
SHAPES = [
    ("lecture", (100, 30, 24, 24), "max", "CHWN"),
    ("lecture b1000", (1000, 30, 24, 24), "max", "CHWN"),
    ("lecture b1", (1, 30, 24, 24), "max", "CHWN"),
    ("deepconvnet 1", (100, 16, 28, 28), "max", "CHWN"),
    ("deepconvnet 2", (100, 32, 16, 16), "max", "CHWN"),
    ("deepconvnet 3", (100, 64, 8, 8), "max", "CHWN"),
    ("mnist_example", (64, 64, 24, 24), "max", "CHWN"),
    ("lenet5 1", (100, 6, 28, 28), "avg", "CHWN"),
    ("lenet5 2", (100, 16, 10, 10), "avg", "CHWN"),
    ("lecture NCHW", (100, 30, 24, 24), "max", "NCHW"),
    ("lecture b1 NCHW", (1, 30, 24, 24), "max", "NCHW"),
    ("lenet5 1 NCHW", (100, 6, 28, 28), "avg", "NCHW"),
]


def load_old(path):
    """The pooling kernels in `path` as a module: a `kernels/pooling.py`, imported inside
    `tinygrad_cnn.kernels` (it imports `.._parallel` and `.layout`), or a single-file
    `kernels.py` of the code before the split, imported inside `tinygrad_cnn`."""
    with open(path) as f:
        single_file = "from . import _parallel" in f.read()
    name = "tinygrad_cnn._kernels_old" if single_file else "tinygrad_cnn.kernels._pooling_old"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cases(k, x, kind):
    """name -> (call, result) for one kernels module `k` on input x (2x2 windows, stride 2)."""
    geom4 = ((2, 2), (2, 2), ((0, 0), (0, 0)), (1, 1))
    out_hw = (x.shape[2] // 2, x.shape[3] // 2)
    g = new.empty_as(x.shape[:2] + out_hw, x.dtype, new.memory_order(x))
    g[...] = np.random.default_rng(1).standard_normal(g.shape)
    if kind == "avg":
        return {"avg_pool": lambda: k.avg_pool(x, (2, 2), (2, 2), ((0, 0), (0, 0)), out_hw, 4.0),
                "avg_pool_scatter": lambda: k.avg_pool_scatter(g, x.shape, (2, 2), (2, 2), ((0, 0), (0, 0)), 4.0)}
    arg = new.max_pool(x, *geom4, out_hw)[1]
    return {"max_pool arg": lambda: k.max_pool(x, *geom4, out_hw),
            "max_pool": lambda: k.max_pool(x, *geom4, out_hw, with_arg=False)[0],
            "pool_scatter": lambda: k.pool_scatter(g, arg, x.shape, *geom4)}


def same(a, b):
    if isinstance(a, tuple):
        return all(same(u, v) for u, v in zip(a, b))
    return a is None and b is None or np.array_equal(a, b, equal_nan=True)


def race(f_old, f_new, rounds):
    """min and median ms of each, the two called in turn `rounds` times."""
    for _ in range(3):
        f_old(), f_new()
    times = ([], [])
    for _ in range(rounds):
        for t, f in zip(times, (f_old, f_new)):
            start = time.perf_counter()
            f()
            t.append((time.perf_counter() - start) * 1000)
    return [(min(t), statistics.median(t)) for t in times]


POOL_KERNELS = ("max_pool", "pool_scatter", "pool_gather", "avg_pool", "avg_pool_scatter")


def in_step(name, batch, old, rounds):
    """{'old': (step ms, pool ms), 'new': ...}: medians over `rounds` blocks of 5 steps each."""
    import bench_models
    from common import images_and_labels
    x, t = images_and_labels(batch)
    step, _ = bench_models.ours_fns(name, bench_models.build(name, None)[0], x, t)
    spent = [0.0]

    def timed(f):
        def call(*a, **kw):
            start = time.perf_counter()
            try:
                return f(*a, **kw)
            finally:
                spent[0] += time.perf_counter() - start
        return call

    versions = {v: {k: timed(getattr(m, k)) for k in POOL_KERNELS} for v, m in (("old", old), ("new", new))}
    originals = {k: getattr(new, k) for k in POOL_KERNELS}
    times = {v: ([], []) for v in versions}
    try:
        for r in range(rounds + 2):
            for v, fns in versions.items():
                for k, f in fns.items():
                    setattr(new, k, f)
                spent[0], start = 0.0, time.perf_counter()
                for _ in range(5):
                    step()
                if r >= 2:  # warm-up
                    times[v][0].append((time.perf_counter() - start) * 200)
                    times[v][1].append(spent[0] * 200)
    finally:
        for k, f in originals.items():
            setattr(new, k, f)
    return {v: (statistics.median(a), statistics.median(b)) for v, (a, b) in times.items()}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--old", default=None, help="a kernels/pooling.py (or an older kernels.py) to compare with")
    p.add_argument("--ref", default="main", help="else the git ref whose pooling kernels are compared")
    p.add_argument("--rounds", type=int, default=200)
    p.add_argument("--only", default=None, help="run the shapes whose name contains this")
    p.add_argument("--step", default=None, help="time this network's training step instead")
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    path = args.old
    if path is None:
        for where in ("tinygrad_cnn/kernels/pooling.py", "tinygrad_cnn/kernels.py"):  # after and before the split
            shown = subprocess.run(["git", "-C", ROOT, "show", f"{args.ref}:{where}"], capture_output=True, text=True)
            if shown.returncode == 0:
                break
        else:
            raise SystemExit(f"no pooling kernels at {args.ref}: {shown.stderr.strip()}")
        text = shown.stdout
        path = os.path.join(tempfile.mkdtemp(), "pooling_old.py")
        with open(path, "w") as f:
            f.write(text)
    old = load_old(path)
    if args.step:
        result = in_step(args.step, args.batch, old, args.rounds)
        for v, (step_ms, pool_ms) in result.items():
            print(f"{args.step} batch {args.batch}, {v} kernels: step {step_ms:.2f} ms, pooling {pool_ms:.2f} ms")
        (new_step, new_pool), (old_step, old_pool) = result["new"], result["old"]
        print(f"new/old: step {new_step / old_step:.3f}x, pooling {new_pool / old_pool:.3f}x")
        if args.json:
            write_json(args.json, {"step": args.step, "batch": args.batch, "ms": result})
        return result
    rng = np.random.default_rng(0)
    rows = []
    print(f"{'shape':16s} {'layout':6s} {'kernel':18s} {'old min/med ms':>16s} {'new min/med ms':>16s} {'new/old':>8s}")
    for name, shape, kind, layout in SHAPES:
        if args.only and args.only not in name:
            continue
        order = (1, 2, 3, 0) if layout == "CHWN" else (0, 1, 2, 3)
        x = new.in_order(rng.standard_normal(shape).astype(np.float32), order)
        old_cases, new_cases = cases(old, x, kind), cases(new, x, kind)
        for op in new_cases:
            if not same(old_cases[op](), new_cases[op]()):
                raise AssertionError(f"{name} {op}: old and new differ")
            rounds = max(20, args.rounds * 100 // max(100, shape[0]))
            (o_min, o_med), (n_min, n_med) = race(old_cases[op], new_cases[op], rounds)
            rows.append({"shape": name, "dims": shape, "layout": layout, "kernel": op, "old_min": o_min,
                         "old_median": o_med, "new_min": n_min, "new_median": n_med, "ratio": n_med / o_med})
            print(f"{name:16s} {layout:6s} {op:18s} {o_min:7.3f}/{o_med:7.3f} {n_min:7.3f}/{n_med:7.3f} "
                  f"{n_med / o_med:7.2f}x", flush=True)
    if args.json:
        write_json(args.json, {"rows": rows, "cores": os.cpu_count()})
    return rows


if __name__ == "__main__":
    main()
