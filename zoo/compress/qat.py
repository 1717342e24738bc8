"""Quantization-aware training (QAT): the graph the int8 converter gets, with BatchNorm folded
and fake quantization where the int8 model quantizes, fine-tuned on the run's data.

Example::

    qat = quantization_aware(model, images)       # calibrated ranges, folded BN, float math
    qat.fit(...)                                  # ranges follow the activations (EMA)
    export.py --run <new run> --format tflite-int8  # int8 with the learned ranges

Built on Keras 3's own fake-quant op (`zoo.quantize`): tensorflow-model-optimization's QAT
wraps tf-keras models only (tensorflow/model-optimization#1119).

What is rewritten, in one pass over the functional graph (`keras.models.clone_model`):

1. The graph is `zoo.export.tflite_graph`'s int8 graph: transposed convs as 1x1 conv +
   DEPTH_TO_SPACE, hard-swish as ADD + MUL, the ops XNNPACK runs in int8.
2. Each BatchNorm that follows a convolution (its only reader), or a sum of such convolutions,
   is folded into them:
   ``W' = W * s``, ``b' = (b - mean) * s + beta`` with ``s = gamma / sqrt(var + eps)``, as the
   converter folds it, so training sees the weights the int8 file holds (Krishnamoorthi 2018,
   "Quantizing deep convolutional networks for efficient inference", section 3.2, folds with
   frozen statistics the same way).
3. Convolutions quantize their kernels per output channel (`QuantConv2D`, ...).
4. An `ActivationQuantizer` follows every op whose output is a tensor of the int8 model: not
   an op whose only reader is a ReLU/ReLU6 (the converter fuses it, and quantizes after the
   activation), nor ops that keep their input's scale in TFLite's int8 kernels (padding,
   depth-to-space, resize, dropout, identity), nor the fixed-range sigmoid / softmax. The
   raw 0..255 input gets the fixed range it has.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import keras
import numpy as np

from zoo.compress import register_method
from zoo.compress.fold import graph_links, operations, plan_folding, set_folded
from zoo.export.int8_graph import DecomposedHardSwish
from zoo.export.tflite_graph import DepthToSpaceUpsample, tflite_graph
from zoo.quantize import (
    ActivationQuantizer,
    QuantConv2D,
    QuantDepthToSpaceUpsample,
    QuantDepthwiseConv2D,
    ScalarAffine,
)

# Ops whose int8 output keeps its input's scale and zero point (TFLite's "same scale" ops).
SAME_SCALE = (keras.layers.ZeroPadding2D, keras.layers.Dropout, keras.layers.Reshape,
              keras.layers.MaxPooling2D, keras.layers.Identity, keras.layers.InputLayer)
FIXED_RANGE_ACTIVATIONS = ("sigmoid", "softmax", "tanh", "linear")
INPUT_RANGE = (0.0, 255.0)


@dataclass
class Rewrite:
    """What `quantization_aware` did, for the run's record."""

    folded: list[str] = field(default_factory=list)      # BatchNorm layers folded
    unfolded: list[str] = field(default_factory=list)    # BatchNorm layers kept (no conv before)
    quantizers: list[str] = field(default_factory=list)  # ActivationQuantizer names


def _is_fusable_relu(op) -> bool:
    """A ReLU / ReLU6 the converter fuses into the op before it."""
    if type(op) is keras.layers.ReLU:
        negative = float(op.negative_slope) if op.negative_slope is not None else 0.0
        return negative == 0.0 and float(op.threshold) == 0.0 and (
            op.max_value is None or float(op.max_value) == 6.0)
    if type(op) is keras.layers.Activation:
        return getattr(op.activation, "__name__", "") in ("relu", "relu6")
    return False


def _keeps_scale(op) -> bool:
    if isinstance(op, SAME_SCALE):
        return True
    if isinstance(op, keras.layers.UpSampling2D):
        return True  # TFLite's int8 RESIZE_BILINEAR / _NEAREST keep the input's scale
    if type(op) is keras.layers.Activation:
        return getattr(op.activation, "__name__", "") in FIXED_RANGE_ACTIVATIONS
    return False


def _quantized_conv(layer):
    """The fake-quantized twin of a conv layer (bias on, for folding), or None."""
    if type(layer) is keras.layers.Conv2D:
        config = {**layer.get_config(), "use_bias": True}
        return QuantConv2D.from_config(config)
    if type(layer) is keras.layers.DepthwiseConv2D:
        config = {**layer.get_config(), "use_bias": True}
        return QuantDepthwiseConv2D.from_config(config)
    if type(layer) is DepthToSpaceUpsample:
        return QuantDepthToSpaceUpsample(layer.filters, layer.activation, name=layer.name,
                                         dtype=layer.dtype_policy)
    return None


