"""Timing helpers shared by the benchmarks: interleaved runs, medians, ratios."""
import json
import os
import statistics
import tempfile
import time


def interleaved(cases: dict, repeats: int, warmup: int = 2) -> dict:
    """Run each case `warmup` times, then all cases in turn `repeats` times; median ms per case."""
    for fn in cases.values():
        for _ in range(warmup):
            fn()
    times = {name: [] for name in cases}
    for _ in range(repeats):
        for name, fn in cases.items():
            t = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - t) * 1000)
    return {name: statistics.median(v) for name, v in times.items()}


def torch_or_none():
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    return torch


def write_json(path: str, data: dict) -> None:
    """Write `data` to `path` atomically (a temp file, then rename)."""
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=d, suffix=".part")
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2)
    os.replace(tmp, path)
