"""Converting to TFLite, shared by the TFLite and Edge TPU formats.

Example::

    data = float_bytes(model, context, output="logits", transpose_conv="depth-to-space")
    data, sha256 = int8_bytes(model, context, io="uint8", calibration_images=100,
                              output="logits", transpose_conv="native")
    artifact = litert_artifact("tflite", data, out_path, context, options=options)
    read_metadata(out_path)      # the zoo's metadata inside the file

Every variant converts one batch-1 SavedModel (`write_saved_model`: what Keras'
``model.export(..., "tf_saved_model")`` writes, faster) with
`TFLiteConverter.from_saved_model`: `from_keras_model` keeps a dynamic batch (SHAPE /
STRIDED_SLICE / PACK around TRANSPOSE_CONV, which splits the XNNPACK graph), and
`from_concrete_functions(..., trackable_obj)` leaves variables unfrozen (NaN output). The graph
converted is `tflite_graph`'s (same weights and math, ops XNNPACK runs fast).

Sparse weights: when the model's convolution kernels hold exact zeros (a pruned run), the
float32 and float16 variants are converted with ``tf.lite.Optimize.EXPERIMENTAL_SPARSITY``
(`sparse_kernels`, `float_bytes`), which stores each conv/dense weight with at least 30 %
zeros in TFLite's sparse format, densified once at load time; `read_weights` reads every
weight back as the dense array the kernels compute with.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zoo.checks import boolean, optional
from zoo.export.artifact import Artifact
from zoo.export.context import ExportContext
from zoo.export.options import QuantizedOptions, int_range, option
from zoo.export.outputs import is_label_output, with_output
from zoo.export.runtimes.litert import LiteRTRunner, delegate_line, tflite_ops
from zoo.export.tflite_graph import tflite_graph
from zoo.files import write_bytes_atomic

METADATA_NAME = "mobileseg_zoo"
# Input types MediaPipe's ImageSegmenter feeds ("Requested one of these types: uint8/float32").
MEDIAPIPE_INPUTS = ("uint8", "float32")


def saved_model(model, context: ExportContext) -> Path:
    """The batch-1 SavedModel of `model`, written once per export and shared by all variants."""
    key = ("saved_model", id(model))
    # The model is kept beside its path: an id() can be reused once its object is freed.
    cached = context.cache.get(key)
    if cached is None or cached[0] is not model:
        h, w = context.input_size
        path = context.scratch / f"saved_model_{len(context.cache)}"
        write_saved_model(model, path, [1, h, w, 3])
        context.cache[key] = (model, path)
    return context.cache[key][1]


def write_saved_model(model, path: Path | str, shape: list[int]) -> None:
    """The SavedModel of `model`'s inference call on float32 ``image`` of `shape`: what
    ``model.export(path, "tf_saved_model", input_signature=...)`` writes for the converter (a
    ``serving_default`` signature, input ``image``, outputs ``output_0``, ``output_1``, ...)
    with the variables alone in its object graph. Keras' export archive tracks the model
    itself, and walking every layer's attributes for the SavedModel made the export about three
    times slower (17 s against 6 s, one run each, 64 px mobileunet, TF 2.21 / Keras 3)."""
    import tensorflow as tf

    spec = tf.TensorSpec(shape, tf.float32, name="image")
    serve = tf.function(lambda image: model(image, training=False), input_signature=[spec])
    module = tf.Module()
    module.weights = [v.value for v in model.weights]
    tf.saved_model.save(module, str(path),
                        signatures={"serving_default": serve.get_concrete_function()})


def converter(model, context: ExportContext, *, output: str, transpose_conv: str,
              int8: bool = False):
    """The converter of `model` with `output`, written as `tflite_graph` does for XNNPACK; the
    rewritten graph is cached, so the float variants share one SavedModel."""
    import tensorflow as tf

    graph = _graph(model, context, output=output, transpose_conv=transpose_conv, int8=int8)
    return tf.lite.TFLiteConverter.from_saved_model(str(saved_model(graph, context)))


def _graph(model, context: ExportContext, *, output: str, transpose_conv: str, int8: bool):
    """`tflite_graph` of `model` with `output`, cached; the int8 graph is the float one with
    hard-swish rewritten, so a model without hard-swish converts one SavedModel for both."""
    key = ("tflite_graph", id(model), output, transpose_conv, int8)
    cached = context.cache.get(key)
    if cached is None or cached[0] is not model:
        if int8:  # the float graph has its transposed convs written already
            graph = tflite_graph(_graph(model, context, output=output,
                                        transpose_conv=transpose_conv, int8=False), True,
                                 "native")
        else:
            graph = tflite_graph(with_output(model, output, cache=context.cache), False,
                                 transpose_conv)
        context.cache[key] = (model, graph)
    return context.cache[key][1]


# The converter stores a conv/dense weight sparse when at least this fraction of it is exactly
# zero (kMinSparsityLevel of its DenseToSparse pass, tensorflow/compiler/mlir/lite/transforms/
# dense_to_sparse.cc); the export asks for the pass only when some kernel reaches it.
SPARSE_MIN_ZEROS = 0.3
# The weight kinds converted with EXPERIMENTAL_SPARSITY when the kernels are sparse. Measured on
# TF 2.21 / ai-edge-litert 2.3 (mobileunet 0.25, 64 px, 75 % zeros): float32 and float16 stay
# lossless (outputs identical to the dense file), one XNNPACK partition (the delegate unpacks
# the DENSIFY ops at load), 3x smaller files. Dynamic-range int8 with sparse weights makes
# XNNPACK fail to prepare ("failed to delegate CONV_2D node": the model does not load; compare
# tensorflow/tensorflow#60762), and full-integer int8 gains 25 % on disk but its gzip download
# grows 14 % (int8 zeros compress better than the sparse index arrays), so both stay dense.
SPARSE_WEIGHTS = ("float32", "float16")


def sparse_kernels(model, min_zeros: float = SPARSE_MIN_ZEROS) -> list[str]:
    """The kernels of `model` (its rank-2 and rank-4 weights: conv, depthwise, transposed conv
    and dense kernels) with at least `min_zeros` of their values exactly zero: the weights
    the converter's sparsity pass would store sparse. Decided from the weights alone: the
    export knows nothing of how the model was compressed."""
    names = []
    for variable in model.weights:
        if len(variable.shape) not in (2, 4):
            continue
        values = np.asarray(variable.numpy())
        if values.size and np.count_nonzero(values == 0) >= min_zeros * values.size:
            names.append(variable.path)
    return names


def uses_sparsity(model, weights: str) -> bool:
    """Whether `float_bytes` converts `model` with "float32", "float16" or "dynamic" weights
    with the sparsity optimisation: a kind of `SPARSE_WEIGHTS` and a kernel of
    `sparse_kernels`."""
    return weights in SPARSE_WEIGHTS and bool(sparse_kernels(model))


def float_bytes(model, context: ExportContext, *, output: str, transpose_conv: str,
                weights: str = "float32") -> bytes:
    """float32 weights; "float16" weights; or "dynamic" (int8 weights, float activations).
    float32 and float16 store sparse kernels sparse (`SPARSE_WEIGHTS`)."""
    import tensorflow as tf

    conv = converter(model, context, output=output, transpose_conv=transpose_conv)
    if weights != "float32":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
    if weights == "float16":
        conv.target_spec.supported_types = [tf.float16]
    if uses_sparsity(model, weights):
        # Alone it keeps float32 weights; with DEFAULT it encodes the float16 ones (tf.lite.
        # Optimize: "can be used alone to optimize float32 models with sparse weights").
        conv.optimizations = [*conv.optimizations, tf.lite.Optimize.EXPERIMENTAL_SPARSITY]
    return conv.convert()


def int8_bytes(model, context: ExportContext, *, io: str, calibration_images: int,
               output: str, transpose_conv: str) -> tuple[bytes, str]:
    """The full-integer model calibrated on training images, and the calibration set's sha256;
    cached so that tflite-int8 and edgetpu with the same options convert once. A model
    without learned ranges is quantized from its `int8_calibration`, which the per-layer
    report and the mixed-precision search share."""
    import tensorflow as tf

    from zoo.quantize import is_quantization_aware

    key = ("int8", id(model), io, int(calibration_images), output, transpose_conv)
    if key in context.cache and context.cache[key][0] is model:
        return context.cache[key][1]
    if is_quantization_aware(model):
        conv, sha256 = int8_converter(model, context, calibration_images=calibration_images,
                                      output=output, transpose_conv=transpose_conv)
        if io != "float":
            io_type = tf.uint8 if io == "uint8" else tf.int8
            conv.inference_input_type = io_type
            if not is_label_output(output):  # a label map is integer already
                conv.inference_output_type = io_type
        data = conv.convert()
        if io == "uint8":
            data = pixels_as_input(data)
    else:
        calibration, sha256 = int8_calibration(
            model, context, calibration_images=calibration_images, output=output,
            transpose_conv=transpose_conv)
        data = calibration.quantized([], io, integer_output=not is_label_output(output))
    context.cache[key] = (model, (data, sha256))
    return context.cache[key][1]


def int8_converter(model, context: ExportContext, *, calibration_images: int, output: str,
                   transpose_conv: str):
    """(the converter set up for full-integer int8 with float I/O, calibration sha256).

    The calibration images always go in: the converter keeps the range of every tensor a
    fake-quant op sits on (a quantization-aware model's learned ranges) and calibrates the
    others (`zoo.export.int8_check` says which); with ``TFLITE_BUILTINS_INT8`` and no
    representative dataset it refuses a SavedModel even when every range was learned."""
    import tensorflow as tf
    from tqdm import tqdm

    images, sha256 = context.calibration(int(calibration_images))

    def representative():
        for image in tqdm(images, desc="int8 calibration", unit="img", leave=False):
            yield [image[None].astype(np.float32)]

    # Same math with hard-swish as ADD + MUL, which XNNPACK runs in int8 (see int8_graph).
    conv = converter(model, context, output=output, transpose_conv=transpose_conv, int8=True)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    return conv, sha256


def int8_calibration(model, context: ExportContext, *, calibration_images: int, output: str,
                     transpose_conv: str):
    """(the `Int8Calibration` of `model`'s int8 converter, calibration sha256), cached: the
    plain int8 model, its per-layer report and the mixed-precision candidates come from one
    calibration."""
    from zoo.export.int8_calibration import Int8Calibration

    key = ("int8_calibration", id(model), int(calibration_images), output, transpose_conv)
    if key not in context.cache or context.cache[key][0] is not model:
        conv, sha256 = int8_converter(model, context, calibration_images=calibration_images,
                                      output=output, transpose_conv=transpose_conv)
        context.cache[key] = (model, (Int8Calibration(conv), sha256))
    return context.cache[key][1]


def report_images(context: ExportContext, images: int, calibration_images: int) -> np.ndarray:
    """The first `images` validation images of the export (calibration images when the
    context has none): what the per-layer report and the precision search run on."""
    source = context.validation_images
    if source is None:
        source = context.calibration_images(int(calibration_images))
    return source[:int(images)]


def int8_layer_errors(model, context: ExportContext, data: bytes, *, images: int,
                      calibration_images: int, output: str, transpose_conv: str) -> list[dict]:
    """The per-layer error report (`zoo.export.int8_report`) of the int8 file `data` on
    `images` report images; [] for 0. A quantization-aware model is compared with its own
    fake-quantized activations, any other with LiteRT's QuantizationDebugger on the
    calibration `data` was quantized from."""
    from zoo.export.int8_report import log_lines, qat_layer_errors
    from zoo.quantize import is_quantization_aware

    if not images:
        return []
    source = report_images(context, images, calibration_images)
    if is_quantization_aware(model):
        rows = qat_layer_errors(model, data, source)
    else:
        calibration, _ = int8_calibration(model, context, calibration_images=calibration_images,
                                          output=output, transpose_conv=transpose_conv)
        rows = calibration.layer_errors(source, [layer.name for layer in model.layers])
    print(f"per-layer int8 error on {len(source)} images, worst first:")
    print("\n".join(log_lines(rows)))
    return rows


def pixels_as_input(data: bytes) -> bytes:
    """A uint8-input model whose input tensor is the raw pixels: scale 1, zero point 0.

    The converter calibrates the uint8 input's range from the calibration images, so an image
    set without pure black or white gets, say, scale 0.98 and zero point 3, and every app that
    feeds the camera's uint8 pixels as they are (MediaPipe's ImageSegmenter does) sees shifted
    inputs. The input only feeds QUANTIZE ops (uint8 -> the graph's int8), which requantize
    from whatever the input's parameters say, so setting them to (1, 0) changes nothing but
    what the input means. Left unchanged when another op reads the input directly.
    """
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(data))
    graph = model.subgraphs[0]
    index = graph.inputs[0]
    tensor = graph.tensors[index]
    codes = {i: op.builtinCode for i, op in enumerate(model.operatorCodes)}
    readers = [op for op in graph.operators if index in list(op.inputs)]
    if tensor.type != schema.TensorType.UINT8 or not readers or any(
            max(codes[op.opcodeIndex], 0) != schema.BuiltinOperator.QUANTIZE for op in readers):
        return data
    tensor.quantization.scale = [1.0]
    tensor.quantization.zeroPoint = [0]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def with_metadata(data: bytes, meta: dict[str, str]) -> bytes:
    """`data` (a .tflite flatbuffer) with `meta` as a JSON metadata buffer named
    ``mobileseg_zoo``: input size, normalization, class names, arch, alpha and run id travel
    inside the file."""
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


# TFLite tensor types as NumPy dtypes (little-endian, as the flatbuffer stores them); packed
# 4-bit and string types have no NumPy form and are not read as weights.
TFLITE_DTYPES = {0: "<f4", 1: "<f2", 2: "<i4", 3: "u1", 4: "<i8", 6: "?", 7: "<i2", 9: "i1",
                 10: "<f8", 12: "<u8", 15: "<u4", 16: "<u2"}


def flatbuffer_model(source):
    """A `ModelT` from a path, bytes or a `ModelT`."""
    from tensorflow.lite.tools import flatbuffer_utils

    if isinstance(source, bytes | bytearray):
        return flatbuffer_utils.convert_bytearray_to_object(bytearray(source))
    if isinstance(source, str | Path):
        return flatbuffer_utils.read_model(str(source))
    return source


def densify(values: np.ndarray, shape: list[int], sparsity) -> np.ndarray:
    """The dense tensor of a TFLite sparse tensor: `values` are its stored (non-zero) values,
    `sparsity` its `SparsityParametersT` (traversal order, block map, per-level metadata:
    DENSE with a size, or SPARSE_CSR with segments and indices), as TFLite's FormatConverter
    reads them; vectorised level by level."""
    order = [int(x) for x in sparsity.traversalOrder]
    block_map = [int(x) for x in (sparsity.blockMap if sparsity.blockMap is not None else [])]
    rank = len(shape)
    positions = np.zeros(1, np.int64)  # each node's position in its level
    coords: list[np.ndarray] = []
    sizes: list[int] = []
    for meta in sparsity.dimMetadata:
        if meta.format == 0:  # DENSE
            size = int(meta.denseSize)
            parent = np.repeat(np.arange(positions.size), size)
            coord = np.tile(np.arange(size, dtype=np.int64), positions.size)
            positions = positions[parent] * size + coord
        else:  # SPARSE_CSR: the children of node p are segments[p] .. segments[p + 1] - 1
            segments = np.asarray(meta.arraySegments.values, np.int64)
            indices = np.asarray(meta.arrayIndices.values, np.int64)
            starts = segments[positions]
            lengths = segments[positions + 1] - starts
            parent = np.repeat(np.arange(positions.size), lengths)
            offsets = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths,
                                                                lengths)
            positions = np.repeat(starts, lengths) + offsets
            coord, size = indices[positions], 0
        coords = [c[parent] for c in coords] + [coord]
        sizes.append(size)
    index = [np.zeros(positions.size, np.int64) for _ in range(rank)]
    blocks = [1] * rank
    for level, dim in enumerate(order):
        if dim >= rank:  # a block dimension: the inner index of dimension block_map[...]
            blocks[block_map[dim - rank]] = sizes[level]
    for level, dim in enumerate(order):
        if dim < rank:
            index[dim] += coords[level] * blocks[dim]
        else:
            index[block_map[dim - rank]] += coords[level]
    dense = np.zeros(shape, values.dtype)
    dense[tuple(index)] = values[positions]
    return dense


def _is_weight(tensor, dtype: np.dtype) -> bool:
    """Weights, not graph parameters: an integer tensor of 32 bits or more without
    quantization is a shape, axis or padding list; a quantized one is an int8 model's bias."""
    if dtype.kind in "iu" and dtype.itemsize >= 4:
        quant = tensor.quantization
        return quant is not None and quant.scale is not None and len(quant.scale) > 0
    return dtype.kind != "b"


def tflite_weights(source) -> dict[str, np.ndarray]:
    """The constant weight tensors of a .tflite (path, bytes or `ModelT`) that ops read, as
    stored (float32, float16 before its DEQUANTIZE, int8, int32 biases), sparse ones densified;
    by tensor name, each buffer once. Shape and axis constants are left out (`_is_weight`)."""
    model = flatbuffer_model(source)
    weights: dict[str, np.ndarray] = {}
    seen: set[int] = set()
    for graph in model.subgraphs:
        read = sorted({int(i) for op in graph.operators for i in op.inputs if i >= 0})
        for index in read:
            tensor = graph.tensors[index]
            buffer = model.buffers[tensor.buffer] if 0 < tensor.buffer < len(model.buffers) \
                else None
            if buffer is None or buffer.data is None or len(buffer.data) == 0 \
                    or tensor.buffer in seen or tensor.type not in TFLITE_DTYPES:
                continue
            dtype = np.dtype(TFLITE_DTYPES[tensor.type])
            if not _is_weight(tensor, dtype):
                continue
            seen.add(tensor.buffer)
            values = np.frombuffer(np.asarray(buffer.data, np.uint8).tobytes(), dtype)
            shape = [int(s) for s in (tensor.shape if tensor.shape is not None else [])]
            array = (densify(values, shape, tensor.sparsity) if tensor.sparsity is not None
                     else values.reshape(shape))
            name = tensor.name.decode() if isinstance(tensor.name, bytes) else str(tensor.name)
            weights[name if name not in weights else f"{name}#{index}"] = array
    return weights


def read_weights(path: Path) -> dict[str, np.ndarray]:
    """`FormatSpec.read_weights` of the TFLite formats: `tflite_weights` of the file."""
    return tflite_weights(Path(path))


def sparse_facts(source) -> dict[str, int]:
    """How a .tflite (path, bytes or `ModelT`) stores its weights: ``sparse_tensors`` (stored
    in the sparse format), ``weight_tensors`` (constant rank-2 and rank-4 tensors, those the
    converter could store sparse) and ``densify_ops``."""
    from tensorflow.lite.python import schema_py_generated as schema

    model = flatbuffer_model(source)
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes]
    sparse = kernels = densify_ops = 0
    for graph in model.subgraphs:
        for tensor in graph.tensors:
            buffer = model.buffers[tensor.buffer] if 0 < tensor.buffer < len(model.buffers) \
                else None
            if buffer is None or buffer.data is None or len(buffer.data) == 0:
                continue
            sparse += tensor.sparsity is not None
            kernels += len(tensor.shape if tensor.shape is not None else []) in (2, 4)
        densify_ops += sum(codes[op.opcodeIndex] == schema.BuiltinOperator.DENSIFY
                           for op in graph.operators)
    return {"sparse_tensors": int(sparse), "weight_tensors": int(kernels),
            "densify_ops": int(densify_ops)}


def read_metadata(path: Path) -> dict[str, str]:
    """The zoo's metadata embedded in a .tflite file ({} when there is none)."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(path))
    for entry in model.metadata or []:
        name = entry.name.decode() if isinstance(entry.name, bytes) else entry.name
        if name == METADATA_NAME:
            return json.loads(bytes(model.buffers[entry.buffer].data).decode())
    return {}


@dataclass
class LiteRTInt8Options(QuantizedOptions):
    """Full-integer TFLite (tflite-int8, edgetpu): the quantized options, the per-layer error
    report and the float layers of mixed precision (`zoo.export.mixed_precision`)."""

    layer_report: int = option(16, "tflite-int8, edgetpu: validation images for the per-layer "
                               "int8 error report (export log, report.md, manifest); 0: none",
                               int_range(0))
    keep_float: str | None = option(
        None, "tflite-int8, edgetpu: regex of layer names kept in float32 (mixed precision; "
        "the per-layer report names the layers; on the Edge TPU they run on the CPU)",
        optional(lambda n, v: str(v)))
    search_precision: bool = option(
        False, "tflite-int8, edgetpu: keep a few layers in float32, chosen greedily among the "
        "worst of the per-layer report by their measured mIoU, until the drop meets "
        "--max-miou-drop", boolean)


def int8_artifact(fmt: str, model, out_path: Path, context: ExportContext, *,
                  options: LiteRTInt8Options, transpose_conv: str) -> Artifact:
    """The full-integer artifact of `model` (`int8_bytes`), with what `zoo.export.int8_check`
    finds in it (float tensors left fail validation; a QAT model's range sources) and the
    per-layer error report; with the options' `keep_float` or `search_precision`, the
    mixed-precision model of `mixed_int8` instead (its float layers are asked for, not a
    defect)."""
    from zoo.export.int8_check import int8_facts
    from zoo.quantize import is_quantization_aware

    mixed = None
    if options.keep_float or options.search_precision:
        data, sha256, rows, mixed = mixed_int8(
            fmt, model, context, options=options, transpose_conv=transpose_conv,
            keep_float=options.keep_float, search_precision=options.search_precision)
    else:
        data, sha256 = int8_bytes(model, context, io=options.io,
                                  calibration_images=options.calibration_images,
                                  output=options.output, transpose_conv=transpose_conv)
        rows = int8_layer_errors(model, context, data, images=options.layer_report,
                                 calibration_images=options.calibration_images,
                                 output=options.output, transpose_conv=transpose_conv)
    facts, defects = int8_facts(data, model, options.io)
    artifact = litert_artifact(
        fmt, data, out_path, context, options=options,
        details={"io": options.io, "calibration_images": options.calibration_images, **facts,
                 "layer_errors": rows,
                 "layer_error_kind": "qat" if is_quantization_aware(model) else "local",
                 **({"mixed_precision": mixed} if mixed else {})},
        calibration_sha256=sha256)
    artifact.defects = [] if mixed else defects
    return artifact


def mixed_int8(fmt: str, model, context: ExportContext, *, options, transpose_conv: str,
               keep_float: str | None, search_precision: bool
               ) -> tuple[bytes, str, list[dict], dict]:
    """(data, calibration sha256, per-layer report, record) of the int8 model with float
    layers (`zoo.export.mixed_precision`): those `keep_float` matches, or those the search
    keeps to meet the format's --max-miou-drop on the validation images. The record has the
    float layers, the drop before and after, and the cost: XNNPACK partitions and 1-thread
    latency of the plain int8 model and of this one, timed in turn in one run."""
    from zoo.errors import ConfigError
    from zoo.export.int8_report import log_lines
    from zoo.export.mixed_precision import MixedPrecision
    from zoo.quantize import is_quantization_aware

    what = "--search-precision" if search_precision else "--keep-float"
    if is_quantization_aware(model):
        raise ConfigError(f"{what}: a quantization-aware run has its ranges learned for int8 "
                          "everywhere; keep layers in float on its parent run")
    if options.output != "logits":
        raise ConfigError(f"{what} needs --output logits, got {options.output}")
    if search_precision and (context.reference is None or fmt not in context.max_miou_drop):
        raise ConfigError(f"{what}: needs the exporter's validation images and --max-miou-drop")
    calibration, sha256 = int8_calibration(
        model, context, calibration_images=options.calibration_images, output=options.output,
        transpose_conv=transpose_conv)
    rows = calibration.layer_errors(
        report_images(context, max(int(options.layer_report), 4), options.calibration_images),
        [layer.name for layer in model.layers])
    plan = MixedPrecision(calibration, rows)
    print("per-layer int8 error, worst first:\n" + "\n".join(log_lines(rows)))
    scratch = context.scratch / f"{fmt}_mixed.tflite"
    drops: dict[bytes, float] = {}  # the same model is evaluated once

    def evaluate(data: bytes) -> float:
        if data not in drops:
            drops[data] = _miou_drop(fmt, data, scratch, context)
        return drops[data]

    plain = plan.quantized([], options.io)
    if search_precision:
        data, record = plan.search(evaluate, context.max_miou_drop[fmt], options.io)
    else:
        nodes = plan.nodes_matching(keep_float)
        layers = {r["tensor"]: r["layer"] for r in rows}
        data = plan.quantized(nodes, options.io)
        record = {"keep_float": keep_float, "float_layers": [layers[n] for n in nodes],
                  "float_tensors": nodes}
        if context.reference is not None:
            record["drop_before_pt"] = round(evaluate(plain), 3)
            record["drop_after_pt"] = round(evaluate(data), 3)
    record["cost"] = _speed({"int8": plain, "mixed": data}, context)
    print(f"{fmt}: {len(record['float_layers'])} layer(s) in float32: "
          f"{', '.join(record['float_layers']) or 'none'}; XNNPACK partitions "
          f"{record['cost']['int8']['xnnpack_partitions']} -> "
          f"{record['cost']['mixed']['xnnpack_partitions']}, 1-thread latency "
          f"{record['cost']['int8']['latency_ms']:.1f} -> "
          f"{record['cost']['mixed']['latency_ms']:.1f} ms")
    return data, sha256, rows, record


def _miou_drop(fmt: str, data: bytes, path: Path, context: ExportContext) -> float:
    """The validator's mIoU drop (pt) of the TFLite model `data` on the export's images."""
    from zoo.export.format import Tolerance
    from zoo.export.validate import validate

    write_bytes_atomic(path, data)
    runner = LiteRTRunner(path)
    artifact = Artifact(fmt, path, "litert", runner.input_info, runner.output_info)
    return validate(artifact, context.reference, Tolerance(None, 100.0), runner=runner
                    ).miou_drop_pt


def _speed(models: dict[str, bytes], context: ExportContext, runs: int = 20) -> dict:
    """XNNPACK partitions and median 1-thread latency (ms) of each TFLite model, timed in turn
    (`zoo.bench.timing`) on one image."""
    from zoo.bench.timing import summarize, time_interleaved

    image = report_images(context, 1, 1)
    runners = {}
    for name, data in models.items():
        path = context.scratch / f"speed_{name}.tflite"
        write_bytes_atomic(path, data)
        runners[name] = LiteRTRunner(path, threads=1)
    samples = time_interleaved({name: (lambda r=r: r.run(image)) for name, r in runners.items()},
                               runs=runs, warmup=2)
    return {name: {"xnnpack_partitions": r.delegate_report()["xnnpack_partitions"],
                   "latency_ms": round(summarize(samples[name])["median_ms"], 2)}
            for name, r in runners.items()}


def litert_artifact(fmt: str, data: bytes, out_path: Path, context: ExportContext, *,
                    options, details: dict | None = None,
                    calibration_sha256: str | None = None) -> Artifact:
    """Write `data` to `out_path` with two metadata: the zoo's JSON (run facts, author, license,
    version) and the standard TFLite segmenter metadata that MediaPipe Tasks and the TFLite
    Task Library read (`zoo.export.tflite_metadata`); describe it: I/O tensors, ops, XNNPACK
    partitions and the ops left outside them. MediaPipe's ImageSegmenter computes its own
    argmax over per-class scores and takes uint8 or float32 images, so a logits artifact with
    such an input lists it as a second runtime."""
    from zoo.export.tflite_metadata import with_segmenter_metadata

    provenance = options.provenance()
    data = with_metadata(data, {**context.metadata(), **provenance})
    data = with_segmenter_metadata(data, name=context.arch, description=context.description(),
                                   labels=list(context.class_names), **provenance)
    write_bytes_atomic(out_path, data)
    runner = LiteRTRunner(out_path)
    details = {**(details or {}), **runner.delegate_report()}
    print(f"{fmt}: {delegate_line(details)}")
    return Artifact(fmt, out_path, "litert", runner.input_info, runner.output_info,
                    output_kind=options.output, ops=tflite_ops(out_path), details=details,
                    calibration_sha256=calibration_sha256,
                    also_runs_in=["mediapipe"] if options.output == "logits"
                    and runner.input_info.dtype in MEDIAPIPE_INPUTS else [])
