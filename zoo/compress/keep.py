"""Constraints a compressed run keeps through every fine-tuning: set on the loaded model before
`fit` (fresh, resumed, and in each later stage of a chain), so what one method made (pruned
zeros, shared values) is still exact in the model the last stage saves.

Example::

    callbacks = keep_constraints(model, ["prune:0.75", "cluster:16"], run_dir)
    model.fit(..., callbacks=[*callbacks, ...])

Keras 3 re-applies `variable.constraint` after each optimizer step; `add_constraint` chains a
new constraint after one already set on the same variable.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np


def keep_constraints(model: keras.Model, labels: list[str], run_dir: Path
                     ) -> list[keras.callbacks.Callback]:
    """Each method of `labels` (a run's `compress.methods`) constrains `model`; the last one is
    the run's own (its schedules run). Returns the callbacks to add to `fit`."""
    if not labels:
        return []
    from zoo.compress import METHODS
    from zoo.compress.run import parse_methods

    parsed = parse_methods(labels)
    callbacks = []
    for i, (name, _, value) in enumerate(parsed):
        constrain = METHODS.get(name).constrain
        if constrain is not None:
            callbacks += constrain(model, value, i == len(parsed) - 1, Path(run_dir)) or []
    return callbacks


def add_constraint(variable, fn: Callable) -> None:
    """`variable.constraint` becomes `fn` after whatever constraint it had."""
    before = variable.constraint
    variable.constraint = fn if before is None else (lambda w: fn(before(w)))


def first_final_epoch(callbacks) -> int:
    """The first epoch (0-based) whose end state every callback calls final (a pruning ramp
    still running is not): checkpoints before it are not the compressed model."""
    return max([getattr(cb, "final_epoch", 0) for cb in callbacks] or [0])


WEIGHTED = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.Conv2DTranspose,
            keras.layers.Dense)


def weight_kernels(model: keras.Model) -> list:
    """The kernel variables of every conv and dense layer, nested ones included (the 1x1 conv
    of a `DepthToSpaceUpsample`), in graph order: what pruning and weight sharing act on."""
    out = []
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, WEIGHTED) and getattr(layer, "kernel", None) is not None:
            out.append(layer.kernel)
    return out


def evaluate_miou(model: keras.Model, data, batch_size: int = 8) -> float:
    """Mean IoU of `model` on `data`'s validation images (a `CompressData`)."""
    from zoo.metrics import confusion_matrix, mean_iou

    pred = np.concatenate([
        np.argmax(model.predict_on_batch(data.val_images[i:i + batch_size].astype("float32")),
                  -1) for i in range(0, len(data.val_images), batch_size)])
    return mean_iou(confusion_matrix(data.val_masks, pred, data.num_classes, data.ignore_index))
