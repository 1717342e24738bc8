"""The layers of a quantization-aware model: what a QAT checkpoint holds and what the int8
converters read.

Example::

    x = ActivationQuantizer(name="conv_fq")(x)     # learned per-tensor range (EMA of min/max)
    y = QuantConv2D(16, 3, padding="same")(x)       # kernel fake-quantized per output channel
    quantization_ranges(model)                      # {"conv_fq": (-1.9, 5.8), ...}

Each layer calls ``keras.quantizers.fake_quant_with_min_max_vars``, which the TensorFlow backend
writes as ``tf.quantization.fake_quant_with_min_max_vars[_per_channel]``: the TFLite converter
turns those ops into the quantization parameters of the tensors they sit on (int8 activations
with the learned range, int8 weights symmetric per channel as TFLite's int8 spec asks:
https://ai.google.dev/edge/litert/models/quantization_spec), and tf2onnx into
QuantizeLinear/DequantizeLinear pairs. Activation ranges follow an exponential moving average
of each batch's min and max while training (Jacob et al. 2018, "Quantization and Training of
Neural Networks for Efficient Integer-Arithmetic-Only Inference", section 3.1), and are frozen
in inference. Kernel ranges are each channel's max |w| at every step.

This module is imported when a checkpoint is loaded, so every command that reads a run folder
can load a quantization-aware model; `zoo.compress.qat` builds one.
"""

from __future__ import annotations

import keras
from keras import ops

from zoo.export.tflite_graph import DepthToSpaceUpsample

# The smallest range a kernel channel may have: an all-zero channel (pruned, or dead) still
# needs a valid scale.
MIN_KERNEL_RANGE = 1e-6


def fake_quant_kernel(kernel, axis: int):
    """`kernel` fake-quantized to int8, symmetric per channel along `axis` (zero point 0,
    values -127..127, TFLite's int8 weight spec)."""
    reduce = tuple(i for i in range(len(kernel.shape)) if i != axis)
    limit = ops.maximum(ops.max(ops.abs(kernel), axis=reduce), MIN_KERNEL_RANGE)
    return keras.quantizers.fake_quant_with_min_max_vars(kernel, -limit, limit, num_bits=8,
                                                         narrow_range=True, axis=axis)


@keras.saving.register_keras_serializable(package="zoo")
class ActivationQuantizer(keras.layers.Layer):
    """Fake quantization of an activation to 8 bits, per tensor, asymmetric.

    The range [`min`, `max`] is a pair of non-trainable weights: an exponential moving average
    (`decay`) of the batch's min and max while training, fixed in inference. A `fixed` range
    (the raw 0..255 input) never moves."""

    def __init__(self, decay: float = 0.99, fixed: tuple[float, float] | None = None,
                 **kwargs):
        super().__init__(**kwargs)
        self.decay = float(decay)
        self.fixed = None if fixed is None else (float(fixed[0]), float(fixed[1]))

    def build(self, input_shape):
        low, high = self.fixed or (-6.0, 6.0)
        self.min = self.add_weight(name="min", shape=(), trainable=False,
                                   initializer=keras.initializers.Constant(low))
        self.max = self.add_weight(name="max", shape=(), trainable=False,
                                   initializer=keras.initializers.Constant(high))

    def call(self, x, training=False):
        if training and self.fixed is None:
            # The range always holds 0, as the int8 zero point must (and fake_quant nudges to).
            low = ops.minimum(ops.min(x), 0.0)
            high = ops.maximum(ops.max(x), 0.0)
            self.min.assign(self.decay * self.min + (1.0 - self.decay) * ops.cast(low, "float32"))
            self.max.assign(self.decay * self.max + (1.0 - self.decay) * ops.cast(high,
                                                                                  "float32"))
        return keras.quantizers.fake_quant_with_min_max_vars(x, self.min, self.max, num_bits=8)

    def set_range(self, low: float, high: float) -> None:
        self.min.assign(min(float(low), 0.0))
        self.max.assign(max(float(high), 0.0))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "decay": self.decay, "fixed": self.fixed}


@keras.saving.register_keras_serializable(package="zoo")
class QuantConv2D(keras.layers.Conv2D):
    """`Conv2D` whose kernel is fake-quantized per output channel (axis 3)."""

    def convolution_op(self, inputs, kernel):
        return super().convolution_op(inputs, fake_quant_kernel(kernel, axis=3))


@keras.saving.register_keras_serializable(package="zoo")
class QuantDepthwiseConv2D(keras.layers.DepthwiseConv2D):
    """`DepthwiseConv2D` whose kernel is fake-quantized per channel (axis 2 of the Keras kernel,
    the channel axis TFLite's DEPTHWISE_CONV_2D quantizes)."""

    def call(self, inputs):
        outputs = ops.depthwise_conv(inputs, fake_quant_kernel(self.kernel, axis=2),
                                     strides=self.strides, padding=self.padding,
                                     dilation_rate=self.dilation_rate,
                                     data_format=self.data_format)
        if self.use_bias:
            outputs = ops.add(outputs, self.bias)
        return self.activation(outputs) if self.activation is not None else outputs


@keras.saving.register_keras_serializable(package="zoo")
class QuantDepthToSpaceUpsample(DepthToSpaceUpsample):
    """`DepthToSpaceUpsample` whose 1x1 conv is a `QuantConv2D`."""

    def __init__(self, filters: int, activation=None, **kwargs):
        super().__init__(filters, activation, **kwargs)
        self.conv = QuantConv2D(4 * self.filters, 1, name="pointwise")


@keras.saving.register_keras_serializable(package="zoo")
class ScalarAffine(keras.layers.Layer):
    """``x * scale + offset`` with Python-number constants: one MUL or ADD op (or both), named,
    for the QAT graph's op-by-op spelling of multi-op layers (`zoo.compress.qat`)."""

    def __init__(self, scale: float = 1.0, offset: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.scale, self.offset = float(scale), float(offset)

    def call(self, x):
        if self.scale != 1.0:
            x = x * self.scale
        return x + self.offset if self.offset != 0.0 else x

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "scale": self.scale, "offset": self.offset}


QUANTIZED_LAYERS = (QuantConv2D, QuantDepthwiseConv2D, QuantDepthToSpaceUpsample)


def quantization_ranges(model) -> dict[str, tuple[float, float]]:
    """Every `ActivationQuantizer`'s range, by layer name."""
    return {layer.name: (float(layer.min.numpy()), float(layer.max.numpy()))
            for layer in model.layers if isinstance(layer, ActivationQuantizer)}


def is_quantization_aware(model) -> bool:
    """Whether `model` carries fake quantization (a QAT model)."""
    return any(isinstance(layer, (ActivationQuantizer, *QUANTIZED_LAYERS))
               for layer in model.layers)
