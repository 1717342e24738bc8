"""TFLite formats: the contract for each variant, plus what only TFLite has."""

import pytest

from zoo.export import FORMATS
from zoo.export.runtimes.litert import LiteRTRunner

# The weights each variant stores, as `read_weights` returns them.
STORED = {"tflite": {"float32"}, "tflite-fp16": {"float16"},
          "tflite-dynamic": {"int8", "float32"}, "tflite-int8": {"int8", "int32"}}


@pytest.mark.parametrize("name", ["tflite", "tflite-fp16", "tflite-dynamic", "tflite-int8"])
def test_contract(name, format_contract):
    contract = format_contract(name, **({"calibration_images": 8} if name == "tflite-int8"
                                        else {}))
    details = contract.artifact.details
    assert details["xnnpack_partitions"] >= 1 and "outside_delegate" in details
    # The 2x2 stride-2 transposed convs of the MobileUNet decoder are written for XNNPACK.
    assert "DEPTH_TO_SPACE" in contract.artifact.ops
    assert "TRANSPOSE_CONV" not in contract.artifact.ops
    assert details["transpose_conv"] == "depth-to-space"
    # A trained, unpruned run: no kernel is 30 % zero, so nothing is stored sparse, and the
    # verdict on XNNPACK's sparse inference says why not (tests/export/test_weight_size.py
    # has the pruned model).
    facts = details["sparse_weights"]
    assert facts["sparse_tensors"] == 0 and facts["densify_ops"] == 0
    assert not facts["converter_sparsity"] and facts["weight_tensors"] > 20
    assert not details["xnnpack_sparse"]["meets"]
    assert details["xnnpack_sparse"]["summary"].startswith("no: ")
    weights = FORMATS.get(name).read_weights(contract.artifact.path)
    assert {str(a.dtype) for a in weights.values()} == STORED[name]
    assert sum(a.ndim == 4 for a in weights.values()) == facts["weight_tensors"]


@pytest.mark.parametrize("io", ["uint8", "int8", "float"])
def test_int8_io_types(io, format_contract):
    artifact = format_contract("tflite-int8", io=io, calibration_images=8).artifact
    runner = LiteRTRunner(artifact.path)
    expected = "float32" if io == "float" else io
    assert runner.input_info.dtype == expected and runner.output_info.dtype == expected
    assert artifact.input.quantized == (io != "float")
    assert artifact.details["io"] == io


def test_saved_model_signature_is_the_one_keras_export_writes(tmp_path):
    """`write_saved_model` stands in for ``model.export(..., "tf_saved_model")``: input
    ``image``, outputs ``output_0``, ``output_1`` in the model's order (split halves read them
    by these names), the model's inference values, variables frozen by the converter."""
    import keras
    import numpy as np
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    from zoo.export.tflite_convert import write_saved_model

    image = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same")(image)
    x = keras.layers.BatchNormalization()(x)
    model = keras.Model(image, [keras.layers.ReLU()(x), keras.layers.Conv2D(2, 1)(x)])
    model.layers[2].moving_mean.assign(np.full(4, 0.5, np.float32))  # inference statistics
    write_saved_model(model, tmp_path / "sm", [1, 8, 8, 3])
    data = tf.lite.TFLiteConverter.from_saved_model(str(tmp_path / "sm")).convert()
    runner = Interpreter(model_content=data).get_signature_runner()
    assert list(runner.get_input_details()) == ["image"]
    assert sorted(runner.get_output_details()) == ["output_0", "output_1"]
    x = np.random.default_rng(0).uniform(-1, 1, (1, 8, 8, 3)).astype(np.float32)
    out = runner(image=x)
    for i, ref in enumerate(model(x, training=False)):
        np.testing.assert_allclose(out[f"output_{i}"], np.asarray(ref), atol=1e-5)
