"""Which blocks map badly to which targets: rules as data, checked before training.

Example::

    model = zoo.build_model("mobilenet_v3_large_lraspp", alpha=0.5, input_size=224)
    for finding in zoo.check(model, "edgetpu"):
        print(finding)   # layer, what is wrong there, and the alternative to use

Each `Rule` names its targets, how to recognise the layer, why it maps badly (with the upstream
report), and the alternative the zoo offers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import keras

from zoo.errors import ConfigError
from zoo.registry import unknown_name_message

TARGETS = ("coreml", "edgetpu", "tflite-gpu")


@dataclass(frozen=True)
class Finding:
    """One layer that a target maps badly."""

    layer: str
    op: str
    target: str
    reason: str
    alternative: str

    def __str__(self) -> str:
        return f"{self.layer} ({self.op}): {self.reason}; use {self.alternative}"


@dataclass(frozen=True)
class Rule:
    op: str
    targets: tuple[str, ...]
    matches: Callable[[keras.layers.Layer], bool]
    reason: str
    alternative: str


def _activation_name(layer: keras.layers.Layer) -> str:
    fn = getattr(layer, "activation", None)
    return getattr(fn, "__name__", "") if isinstance(layer, keras.layers.Activation) else ""


def _is_channel_gate(layer: keras.layers.Layer) -> bool:
    """A Multiply of a feature map by a 1x1 (globally pooled) gate: squeeze-excite and alike."""
    if not isinstance(layer, keras.layers.Multiply):
        return False
    shapes = [tuple(t.shape[1:3]) for t in layer.input]
    return (1, 1) in shapes and any(s != (1, 1) for s in shapes)


def _upsample_factor(layer: keras.layers.Layer) -> int:
    if isinstance(layer, keras.layers.UpSampling2D) and layer.interpolation == "bilinear":
        return max(layer.size)
    return 0


def _is_strided_transpose(layer: keras.layers.Layer) -> bool:
    return isinstance(layer, keras.layers.Conv2DTranspose) and max(layer.strides) > 1


def _is_dilated(layer: keras.layers.Layer) -> bool:
    return isinstance(layer, keras.layers.Conv2D | keras.layers.DepthwiseConv2D) and max(
        layer.dilation_rate) > 1


RULES: tuple[Rule, ...] = (
    Rule("hard_swish", ("edgetpu",),
         lambda layer: _activation_name(layer) in ("hard_swish", "hard_silu"),
         "HARD_SWISH does not map to the Edge TPU (google-coral/edgetpu#353, #272); the "
         "int8 export writes it as ADD + MUL, which map, at two elementwise ops per activation",
         "minimalistic=True (ReLU) or the mobilenet_edgetpu backbone"),
    Rule("channel_gate", ("edgetpu",), _is_channel_gate,
         "global pooling + broadcast multiply (squeeze-excite / pooled gate) maps poorly on the "
         "Edge TPU (google-coral/edgetpu#183)",
         "minimalistic=True, the mobilenet_edgetpu backbone, or the unet head (no pooled gate)"),
    Rule("transposed_conv", ("edgetpu", "tflite-gpu"), _is_strided_transpose,
         "stride-2 TRANSPOSE_CONV is unmapped or slow on the Edge TPU (google-coral/edgetpu#509, "
         "#684) and slow on some mobile GPU delegates",
         "the U-Net with upsample='resize'"),
    Rule("large_bilinear_resize", ("edgetpu",), lambda layer: _upsample_factor(layer) >= 4,
         "a large RESIZE_BILINEAR may stay on the CPU to avoid precision loss "
         "(google-coral/edgetpu#31)",
         "a head with a shallower output stride (unet) or the label-map output"),
    Rule("dilated_conv", ("coreml",), _is_dilated,
         "dilated convolutions are reported not to run on the Apple Neural Engine "
         "(hollance/neural-engine, docs/unsupported-layers.md)",
         "a head without atrous convs (unet, lraspp)"),
)


def check(model: keras.Model, target: str) -> list[Finding]:
    """Layers of `model` that `target` (coreml, edgetpu, tflite-gpu) maps badly."""
    if target not in TARGETS:
        raise ConfigError(unknown_name_message("target", target, list(TARGETS)))
    rules = [r for r in RULES if target in r.targets]
    return [
        Finding(layer.name, rule.op, target, rule.reason, rule.alternative)
        for layer in model.layers
        for rule in rules
        if rule.matches(layer)
    ]
