"""Standard MNIST-sized CNNs, ours against PyTorch CPU: training step (Adam) and inference.

The networks (float32, 1x28x28 images), each built by one function from either
library's `nn` (Sequential of Conv2d, ReLU, MaxPool2d/AvgPool2d, Flatten, Linear,
Dropout), so both sides have the same layers; PyTorch's initial weights are copied
into ours and the two nets' logits must agree before anything is timed:

- lecture: the lecture's SimpleConvNet (conv 30 5x5, ReLU, max-pool 2, linear
  4320-100, ReLU, linear 100-10), at batch 1, 100 and 1,000;
- lenet5: conv 6 5x5 pad 2, ReLU, avg-pool 2, conv 16 5x5, ReLU, avg-pool 2, linear
  400-120-84-10 with ReLUs, batch 100;
- deepconvnet: the lecture book's ch. 8 network (six 3x3 convs 16-16-32-32-64-64, pad 1
  except the 4th with pad 2, ReLUs, max-pool 2 after every second, linear 1024-50,
  ReLU, dropout 0.5, linear 50-10, dropout 0.5), batch 100;
- mnist_example: PyTorch's examples/mnist net (conv 32 3x3, ReLU, conv 64 3x3, ReLU,
  max-pool 2, dropout 0.25, linear 9216-128, ReLU, dropout 0.5, linear 128-10,
  log_softmax + nll_loss), batch 64.

A step is forward, loss (cross-entropy; log_softmax + nll_loss for mnist_example),
zero_grad, backward and Adam (lr 1e-3), in training mode; inference is a forward in
eval mode without recording. PyTorch runs on 2 threads (BENCH_THREADS). Each network's
four cases are timed interleaved (`common.interleaved`); `--runs` repeats that and
reports the median ratio and its range over the runs.

Memory, peak bytes of one step above what is held before it:
- allocator: tracemalloc for ours (it sees numpy's buffers), the profiler's memory
  events for PyTorch (its CPU allocator bypasses Python's, so tracemalloc cannot see it);
- RSS: each library in a fresh process (`--rss`): after warm-up steps at batch 2, the
  high-water mark of resident memory is reset (/proc/self/clear_refs) and one step at
  the full batch is run; peak RSS minus RSS before it.

Usage: python benchmarks/bench_models.py [--repeats 30] [--runs 1] [--cases lecture:100,lenet5:100]
       [--rss] [--json out.json]
"""
import argparse
import contextlib
import gc
import json
import math
import os
import statistics
import subprocess
import sys
import tracemalloc

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from common import images_and_labels, interleaved, torch_or_none, write_json  # noqa: E402

import tinygrad_cnn  # noqa: E402
import tinygrad_cnn.functional as TF  # noqa: E402
from tinygrad_cnn import nn as ours_nn, no_grad, optim  # noqa: E402

# ----------------------------------------------------------------------------- the networks


def lecture(nn):
    """The lecture's SimpleConvNet: (N, 1, 28, 28) -> (N, 10)."""
    return nn.Sequential(nn.Conv2d(1, 30, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(4320, 100), nn.ReLU(), nn.Linear(100, 10))


def lenet5(nn):
    """LeNet-5 with ReLU and average pooling: (N, 1, 28, 28) -> (N, 10)."""
    return nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.AvgPool2d(2),
                         nn.Conv2d(6, 16, 5), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(),
                         nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))


def deepconvnet(nn):
    """The lecture book's DeepConvNet (ch. 8): (N, 1, 28, 28) -> (N, 10)."""
    def conv(c, oc, pad=1):
        return [nn.Conv2d(c, oc, 3, padding=pad), nn.ReLU()]
    return nn.Sequential(*conv(1, 16), *conv(16, 16), nn.MaxPool2d(2),
                         *conv(16, 32), *conv(32, 32, pad=2), nn.MaxPool2d(2),
                         *conv(32, 64), *conv(64, 64), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(1024, 50), nn.ReLU(), nn.Dropout(0.5), nn.Linear(50, 10), nn.Dropout(0.5))


def mnist_example(nn):
    """PyTorch's examples/mnist Net without its final log_softmax: (N, 1, 28, 28) -> (N, 10)."""
    return nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Dropout(0.25), nn.Flatten(), nn.Linear(9216, 128), nn.ReLU(), nn.Dropout(0.5),
                         nn.Linear(128, 10))


NETWORKS = {"lecture": lecture, "lenet5": lenet5, "deepconvnet": deepconvnet, "mnist_example": mnist_example}
NLL_NETWORKS = {"mnist_example"}  # trained with log_softmax + nll_loss, as PyTorch's example is
DEFAULT_CASES = "lecture:1,lecture:100,lecture:1000,lenet5:100,deepconvnet:100,mnist_example:64"


def loss_fn(name, F):
    """The network's loss, written with `F` (ours or torch.nn.functional): (logits, labels) -> scalar."""
    if name in NLL_NETWORKS:
        return lambda logits, t: F.nll_loss(F.log_softmax(logits, dim=1), t)
    return F.cross_entropy


