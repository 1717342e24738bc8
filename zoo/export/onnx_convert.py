"""Converting to ONNX, shared by the ONNX formats.

Example::

    proto = to_onnx(model, context, opset=17, output="logits")
    artifact = onnx_artifact("onnx", proto, Path("model.onnx"), context, options=options,
                             details={"opset": 17})

The input stays NHWC float32 named ``image`` with raw RGB 0..255 (the Rescaling is inside the
graph), batch 1; the run's metadata goes into ``metadata_props``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from zoo.export.artifact import Artifact
from zoo.export.context import ExportContext
from zoo.export.outputs import with_output
from zoo.export.runtimes.ort import onnx_io_info
from zoo.files import write_bytes_atomic


def to_onnx(model, context: ExportContext, *, opset: int, output: str):
    """The ONNX ModelProto of `model` with `output` at batch 1 (`tf2onnx.convert.from_keras`)."""
    import tensorflow as tf
    import tf2onnx

    h, w = context.input_size
    proto, _ = tf2onnx.convert.from_keras(
        with_output(model, output, cache=context.cache),
        input_signature=[tf.TensorSpec([1, h, w, 3], tf.float32, name="image")],
        opset=int(opset))
    return proto


def read_onnx_metadata(path: Path) -> dict[str, str]:
    """The metadata_props of an .onnx file."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in model.metadata_props}


def read_onnx_weights(path: Path) -> dict[str, np.ndarray]:
    """`FormatSpec.read_weights` of the ONNX formats: the main graph's initializers as stored,
    by name (for ``onnx-int8``: int8 weights, int32 biases, float scales). int64 and bool
    initializers (shapes, axes, Reshape and Slice arguments) are graph parameters, not
    weights, and are left out."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    weights = {}
    for init in model.graph.initializer:
        array = numpy_helper.to_array(init)
        if array.dtype == np.int64 or array.dtype == np.bool_:
            continue
        weights[init.name] = array
    return weights


def onnx_artifact(fmt: str, proto, out_path: Path, context: ExportContext, *, options,
                  details: dict, calibration_sha256: str | None = None) -> Artifact:
    """Write `proto` with the run's metadata, author, license and version in metadata_props to
    `out_path` and describe it (I/O with scale and zero point when quantized, op types, the
    embedded metadata)."""
    import onnx

    meta = {**context.metadata(), **options.provenance()}
    onnx.helper.set_model_props(proto, meta)
    proto.doc_string = context.description()
    write_bytes_atomic(out_path, proto.SerializeToString())
    inp, out = onnx_io_info(proto)
    return Artifact(fmt, out_path, "onnxruntime", inp, out, output_kind=options.output,
                    ops=[node.op_type for node in proto.graph.node],
                    details={**details, "metadata": meta},
                    calibration_sha256=calibration_sha256)
