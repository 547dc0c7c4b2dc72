"""SimpleConvNet's training step (forward, backward, Adam) and inference at batch 100.

Ours (float32) against PyTorch CPU (same network, 2 threads, when installed) and against
the lecture's numpy layers (hand-written backward, loop-based im2col, float64), run
interleaved in one process after a warm-up; medians of many steps. Also peak memory of
one step and memory after many steps (the graph must be freed every step).

Usage: python benchmarks/bench_train_step.py [--repeats 50] [--memory-steps 1000] [--json out.json]
"""
import argparse
import gc
import os
import sys
import tracemalloc

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import lecture_baseline as lec  # noqa: E402
from common import images_and_labels, interleaved, print_results, torch_or_none, write_json  # noqa: E402

from tinygrad_cnn import Tensor, manual_seed, no_grad, optim  # noqa: E402
from tinygrad_cnn.models import SimpleConvNet  # noqa: E402


def ours_case(x, t):
    manual_seed(0)
    net = SimpleConvNet()  # conv 30x5x5 (pad 0) - relu - pool 2 - affine 100 - relu - affine 10
    opt = optim.Adam(net.parameters(), lr=0.001)

    def step():
        loss = net.loss(x, t)
        opt.zero_grad()
        loss.backward()
        opt.step()

    @no_grad()
    def infer():
        net.predict(x)

    return step, infer


def lecture_case(x, t):
    net = lec.SimpleConvNet()
    opt = lec.Adam(lr=0.001)
    x64 = x.astype(np.float64)

    def step():
        opt.update(net.params, net.gradient(x64, t))

    def infer():
        net.predict(x64)

    return step, infer


def torch_case(torch, x, t):
    torch.manual_seed(0)
    nn = torch.nn
    net = nn.Sequential(nn.Conv2d(1, 30, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4320, 100),
                        nn.ReLU(), nn.Linear(100, 10))
    opt = torch.optim.Adam(net.parameters(), lr=0.001)
    tx, tt = torch.tensor(x), torch.tensor(t)
    loss_fn = nn.CrossEntropyLoss()

    def step():
        loss = loss_fn(net(tx), tt)
        opt.zero_grad()
        loss.backward()
        opt.step()

    def infer():
        with torch.no_grad():
            net(tx)

    return step, infer


def _live_tensors() -> int:
    gc.collect()
    return sum(issubclass(type(o), Tensor) for o in gc.get_objects())


def memory(step, steps: int) -> dict:
    """Peak bytes allocated during one step (tracemalloc sees numpy's arrays), and what is
    held, in bytes and live Tensors, after 5 steps and after `steps` more."""
    gc.collect()
    tracemalloc.start()
    step()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    step()
    peak = tracemalloc.get_traced_memory()[1] - base
    for _ in range(3):
        step()
    early, early_tensors = tracemalloc.get_traced_memory()[0], _live_tensors()
    for _ in range(steps):
        step()
    late, late_tensors = tracemalloc.get_traced_memory()[0], _live_tensors()
    tracemalloc.stop()
    return {"peak_step_mb": peak / 2**20, "held_after_5_mb": early / 2**20,
            f"held_after_{steps + 5}_mb": late / 2**20, "growth_mb": (late - early) / 2**20,
            "live_tensors_after_5": early_tensors, f"live_tensors_after_{steps + 5}": late_tensors}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--repeats", type=int, default=50)
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--memory-steps", type=int, default=1000)
    p.add_argument("--no-lecture", action="store_true", help="skip the (slow) lecture-style baseline")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    x, t = images_and_labels(args.batch)

    cases = {}
    cases["ours step"], cases["ours inference"] = ours_case(x, t)
    if not args.no_lecture:
        cases["lecture step"], cases["lecture inference"] = lecture_case(x, t)
    torch = torch_or_none()
    if torch is not None:
        cases["torch step"], cases["torch inference"] = torch_case(torch, x, t)
    ms = interleaved(cases, args.repeats, warmup=3)
    ratios = {}
    for what in ("step", "inference"):
        if torch is not None:
            ratios[f"{what} ours/torch"] = ms[f"ours {what}"] / ms[f"torch {what}"]
        if not args.no_lecture:
            ratios[f"{what} lecture/ours (speed-up)"] = ms[f"lecture {what}"] / ms[f"ours {what}"]
    result = {"ms": ms, "ratios": ratios, "batch": args.batch, "cores": os.cpu_count(),
              "memory": memory(cases["ours step"], args.memory_steps)}
    print_results(ms, ratios)
    for name, v in result["memory"].items():
        print(f"memory {name:28s} {v:8.2f}" + (" MB" if name.endswith("mb") else ""))
    if args.json:
        write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
