"""Timing helpers shared by the benchmarks: interleaved runs, medians, ratios."""
import json
import os
import statistics
import time

import numpy as np

from tinygrad_cnn._io import atomic_write


def images_and_labels(batch: int):
    """The benchmarks' input, the same in every script: x (batch, 1, 28, 28) float32 in [0, 1)
    and labels t (batch,) in 0..9, from seed 0."""
    rng = np.random.default_rng(0)
    return rng.random((batch, 1, 28, 28)).astype(np.float32), rng.integers(0, 10, batch)


def interleaved(cases: dict, repeats: int, warmup: int = 2, block: int = 10, settle: float = 0.3) -> dict:
    """Median ms per call of each case.

    After `warmup` calls each, the cases take turns in blocks of `block` calls until each
    has had `repeats`: turns keep the comparison fair over time. Before each block the
    process sleeps `settle` seconds, so that the previous library's worker threads
    (OpenBLAS spins for up to ~0.1 s after a call) are idle and do not tax the next one.
    """
    for fn in cases.values():
        for _ in range(warmup):
            fn()
    times = {name: [] for name in cases}
    for _ in range(max(1, -(-repeats // block))):
        for name, fn in cases.items():
            time.sleep(settle)
            for _ in range(block):
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


def print_results(ms: dict, ratios: dict) -> None:
    """Print the median ms of each case, then each ratio, one per line."""
    width = max(map(len, [*ms, *ratios]))
    for name, v in ms.items():
        print(f"{name:{width}s} {v:8.2f} ms")
    for name, v in ratios.items():
        print(f"{name:{width}s} {v:8.2f}x")


def write_json(path: str, data: dict) -> None:
    """Write `data` to `path` atomically."""
    atomic_write(path, json.dumps(data, indent=2).encode())
