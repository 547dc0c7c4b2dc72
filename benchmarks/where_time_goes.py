"""Where a training step goes, ours next to PyTorch's, against the matrix-product floor.

For one of bench_models.py's networks (same weights, batch, loss and Adam as there), the
ms per step in each kind of layer, for both libraries in the same run:

- ours: every Function's forward and backward timed where the framework calls it (a
  backward rule's inner ops count to it), put under the kind of the nn.Module that ran
  it (Conv2d, Linear, ReLU, pooling, Dropout; the loss outside any module); Adam's step
  and zero_grad under optimizer;
- PyTorch: torch.profiler's top-level events, inclusive: the aten op a module called
  (aten::conv2d, aten::relu, ...) and each backward node
  (`autograd::engine::evaluate_function: ConvolutionBackward0`, ...), and Adam's step;
- rest: the step's time outside those (the framework's own Python: modules, the graph,
  the backward loop, gradient accumulation);
- floor: the matrix products of the conv and linear layers (gemm_floor.py), each timed
  alone, whole on numpy's OpenBLAS threads or in pieces on one core shared out over the
  cores at no cost, whichever is faster; what no im2col framework on numpy goes under for
  those layers.

Timers and the profiler add a little to each op, so the totals run above bench_models.py's;
read the rows against each other. Steps alternate between the libraries in blocks of 3.

Usage: python benchmarks/where_time_goes.py [--cases mnist_example:64,lenet5:100] [--steps 30] [--json out.json]
"""
import argparse
import collections
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import bench_models  # noqa: E402
import gemm_floor  # noqa: E402
from common import torch_or_none, write_json  # noqa: E402
from profile_step import _subclasses  # noqa: E402

from tinygrad_cnn import Function, nn, optim  # noqa: E402
from tinygrad_cnn.autograd.grad_mode import state  # noqa: E402

KINDS = ("conv", "linear", "activation", "pooling", "dropout", "loss", "optimizer", "rest")
_MODULE_KINDS = ((nn.Conv2d, "conv"), (nn.Linear, "linear"), (nn.ReLU, "activation"),
                 ((nn.MaxPool2d, nn.AvgPool2d), "pooling"), (nn.Dropout, "dropout"))
# PyTorch's top-level profiler events, by name prefix (forward aten ops, backward nodes)
_TORCH_KINDS = (("aten::conv2d", "conv"), ("ConvolutionBackward", "conv"),
                ("aten::linear", "linear"), ("AddmmBackward", "linear"), ("MmBackward", "linear"),
                ("TBackward", "linear"), ("aten::relu", "activation"), ("ReluBackward", "activation"),
                ("aten::max_pool2d", "pooling"), ("aten::avg_pool2d", "pooling"), ("MaxPool2DWithIndicesBackward", "pooling"),
                ("AvgPool2DBackward", "pooling"), ("aten::dropout", "dropout"), ("aten::feature_dropout", "dropout"),
                ("NativeDropoutBackward", "dropout"), ("MulBackward", "dropout"), ("aten::log_softmax", "loss"),
                ("aten::nll_loss", "loss"), ("aten::cross_entropy", "loss"), ("LogSoftmaxBackward", "loss"),
                ("NllLossBackward", "loss"), ("Optimizer.", "optimizer"))


def _module_kind(modules) -> str:
    """The kind of the innermost module in `modules` that has one; 'loss' outside any."""
    for m in reversed(modules):
        for cls, kind in _MODULE_KINDS:
            if isinstance(m, cls):
                return kind
    return "loss" if not modules else "rest"


