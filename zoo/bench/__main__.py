"""`python -m zoo.bench grid | targets | split | ops | compression | study`: speed figures of
the zoo on this machine.

Examples::

    python -m zoo.bench grid --archs mobileunet --alphas 1.0,0.5 --sizes 224,160 \\
        --runtimes tflite,onnx --threads 2 --runs 30
    python -m zoo.bench targets --results bench_out   # the grid against the speed targets
    python -m zoo.bench split --archs mobileunet --alphas 0.5 --sizes 224 --threads 2
    python -m zoo.bench ops --arch mobileunet --alpha 0.5 --size 224 --threads 1
    python -m zoo.bench compression --run checkpoints/mobileunet-... --threads 1
    python -m zoo.bench study --data camvid --arch mobileunet --epochs 8   # train, export, time

Outputs go under ``--out`` (default ``bench_out/``). `python -m zoo.bench.pipeline` is the
separate input-pipeline benchmark. Every argument is checked before anything is built or
written: a bad one is ``error: ...`` naming it, with the allowed range, and exit 2.
"""

from __future__ import annotations

import functools
import json

from zoo.cli import run


def _quiet(fn, show=()):
    """`fn` for the CLI: the command prints its own figures; of its result only the `show`
    keys are printed (fire would print every row)."""

    @functools.wraps(fn)
    def command(*args, **kwargs):
        result = fn(*args, **kwargs)
        for key in show:
            if key in result:
                print(f"{key}: {json.dumps(result[key])}")

    return command


def main() -> None:
    from zoo.bench.compression import compression
    from zoo.bench.grid import grid
    from zoo.bench.ops import ops
    from zoo.bench.split import split
    from zoo.bench.study import study
    from zoo.bench.targets import targets

    run({"grid": _quiet(grid, ("measured", "skipped", "peaks", "csv", "markdown", "plots",
                               "targets")),
         "targets": _quiet(targets, ("targets",)), "split": _quiet(split), "ops": _quiet(ops),
         "compression": _quiet(compression, ("markdown",)),
         "study": _quiet(study, ("summary", "plots"))},
        name="python -m zoo.bench")


if __name__ == "__main__":
    main()
