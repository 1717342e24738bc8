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
