"""`python compress.py`: a trained run -> a compressed, fine-tuned new run."""

from __future__ import annotations

from typing import Any


def compress_command(run: str | None = None, method: Any = None, epochs: int | None = None,
                     lr: float | None = None, checkpoints: str = "checkpoints") -> None:
    """Compress a trained run and fine-tune it as a new run folder under checkpoints/.

    Example: python compress.py --run checkpoints/mobileunet-a0.5-224x288-... --method qat

    Args:
        run: the run folder or name to compress (default: the newest run); never modified.
        method: one or more methods, comma-separated, applied in order: qat
            (quantization-aware training; export the new run with --format tflite-int8,
            edgetpu or onnx-int8 to use the learned ranges).
        epochs: fine-tuning epochs; default a fifth of the parent run's, at least 1.
        lr: peak learning rate; default the parent's times 0.1 (QAT).
        checkpoints: folder of run folders; default checkpoints.

    An interrupted compression run resumes like any run: python train.py --resume <new run>.
    """
    from zoo.compress.run import compress

    compress(run, method, epochs=epochs, lr=lr, checkpoints_dir=checkpoints)
