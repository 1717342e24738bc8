"""`python -m zoo.bench grid | split | ops`: speed figures of the zoo on this machine.

Examples::

    python -m zoo.bench grid --archs mobileunet --alphas 1.0,0.5 --sizes 224,160 \\
        --runtimes tflite,onnx --threads 2 --runs 30
    python -m zoo.bench split --archs mobileunet --alphas 0.5 --sizes 224 --threads 2
    python -m zoo.bench ops --arch mobileunet --alpha 0.5 --size 224 --threads 1

Outputs go under ``--out`` (default ``bench_out/``). `python -m zoo.bench.pipeline` is the
separate input-pipeline benchmark.
"""

from __future__ import annotations

from zoo.cli import run


def main() -> None:
    from zoo.bench.grid import grid
    from zoo.bench.ops import ops
    from zoo.bench.split import split

    run({"grid": grid, "split": split, "ops": ops}, name="python -m zoo.bench")


if __name__ == "__main__":
    main()
