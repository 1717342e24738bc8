"""ONNX through tf2onnx, run with onnxruntime.

Example::

    fmt = FORMATS.get("onnx")
    art = fmt.convert(model, Path("model.onnx"), parse_options(fmt, {}), ctx)
    art.runner(threads=2).run(images[:1])        # float32 NHWC logits

The output is ``logits`` (float32 ``(1, H, W, C)``) or, with a label output, ``labels`` (uint8
``(1, H, W)``: ArgMax, Cast, and for labels-nearest Reshape/Tile/Reshape; see
zoo/export/outputs.py). The conversion itself, and reading metadata and weights back, are
`zoo.export.onnx_convert`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from zoo.export.artifact import Artifact
from zoo.export.context import ExportContext
from zoo.export.format import FLOAT32, register_format
from zoo.export.onnx_convert import (
    onnx_artifact,
    read_onnx_metadata,
    read_onnx_weights,
    to_onnx,
)
from zoo.export.options import ExportOptions, int_range, option


@dataclass
class OnnxOptions(ExportOptions):
    opset: int = option(17, "ONNX opset, 13..18 (17: every op the zoo emits, onnxruntime >= "
                        "1.13)", int_range(13, 18))


@register_format("onnx", OnnxOptions, suffix=".onnx", runtime="onnxruntime", tolerance=FLOAT32,
                 tools=("tensorflow", "tf2onnx", "onnx", "onnxruntime"),
                 read_metadata=read_onnx_metadata, read_weights=read_onnx_weights)
def convert(model, out_path: Path, options: OnnxOptions, context: ExportContext) -> Artifact:
    """Convert with `tf2onnx.convert.from_keras` at batch 1 and write `out_path`."""
    proto = to_onnx(model, context, opset=options.opset, output=options.output)
    return onnx_artifact("onnx", proto, out_path, context, options=options,
                         details={"opset": options.opset})
