"""Learning-rate schedules: linear warm-up, then cosine or polynomial decay (or constant)."""

from __future__ import annotations

import math

import keras
import tensorflow as tf

from zoo.config import SCHEDULES
from zoo.errors import ConfigError

__all__ = ["SCHEDULES", "WarmupDecay"]


@keras.saving.register_keras_serializable(package="zoo")
class WarmupDecay(keras.optimizers.schedules.LearningRateSchedule):
    """``lr(step)``: linear warm-up over `warmup_steps`, then `kind` decay to 0 at
    `total_steps` (poly uses power 0.9, as DeepLab does)."""

    def __init__(self, base_lr: float, total_steps: int, warmup_steps: int = 0,
                 kind: str = "cosine"):
        if kind not in SCHEDULES:
            raise ConfigError(f"schedule must be one of {', '.join(SCHEDULES)}, got {kind!r}")
        self.base_lr = float(base_lr)
        self.total_steps = max(int(total_steps), 1)
        self.warmup_steps = max(0, min(int(warmup_steps), self.total_steps - 1))
        self.kind = kind

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        warm = self.base_lr * (step + 1.0) / max(self.warmup_steps, 1)
        span = float(self.total_steps - self.warmup_steps)
        t = tf.clip_by_value((step - self.warmup_steps) / span, 0.0, 1.0)
        if self.kind == "cosine":
            decayed = self.base_lr * 0.5 * (1.0 + tf.cos(math.pi * t))
        elif self.kind == "poly":
            decayed = self.base_lr * tf.pow(1.0 - t, 0.9)
        else:
            decayed = tf.constant(self.base_lr)
        return tf.where(step < self.warmup_steps, warm, decayed)

    def get_config(self):
        return {"base_lr": self.base_lr, "total_steps": self.total_steps,
                "warmup_steps": self.warmup_steps, "kind": self.kind}
