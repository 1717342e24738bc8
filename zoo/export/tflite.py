"""TFLite formats: float32, float16, dynamic-range and full-integer int8, run with LiteRT.

Example::

    ctx = ExportContext(...)
    art = FORMATS.get("tflite-int8").convert(model, Path("m.int8.tflite"),
                                             Int8Options(io="uint8"), ctx)
    art.input.scale, art.input.zero_point   # (1.0, 0) for uint8 I/O on 0..255 images

Every variant converts one batch-1 SavedModel written by `model.export(..., "tf_saved_model")`
with `TFLiteConverter.from_saved_model`: `from_keras_model` keeps a dynamic batch (SHAPE /
STRIDED_SLICE / PACK around TRANSPOSE_CONV, several XNNPACK partitions) and
`from_concrete_functions(..., trackable_obj)` leaves variables unfrozen (NaN output); see
/work/shared/CONVERSION-NOTES.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zoo.errors import ConfigError
from zoo.export.base import (
    Artifact,
    ExportContext,
    LiteRTRunner,
    delegate_line,
    register_format,
    tflite_ops,
)
from zoo.export.outputs import check_output, is_label_output, with_output
from zoo.export.tflite_graph import check_transpose_conv, tflite_graph

IO_TYPES = ("uint8", "int8", "float")


@dataclass
class FloatOptions:
    """tflite, tflite-fp16 and tflite-dynamic: the output (logits, labels or labels-nearest,
    see zoo/export/outputs.py) and how 2x2 stride-2 transposed convs are written
    (depth-to-space or native TRANSPOSE_CONV, see zoo/export/tflite_graph.py)."""

    output: str = "logits"
    transpose_conv: str = "depth-to-space"

    def __post_init__(self):
        check_output(self.output)
        check_transpose_conv(self.transpose_conv)


@dataclass
class Int8Options:
    """Full-integer quantization: I/O type and how many training images calibrate it."""

    io: str = "uint8"
    calibration_images: int = 100
    output: str = "logits"
    transpose_conv: str = "depth-to-space"

    def __post_init__(self):
        check_output(self.output)
        check_transpose_conv(self.transpose_conv)
        if self.io not in IO_TYPES:
            raise ConfigError(f"io must be one of {', '.join(IO_TYPES)}, got {self.io!r}")
        if int(self.calibration_images) < 1:
            raise ConfigError(f"calibration_images must be >= 1, got {self.calibration_images}")


def saved_model(model, context: ExportContext) -> Path:
    """The batch-1 SavedModel of `model`, written once per export and shared by all variants."""
    import tensorflow as tf

    key = ("saved_model", id(model))
    # The model is kept beside its path: an id() can be reused once its object is freed.
    cached = context.cache.get(key)
    if cached is None or cached[0] is not model:
        h, w = context.input_size
        path = context.scratch / f"saved_model_{len(context.cache)}"
        model.export(str(path), "tf_saved_model", verbose=False,
                     input_signature=[tf.TensorSpec([1, h, w, 3], tf.float32, name="image")])
        context.cache[key] = (model, path)
    return context.cache[key][1]


def _converter(model, options, context: ExportContext, int8: bool = False):
    """The converter of `model` with the options' output, written as `tflite_graph` does for
    XNNPACK; the rewritten graph is cached, so the float variants share one SavedModel."""
    import tensorflow as tf

    key = ("tflite_graph", id(model), options.output, options.transpose_conv, int8)
    cached = context.cache.get(key)
    if cached is None or cached[0] is not model:
        source = with_output(model, options.output, cache=context.cache)
        context.cache[key] = (model, tflite_graph(source, int8, options.transpose_conv))
    graph = context.cache[key][1]
    return tf.lite.TFLiteConverter.from_saved_model(str(saved_model(graph, context)))


METADATA_NAME = "mobileseg_zoo"


def with_metadata(data: bytes, meta: dict[str, str]) -> bytes:
    """`data` (a .tflite flatbuffer) with `meta` as a JSON metadata buffer named
    ``mobileseg_zoo``: input size, normalization, class names, arch, alpha and run id travel
    inside the file. (MediaPipe's ImageSegmenter wants its own TFLITE_METADATA schema, whose
    writer cannot share this environment; see CONVERSION-NOTES.)"""
    import json

    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(data))
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(json.dumps(meta, sort_keys=True).encode(), np.uint8)
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = METADATA_NAME
    entry.buffer = len(model.buffers) - 1
    model.metadata = [*(model.metadata or []), entry]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def read_metadata(path: Path) -> dict[str, str]:
    """The zoo's metadata embedded in a .tflite file ({} when there is none)."""
    import json

    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(path))
    for entry in model.metadata or []:
        name = entry.name.decode() if isinstance(entry.name, bytes) else entry.name
        if name == METADATA_NAME:
            return json.loads(bytes(model.buffers[entry.buffer].data).decode())
    return {}


