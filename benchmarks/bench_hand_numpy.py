"""The floor for a numpy framework: SimpleConvNet's training step written by hand.

The same network, kernels (tinygrad_cnn.kernels, ReLU against a zero row), memory layout
(the batch innermost in conv2d's columns and output) and optimizer (tinygrad_cnn.optim.Adam) as
ours, but with the forward and backward passes written out in numpy, no graph, no
autograd: what our step would cost with no framework at all. Run interleaved with ours
(and PyTorch CPU when installed), as in bench_train_step.py. `check_gradients` shows that
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
from common import images_and_labels, interleaved, print_results, torch_or_none, write_json  # noqa: E402

from tinygrad_cnn import Tensor, kernels, manual_seed, optim  # noqa: E402
from tinygrad_cnn.models import SimpleConvNet  # noqa: E402
from tinygrad_cnn.ops import _max0  # noqa: E402

CONV = ((5, 5), (1, 1), ((0, 0), (0, 0)), (1, 1), (24, 24))  # kernel, stride, padding, dilation, out
POOL = ((2, 2), (2, 2), ((0, 0), (0, 0)), (1, 1))


def _conv_matrix(w1, b1):
    """(OC, C, KH, KW) weight and (OC,) bias -> the (OC, C*KH*KW + 1) matrix conv2d multiplies by."""
    return np.concatenate([w1.reshape(len(b1), -1), b1[:, None]], axis=1)


class HandNet:
    """SimpleConvNet's parameters as plain arrays (conv weight with the bias as last column)."""

    def __init__(self, net: SimpleConvNet):
        self.params = [_conv_matrix(net.W1.data, net.b1.data)] + \
            [getattr(net, k).data.copy() for k in ("W2", "b2", "W3", "b3")]

    def gradients(self, x, t):
        """Loss gradients for (W1|b1, W2, b2, W3, b3): forward and backward by hand, with ours'
        conv kernels and layout (the batch innermost, a chunk of output rows per product)."""
        w1, w2, b2, w3, b3 = self.params
        n = len(x)
        y, mask1 = _max0(kernels.conv2d(x, w1, *CONV), with_mask=True)  # (N, 30, 24, 24), laid out (30, 24, 24, N)
        pooled, arg = kernels.max_pool(y, *POOL, (12, 12))
        flat = pooled.reshape(n, -1)
        y2 = _max0(flat @ w2 + b2)[0]
        logits = y2 @ w3 + b3
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        p[np.arange(n), t] -= 1
        g_logits = p / n
        g_w3, g_b3 = y2.T @ g_logits, g_logits.sum(axis=0)
        g_a2 = (g_logits @ w3.T) * (y2 > 0)
        g_w2, g_b2 = flat.T @ g_a2, g_a2.sum(axis=0)
        g_y = kernels.pool_scatter((g_a2 @ w2.T).reshape(pooled.shape), arg, y.shape, *POOL)
        g_y *= mask1
        g_w1 = kernels.conv2d_weight_grad(x, g_y, *CONV[:4], ones_row=True)
        return [g_w1, g_w2, g_b2, g_w3, g_b3]


def hand_case(x, t):
    manual_seed(0)
    net = HandNet(SimpleConvNet())
    params = [Tensor._make(p, requires_grad=True) for p in net.params]  # the same arrays, for our Adam
    opt = optim.Adam(params, lr=0.001)

    def step():
        for p, g in zip(params, net.gradients(x, t)):
            p.grad = Tensor._make(g)
        opt.step()

    return step


def check_gradients(x, t) -> float:
    """Largest relative difference between the hand-written and the autograd gradients."""
    manual_seed(0)
    net = SimpleConvNet()
    hand = HandNet(net).gradients(x, t)
    grads = net.gradient(x, t)
    auto = [_conv_matrix(grads["W1"], grads["b1"])] + [grads[k] for k in ("W2", "b2", "W3", "b3")]
    return max(float(np.abs(h - a).max() / (np.abs(a).max() + 1e-30)) for h, a in zip(hand, auto))


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--repeats", type=int, default=300)
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    x, t = images_and_labels(args.batch)
    cases = {"hand-written numpy step": hand_case(x, t), "ours step": ours_case(x, t)[0]}
    torch = torch_or_none()
    if torch is not None:
        cases["torch step"] = torch_case(torch, x, t)[0]
    ms = interleaved(cases, args.repeats, warmup=3)
    result = {"ms": ms, "ours/hand": ms["ours step"] / ms["hand-written numpy step"],
              "gradient_max_rel_diff": check_gradients(x, t), "batch": args.batch, "cores": os.cpu_count()}
    if torch is not None:
        result["hand/torch"] = ms["hand-written numpy step"] / ms["torch step"]
    print_results(ms, {name: result[name] for name in ("ours/hand", "hand/torch") if name in result})
    print(f"gradients, hand vs autograd: max relative difference {result['gradient_max_rel_diff']:.1e}")
    if args.json:
        write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
