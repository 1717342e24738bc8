"""Input pipeline vs training step: does tf.data + albumentations keep the model fed?

    python -m zoo.bench.pipeline --arch mobileunet --alpha 0.5 --input-size 224 --batch-size 8

Prints three rates in images/s on this machine: the augmented input pipeline alone, the
training step alone (one in-memory batch repeated), and `fit` with the real pipeline; and the
pipeline/step ratio (the pipeline should deliver at least 2x what the step consumes).
"""

from __future__ import annotations

import os
import time
from typing import Any

from zoo import checks
from zoo.cli import run


def _rate(iterator, batches: int, batch_size: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches * batch_size / (time.perf_counter() - start)


def pipeline_vs_step(arch: str = "mobileunet", alpha: float = 0.5, input_size: Any = 224,
                     batch_size: int = 8, data: str = "shapes", batches: int = 30) -> dict:
    """Measure and print the three rates; returns them as a dict.

    Args:
        arch: a named arch.
        alpha: width multiplier, one the arch's backbone takes.
        input_size: N or HxW, positive multiples of 32.
        batch_size: images per batch, >= 1.
        data: dataset name, yaml path or folder (as train.py --data).
        batches: timed batches per rate, >= 1.
    """
    import keras
    import tensorflow as tf

    from zoo.backbones import BACKBONES
    from zoo.data import make_dataset, resolve_dataset
    from zoo.models import build_model, resolve_arch
    from zoo.train.losses import SegmentationLoss

    alpha = BACKBONES.get(resolve_arch(arch).backbone).check_alpha(alpha, "--alpha")
    size = checks.input_size("--input-size", input_size)
    batch_size = checks.integer("--batch-size", batch_size, 1)
    batches = checks.integer("--batches", batches, 1)
    spec = resolve_dataset(data)
    train_ds = make_dataset(spec, "train", size, batch_size, augment="default", shuffle=True,
                            seed=0, repeat=True, drop_remainder=True)
    pipeline = _rate(iter(train_ds), batches, batch_size)

    model = build_model(arch, alpha=alpha, input_size=size, num_classes=spec.num_classes)
    model.compile(optimizer="adam", loss=SegmentationLoss("ce", spec.num_classes,
                                                          spec.ignore_index))
    images, masks = next(iter(train_ds))
    cached = tf.data.Dataset.from_tensors((images, masks)).repeat()
    model.fit(cached, steps_per_epoch=3, epochs=1, verbose=0)  # trace once
    start = time.perf_counter()
    model.fit(cached, steps_per_epoch=batches, epochs=1, verbose=0)
    step = batches * batch_size / (time.perf_counter() - start)
    start = time.perf_counter()
    model.fit(train_ds, steps_per_epoch=batches, epochs=1, verbose=0)
    real = batches * batch_size / (time.perf_counter() - start)
    keras.backend.clear_session()

    result = {"pipeline_images_per_s": pipeline, "step_images_per_s": step,
              "fit_with_pipeline_images_per_s": real, "ratio": pipeline / step,
              "cores": os.cpu_count()}
    print(f"{arch} alpha {alpha} {size[0]}x{size[1]} batch {batch_size}, {data}, "
          f"{os.cpu_count()} cores")
    print(f"  input pipeline (augmented):   {pipeline:8.1f} images/s")
    print(f"  training step (cached batch): {step:8.1f} images/s")
    print(f"  fit with the real pipeline:   {real:8.1f} images/s")
    print(f"  pipeline / step:              {pipeline / step:8.2f}x")
    return result


if __name__ == "__main__":
    run(pipeline_vs_step, name="python -m zoo.bench.pipeline")
