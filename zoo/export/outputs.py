"""What an exported model returns: float logits, or a label map that skips the float upsample.

Example::

    graph = with_output(model, "labels-nearest")            # uint8 (1, H, W) class indices
    graph = with_output(model, "labels", label_dtype="int32")   # Core ML has no uint8 outputs
    with_output(model, "logits") is model

- ``logits``: the model itself, float32 ``(1, H, W, C)``.
- ``labels``: argmax of the full-resolution logits, exactly Keras' prediction; the bilinear
  upsample of C float channels still runs.
- ``labels-nearest``: argmax of the head's logits at the head's own stride (the input of the
  layer ``logits_upsample``: 2 for unet, 4 for deeplabv3plus, 8 for lraspp), then a
  nearest-neighbour upsample of the one-channel label map to ``(H, W)``. The full-resolution
  float tensor is never computed; the price is blockier class boundaries, which the validator
  measures as the mIoU drop against Keras. A model without ``logits_upsample`` (stride 1) gets
  the ``labels`` graph.

Labels are uint8 by default (TFLite, ONNX; at most 256 classes), int32 for Core ML. The graph
form converts cleanly in all three converters: ``tf.argmax`` with its ``output_type`` (int64,
then one cast to uint8 at the head's resolution; int32 for Core ML: Keras' ``ops.cast`` of an
argmax becomes a TF Bitcast, which coremltools cannot convert), and the nearest upsample as
reshape ``(1, h, 1, w, 1)`` -> tile ``(1, 1, s, 1, s)`` -> reshape ``(1, H, W)`` on the labels:
TFLite ARG_MAX, CAST, RESHAPE, TILE, RESHAPE; ONNX ArgMax, Cast, Reshape, Tile, Reshape; MIL
reduce_argmax, reshape, tile, reshape. (``tf.image.resize(..., "nearest")`` on uint8 does not
convert to TFLite builtins: "tf.ResizeNearestNeighbor is neither a custom op nor a flex op".)
XNNPACK has no argmax: in TFLite (fp32, fp16, int8) the graph up to the logits stays one
XNNPACK partition and the ops from ARG_MAX on run after it in LiteRT's own kernels (for
labels-nearest on a tensor s^2 times smaller than the full-resolution logits); the label ops
add no partition. ARG_MAX is not in the Edge TPU's op table either: there the label tail runs
on the CPU, after the mapped segment.
"""

from __future__ import annotations

from typing import Any

import keras

from zoo.errors import ConfigError

OUTPUTS = ("logits", "labels", "labels-nearest")
LABEL_DTYPES = ("uint8", "int32")


def check_output(output: str, what: str = "output") -> str:
    """`output` if it is one of OUTPUTS, else a one-line ConfigError naming the allowed ones."""
    if output not in OUTPUTS:
        raise ConfigError(f"{what} must be one of {', '.join(OUTPUTS)}, got {output!r}")
    return output


def is_label_output(output: str) -> bool:
    return output != "logits"


@keras.saving.register_keras_serializable(package="zoo")
class LabelMap(keras.layers.Layer):
    """Class logits ``(B, h, w, C)`` -> label map ``(B, h * fh, w * fw)``: argmax over classes,
    cast to `label_dtype`, then a nearest-neighbour upsample by `factor` (``(1, 1)``: none).

    The upsample repeats each label over an ``fh x fw`` block, which is TF's nearest resize with
    half-pixel centres for an integer factor (the source pixel is the one whose cell holds the
    output pixel's centre, as for the bilinear upsample it replaces)."""

    def __init__(self, factor: tuple[int, int] = (1, 1), label_dtype: str = "uint8",
                 **kwargs: Any) -> None:
        kwargs.setdefault("dtype", "float32")  # logits are argmaxed in float32
        super().__init__(**kwargs)
        self.factor = (int(factor[0]), int(factor[1]))
        if label_dtype not in LABEL_DTYPES:
            raise ConfigError(f"label_dtype must be one of {', '.join(LABEL_DTYPES)}, "
                              f"got {label_dtype!r}")
        self.label_dtype = label_dtype

    def call(self, logits):
        import tensorflow as tf

        # int64 -> uint8 is one Cast in ONNX (int32 -> uint8 becomes Cast + Cast in tf2onnx).
        index_type = tf.int32 if self.label_dtype == "int32" else tf.int64
        labels = tf.argmax(logits, axis=-1, output_type=index_type)
        if self.label_dtype != "int32":
            labels = tf.cast(labels, self.label_dtype)
        fh, fw = self.factor
        if (fh, fw) == (1, 1):
            return labels
        _, h, w = labels.shape
        labels = tf.reshape(labels, (-1, h, 1, w, 1))
        labels = tf.tile(labels, (1, 1, fh, 1, fw))
        return tf.reshape(labels, (-1, h * fh, w * fw))

    def compute_output_shape(self, input_shape):
        b, h, w, _ = input_shape
        fh, fw = self.factor
        return (b, None if h is None else h * fh, None if w is None else w * fw)

    def compute_output_spec(self, logits):
        return keras.KerasTensor(self.compute_output_shape(logits.shape), self.label_dtype)

    def get_config(self) -> dict:
        return {**super().get_config(), "factor": self.factor, "label_dtype": self.label_dtype}


def head_logits(model):
    """The head's logits before the final upsample and the upsample factor ``(fh, fw)``; the
    model's output and ``(1, 1)`` when it has no ``logits_upsample`` layer."""
    try:
        upsample = model.get_layer("logits_upsample")
    except ValueError:
        return model.output, (1, 1)
    logits = upsample.input
    (_, h, w, _), (_, out_h, out_w, _) = logits.shape, model.output.shape
    if out_h % h or out_w % w:
        raise ConfigError(f"{model.name}: output {out_h}x{out_w} is not an integer multiple of "
                          f"the head's {h}x{w}")
    return logits, (out_h // h, out_w // w)


def with_output(model, output: str, label_dtype: str = "uint8", cache: dict | None = None):
    """The Keras model to convert for `output` (see the module docstring): `model` itself for
    "logits"; otherwise a model sharing its layers whose output is the label map
    ``(B, H, W)`` in `label_dtype`. With `cache` (an `ExportContext.cache`) the same wrapped
    model is returned for the same model and output, so TFLite variants share one SavedModel.
    """
    check_output(output)
    if output == "logits":
        return model
    key = ("output", id(model), output, label_dtype)
    # The model is kept beside its wrapper: an id() can be reused once its object is freed.
    if cache is not None and key in cache and cache[key][0] is model:
        return cache[key][1]
    num_classes = int(model.output.shape[-1])
    if label_dtype == "uint8" and num_classes > 256:
        raise ConfigError(f"output {output}: {num_classes} classes do not fit a uint8 label map "
                          "(at most 256)")
    if output == "labels":
        logits, factor = model.output, (1, 1)
    else:
        logits, factor = head_logits(model)
    labels = LabelMap(factor, label_dtype, name="labels")(logits)
    wrapped = keras.Model(model.input, labels, name=f"{model.name}_{output.replace('-', '_')}")
    if cache is not None:
        cache[key] = (model, wrapped)
    return wrapped
