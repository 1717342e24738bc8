"""Capabilities as data: zoo.check reports what a target maps badly, with the alternative."""

import pytest

import zoo
from zoo.errors import ConfigError


def ops(model, target):
    return {finding.op for finding in zoo.check(model, target)}


def test_edgetpu_flags_mobilenet_v3_large():
    model = zoo.build_model("mobilenet_v3_large_lraspp", alpha=0.35, input_size=64)
    findings = zoo.check(model, "edgetpu")
    assert {"hard_swish", "channel_gate"} <= {f.op for f in findings}
    swish = next(f for f in findings if f.op == "hard_swish")
    assert "minimalistic=True" in swish.alternative and "#353" in swish.reason
    assert swish.layer in {layer.name for layer in model.layers}


def test_minimalistic_v3_has_no_hard_swish_or_squeeze_excite():
    model = zoo.build_model(backbone="mobilenet_v3_large", head="unet", alpha=0.35,
                            input_size=64, minimalistic=True, upsample="resize")
    assert ops(model, "edgetpu") == set()


def test_transposed_conv_flagged_for_edgetpu_and_gpu_but_not_resize():
    transposed = zoo.build_model("mobileunet", alpha=0.25, input_size=64)
    assert "transposed_conv" in ops(transposed, "edgetpu")
    assert "transposed_conv" in ops(transposed, "tflite-gpu")
    resized = zoo.build_model("mobileunet", alpha=0.25, input_size=64, upsample="resize")
    assert ops(resized, "edgetpu") == set() and ops(resized, "tflite-gpu") == set()


def test_large_resize_and_dilations():
    deeplab = zoo.build_model("mobilenet_v2_deeplabv3plus", alpha=0.35, input_size=64)
    assert "large_bilinear_resize" in ops(deeplab, "edgetpu")
    assert ops(deeplab, "coreml") == {"dilated_conv"}


def test_unknown_target():
    model = zoo.build_model("mobileunet", alpha=0.25, input_size=64)
    with pytest.raises(ConfigError, match="unknown target 'edgetp'; did you mean 'edgetpu'"):
        zoo.check(model, "edgetp")
