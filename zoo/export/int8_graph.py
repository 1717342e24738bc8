"""The Keras graph the full-integer TFLite converter gets: same weights, same math, ops that
XNNPACK runs in int8.

Example::

    graph = int8_friendly(model)        # `model` itself when there is nothing to change
    graph.count_params() == model.count_params()

Hard-swish: the converter fuses ``x * relu6(x + 3) / 6`` (Keras' ``hard_silu``) into one
HARD_SWISH op, which the XNNPACK delegate of LiteRT 2.3 takes in float32 only; in an int8 graph
every HARD_SWISH runs in the reference kernel between two delegate partitions, so a MobileNetV3
splits into about as many partitions as it has hard-swish layers and int8 runs slower than fp32
(XNNPACK's QS8 hard-swish is still on its roadmap, google/XNNPACK#1684; README, "Export").
Written as ``(relu6(x + 3) * x) * (1 / 6)`` the converter does not match its fusion pattern
(the pattern's operand order is ``x * relu6(...)``), the 1/6 folds into the MUL's output scale,
and the op pair becomes ADD (fused RELU6) + MUL, both delegated in int8. The float graphs keep
the fused op: XNNPACK runs float HARD_SWISH in one kernel.
"""

from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="zoo")
class DecomposedHardSwish(keras.layers.Layer):
    """``relu6(x + 3) * x / 6``, ordered so that TFLite keeps it as ADD + MUL (see the module
    docstring)."""

    def call(self, x):
        return keras.ops.relu6(x + 3.0) * x * (1.0 / 6.0)

    def compute_output_shape(self, input_shape):
        return input_shape


def _is_hard_swish(layer) -> bool:
    activation = getattr(layer, "activation", None)
    return (type(layer) is keras.layers.Activation
            and getattr(activation, "__name__", "") in ("hard_swish", "hard_silu"))


def hard_swish_layers(model) -> list[str]:
    """Names of the layers that are a bare hard-swish activation."""
    return [layer.name for layer in model.layers if _is_hard_swish(layer)]


def int8_friendly(model):
    """`model` with every hard-swish activation layer replaced by `DecomposedHardSwish`; other
    layers are shared, not copied, so weights and outputs are unchanged. Returns `model` itself
    when it has no hard-swish."""
    if not hard_swish_layers(model):
        return model

    def clone(layer):
        if _is_hard_swish(layer):
            return DecomposedHardSwish(name=layer.name, dtype=layer.dtype_policy)
        return layer

    return keras.models.clone_model(model, clone_function=clone)
