"""Segmentation losses with an ignore index: cross-entropy (class-weighted), Dice, Focal, and
weighted sums of them.

Example::

    loss = SegmentationLoss("ce:1,dice:0.5", num_classes=12, ignore_index=11,
                            class_weights=[...])
    value = loss(masks, logits)        # masks (B, H, W) int, logits (B, H, W, C)
"""

from __future__ import annotations

import keras
import tensorflow as tf

from zoo.checks import number
from zoo.errors import ConfigError

TERMS = ("ce", "dice", "focal")


def parse_loss(spec: str) -> dict[str, float]:
    """``"ce"``, ``"ce+dice"`` or ``"ce:1,dice:0.5"`` -> {term: weight}."""
    terms: dict[str, float] = {}
    for part in str(spec).replace("+", ",").split(","):
        name, _, weight = part.strip().partition(":")
        if name not in TERMS:
            raise ConfigError(f"loss term {name!r} in {spec!r}: expected one of "
                              f"{', '.join(TERMS)} (e.g. ce, ce+dice, ce:1,dice:0.5)")
        terms[name] = number(f"loss weight of {name} in {spec!r}", weight, 0) if weight else 1.0
    return terms


@keras.saving.register_keras_serializable(package="zoo")
class SegmentationLoss(keras.losses.Loss):
    """Weighted sum of per-pixel losses; pixels equal to `ignore_index` contribute nothing."""

    def __init__(self, terms: str | dict = "ce", num_classes: int = 2,
                 ignore_index: int | None = None, class_weights: list[float] | None = None,
                 focal_gamma: float = 2.0, name: str = "segmentation_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.terms = parse_loss(terms) if isinstance(terms, str) else dict(terms)
        self.num_classes = int(num_classes)
        self.ignore_index = ignore_index
        if class_weights is not None and len(class_weights) != self.num_classes:
            raise ConfigError(f"class_weights has {len(class_weights)} values, expected "
                              f"{self.num_classes} (one per class)")
        self.class_weights = None if class_weights is None else [float(w) for w in class_weights]
        self.focal_gamma = float(focal_gamma)

    def call(self, y_true, y_pred):
        logits = tf.reshape(tf.cast(y_pred, tf.float32), [-1, self.num_classes])
        labels = tf.reshape(tf.cast(y_true, tf.int32), [-1])
        valid = tf.logical_and(labels >= 0, labels < self.num_classes)
        if self.ignore_index is not None:
            valid = tf.logical_and(valid, labels != self.ignore_index)
        logits = tf.boolean_mask(logits, valid)
        labels = tf.boolean_mask(labels, valid)
        weights = (tf.ones_like(labels, tf.float32) if self.class_weights is None
                   else tf.gather(tf.constant(self.class_weights, tf.float32), labels))
        total = tf.constant(0.0)
        ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
        denom = tf.maximum(tf.reduce_sum(weights), 1e-6)
        if "ce" in self.terms:
            total += self.terms["ce"] * tf.reduce_sum(weights * ce) / denom
        if "focal" in self.terms:
            pt = tf.exp(-ce)
            focal = tf.pow(1.0 - pt, self.focal_gamma) * ce
            total += self.terms["focal"] * tf.reduce_sum(weights * focal) / denom
        if "dice" in self.terms:
            probs = tf.nn.softmax(logits)
            onehot = tf.one_hot(labels, self.num_classes)
            inter = tf.reduce_sum(probs * onehot, 0)
            sums = tf.reduce_sum(probs, 0) + tf.reduce_sum(onehot, 0)
            dice = (2.0 * inter + 1.0) / (sums + 1.0)
            total += self.terms["dice"] * (1.0 - tf.reduce_mean(dice))
        # Under a strategy with n replicas, each replica's loss is 1/n of its mean, so that the
        # summed gradients are the global batch's mean gradient and the reported loss (which
        # Keras multiplies back by n) is the mean. Keras does this for the losses it reduces,
        # but leaves a scalar like this one alone (keras.src.losses.loss.reduce_values).
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        return total / replicas if replicas > 1 else total

    def get_config(self):
        return {**super().get_config(), "terms": self.terms, "num_classes": self.num_classes,
                "ignore_index": self.ignore_index, "class_weights": self.class_weights,
                "focal_gamma": self.focal_gamma}


def median_frequency_weights(class_pixels) -> list[float]:
    """SegNet's median-frequency balancing: median(freq) / freq(c); absent classes get 0."""
    import numpy as np

    counts = np.asarray(class_pixels, dtype=np.float64)
    freq = counts / max(counts.sum(), 1.0)
    present = freq > 0
    median = float(np.median(freq[present])) if present.any() else 1.0
    return [float(median / f) if f > 0 else 0.0 for f in freq]
