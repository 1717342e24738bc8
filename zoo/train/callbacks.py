"""Callbacks of the training loop: precise BatchNorm statistics and run checkpoints."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import keras
import numpy as np

from zoo.config import write_text_atomic


def batchnorm_layers(model: keras.Model) -> list[keras.layers.BatchNormalization]:
    return [layer for layer in model._flatten_layers()
            if isinstance(layer, keras.layers.BatchNormalization)]


def recompute_batchnorm(model: keras.Model, images: np.ndarray, batch_size: int = 16) -> None:
    """Set every BatchNorm's moving statistics to the average batch statistics of `images`.

    "Precise BN": from scratch, weights move faster than a 0.99-0.999 moving average follows,
    and inference mode collapses (TRAINING-NOTES). Gradients and the optimizer are untouched.
    """
    layers = batchnorm_layers(model)
    if not layers or len(images) == 0:
        return
    momenta = [layer.momentum for layer in layers]
    try:
        for i, start in enumerate(range(0, len(images), batch_size)):
            # Cumulative average over chunks: new = old * i/(i+1) + batch / (i+1).
            for layer in layers:
                layer.momentum = i / (i + 1)
            model(images[start:start + batch_size].astype("float32"), training=True)
    finally:
        for layer, momentum in zip(layers, momenta, strict=True):
            layer.momentum = momentum


class PreciseBatchNorm(keras.callbacks.Callback):
    """Before each validation, re-estimate BatchNorm statistics on fixed training images."""

    def __init__(self, images: np.ndarray, batch_size: int = 16):
        super().__init__()
        self.images = images
        self.batch_size = batch_size

    def on_test_begin(self, logs=None):
        recompute_batchnorm(self.model, self.images, self.batch_size)


def save_model_atomic(model: keras.Model, path: Path) -> None:
    """`model.save` under a temporary name in the same folder, then a rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".keras", dir=path.parent)
    os.close(fd)
    try:
        model.save(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def copy_atomic(src: Path, dst: Path) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{Path(dst).stem}.", suffix=".keras",
                               dir=Path(dst).parent)
    os.close(fd)
    try:
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class RunCheckpoint(keras.callbacks.Callback):
    """Each epoch: `last.keras` (with optimizer state) and `state.json`; `best.keras` when the
    monitored value improves. All written atomically, so a kill loses at most one epoch."""

    def __init__(self, run_dir: Path, monitor: str = "val_miou", best: float = -np.inf,
                 best_epoch: int = 0):
        super().__init__()
        self.run_dir = Path(run_dir)
        self.monitor = monitor
        self.best = best
        self.best_epoch = best_epoch

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        value = float(logs.get(self.monitor, -np.inf))
        last = self.run_dir / "last.keras"
        save_model_atomic(self.model, last)
        if value > self.best:
            self.best, self.best_epoch = value, epoch + 1
            copy_atomic(last, self.run_dir / "best.keras")
        state = {"epoch": epoch + 1, "best": self.best, "best_epoch": self.best_epoch,
                 "monitor": self.monitor}
        write_text_atomic(self.run_dir / "state.json", json.dumps(state, indent=2))
