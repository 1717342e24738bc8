"""Callbacks of the training loop: precise BatchNorm statistics (`zoo.batchnorm`) and run
checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np

from zoo.batchnorm import recompute_batchnorm
from zoo.files import copy_atomic, save_model_atomic, write_text_atomic


class PreciseBatchNorm(keras.callbacks.Callback):
    """Before each validation, re-estimate BatchNorm statistics on fixed training images."""

    def __init__(self, images: np.ndarray, batch_size: int = 16):
        super().__init__()
        self.images = images
        self.batch_size = batch_size

    def on_test_begin(self, logs=None):
        recompute_batchnorm(self.model, self.images, self.batch_size)


class RunCheckpoint(keras.callbacks.Callback):
    """Each epoch: `last.keras` (with optimizer state) and `state.json`; `best.keras` when the
    monitored value improves. All written atomically, so a kill loses at most one epoch.
    `final_from() -> epoch` (0-based) holds `best.keras` back before that epoch (a pruning
    ramp still running: its model is not yet the compressed one)."""

    def __init__(self, run_dir: Path, monitor: str = "val_miou", best: float = -np.inf,
                 best_epoch: int = 0, final_from=None):
        super().__init__()
        self.run_dir = Path(run_dir)
        self.monitor = monitor
        self.best = best
        self.best_epoch = best_epoch
        self.final_from = final_from or (lambda: 0)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        value = float(logs.get(self.monitor, -np.inf))
        last = self.run_dir / "last.keras"
        save_model_atomic(self.model, last)
        if value > self.best and epoch >= self.final_from():
            self.best, self.best_epoch = value, epoch + 1
            copy_atomic(last, self.run_dir / "best.keras")
        state = {"epoch": epoch + 1, "best": self.best, "best_epoch": self.best_epoch,
                 "monitor": self.monitor}
        write_text_atomic(self.run_dir / "state.json", json.dumps(state, indent=2))