class OurTimers:
    """While active: each Function's forward and backward, where the framework calls it (not
    inside another op's), timed and added to its module's kind; Adam's step and zero_grad too."""

    def __init__(self):
        self.ms = collections.defaultdict(float)
        self._saved, self._depth = [], 0

    def _wrap(self, fn, kind_of):
        def timed(op, *args, **kwargs):
            if self._depth:
                return fn(op, *args, **kwargs)
            self._depth += 1
            start = time.perf_counter()
            try:
                return fn(op, *args, **kwargs)
            finally:
                self._depth -= 1
                self.ms[kind_of(op)] += (time.perf_counter() - start) * 1000
        return timed

    def __enter__(self):
        kind = {"forward": lambda op: _module_kind(state.module_stack),
                "backward": lambda op: _module_kind(getattr(op, "modules", ()))}
        targets = [(cls, name, kind[name]) for cls in set(_subclasses(Function))
                   for name in ("forward", "backward") if name in vars(cls)]
        targets += [(optim.Optimizer, name, lambda op: "optimizer") for name in ("step", "zero_grad")]
        for cls, name, kind_of in targets:
            self._saved.append((cls, name, vars(cls)[name]))
            setattr(cls, name, self._wrap(vars(cls)[name], kind_of))
        return self

    def __exit__(self, *exc):
        for cls, name, fn in reversed(self._saved):
            setattr(cls, name, fn)


def _torch_kind(name: str) -> str:
    name = name.replace("autograd::engine::evaluate_function: ", "")
    for prefix, kind in _TORCH_KINDS:
        if name.startswith(prefix):
            return kind
    return "rest"


def profile(name: str, batch: int, steps: int, per_block: int = 3) -> dict:
    """{'ours': {kind: ms}, 'torch': {...}, 'floor': {kind: ms}, 'step': {...}} per step."""
    torch = torch_or_none()
    if torch is None:
        raise SystemExit("where_time_goes.py compares with PyTorch: pip install torch==2.13.0")
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile
    fns = bench_models.case_fns(name, batch, torch)
    ours, theirs = fns["ours step"], fns["torch step"]
    for _ in range(3):
        ours(), theirs()
    result = {"ours": collections.defaultdict(float), "torch": collections.defaultdict(float),
              "step": collections.defaultdict(float)}
    blocks = max(1, steps // per_block)  # short blocks: this VM's speed drifts from one minute to the next
    for _ in range(blocks):
        time.sleep(0.3)
        with OurTimers() as timers:
            start = time.perf_counter()
            for _ in range(per_block):
                ours()
            result["step"]["ours"] += (time.perf_counter() - start) * 1000
        for k, v in timers.ms.items():
            result["ours"][k] += v
        time.sleep(0.3)
        with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
            start = time.perf_counter()
            for _ in range(per_block):
                theirs()
            result["step"]["torch"] += (time.perf_counter() - start) * 1000
        for e in prof.events():
            if e.cpu_parent is None:
                result["torch"][_torch_kind(e.name)] += e.cpu_time_total / 1000
    n = per_block * blocks
    out = {side: {k: v / n for k, v in result[side].items()} for side in ("ours", "torch", "step")}
    for side in ("ours", "torch"):  # the rest: the step's time outside the ops counted above
        out[side]["rest"] = out["step"][side] - sum(v for k, v in out[side].items() if k != "rest")
    net, _ = bench_models.build(name, None)
    floor = collections.defaultdict(float)
    for layer, what, mkn in gemm_floor.products(net, batch):
        floor["conv" if isinstance(net[layer], nn.Conv2d) else "linear"] += gemm_floor.floor_ms(mkn, what, 5)
    out["floor"] = dict(floor)
    out.update(network=name, batch=batch)
    return out


def print_table(r: dict) -> None:
    print(f"\n{r['network']}, batch {r['batch']}: ms per step (ours {r['step']['ours']:.1f}, "
          f"PyTorch {r['step']['torch']:.1f}, profiled)")
    print("| layers | ours | PyTorch | ours - PyTorch | products alone (floor) |")
    print("|---|---|---|---|---|")
    for k in KINDS:
        a, b = r["ours"].get(k, 0.0), r["torch"].get(k, 0.0)
        f = r["floor"].get(k)
        print(f"| {k} | {a:.2f} | {b:.2f} | {a - b:+.2f} | {'' if f is None else f'{f:.2f}'} |")


def main(argv=None) -> list:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", default="lenet5:100,deepconvnet:100,mnist_example:64")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    results = []
    for name, batch in bench_models.parse_cases(args.cases):
        results.append(profile(name, batch, args.steps))
        print_table(results[-1])
    if args.json:
        write_json(args.json, {"cases": results})
    return results


if __name__ == "__main__":
    main()