def build(name, torch):
    """(ours, theirs): the network in both libraries with PyTorch's initial weights (theirs is
    None without PyTorch; ours then keeps its own initialisation)."""
    tinygrad_cnn.manual_seed(0)
    ours = NETWORKS[name](ours_nn)
    if torch is None:
        return ours, None
    torch.manual_seed(0)
    theirs = NETWORKS[name](torch.nn)
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    return ours, theirs


def check_logits(ours, theirs, torch, x):
    """Raise if the two networks' eval-mode logits on x differ beyond float32 rounding."""
    ours.eval(), theirs.eval()
    with no_grad():
        a = ours(x).data
    with torch.no_grad():
        b = theirs(torch.from_numpy(x)).numpy()
    if a.shape != b.shape or not np.allclose(a, b, rtol=1e-4, atol=1e-5):
        raise AssertionError(f"logits differ: shapes {a.shape} and {b.shape}, "
                             f"max |diff| {np.abs(a - b).max() if a.shape == b.shape else 'n/a'}")


def ours_fns(name, net, x, t):
    """(step, infer) closures for our network on images x (N, 1, 28, 28) and labels t (N,)."""
    opt = optim.Adam(net.parameters(), lr=1e-3)
    loss_of = loss_fn(name, TF)

    def step():
        net.train()
        loss = loss_of(net(x), t)
        opt.zero_grad()
        loss.backward()
        opt.step()

    @no_grad()
    def infer():
        net.eval()
        net(x)

    return step, infer


def torch_fns(name, net, torch, x, t):
    """(step, infer) closures for the PyTorch network."""
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    loss_of = loss_fn(name, torch.nn.functional)
    tx, tt = torch.from_numpy(x), torch.from_numpy(t)

    def step():
        net.train()
        loss = loss_of(net(tx), tt)
        opt.zero_grad()
        loss.backward()
        opt.step()

    def infer():
        net.eval()
        with torch.no_grad():
            net(tx)

    return step, infer


def case_fns(name, batch, torch):
    """{'ours step', 'ours inference', ['torch step', 'torch inference']} for one network and batch."""
    x, t = images_and_labels(batch)
    ours, theirs = build(name, torch)
    fns = dict(zip(("ours step", "ours inference"), ours_fns(name, ours, x, t)))
    if theirs is not None:
        check_logits(ours, theirs, torch, x)
        fns.update(zip(("torch step", "torch inference"), torch_fns(name, theirs, torch, x, t)))
    return fns


# ----------------------------------------------------------------------------- memory


def tracemalloc_peak(step) -> int:
    """Peak bytes that Python's allocators (numpy's arrays included) hold during one call of
    step(), above what they hold before it (after two warm-up calls)."""
    step(), step()
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        step()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


