"""Where a training step goes: ms per step in each op's forward and backward.

By default the step is bench_train_step.py's SimpleConvNet; `--network` takes one of
bench_models.py's networks instead (`--inference` profiles its inference).

Wraps every Function's `forward` and `backward` (and `Optimizer.step`) with a timer,
runs warm-up steps, then reports the mean over `--steps` steps. Times are inclusive: an
op's backward that calls other ops (MaxPool2d's calls PoolScatter, MatMul's calls
MatMul) also counts their time, so the column does not add up to the step. The timers
add a little to each op, so the step measured here is a bit slower than in
bench_train_step.py; read it for the shares, not for the total.

Usage: python benchmarks/profile_step.py [--steps 200] [--batch 100] [--top 12] [--network deepconvnet]
       [--inference] [--json out.json]
"""
import argparse
import collections
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import bench_models  # noqa: E402
from bench_train_step import ours_case  # noqa: E402
from common import images_and_labels, write_json  # noqa: E402

from tinygrad_cnn import Function, optim  # noqa: E402


def _subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def _timed(fn, key, totals):
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            totals[key] += time.perf_counter() - start
    return wrapper


class Timers:
    """Context manager: while active, every Function's forward/backward and Optimizer.step are timed."""

    def __init__(self):
        self.totals = collections.defaultdict(float)
        self._saved = []

    def __enter__(self):
        targets = [(cls, name, f"{cls.__name__}.{name}") for cls in set(_subclasses(Function))
                   for name in ("forward", "backward") if name in vars(cls)]
        targets.append((optim.Optimizer, "step", "optimizer.step"))
        for cls, name, key in targets:
            self._saved.append((cls, name, vars(cls)[name]))
            setattr(cls, name, _timed(vars(cls)[name], key, self.totals))
        return self

    def __exit__(self, *exc):
        for cls, name, fn in reversed(self._saved):
            setattr(cls, name, fn)
        self._saved.clear()


def _case(network, batch, inference):
    """The step (or inference) that bench_train_step.py, or bench_models.py for `network`, times."""
    if network is None:
        return ours_case(*images_and_labels(batch))[inference]
    return bench_models.case_fns(network, batch, None)["ours inference" if inference else "ours step"]


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--top", type=int, default=12)
    p.add_argument("--network", default=None, choices=sorted(bench_models.NETWORKS),
                   help="profile this bench_models.py network instead of bench_train_step.py's SimpleConvNet")
    p.add_argument("--inference", action="store_true", help="profile inference instead of the training step")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    step = _case(args.network, args.batch, args.inference)
    with Timers() as timers:
        for _ in range(args.warmup):
            step()
        timers.totals.clear()
        start = time.perf_counter()
        for _ in range(args.steps):
            step()
        total = (time.perf_counter() - start) / args.steps * 1000
    ms = {k: v / args.steps * 1000 for k, v in sorted(timers.totals.items(), key=lambda kv: -kv[1])}
    what = "inference" if args.inference else "step"
    print(f"{what} (timed) {total:8.2f} ms, {args.network or 'SimpleConvNet'}, batch {args.batch}, {args.steps} calls")
    for name, v in list(ms.items())[:args.top]:
        print(f"  {name:28s} {v:7.3f} ms")
    result = {"step_ms": total, "network": args.network or "SimpleConvNet", "inference": args.inference,
              "batch": args.batch, "ops_ms": ms}
    if args.json:
        write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
