"""Tolerances and the validator on hand-made runners: figures and pass/fail reasons."""

import numpy as np
import pytest

from zoo.errors import ConfigError
from zoo.export import Artifact, TensorInfo
from zoo.export.runtimes import dequantize, quantize
from zoo.export.validate import Reference, parse_overrides, tolerance_for, validate


class FakeRunner:
    def __init__(self, logits):
        self.logits, self.i = logits, 0

    def run(self, images):
        out = self.logits[self.i][None]
        self.i += 1
        return out


def make_reference():
    rng = np.random.default_rng(0)
    masks = rng.integers(0, 2, (3, 8, 8)).astype(np.uint8)
    logits = np.stack([masks == 0, masks == 1], -1).astype(np.float32)
    images = np.zeros((3, 8, 8, 3), np.uint8)
    return Reference(images, masks, logits, 2, 255, 1.0, 1.0)


def artifact(fmt="tflite"):
    info = TensorInfo("x", "float32", [1, 8, 8, 2])
    return Artifact(fmt, None, "litert", info, info)


def test_identical_runner_passes_and_flipped_pixels_fail():
    ref = make_reference()
    result = validate(artifact(), ref, tolerance_for("tflite"), runner=FakeRunner(ref.logits))
    assert result.passed and result.agreement_pct == 100.0 and result.miou_drop_pt == 0.0
    damaged = ref.logits.copy()
    damaged[0, :2] = damaged[0, :2, :, ::-1]  # 16 of 192 pixels flipped
    result = validate(artifact(), ref, tolerance_for("tflite"), runner=FakeRunner(damaged))
    assert not result.passed
    assert result.reason.startswith("tflite: pixel agreement with Keras 91.667% < 99.9%")
    loose = tolerance_for("tflite-int8", max_miou_drop=20)
    assert validate(artifact("tflite-int8"), ref, loose, runner=FakeRunner(damaged)).passed
    nan = damaged * np.nan
    assert "non-finite" in validate(artifact(), ref, loose, runner=FakeRunner(nan)).reason


def test_tolerance_defaults_and_overrides():
    assert tolerance_for("tflite").min_agreement == 99.9
    assert tolerance_for("tflite-fp16").max_miou_drop == 0.3
    assert tolerance_for("edgetpu").max_miou_drop == 2.0
    assert parse_overrides("1.5", ["onnx", "tflite"], "x") == {"onnx": 1.5, "tflite": 1.5}
    assert parse_overrides("onnx=0.2", ["onnx", "tflite"], "x") == {"onnx": 0.2}
    assert parse_overrides({"onnx": 3}, ["onnx"], "x") == {"onnx": 3.0}
    with pytest.raises(ConfigError, match="coreml not among"):
        parse_overrides("coreml=1", ["onnx"], "x")
    with pytest.raises(ConfigError, match="expected a number"):
        parse_overrides("onnx", ["onnx"], "x")


def test_quantize_round_trip():
    info = TensorInfo("x", "int8", [1], scale=0.5, zero_point=-3)
    q = quantize(np.array([0.0, 1.0, 1000.0]), info)
    assert q.tolist() == [-3, -1, 127]
    assert dequantize(q, info).tolist() == [0.0, 1.0, 65.0]
