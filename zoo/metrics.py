"""IoU from a confusion matrix, in NumPy: one definition for training, export and benchmarks.

Example::

    cm = confusion_matrix(masks, predictions, num_classes=3, ignore_index=255)
    per_class = iou_per_class(cm)      # NaN for a class absent from both truth and prediction
    miou = mean_iou(cm)
"""

from __future__ import annotations

import numpy as np


def confusion_matrix(truth: np.ndarray, pred: np.ndarray, num_classes: int,
                     ignore_index: int | None = None) -> np.ndarray:
    """(C, C) int64 counts, rows = truth, columns = prediction; ignored pixels skipped, as are
    truth values outside 0..C-1."""
    truth = np.asarray(truth).reshape(-1).astype(np.int64)
    pred = np.asarray(pred).reshape(-1).astype(np.int64)
    valid = (truth >= 0) & (truth < num_classes)
    if ignore_index is not None:
        valid &= truth != ignore_index
    index = truth[valid] * num_classes + np.clip(pred[valid], 0, num_classes - 1)
    return np.bincount(index, minlength=num_classes**2).reshape(num_classes, num_classes)


def iou_per_class(cm: np.ndarray) -> np.ndarray:
    """IoU of each class: TP / (TP + FP + FN); NaN where the class has no pixels at all."""
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    union = cm.sum(0) + cm.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / union, np.nan)


def mean_iou(cm: np.ndarray) -> float:
    """Mean IoU over the classes present in truth or prediction."""
    ious = iou_per_class(cm)
    return float(np.nanmean(ious)) if np.isfinite(ious).any() else float("nan")


def pixel_accuracy(cm: np.ndarray) -> float:
    cm = np.asarray(cm, dtype=np.float64)
    return float(np.trace(cm) / max(cm.sum(), 1.0))