def _artifact(fmt: str, data: bytes, out_path: Path, context: ExportContext, options,
              details: dict | None = None) -> Artifact:
    out_path.write_bytes(with_metadata(data, context.metadata()))
    runner = LiteRTRunner(out_path)
    details = {**(details or {}), "output": options.output, **runner.delegate_report()}
    if "TRANSPOSE_CONV" in (ops := tflite_ops(out_path)) or "DEPTH_TO_SPACE" in ops:
        details["transpose_conv"] = options.transpose_conv
    print(f"{fmt}: {delegate_line(details)}")
    return Artifact(fmt, out_path, "litert", runner.input_info, runner.output_info,
                    ops=ops, details=details)


@register_format("tflite", FloatOptions, suffix=".tflite")
def convert_float32(model, out_path: Path, options: FloatOptions, context: ExportContext
                    ) -> Artifact:
    """float32 weights and activations."""
    return _artifact("tflite", _converter(model, options, context).convert(), out_path, context,
                     options)


@register_format("tflite-fp16", FloatOptions, suffix=".fp16.tflite")
def convert_float16(model, out_path: Path, options: FloatOptions, context: ExportContext
                    ) -> Artifact:
    """float16 weights (dequantized to float32 on CPU, native on GPU delegates)."""
    import tensorflow as tf

    converter = _converter(model, options, context)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_types = [tf.float16]
    return _artifact("tflite-fp16", converter.convert(), out_path, context,
                     options)


@register_format("tflite-dynamic", FloatOptions, suffix=".dynamic.tflite")
def convert_dynamic(model, out_path: Path, options: FloatOptions, context: ExportContext
                    ) -> Artifact:
    """int8 weights, float activations (dynamic-range quantization, no calibration data)."""
    import tensorflow as tf

    converter = _converter(model, options, context)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    return _artifact("tflite-dynamic", converter.convert(), out_path, context,
                     options)


def int8_bytes(model, options: Int8Options, context: ExportContext) -> bytes:
    """The full-integer model, calibrated on training images; cached so that tflite-int8 and
    edgetpu with the same options convert once."""
    import tensorflow as tf
    from tqdm import tqdm

    key = ("int8", id(model), options.io, int(options.calibration_images), options.output,
           options.transpose_conv)
    if key in context.cache and context.cache[key][0] is model:
        return context.cache[key][1]
    images = context.calibration_images(int(options.calibration_images))

    def representative():
        for image in tqdm(images, desc="int8 calibration", unit="img", leave=False):
            yield [image[None].astype(np.float32)]

    # Same math with hard-swish as ADD + MUL, which XNNPACK runs in int8 (see int8_graph).
    converter = _converter(model, options, context, int8=True)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if options.io != "float":
        io_type = tf.uint8 if options.io == "uint8" else tf.int8
        converter.inference_input_type = io_type
        if not is_label_output(options.output):  # a label map is integer already
            converter.inference_output_type = io_type
    context.cache[key] = (model, converter.convert())
    return context.cache[key][1]


@register_format("tflite-int8", Int8Options, suffix=".int8.tflite")
def convert_int8(model, out_path: Path, options: Int8Options, context: ExportContext
                 ) -> Artifact:
    """Full-integer int8 (TFLITE_BUILTINS_INT8) with uint8, int8 or float I/O."""
    return _artifact("tflite-int8", int8_bytes(model, options, context), out_path, context,
                     options,
                     {"io": options.io, "calibration_images": int(options.calibration_images),
                      "calibration_sha256": context.calibration_sha256})
