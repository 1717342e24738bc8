"""`python compress.py`: a trained run -> a compressed, fine-tuned new run."""

from __future__ import annotations

from typing import Any


def compress_command(run: str | None = None, method: Any = None, epochs: int | None = None,
                     lr: float | None = None, checkpoints: str = "checkpoints") -> None:
    """Compress a trained run and fine-tune it as a new run folder under checkpoints/.

    Example: python compress.py --run checkpoints/mobileunet-a0.5-224x288-... --method qat

    Args:
        run: the run folder or name to compress (default: the newest run); never modified.
        method: one or more methods, comma-separated, in the order lowrank, prune,
            cluster | ternary, qat; each fine-tunes as its own run folder, the next starting
            from it. lowrank:R (factorise convs keeping a fraction R of each kernel's energy;
            lowrank:macs=F for a MAC budget), prune:S (magnitude pruning to sparsity S in
            (0, 1), per-layer targets from a sensitivity scan), cluster:K (weight sharing, K
            values per kernel, K a power of two 2..256), ternary[:t] (trained ternary
            weights, threshold t x max|w|), qat (quantization-aware training; export with
            --format tflite-int8, edgetpu or onnx-int8). Deep Compression:
            --method prune:0.75,cluster:16.
        epochs: fine-tuning epochs; default a fifth of the parent run's, at least 1.
        lr: peak learning rate; default the parent's times the method's scale (0.1; 1.0
            for ternary).
        checkpoints: folder of run folders; default checkpoints.

    An interrupted compression run resumes like any run: python train.py --resume <new run>.
    """
    from zoo.compress.run import compress

    compress(run, method, epochs=epochs, lr=lr, checkpoints_dir=checkpoints)
