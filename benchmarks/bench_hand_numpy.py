"""The floor for a numpy framework: SimpleConvNet's training step written by hand.

The same network, kernels (tinygrad_cnn.kernels, ReLU against a zero row) and Adam as
ours, but with the backward pass written out in numpy, no Tensor, no graph, no autograd:
what our step would cost with no framework at all. Run interleaved with ours (and
PyTorch CPU when installed), as in bench_train_step.py. `check_gradients` shows that
the hand-written backward and our autograd agree, so the two do the same work.

Usage: python benchmarks/bench_hand_numpy.py [--repeats 300] [--batch 100] [--json out.json]
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench_train_step import ours_case, torch_case  # noqa: E402
from common import interleaved, torch_or_none, write_json  # noqa: E402

from tinygrad_cnn import kernels, manual_seed  # noqa: E402
from tinygrad_cnn.models import SimpleConvNet  # noqa: E402
from tinygrad_cnn.ops import _max0  # noqa: E402

CONV = ((5, 5), (1, 1), ((0, 0), (0, 0)), (1, 1), (24, 24))  # kernel, stride, padding, dilation, out
POOL = ((2, 2), (2, 2), ((0, 0), (0, 0)), (1, 1))


class HandNet:
    """SimpleConvNet's parameters as plain arrays (conv weight with the bias as last column)."""

    def __init__(self, net: SimpleConvNet):
        w1 = net.W1.data.reshape(net.W1.shape[0], -1)
        self.params = [np.concatenate([w1, net.b1.data[:, None]], axis=1)] + \
            [getattr(net, k).data.copy() for k in ("W2", "b2", "W3", "b3")]

    def gradients(self, x, t):
        """Loss gradients for (W1|b1, W2, b2, W3, b3): forward and backward by hand."""
        w1, w2, b2, w3, b3 = self.params
        n = len(x)
        cols = kernels.unfold(x, *CONV, ones_row=True)  # (N, 26, 576)
        y1 = _max0(np.matmul(w1, cols)).reshape(n, -1, 24, 24)
        mask1 = y1 > 0
        pooled, arg = kernels.max_pool(y1, *POOL, (12, 12))
        flat = pooled.reshape(n, -1)
        y2 = _max0(flat @ w2 + b2)
        logits = y2 @ w3 + b3
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        p[np.arange(n), t] -= 1
        g_logits = p / n
        g_w3, g_b3 = y2.T @ g_logits, g_logits.sum(axis=0)
        g_a2 = (g_logits @ w3.T) * (y2 > 0)
        g_w2, g_b2 = flat.T @ g_a2, g_a2.sum(axis=0)
        g_y1 = kernels.pool_scatter((g_a2 @ w2.T).reshape(pooled.shape), arg, y1.shape, *POOL)
        g_y1 *= mask1
        g_w1 = np.matmul(g_y1.reshape(n, w1.shape[0], -1), cols.transpose(0, 2, 1)).sum(axis=0)
        return [g_w1, g_w2, g_b2, g_w3, g_b3]


def adam_step(params, grads, state, t, lr=0.001, b1=0.9, b2=0.999, eps=1e-8):
    """The same 12 passes as tinygrad_cnn.optim.Adam."""
    c2 = (1 - b2 ** t) ** 0.5
    for p, g, (m, v, tmp) in zip(params, grads, state):
        m *= b1
        np.multiply(g, 1 - b1, out=tmp)
        m += tmp
        v *= b2
        np.multiply(g, g, out=tmp)
        tmp *= 1 - b2
        v += tmp
        np.sqrt(v, out=tmp)
        tmp += eps * c2
        np.divide(m, tmp, out=tmp)
        tmp *= lr * c2 / (1 - b1 ** t)
        p -= tmp


def hand_case(x, t):
    manual_seed(0)
    net = HandNet(SimpleConvNet())
    state = [[np.zeros_like(p), np.zeros_like(p), np.empty_like(p)] for p in net.params]
    count = [0]

    def step():
        count[0] += 1
        adam_step(net.params, net.gradients(x, t), state, count[0])

    return step


def check_gradients(x, t) -> float:
    """Largest relative difference between the hand-written and the autograd gradients."""
    manual_seed(0)
    net = SimpleConvNet()
    hand = HandNet(net).gradients(x, t)
    grads = net.gradient(x, t)
    auto = [np.concatenate([grads["W1"].reshape(len(grads["b1"]), -1), grads["b1"][:, None]], axis=1)] + \
        [grads[k] for k in ("W2", "b2", "W3", "b3")]
    return max(float(np.abs(h - a).max() / (np.abs(a).max() + 1e-30)) for h, a in zip(hand, auto))


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--repeats", type=int, default=300)
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    rng = np.random.default_rng(0)
    x = rng.random((args.batch, 1, 28, 28)).astype(np.float32)
    t = rng.integers(0, 10, args.batch)
    cases = {"hand-written numpy step": hand_case(x, t), "ours step": ours_case(x, t)[0]}
    torch = torch_or_none()
    if torch is not None:
        cases["torch step"] = torch_case(torch, x, t)[0]
    ms = interleaved(cases, args.repeats, warmup=3)
    result = {"ms": ms, "ours/hand": ms["ours step"] / ms["hand-written numpy step"],
              "gradient_max_rel_diff": check_gradients(x, t), "batch": args.batch, "cores": os.cpu_count()}
    if torch is not None:
        result["hand/torch"] = ms["hand-written numpy step"] / ms["torch step"]
    for name, v in ms.items():
        print(f"{name:26s} {v:8.2f} ms")
    for name in ("ours/hand", "hand/torch"):
        if name in result:
            print(f"{name:26s} {result[name]:8.2f}x")
    print(f"gradients, hand vs autograd: max relative difference {result['gradient_max_rel_diff']:.1e}")
    if args.json:
        write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
