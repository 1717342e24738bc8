"""TFLite: float32, float16, dynamic-range and full-integer int8, run with LiteRT.

Example::

    fmt = FORMATS.get("tflite-int8")
    art = fmt.convert(model, Path("m.int8.tflite"), parse_options(fmt, {"io": "uint8"}), ctx)
    art.input.scale, art.input.zero_point   # (1.0, 0) for uint8 I/O on 0..255 images

All four convert the graph of `zoo.export.tflite_graph` (2x2 stride-2 transposed convs as 1x1
conv + DEPTH_TO_SPACE unless ``transpose_conv="native"``; hard-swish as ADD + MUL in int8)
through one batch-1 SavedModel (`zoo.export.tflite_convert`). A model with sparse kernels (a
pruned run) is stored sparse in tflite and tflite-fp16 (``EXPERIMENTAL_SPARSITY``, lossless);
each artifact's details say how many weight tensors are stored sparse (``sparse_weights``) and
whether XNNPACK would run the graph with its sparse kernels on ARM (``xnnpack_sparse``,
`zoo.export.xnnpack_sparse`). `read_weights` reads the weights back for the size report.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from zoo.export.artifact import Artifact
from zoo.export.context import ExportContext
from zoo.export.format import FLOAT16, FLOAT32, INT8, register_format
from zoo.export.int8_report import report_lines
from zoo.export.options import ExportOptions, choice, option
from zoo.export.tflite_convert import (
    LiteRTInt8Options,
    float_bytes,
    int8_artifact,
    litert_artifact,
    read_metadata,
    read_weights,
    sparse_facts,
    uses_sparsity,
)
from zoo.export.tflite_graph import TRANSPOSE_CONV_MODES
from zoo.export.xnnpack_sparse import check as xnnpack_sparse_check

TOOLS = ("tensorflow", "ai-edge-litert")
TRANSPOSE_CONV_HELP = ("TFLite: 2x2 stride-2 transposed convs as 1x1 conv + DEPTH_TO_SPACE "
                       "(depth-to-space, faster in XNNPACK) or the TRANSPOSE_CONV op (native)")


@dataclass
class FloatOptions(ExportOptions):
    """tflite, tflite-fp16 and tflite-dynamic."""

    transpose_conv: str = option("depth-to-space", TRANSPOSE_CONV_HELP,
                                 choice(*TRANSPOSE_CONV_MODES))


@dataclass
class Int8Options(LiteRTInt8Options):
    """Full-integer quantization (TFLITE_BUILTINS_INT8), optionally with float layers
    (`zoo.export.mixed_precision`)."""

    transpose_conv: str = option("depth-to-space", TRANSPOSE_CONV_HELP,
                                 choice(*TRANSPOSE_CONV_MODES))


def _float(fmt: str, model, out_path: Path, options: FloatOptions, context: ExportContext, *,
           weights: str) -> Artifact:
    data = float_bytes(model, context, output=options.output,
                       transpose_conv=options.transpose_conv, weights=weights)
    artifact = litert_artifact(fmt, data, out_path, context, options=options)
    _note_transpose_conv(artifact, options)
    _note_weight_storage(artifact, converter_sparsity=uses_sparsity(model, weights))
    return artifact


def _note_weight_storage(artifact: Artifact, *, converter_sparsity: bool) -> None:
    """details: ``sparse_weights`` (weight tensors stored sparse, of those that could be, the
    DENSIFY ops, and whether the converter was asked) and ``xnnpack_sparse`` (the verdict of
    `zoo.export.xnnpack_sparse.check`)."""
    facts = {**sparse_facts(artifact.path), "converter_sparsity": converter_sparsity}
    verdict = xnnpack_sparse_check(artifact.path)
    artifact.details.update(sparse_weights=facts, xnnpack_sparse=verdict)
    print(f"{artifact.format}: {storage_line(artifact.details)}")


def storage_line(details: dict) -> str:
    """``40 of 40 weight tensors stored sparse; XNNPACK sparse inference (ARM): no: ...``."""
    facts, verdict = details.get("sparse_weights"), details.get("xnnpack_sparse")
    parts = []
    if facts:
        parts.append(f"{facts['sparse_tensors']} of {facts['weight_tensors']} weight tensors "
                     "stored sparse" + (" (EXPERIMENTAL_SPARSITY)" if facts.get(
                         "converter_sparsity") else ""))
    if verdict:
        parts.append(f"XNNPACK sparse inference (ARM): {verdict['summary']}")
    return "; ".join(parts)


def storage_section(entry: dict) -> list[str]:
    """report.md: how the weights are stored and the XNNPACK sparse-inference verdict."""
    line = storage_line(entry.get("details", {}))
    return ["", f"- {entry['format']} weights: {line}"] if line else []


def _note_transpose_conv(artifact: Artifact, options) -> None:
    if {"TRANSPOSE_CONV", "DEPTH_TO_SPACE"} & set(artifact.ops):
        artifact.details["transpose_conv"] = options.transpose_conv


@register_format("tflite", FloatOptions, suffix=".tflite", runtime="litert", tolerance=FLOAT32,
                 tools=TOOLS, read_metadata=read_metadata, report_section=storage_section,
                 read_weights=read_weights)
def convert_float32(model, out_path: Path, options: FloatOptions, context: ExportContext
                    ) -> Artifact:
    """float32 weights and activations."""
    return _float("tflite", model, out_path, options, context, weights="float32")


@register_format("tflite-fp16", FloatOptions, suffix=".fp16.tflite", runtime="litert",
                 tolerance=FLOAT16, tools=TOOLS, read_metadata=read_metadata,
                 report_section=storage_section, read_weights=read_weights)
def convert_float16(model, out_path: Path, options: FloatOptions, context: ExportContext
                    ) -> Artifact:
    """float16 weights (dequantized to float32 on CPU, native on GPU delegates)."""
    return _float("tflite-fp16", model, out_path, options, context, weights="float16")


@register_format("tflite-dynamic", FloatOptions, suffix=".dynamic.tflite", runtime="litert",
                 tolerance=INT8, tools=TOOLS, read_metadata=read_metadata,
                 report_section=storage_section, read_weights=read_weights)
def convert_dynamic(model, out_path: Path, options: FloatOptions, context: ExportContext
                    ) -> Artifact:
    """int8 weights, float activations (dynamic-range quantization, no calibration data)."""
    return _float("tflite-dynamic", model, out_path, options, context, weights="dynamic")


def int8_report_section(entry: dict) -> list[str]:
    """report.md: the per-layer int8 error table, then how the weights are stored."""
    details = entry["details"]
    return ["", *report_lines(entry["format"], details.get("layer_errors", []),
                              details.get("layer_error_kind", "local")), *storage_section(entry)]


@register_format("tflite-int8", Int8Options, suffix=".int8.tflite", runtime="litert",
                 tolerance=INT8, tools=TOOLS, read_metadata=read_metadata,
                 report_section=int8_report_section, learned_ranges=True,
                 read_weights=read_weights)
def convert_int8(model, out_path: Path, options: Int8Options, context: ExportContext
                 ) -> Artifact:
    """Full-integer int8 with uint8, int8 or float I/O, calibrated on training images."""
    artifact = int8_artifact("tflite-int8", model, out_path, context, options=options,
                             transpose_conv=options.transpose_conv)
    _note_transpose_conv(artifact, options)
    # int8 stays dense (see tflite_convert.SPARSE_WEIGHTS): the verdict says int8 never runs
    # sparse in XNNPACK.
    _note_weight_storage(artifact, converter_sparsity=False)
    return artifact
