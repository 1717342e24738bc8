"""The Keras graph the TFLite converter gets: same weights, same math, ops that LiteRT's XNNPACK
delegate runs fast.

Example::

    graph = tflite_graph(model)                        # float formats
    graph = tflite_graph(model, int8=True)             # + hard-swish as ADD + MUL
    graph = tflite_graph(model, transpose_conv="native")   # keep TRANSPOSE_CONV (Edge TPU)

Transposed conv: a 2x2 stride-2 Conv2DTranspose (the MobileUNet decoder's upsampling) never
overlaps its taps, so it equals a 1x1 conv to 4x the channels followed by DEPTH_TO_SPACE
(pixel shuffle): ``y[2i+a, 2j+b, o] = sum_c x[i, j, c] K[a, b, o, c] + bias[o]``. XNNPACK runs
TRANSPOSE_CONV as a sub-convolution whose inner loop is its 1-row igemm microkernel
(``xnn_f32_igemm_minmax_ukernel_1x32``, which `perf` shows as the hot spot of the MobileUNet
decoder), while the 1x1 conv is an ordinary gemm (``python -m zoo.bench grid --transpose-conv
native`` times both forms side by side; README, "Benchmarks"). onnxruntime's ConvTranspose is not
slow, so the ONNX export keeps it; the Edge TPU lacks DEPTH_TO_SPACE, so edgetpu keeps it too.
The decoder's design (learned 2x2 stride-2 upsampling) is unchanged: this is one op written as
two.

Hard-swish (int8 only): see `zoo.export.int8_graph`.
"""

from __future__ import annotations

import weakref

import keras
import numpy as np

from zoo.errors import ConfigError
from zoo.export.int8_graph import int8_friendly

TRANSPOSE_CONV_MODES = ("depth-to-space", "native")


@keras.saving.register_keras_serializable(package="zoo")
class DepthToSpaceUpsample(keras.layers.Layer):
    """A 2x2 stride-2 transposed conv as 1x1 conv (4 x filters) + depth-to-space."""

    def __init__(self, filters: int, activation=None, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.activation = keras.activations.get(activation)
        self.conv = keras.layers.Conv2D(4 * self.filters, 1, name="pointwise")

    def build(self, input_shape):
        self.conv.build(input_shape)

    def call(self, x):
        import tensorflow as tf

        return self.activation(tf.nn.depth_to_space(self.conv(x), 2))

    def compute_output_shape(self, input_shape):
        n, h, w, _ = input_shape
        return (n, None if h is None else 2 * h, None if w is None else 2 * w, self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters,
                "activation": keras.activations.serialize(self.activation)}

    def set_from_transpose(self, layer) -> None:
        """Copy the weights of the Conv2DTranspose this layer replaces."""
        kernel, *bias = layer.get_weights()  # kernel (2, 2, out, in)
        _, _, out, inp = kernel.shape
        pointwise = np.transpose(kernel, (3, 0, 1, 2)).reshape(1, 1, inp, 4 * out)
        bias = np.tile(bias[0], 4) if bias else np.zeros(4 * out, kernel.dtype)
        self.conv.set_weights([pointwise, bias])


def _is_shuffle_transpose(layer) -> bool:
    """A Conv2DTranspose that is exactly a pixel shuffle: kernel = stride = 2, no dilation,
    'same' padding, no output_padding."""
    return (isinstance(layer, keras.layers.Conv2DTranspose)
            and tuple(layer.kernel_size) == (2, 2) and tuple(layer.strides) == (2, 2)
            and tuple(layer.dilation_rate) == (1, 1) and layer.padding == "same"
            and layer.output_padding is None and layer.data_format == "channels_last")


# model -> (its depth-to-space graph, [(layer, its weights)] of the transposes and the layers
# that replace them): asked again, the same graph while none of them changed, so the float and
# int8 graphs of a model without hard-swish are one object and the TFLite variants of an
# export convert one SavedModel (`tflite_convert.saved_model` caches by graph).
_GRAPHS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _unchanged(layers: list) -> bool:
    return all(len(weights) == len(layer.weights) and all(
        np.array_equal(w, v) for w, v in zip(weights, layer.get_weights(), strict=True))
        for layer, weights in layers)


def depth_to_space_transposes(model):
    """`model` with every 2x2 stride-2 Conv2DTranspose replaced by `DepthToSpaceUpsample`
    carrying its weights; other layers are shared. Returns `model` itself when it has none.
    Asked again for the same model, the same graph, unless a transpose's weights changed."""
    if not any(_is_shuffle_transpose(layer) for layer in model.layers):
        return model
    cached = _GRAPHS.get(model)
    if cached is not None and _unchanged(cached[1]):
        return cached[0]
    made = []

    def clone(layer):
        if not _is_shuffle_transpose(layer):
            return layer
        new = DepthToSpaceUpsample(layer.filters, layer.activation, name=layer.name,
                                   dtype=layer.dtype_policy)
        made.append((new, layer))
        return new

    graph = keras.models.clone_model(model, clone_function=clone)
    for new, old in made:
        new.set_from_transpose(old)
    _GRAPHS[model] = (graph, [(layer, layer.get_weights()) for pair in made for layer in pair])
    return graph


def check_transpose_conv(mode: str) -> None:
    if mode not in TRANSPOSE_CONV_MODES:
        raise ConfigError(f"transpose_conv must be one of {', '.join(TRANSPOSE_CONV_MODES)}, "
                          f"got {mode!r}")


def tflite_graph(model, int8: bool = False, transpose_conv: str = "depth-to-space"):
    """The graph to convert for TFLite (see the module docstring); `model` when nothing
    changes."""
    check_transpose_conv(transpose_conv)
    graph = depth_to_space_transposes(model) if transpose_conv == "depth-to-space" else model
    return int8_friendly(graph) if int8 else graph
