"""conv2d and max_pool2d forward+backward at the seed network's shapes, in float32.

Ours against PyTorch CPU (when installed) and against the lecture's loop-based im2col
layers (float64, as the lecture computes), interleaved in one run. Prints ms and ratios.
Usage: python benchmarks/bench_conv_pool.py [--repeats N] [--json out.json]
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import lecture_baseline as lec  # noqa: E402
from common import interleaved, print_results, torch_or_none, write_json  # noqa: E402

import tinygrad_cnn.functional as F  # noqa: E402
from tinygrad_cnn import Tensor  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    rng = np.random.default_rng(0)
    x = rng.random((args.batch, 1, 28, 28)).astype(np.float32)
    w = (0.01 * rng.standard_normal((30, 1, 5, 5))).astype(np.float32)
    b = np.zeros(30, dtype=np.float32)
    a = rng.standard_normal((args.batch, 30, 24, 24)).astype(np.float32)
    g_conv = rng.standard_normal((args.batch, 30, 24, 24)).astype(np.float32)
    g_pool = rng.standard_normal((args.batch, 30, 12, 12)).astype(np.float32)

    W, B = Tensor(w, requires_grad=True), Tensor(b, requires_grad=True)

    def ours_conv():
        W.grad = B.grad = None
        F.conv2d(Tensor(x), W, B).backward(Tensor(g_conv))

    def ours_pool():
        A = Tensor(a, requires_grad=True)
        F.max_pool2d(A, 2).backward(Tensor(g_pool))

    conv_layer = lec.Convolution(w.astype(np.float64), b.astype(np.float64))
    pool_layer = lec.Pooling(2, 2, stride=2)
    x64, a64 = x.astype(np.float64), a.astype(np.float64)

    def lecture_conv():
        conv_layer.forward(x64)
        conv_layer.backward(g_conv.astype(np.float64))

    def lecture_pool():
        pool_layer.forward(a64)
        pool_layer.backward(g_pool.astype(np.float64))

    cases = {"ours conv2d": ours_conv, "lecture conv2d": lecture_conv,
             "ours max_pool2d": ours_pool, "lecture max_pool2d": lecture_pool}
    torch = torch_or_none()
    if torch is not None:
        tw, tb = torch.tensor(w, requires_grad=True), torch.tensor(b, requires_grad=True)
        tx, ta = torch.tensor(x), torch.tensor(a)
        tgc, tgp = torch.tensor(g_conv), torch.tensor(g_pool)

        def torch_conv():
            tw.grad = tb.grad = None
            torch.nn.functional.conv2d(tx, tw, tb).backward(tgc)

        def torch_pool():
            t = ta.clone().requires_grad_()
            torch.nn.functional.max_pool2d(t, 2).backward(tgp)

        cases.update({"torch conv2d": torch_conv, "torch max_pool2d": torch_pool})
    ms = interleaved(cases, args.repeats)
    result = {"ms": ms, "ratios": {}, "batch": args.batch, "cores": os.cpu_count()}
    for op in ("conv2d", "max_pool2d"):
        result["ratios"][f"{op} ours/lecture"] = ms[f"ours {op}"] / ms[f"lecture {op}"]
        if torch is not None:
            result["ratios"][f"{op} ours/torch"] = ms[f"ours {op}"] / ms[f"torch {op}"]
    print_results(ms, result["ratios"])
    if args.json:
        write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
