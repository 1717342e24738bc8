"""Round-robin timing: several callables timed in turn so machine noise hits them alike.

Example::

    samples = time_interleaved({"tflite": run_a, "onnx": run_b}, runs=30, warmup=5)
    summarize(samples["tflite"])   # {"median_ms": ..., "p90_ms": ..., "mean_ms": ..., ...}

This machine's noise is +-20 % run to run (CONVERSION-NOTES): timing runtime A for 30 runs and
then runtime B would charge a slow minute to one of them. Here each round times every callable
once, and the order rotates each round so no callable always runs first (or after another's
cache pollution).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np


def time_interleaved(fns: dict[str, Callable[[], Any]], runs: int = 30,
                     warmup: int = 5) -> dict[str, np.ndarray]:
    """Milliseconds of each of `runs` calls of every callable, after `warmup` untimed calls."""
    if int(runs) < 1:
        raise ValueError(f"runs must be >= 1, got {runs}")
    names = list(fns)
    for _ in range(int(warmup)):
        for name in names:
            fns[name]()
    samples: dict[str, list[float]] = {name: [] for name in names}
    for r in range(int(runs)):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            fns[name]()
            samples[name].append((time.perf_counter() - start) * 1e3)
    return {name: np.asarray(values) for name, values in samples.items()}


def summarize(ms: np.ndarray) -> dict[str, float]:
    """Median, p90, mean and min of a sample of milliseconds, and its size."""
    ms = np.asarray(ms, np.float64)
    return {"median_ms": float(np.median(ms)), "p90_ms": float(np.percentile(ms, 90)),
            "mean_ms": float(ms.mean()), "min_ms": float(ms.min()), "runs": int(ms.size)}
