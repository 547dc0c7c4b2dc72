"""The floor for a numpy framework: the matrix products of a network's step, timed alone.

For each network of bench_models.py, the products that a training step (or inference)
of conv-as-matrix-product must run, on random float32 matrices of their shapes. Per
Conv2d (C -> OC, K = C*KH*KW, L = OH*OW*N): forward (OC, K) @ (K, L), weight gradient
(K, L) @ (L, OC) and, after the first layer, the input gradient (K, OC) @ (OC, L). Per
Linear (I -> O): forward, and (N, O) @ (O, I) and (I, N) @ (N, O).

Each product is timed two ways (the minimum of a few calls each), and the faster counts:
- whole: one numpy matmul on numpy's own OpenBLAS threads;
- per core: on one OpenBLAS thread, cut into pieces along its long side (256 to 4,096
  columns, or whole), for a weight gradient also along the contraction (a sum of piece
  products, as conv2d_weight_grad runs it), the fastest cut; divided by the number of
  cores, as if the cores took equal shares with no cost at all.
Their sum is what no arrangement of im2col and numpy products can go under, before any
copying, pooling, activation or optimizer work; next to PyTorch's step it shows how far a
network can get.

Usage: python benchmarks/gemm_floor.py [--cases deepconvnet:100,...] [--repeats 5] [--json out.json]
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import bench_models  # noqa: E402
from common import write_json  # noqa: E402

from tinygrad_cnn import _parallel, nn  # noqa: E402
from tinygrad_cnn.kernels.conv import _pieces_of  # noqa: E402


def products(net, batch: int, shape=(1, 28, 28)) -> list:
    """[(layer, what, (m, k, n))]: the (m, k) @ (k, n) products of one training step of `net`
    (a Sequential of our layers) on (batch, *shape) images; what is 'forward' or a gradient."""
    out, c, (h, w), first = [], shape[0], shape[1:], True
    for i, m in enumerate(net):
        if isinstance(m, nn.Conv2d):
            (kh, kw), (s, p) = m.kernel_size, (m.stride, m.padding)
            h, w = (h + 2 * p - kh) // s + 1, (w + 2 * p - kw) // s + 1
            k, length, oc = c * kh * kw, h * w * batch, m.out_channels
            out += [(i, "forward", (oc, k, length)), (i, "weight grad", (k, length, oc))]
            if not first:
                out.append((i, "input grad", (k, oc, length)))
            c, first = oc, False
        elif isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
            h, w = h // m.kernel_size, w // m.kernel_size
        elif isinstance(m, nn.Linear):
            n_in, n_out = m.in_features, m.out_features
            out += [(i, "forward", (batch, n_in, n_out)), (i, "input grad", (batch, n_out, n_in)),
                    (i, "weight grad", (n_in, batch, n_out))]
    return out


def _operands(mkn) -> tuple:
    """(a, b, out): random float32 (m, k) and (k, n) matrices and an (m, n) output buffer."""
    m, k, n = mkn
    rng = np.random.default_rng(0)
    return rng.random((m, k), dtype=np.float32), rng.random((k, n), dtype=np.float32), np.empty((m, n), np.float32)


def time_product(mkn, repeats: int, operands=None) -> float:
    """Fastest of `repeats` calls of one float32 (m, k) @ (k, n) numpy product, in ms
    (on `operands` from `_operands`, if given)."""
    a, b, out = operands or _operands(mkn)
    return _fastest(lambda: np.matmul(a, b, out=out), repeats)


def _fastest(call, repeats: int, scale: float = 1.0) -> float:
    """The fastest of `repeats` calls of call() (after one untimed), in ms, times `scale`."""
    call()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - t)
    return best * 1000 * scale


PIECES = (4096, 2048, 1024, 512, 256)


def time_product_per_core(mkn, what: str, repeats: int, operands=None) -> float:
    """One core's fastest time for the (m, k) @ (k, n) product in pieces (see the module's
    docstring), divided by the number of cores, in ms (on `operands`, if given)."""
    _, k, n = mkn
    a, b, out = operands or _operands(mkn)
    times = []
    with _parallel.one_blas_thread():
        times.append(_fastest(lambda: np.matmul(a, b, out=out), repeats))
        for p in (p for p in PIECES if p < n):  # pieces of the output's columns (the remainder left out, scaled)
            q = n // p * p
            times.append(_fastest(lambda: np.matmul(a, _pieces_of(b[:, :q], p), out=_pieces_of(out[:, :q], p)),
                                  repeats, n / q))
        if what == "weight grad":  # (K, L) @ (L, OC) as a sum over pieces of L
            bt = np.ascontiguousarray(b.T)  # (OC, L), as conv2d_weight_grad has g
            for p in (p for p in PIECES if p < k):
                q = k // p * p
                times.append(_fastest(lambda: np.matmul(_pieces_of(a[:, :q], p),
                                                        np.swapaxes(_pieces_of(bt[:, :q], p), -1, -2)).sum(0),
                                      repeats, k / q))
    return min(times) / _parallel.THREADS


def floor_ms(mkn, what: str, repeats: int) -> float:
    """The product's floor: the faster of `time_product` and `time_product_per_core`, in ms."""
    operands = _operands(mkn)
    return min(time_product(mkn, repeats, operands), time_product_per_core(mkn, what, repeats, operands))


def floor(name: str, batch: int, repeats: int) -> dict:
    """The products of one step and one inference of network `name` at `batch`: ms and GFLOP."""
    net, _ = bench_models.build(name, None)
    rows = [(layer, what, mkn, floor_ms(mkn, what, repeats)) for layer, what, mkn in products(net, batch)]
    flops = {r: 2.0 * r[2][0] * r[2][1] * r[2][2] for r in rows}
    step_ms = sum(r[3] for r in rows)
    infer = [r for r in rows if r[1] == "forward"]
    return {"network": name, "batch": batch, "step_ms": step_ms, "inference_ms": sum(r[3] for r in infer),
            "step_gflop": sum(flops.values()) / 1e9, "inference_gflop": sum(flops[r] for r in infer) / 1e9,
            "products": [{"layer": r[0], "what": r[1], "mkn": r[2], "ms": r[3]} for r in rows]}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", default=bench_models.DEFAULT_CASES)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    results = [floor(name, batch, args.repeats) for name, batch in bench_models.parse_cases(args.cases)]
    print("| network | batch | step GFLOP | step products ms | inference GFLOP | inference products ms |")
    print("|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['network']} | {r['batch']} | {r['step_gflop']:.2f} | {r['step_ms']:.2f} | "
              f"{r['inference_gflop']:.2f} | {r['inference_ms']:.2f} |")
    out = {"cases": results, "threads": os.environ.get("OPENBLAS_NUM_THREADS", "default"), "cores": _parallel.THREADS}
    if args.json:
        write_json(args.json, out)
    return out


if __name__ == "__main__":
    main()