def _op_by_op(op, args, quantizer):
    """The layers that become several TFLite ops, written op by op with a quantizer on each
    inner tensor (the int8 model quantizes each); None for any other layer."""
    # Named layers, not keras.ops: an op's automatic name ("multiply") can collide with a
    # layer of a loaded checkpoint.
    name = op.name
    if isinstance(op, DecomposedHardSwish):  # ADD + RELU6, MUL, MUL: the int8 graph's form
        (x,) = args
        gate = keras.layers.ReLU(6.0, name=f"{name}_relu6")(
            ScalarAffine(offset=3.0, name=f"{name}_plus3")(x))
        gate = quantizer(f"{name}_relu6_quant")(gate)
        times = keras.layers.Multiply(name=f"{name}_times")([gate, x])
        return ScalarAffine(scale=1.0 / 6.0, name=f"{name}_sixth")(
            quantizer(f"{name}_times_quant")(times))
    if isinstance(op, keras.layers.Rescaling) and op.offset:  # MUL, ADD
        (x,) = args
        scaled = ScalarAffine(scale=float(op.scale), name=f"{name}_scale")(x)
        return ScalarAffine(offset=float(op.offset), name=f"{name}_offset")(
            quantizer(f"{name}_scale_quant")(scaled))
    return None


def quantization_aware(model, images: np.ndarray | None = None, batch_size: int = 8
                       ) -> tuple[keras.Model, Rewrite]:
    """The QAT model of `model` (see the module docstring) and what was rewritten. With
    `images`, every activation range starts at the float model's min and max on them (the
    post-training calibration QAT starts from)."""
    graph = tflite_graph(model, int8=True)
    parents, readers = graph_links(graph)
    by_name = operations(graph)
    rewrite = Rewrite()
    plan = plan_folding(graph)
    rewrite.folded, rewrite.unfolded = plan.folded, plan.unfolded
    output_of = plan.output_of
    folded = set(rewrite.folded)
    made = {}  # new conv -> old conv

    def clone(op):
        new = _quantized_conv(op)
        if new is None:
            return op
        made[new] = op
        return new

    def needs_quantizer(op) -> bool:
        if op.name in folded:  # gone: its conv's output is the BN's
            return False
        if _keeps_scale(op):
            return False
        output = output_of.get(op.name, op.name)
        reading = readers.get(output, [])
        return not (reading and all(_is_fusable_relu(by_name[r]) for r in reading))

    def quantizer(name: str) -> ActivationQuantizer:
        rewrite.quantizers.append(name)
        return ActivationQuantizer(name=name)

    def call(op, *args, **kwargs):
        if op.name in folded:
            return args[0]
        outputs = _op_by_op(op, args, quantizer)
        if outputs is None:
            outputs = op(*args, **kwargs)
        source = made.get(op, op)
        if needs_quantizer(source):
            outputs = quantizer(f"{source.name}_quant")(outputs)
        return outputs

    inputs = keras.Input(batch_shape=graph.input.shape, dtype=graph.input.dtype,
                         name=graph.input.name)
    quantized_input = ActivationQuantizer(fixed=INPUT_RANGE, name="input_quant")(inputs)
    outputs = graph._run_through_graph([quantized_input], operation_fn=clone, call_fn=call)
    qat = keras.Model(inputs, outputs, name=graph.name)
    for new, old in made.items():
        set_folded(new, old, plan)
    if images is not None:
        calibrate(qat, images, batch_size)
    return qat, rewrite


def calibrate(qat: keras.Model, images: np.ndarray, batch_size: int = 8) -> None:
    """Set every learned activation range to the min and max its activation reaches on
    `images`, with activation quantization off (kernels stay quantized): the ranges are read
    from a twin of `qat` that shares its layers but has each activation quantizer replaced by
    an identity (a switch on the quantizer would be read once, when a model is traced)."""
    quantizers = [layer for layer in qat.layers
                  if isinstance(layer, ActivationQuantizer) and layer.fixed is None]

    def unquantized(layer):
        if isinstance(layer, ActivationQuantizer):
            return keras.layers.Identity(name=layer.name)
        return layer

    twin = keras.models.clone_model(qat, clone_function=unquantized)
    probe = keras.Model(twin.inputs, [twin.get_layer(q.name).input for q in quantizers])
    low = [np.inf] * len(quantizers)
    high = [-np.inf] * len(quantizers)
    for start in range(0, len(images), batch_size):
        batch = images[start:start + batch_size].astype(np.float32)
        for i, value in enumerate(probe.predict_on_batch(batch)):
            low[i] = min(low[i], float(np.min(value)))
            high[i] = max(high[i], float(np.max(value)))
    for quantizer, lo, hi in zip(quantizers, low, high, strict=True):
        quantizer.set_range(lo, hi)


@register_method("qat", lr_scale=0.1, stage=3)
def qat_method(model, data, value=None):
    """Quantization-aware training: fake int8 on the int8 graph, BN folded, ranges learned."""
    qat, rewrite = quantization_aware(model, data.train_images)
    return qat, {"folded_batchnorm": len(rewrite.folded), "unfolded_batchnorm": rewrite.unfolded,
                 "activation_quantizers": len(rewrite.quantizers)}