@contextlib.contextmanager
def _quiet_stderr():
    """Send file descriptor 2 to /dev/null for a while (the profiler's C++ code logs there)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def torch_allocator_peak(torch, step) -> int:
    """Peak bytes that PyTorch's CPU allocator holds during one call of step() above what it
    holds before it, from the profiler's memory events (after two warm-up calls)."""
    step(), step()
    with _quiet_stderr(), torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU],
                                                 profile_memory=True) as prof:
        step()
    events = sorted((e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"),
                    key=lambda e: e.start_ns())
    held = peak = 0
    for e in events:
        held += e.nbytes()
        peak = max(peak, held)
    return peak


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(f"{field} not in /proc/self/status")


def rss_peak_here(name, batch, lib) -> int:
    """In this (fresh) process: peak RSS bytes of one step of `lib` ('ours' or 'torch') at
    `batch` above the RSS before it, after two warm-up steps at batch 2."""
    torch = torch_or_none()
    warm, step = (case_fns(name, b, torch)[f"{lib} step"] for b in (2, batch))
    warm(), warm()
    gc.collect()
    before = _status_kb("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
    step()
    return (_status_kb("VmHWM") - before) * 1024


def rss_peak(name, batch, lib):
    """`rss_peak_here` run in a new Python process; None where /proc cannot do it."""
    cmd = [sys.executable, os.path.abspath(__file__), "--rss-child", f"{name}:{batch}:{lib}"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        print(f"rss {name}:{batch}:{lib} failed: {proc.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])["rss_peak_bytes"]


def memory(name, batch, fns, torch, rss: bool) -> dict:
    """Peak MB of one step for ours and PyTorch, by allocator and (with `rss`) by RSS."""
    mb = 2.0 ** 20
    out = {"ours_alloc_mb": tracemalloc_peak(fns["ours step"]) / mb}
    if torch is not None:
        out["torch_alloc_mb"] = torch_allocator_peak(torch, fns["torch step"]) / mb
    if rss:
        for lib in ("ours",) + (("torch",) if torch is not None else ()):
            v = rss_peak(name, batch, lib)
            out[f"{lib}_rss_mb"] = None if v is None else v / mb
    return out


# ----------------------------------------------------------------------------- report


def geomean(values) -> float:
    """Geometric mean of positive numbers."""
    values = list(values)
    return math.exp(sum(map(math.log, values)) / len(values))


def summarize(runs: list) -> dict:
    """Median ms of each case over the runs, and each ratio's median, min and max."""
    ms = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    ratios = {}
    for what in ("step", "inference"):
        if f"torch {what}" in runs[0]:
            values = sorted(r[f"ours {what}"] / r[f"torch {what}"] for r in runs)
            ratios[what] = {"median": statistics.median(values), "min": values[0], "max": values[-1]}
    return {"ms": ms, "ratios": ratios}


def _fmt(v, spec):
    return "-" if v is None else format(v, spec)


def print_table(results: list) -> None:
    """Markdown tables: ms and ratios per network and batch, then their geometric means, then memory."""
    print("| network | batch | step ours ms | step torch ms | step ratio | infer ours ms | infer torch ms "
          "| infer ratio |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        ms, ra = r["ms"], r["ratios"]
        cells = []
        for what in ("step", "inference"):
            q = ra.get(what)
            spread = "" if q is None or q["min"] == q["max"] else f" ({q['min']:.2f}-{q['max']:.2f})"
            cells += [_fmt(ms.get(f"ours {what}"), ".2f"), _fmt(ms.get(f"torch {what}"), ".2f"),
                      "-" if q is None else f"{q['median']:.2f}x{spread}"]
        print(f"| {r['network']} | {r['batch']} | " + " | ".join(cells) + " |")
    for what in ("step", "inference"):
        values = [r["ratios"][what]["median"] for r in results if what in r["ratios"]]
        if values:
            print(f"geometric mean of the {what} ratios: {geomean(values):.2f}x")
    if any("memory" in r for r in results):
        print("\n| network | batch | ours alloc MB | torch alloc MB | alloc ratio | ours RSS MB | torch RSS MB "
              "| RSS ratio |")
        print("|---|---|---|---|---|---|---|---|")
        for r in results:
            m = r.get("memory", {})
            cells = []
            for kind in ("alloc", "rss"):
                a, b = m.get(f"ours_{kind}_mb"), m.get(f"torch_{kind}_mb")
                cells += [_fmt(a, ".1f"), _fmt(b, ".1f"), _fmt(a / b if a and b else None, ".2f")]
            print(f"| {r['network']} | {r['batch']} | " + " | ".join(cells) + " |")


def parse_cases(spec: str) -> list:
    """'lecture:100,lenet5:100' -> [('lecture', 100), ('lenet5', 100)], names checked."""
    cases = []
    for item in spec.split(","):
        name, _, batch = item.partition(":")
        if name not in NETWORKS or not batch.isdigit() or int(batch) < 1:
            raise ValueError(f"bad case {item!r}: expected NAME:BATCH with NAME in {sorted(NETWORKS)}")
        cases.append((name, int(batch)))
    return cases


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", default=DEFAULT_CASES, help="NAME:BATCH,... (default: %(default)s)")
    p.add_argument("--repeats", type=int, default=30, help="timed calls of each case per run")
    p.add_argument("--warmup", type=int, default=3, help="untimed calls of each case first")
    p.add_argument("--settle", type=float, default=0.3, help="seconds of idle before each block of calls")
    p.add_argument("--runs", type=int, default=1, help="interleaved runs; ratios are reported as median and range")
    p.add_argument("--no-memory", action="store_true", help="skip the memory measurements")
    p.add_argument("--rss", action="store_true", help="also measure peak RSS, in a fresh process per case")
    p.add_argument("--rss-child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    if args.rss_child:
        name, batch, lib = args.rss_child.split(":")
        result = {"rss_peak_bytes": rss_peak_here(name, int(batch), lib)}
        print(json.dumps(result))
        return result
    torch = torch_or_none()
    results = []
    for name, batch in parse_cases(args.cases):
        fns = case_fns(name, batch, torch)
        runs = [interleaved(fns, args.repeats, args.warmup, min(10, args.repeats), args.settle)
                for _ in range(args.runs)]
        r = {"network": name, "batch": batch, **summarize(runs), "runs_ms": runs}
        if not args.no_memory:
            r["memory"] = memory(name, batch, fns, torch, args.rss)
        results.append(r)
        print(f"{name} batch {batch}: " + ", ".join(f"{k} {v:.2f} ms" for k, v in r["ms"].items()), flush=True)
    print()
    print_table(results)
    out = {"cases": results, "cores": os.cpu_count(), "threads": int(os.environ.get("BENCH_THREADS", "2")),
           "repeats": args.repeats, "runs": args.runs}
    for what in ("step", "inference"):
        values = [r["ratios"][what]["median"] for r in results if what in r["ratios"]]
        if values:
            out[f"geomean_{what}_ratio"] = geomean(values)
    if args.json:
        write_json(args.json, out)
    return out


if __name__ == "__main__":
    main()
