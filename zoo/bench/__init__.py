"""Benchmarks: scripts that print figures (never timed tests).

Commands (``python -m zoo.bench <command>``, one module each): ``grid`` (latency over arch x
alpha x input size x runtime x threads, with efficiency against the matmul peak), ``split``
(encoder vs full model), ``ops`` (per-op time of a TFLite model by timed prefixes),
``targets`` (the performance targets' table from a grid's results); shared
pieces: ``timing`` (round-robin timing), ``peak`` (sgemm peak), ``runtimes``, ``results``
(resumable CSV), ``report`` (JSON, markdown, plots). ``pipeline`` is the input-pipeline check.
"""
