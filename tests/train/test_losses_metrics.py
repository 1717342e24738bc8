"""Losses ignore the ignore index; mean IoU matches a hand computation."""

import numpy as np
import pytest
import tensorflow as tf

from zoo.errors import ConfigError
from zoo.metrics import confusion_matrix, iou_per_class, mean_iou
from zoo.train.losses import SegmentationLoss, median_frequency_weights, parse_loss
from zoo.train.metrics import MeanIoU


def test_parse_loss():
    assert parse_loss("ce") == {"ce": 1.0}
    assert parse_loss("ce+dice") == {"ce": 1.0, "dice": 1.0}
    assert parse_loss("ce:1,dice:0.5") == {"ce": 1.0, "dice": 0.5}
    with pytest.raises(ConfigError, match="loss term 'bce'"):
        parse_loss("bce")


def test_cross_entropy_by_hand_and_ignore_index():
    logits = np.array([[[[2.0, 0.0], [0.0, 1.0], [5.0, -5.0]]]], np.float32)  # (1,1,3,2)
    labels = np.array([[[0, 1, 255]]], np.int32)
    loss = SegmentationLoss("ce", num_classes=2, ignore_index=255)
    expected = np.mean([np.log1p(np.exp(-2.0)), np.log1p(np.exp(-1.0))])
    assert float(loss(labels, logits)) == pytest.approx(expected, rel=1e-5)
    # Whatever the ignored pixel predicts, the loss does not move.
    logits[0, 0, 2] = [-50.0, 50.0]
    assert float(loss(labels, logits)) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("terms", ["ce", "dice", "focal", "ce:1,dice:0.5"])
def test_every_term_ignores_the_ignore_index(terms):
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 8, 8, 3)).astype(np.float32)
    labels = rng.integers(0, 3, (2, 8, 8)).astype(np.int32)
    labels[:, :4] = 7
    loss = SegmentationLoss(terms, num_classes=3, ignore_index=7)
    before = float(loss(labels, logits))
    logits[:, :4] = rng.normal(size=(2, 4, 8, 3)) * 10
    assert float(loss(labels, logits)) == pytest.approx(before, rel=1e-5)
    assert np.isfinite(before) and before > 0


def test_class_weights_shift_the_loss_towards_weighted_classes():
    logits = np.zeros((1, 1, 2, 2), np.float32)
    logits[0, 0, 0] = [3.0, 0.0]  # class 0 pixel: confident and right
    labels = np.array([[[0, 1]]], np.int32)  # class 1 pixel: unsure
    plain = float(SegmentationLoss("ce", 2)(labels, logits))
    heavy = float(SegmentationLoss("ce", 2, class_weights=[1.0, 9.0])(labels, logits))
    assert heavy > plain
    with pytest.raises(ConfigError, match="class_weights has 3 values, expected 2"):
        SegmentationLoss("ce", 2, class_weights=[1, 2, 3])


def test_median_frequency_weights():
    assert median_frequency_weights([10, 30, 0, 60]) == pytest.approx([3.0, 1.0, 0.0, 0.5])


def test_mean_iou_by_hand():
    truth = np.array([[0, 0, 1, 1], [2, 2, 9, 1]])
    pred = np.array([[0, 1, 1, 1], [2, 0, 2, 1]])
    # class 0: tp 1, fp 1 (pred 0 at truth 2), fn 1 -> 1/3; class 1: tp 3, fp 1, fn 0 -> 3/4;
    # class 2: tp 1, fn 1 -> 1/2; the pixel labelled 9 is ignored.
    cm = confusion_matrix(truth, pred, 3, ignore_index=9)
    np.testing.assert_allclose(iou_per_class(cm), [1 / 3, 3 / 4, 1 / 2])
    assert mean_iou(cm) == pytest.approx((1 / 3 + 3 / 4 + 1 / 2) / 3)

    metric = MeanIoU(3, ignore_index=9)
    logits = tf.one_hot(pred, 3)
    metric.update_state(truth[:1], logits[:1])
    metric.update_state(truth[1:], logits[1:])
    assert float(metric.result()) == pytest.approx(mean_iou(cm), rel=1e-6)
    np.testing.assert_allclose(metric.per_class(), iou_per_class(cm))
    metric.reset_state()
    assert float(metric.result()) == 0.0


def test_absent_class_is_left_out_of_the_mean():
    cm = confusion_matrix(np.array([0, 0, 1]), np.array([0, 0, 1]), 4)
    assert np.isnan(iou_per_class(cm)[2:]).all() and mean_iou(cm) == 1.0
