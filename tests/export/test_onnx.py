"""ONNX: the contract, for logits and a label map."""

import pytest


@pytest.mark.parametrize("output", ["logits", "labels"])
def test_contract(output, format_contract):
    contract = format_contract("onnx", output=output)
    artifact = contract.artifact
    assert artifact.input.dtype == "float32" and artifact.input.shape[0] == 1
    assert artifact.details["opset"] == 17
    if output == "labels":
        assert artifact.output.dtype == "uint8" and "ArgMax" in artifact.ops
    else:
        assert artifact.output.dtype == "float32"
        assert contract.result.max_abs_logit_diff < 1e-3
