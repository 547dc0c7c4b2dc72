"""The floor for a numpy framework: the matrix products of a network's step, timed alone.

For each network of bench_models.py, the products that a training step (or inference)
of conv-as-matrix-product must run, each timed once as a single numpy matmul of random
float32 matrices of its shape (the minimum of a few calls, numpy's own OpenBLAS
threads). Per Conv2d (C -> OC, K = C*KH*KW, L = OH*OW*N): forward (OC, K) @ (K, L),
weight gradient (K, L) @ (L, OC) and, after the first layer, the input gradient
(K, OC) @ (OC, L). Per Linear (I -> O): forward, and (N, O) @ (O, I) and (I, N) @ (N, O).
Their sum is what no arrangement of im2col and numpy products can go under, before any
copying, pooling, activation or optimizer work; next to PyTorch's step it shows how far a
network can get.

OPENBLAS_NUM_THREADS=1 gives one core's floor (numpy's OpenBLAS barely speeds these shapes up on two).

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

from tinygrad_cnn import nn  # noqa: E402


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


def time_product(mkn, repeats: int) -> float:
    """Fastest of `repeats` calls of one float32 (m, k) @ (k, n) numpy product, in ms."""
    m, k, n = mkn
    rng = np.random.default_rng(0)
    a, b = rng.random((m, k), dtype=np.float32), rng.random((k, n), dtype=np.float32)
    out = np.empty((m, n), dtype=np.float32)
    np.matmul(a, b, out=out)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        np.matmul(a, b, out=out)
        best = min(best, time.perf_counter() - t)
    return best * 1000


def floor(name: str, batch: int, repeats: int) -> dict:
    """The products of one step and one inference of network `name` at `batch`: ms and GFLOP."""
    net, _ = bench_models.build(name, None)
    rows = [(layer, what, mkn, time_product(mkn, repeats)) for layer, what, mkn in products(net, batch)]
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
    out = {"cases": results, "threads": os.environ.get("OPENBLAS_NUM_THREADS", "default")}
    if args.json:
        write_json(args.json, out)
    return out


if __name__ == "__main__":
    main()
