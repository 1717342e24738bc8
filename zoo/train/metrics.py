"""Mean IoU as a Keras metric (per-class IoU too), the ignore index excluded.

Accumulates a confusion matrix over an epoch; `zoo.metrics` defines the IoU from it.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from zoo.metrics import iou_per_class


@keras.saving.register_keras_serializable(package="zoo")
class MeanIoU(keras.metrics.Metric):
    """Mean IoU of argmax(logits) against integer masks, over classes present."""

    def __init__(self, num_classes: int, ignore_index: int | None = None, name: str = "miou",
                 **kwargs):
        super().__init__(name=name, **kwargs)
        self.num_classes = int(num_classes)
        self.ignore_index = ignore_index
        self.confusion = self.add_variable((self.num_classes, self.num_classes), "zeros",
                                           dtype="float64", name="confusion")

    def update_state(self, y_true, y_pred, sample_weight=None):
        labels = tf.reshape(tf.cast(y_true, tf.int32), [-1])
        pred = tf.reshape(tf.argmax(y_pred, axis=-1, output_type=tf.int32), [-1])
        valid = tf.logical_and(labels >= 0, labels < self.num_classes)
        if self.ignore_index is not None:
            valid = tf.logical_and(valid, labels != self.ignore_index)
        index = tf.boolean_mask(labels * self.num_classes + pred, valid)
        counts = tf.math.bincount(index, minlength=self.num_classes**2,
                                  maxlength=self.num_classes**2, dtype=tf.float64)
        self.confusion.assign_add(tf.reshape(counts, (self.num_classes, self.num_classes)))

    def result(self):
        cm = tf.convert_to_tensor(self.confusion)
        tp = tf.linalg.diag_part(cm)
        union = tf.reduce_sum(cm, 0) + tf.reduce_sum(cm, 1) - tp
        present = union > 0
        iou = tf.where(present, tp / tf.where(present, union, 1.0), 0.0)
        n = tf.reduce_sum(tf.cast(present, tf.float64))
        return tf.cast(tf.math.divide_no_nan(tf.reduce_sum(iou), n), tf.float32)

    def per_class(self) -> np.ndarray:
        """IoU per class (NaN for classes absent from truth and prediction)."""
        return iou_per_class(np.asarray(self.confusion))

    def reset_state(self):
        self.confusion.assign(tf.zeros_like(self.confusion))

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes,
                "ignore_index": self.ignore_index}
