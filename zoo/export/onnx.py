"""ONNX through tf2onnx, run with onnxruntime; the run's metadata goes into metadata_props.

Example::

    art = FORMATS.get("onnx").convert(model, Path("model.onnx"), OnnxOptions(), ctx)
    art.runner(threads=2).run(images[:1])        # float32 NHWC logits
    FORMATS.get("onnx").convert(model, path, OnnxOptions(output="labels-nearest"), ctx)

The input stays NHWC float32 named ``image`` with raw RGB 0..255 (the Rescaling is inside the
graph), batch 1, as CONVERSION-NOTES measured (max diff <= 1e-7). The output is ``logits``
(float32 ``(1, H, W, C)``) or, with a label output, ``labels`` (uint8 ``(1, H, W)``: ArgMax,
Cast, and for labels-nearest Reshape/Tile/Reshape; see zoo/export/outputs.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from zoo.errors import ConfigError
from zoo.export.base import Artifact, ExportContext, TensorInfo, register_format
from zoo.export.outputs import check_output, with_output


@dataclass
class OnnxOptions:
    """The ONNX opset to target (17: every op the zoo emits, onnxruntime >= 1.13) and the
    output (logits, labels or labels-nearest)."""

    opset: int = 17
    output: str = "logits"

    def __post_init__(self):
        check_output(self.output)
        if not 13 <= int(self.opset) <= 18:
            raise ConfigError(f"opset must be between 13 and 18, got {self.opset}")


def _tensor_info(value) -> TensorInfo:
    import onnx

    dims = [d.dim_value for d in value.type.tensor_type.shape.dim]
    dtype = onnx.helper.tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type).name
    return TensorInfo(value.name, dtype, dims)


@register_format("onnx", OnnxOptions, suffix=".onnx")
def convert(model, out_path: Path, options: OnnxOptions, context: ExportContext) -> Artifact:
    """Convert with `tf2onnx.convert.from_keras` at batch 1 and write `out_path`."""
    import onnx
    import tensorflow as tf
    import tf2onnx

    h, w = context.input_size
    proto, _ = tf2onnx.convert.from_keras(
        with_output(model, options.output, cache=context.cache),
        input_signature=[tf.TensorSpec([1, h, w, 3], tf.float32, name="image")],
        opset=int(options.opset))
    onnx.helper.set_model_props(proto, context.metadata())
    onnx.save(proto, str(out_path))
    ops = [node.op_type for node in proto.graph.node]
    return Artifact("onnx", out_path, "onnxruntime", _tensor_info(proto.graph.input[0]),
                    _tensor_info(proto.graph.output[0]), ops=ops,
                    details={"opset": int(options.opset), "output": options.output,
                             "metadata": context.metadata()})
