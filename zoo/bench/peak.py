"""This machine's fp32 matrix-multiply peak: the "limit" that the efficiency column divides by.

Example::

    matmul_peak_gflops(threads=2)               # e.g. ~316 on this 2-vCPU AVX-512 Xeon
    matmul_peak_gflops(threads=1, size=1024)    # smaller, faster, a little lower

A numpy sgemm of `size` x `size` (OpenBLAS), best of `repeats`: 2 * size**3 flops each. The
thread count is set with threadpoolctl when it is installed, else in a subprocess whose
OPENBLAS/OMP/MKL thread variables are set before numpy loads (a loaded OpenBLAS ignores them).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys


def best_matmul_gflops(size: int, repeats: int) -> float:
    """Best GFLOP/s of `repeats` float32 `size` x `size` matmuls, with the threads numpy has."""
    import time

    import numpy as np

    rng = np.random.default_rng(0)
    a = rng.random((size, size), dtype=np.float32)
    b = rng.random((size, size), dtype=np.float32)
    a @ b  # warm-up: thread pool start and page faults
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


# Run in a fresh interpreter whose thread variables are set before numpy loads.
_SCRIPT = ("import json, sys; from zoo.bench.peak import best_matmul_gflops; "
           "print(json.dumps({'gflops': best_matmul_gflops(int(sys.argv[1]), "
           "int(sys.argv[2]))}))")


def matmul_peak_gflops(threads: int, size: int = 2048, repeats: int = 5) -> float:
    """Best achieved GFLOP/s of a `size`^2 float32 matmul on `threads` threads."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        threadpool_limits = None
    if threadpool_limits is not None:
        with threadpool_limits(limits=int(threads)):
            return best_matmul_gflops(size, repeats)
    env = dict(os.environ)
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(int(threads))
    out = subprocess.run([sys.executable, "-c", _SCRIPT, str(size), str(repeats)], env=env,
                         capture_output=True, text=True, check=True)
    return float(json.loads(out.stdout.strip().splitlines()[-1])["gflops"])
