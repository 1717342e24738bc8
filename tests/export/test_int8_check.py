"""What a full-integer file holds: float tensors left are a defect that fails validation."""

import numpy as np
import pytest

from zoo.export.int8_check import float_tensors, int8_facts


@pytest.fixture(scope="module")
def tiny_files():
    """(keras model, float .tflite bytes, int8 .tflite bytes with float I/O) of a tiny model."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 16, 3), batch_size=1)
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    model = keras.Model(inputs, keras.layers.Conv2D(2, 1)(x))
    images = np.random.default_rng(0).uniform(0, 1, (4, 16, 16, 3)).astype("float32")
    float_data = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([image[None]] for image in images)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    return model, float_data, conv.convert()


def test_float_tensors_are_found_and_float_io_is_allowed(tiny_files):
    model, float_data, int8_data = tiny_files
    assert len(float_tensors(float_data, "uint8")) >= 4  # input, kernels, output at least
    assert float_tensors(int8_data, "float") == []       # the float I/O was asked for
    assert len(float_tensors(int8_data, "uint8")) == 2   # ... but not with integer I/O
    facts, defects = int8_facts(float_data, model, "float")
    assert facts["float_tensors"] and "ranges" not in facts  # not a QAT model
    assert defects and defects[0].startswith(f"{len(facts['float_tensors'])} float32 tensor")


def test_a_defect_fails_validation_whatever_the_figures(tiny_files, tmp_path):
    from zoo.export.artifact import Artifact
    from zoo.export.runtimes import TensorInfo
    from zoo.export.validate import Tolerance, reference, validate

    model, float_data, _ = tiny_files
    path = tmp_path / "model.tflite"
    path.write_bytes(float_data)
    images = np.random.default_rng(1).uniform(0, 1, (2, 16, 16, 3)).astype("float32")
    masks = np.zeros((2, 16, 16), np.uint8)
    ref = reference(model, images, masks, num_classes=2, ignore_index=None)
    info = TensorInfo("x", "float32", [1, 16, 16, 3])
    artifact = Artifact("tflite-int8", path, "litert", info, info)
    assert validate(artifact, ref, Tolerance(None, 2.0)).passed  # the same function
    artifact.defects = ["3 float32 tensor(s) left in the int8 model: a, b, c"]
    result = validate(artifact, ref, Tolerance(None, 2.0))
    assert not result.passed and result.status == "failed"
    assert result.reason == "tflite-int8: 3 float32 tensor(s) left in the int8 model: a, b, c"
