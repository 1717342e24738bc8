"""Round-robin timing: several callables timed in turn so machine noise hits them alike.

Example::

    samples = time_interleaved({"tflite": run_a, "onnx": run_b}, runs=30, warmup=5)
    summarize(samples["tflite"])   # {"median_ms": ..., "p90_ms": ..., "mean_ms": ..., ...}

A shared 2-core machine is noisy from one minute to the next: timing runtime A for 30 runs and
then runtime B would charge a slow minute to one of them. Here each round times every callable
once (or a block of calls, see `time_interleaved`), and the order rotates each round so no
callable always runs first (or after another's cache pollution).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

# How the grid and split time runtimes against each other: blocks of 10 calls, 1 untimed
# first, 0.15 s of sleep after (see `time_interleaved`).
BLOCKS = {"block": 10, "settle": 1, "pause": 0.15}


def time_interleaved(fns: dict[str, Callable[[], Any]], runs: int = 30, warmup: int = 5,
                     block: int = 1, settle: int = 0, pause: float = 0.0
                     ) -> dict[str, np.ndarray]:
    """Milliseconds of each of `runs` calls of every callable, after `warmup` untimed calls.

    With ``block=k`` each turn times k consecutive calls of one callable, after `settle` untimed
    ones, and sleeps `pause` seconds after it: onnxruntime's spinning workers (its default)
    keep both cores busy for about 0.1 s after its last call and slow whatever is timed right
    after it (README, "Benchmarks"); a short sleep lets them park.
    """
    if int(runs) < 1 or int(block) < 1 or int(settle) < 0:
        raise ValueError(f"runs and block must be >= 1 and settle >= 0, got {runs}, {block}, "
                         f"{settle}")
    names = list(fns)
    for _ in range(int(warmup)):
        for name in names:
            fns[name]()
    samples: dict[str, list[float]] = {name: [] for name in names}
    turn = 0
    while len(samples[names[0]]) < int(runs):
        shift = turn % len(names)
        for name in names[shift:] + names[:shift]:
            for _ in range(int(settle)):
                fns[name]()
            for _ in range(min(int(block), int(runs) - len(samples[name]))):
                start = time.perf_counter()
                fns[name]()
                samples[name].append((time.perf_counter() - start) * 1e3)
            if pause:
                time.sleep(pause)
        turn += 1
    return {name: np.asarray(values) for name, values in samples.items()}


def summarize(ms: np.ndarray) -> dict[str, float]:
    """Median, p90, mean and min of a sample of milliseconds, and its size."""
    ms = np.asarray(ms, np.float64)
    return {"median_ms": float(np.median(ms)), "p90_ms": float(np.percentile(ms, 90)),
            "mean_ms": float(ms.mean()), "min_ms": float(ms.min()), "runs": int(ms.size)}
