"""ONNX int8 (QDQ): the contract for each I/O type, and what makes it QDQ int8."""

import numpy as np
import onnx
import pytest
from onnx import numpy_helper


@pytest.mark.parametrize("io", ["uint8", "int8", "float"])
def test_contract(io, format_contract):
    contract = format_contract("onnx-int8", io=io, calibration_images=8)
    artifact = contract.artifact
    expected = "float32" if io == "float" else io
    assert artifact.input.dtype == expected and artifact.output.dtype == expected
    if io != "float":  # the raw image, read with scale 1; logits with the calibrated range
        assert artifact.input.scale == 1.0
        assert artifact.input.zero_point == (0 if io == "uint8" else -128)
        assert artifact.output.scale > 0 and artifact.output.zero_point is not None
    assert artifact.details["io"] == io and artifact.details["quant_format"] == "QDQ"


def test_weights_are_int8_per_channel_and_activations_int8(format_contract):
    artifact = format_contract("onnx-int8", calibration_images=8).artifact
    graph = onnx.load(str(artifact.path)).graph
    values = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    convs = [n for n in graph.node if n.op_type in ("Conv", "ConvTranspose")]
    assert convs
    producers = {o: n for n in graph.node for o in n.output}
    for conv in convs:
        weight = producers[conv.input[1]]
        assert weight.op_type == "DequantizeLinear", conv.name
        assert values[weight.input[0]].dtype == np.int8, conv.name
        scale = values[weight.input[1]]
        assert scale.ndim == 1 and scale.size > 1, f"{conv.name}: not per channel"
        activation = producers[conv.input[0]]
        assert activation.op_type == "DequantizeLinear", conv.name
        assert values[activation.input[2]].dtype == np.int8, conv.name


def test_label_output_and_calibration_hash(format_contract):
    contract = format_contract("onnx-int8", output="labels", calibration_images=8)
    artifact = contract.artifact
    assert artifact.output.dtype == "uint8" and artifact.output.shape == [1, 64, 64]
    assert artifact.input.dtype == "uint8"
    float_hash = format_contract("onnx-int8", output="labels",
                                 calibration_images=4).artifact.calibration_sha256
    assert float_hash != artifact.calibration_sha256  # another calibration set, another hash


def test_reduce_range_writes_7_bit_weights_that_pass_the_gate(format_contract):
    contract = format_contract("onnx-int8", calibration_images=8, reduce_range=True)
    artifact = contract.artifact
    assert artifact.details["weights"].startswith("int7")
    graph = onnx.load(str(artifact.path)).graph
    values = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    producers = {o: n for n in graph.node for o in n.output}
    kernels = [values[producers[n.input[1]].input[0]] for n in graph.node
               if n.op_type in ("Conv", "ConvTranspose")]
    assert kernels and all(k.dtype == np.int8 for k in kernels)
    assert max(int(np.abs(k.astype(np.int16)).max()) for k in kernels) <= 64
    assert min(int(np.abs(k.astype(np.int16)).max()) for k in kernels) >= 32  # range used
