"""Edge TPU: the full-integer TFLite model, an op-compatibility report, and `edgetpu_compiler`
when it is on PATH (it is never installed here: no PyPI or Debian package exists).

Example::

    art = FORMATS.get("edgetpu").convert(model, Path("m.edgetpu-int8.tflite"),
                                         EdgeTPUOptions(), ctx)
    print(art.details["report"]["summary"])   # "31 of 33 ops map to the Edge TPU; ..."
    report = op_report(Path("model.int8.tflite"))   # any int8 .tflite

The report checks each op against the supported-op table of Coral's documentation
(https://coral.ai/docs/edgetpu/models-intro/#supported-operations) and its constraints (int8
tensors, static batch-1 shapes). The compiler maps one contiguous segment: from the first op
it cannot map, every later op runs on the CPU, so the report marks those too.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zoo.export.artifact import Artifact
from zoo.export.context import ExportContext
from zoo.export.format import INT8, register_format
from zoo.export.int8_report import report_lines
from zoo.export.options import choice, option
from zoo.export.runtimes.litert import LiteRTRunner, tflite_ops
from zoo.export.tflite_convert import (
    LiteRTInt8Options,
    int8_artifact,
    read_metadata,
    read_weights,
)

# Coral's supported-operations table, as TFLite builtin op names.
SUPPORTED_OPS = frozenset({
    "ADD", "AVERAGE_POOL_2D", "CONCATENATION", "CONV_2D", "DEPTHWISE_CONV_2D", "EXPAND_DIMS",
    "FULLY_CONNECTED", "L2_NORMALIZATION", "LOGISTIC", "LSTM", "MAXIMUM", "MAX_POOL_2D", "MEAN",
    "MINIMUM", "MUL", "PACK", "PAD", "PRELU", "QUANTIZE", "REDUCE_MAX", "REDUCE_MIN", "RELU",
    "RELU6", "RELU_N1_TO_1", "RESHAPE", "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR", "RSQRT",
    "SLICE", "SOFTMAX", "SPACE_TO_DEPTH", "SPLIT", "SQUARED_DIFFERENCE", "SQUEEZE",
    "STRIDED_SLICE", "SUB", "SUM", "TANH", "TRANSPOSE", "TRANSPOSE_CONV",
})

# Ops the table lacks that the zoo's models can emit: why, and what to use instead.
UNSUPPORTED_ADVICE = {
    "HARD_SWISH": "HARD_SWISH is not in the Edge TPU op table (google-coral/edgetpu#353, #272); "
                  "use minimalistic=True (ReLU) or the mobilenet_edgetpu backbone",
    "DEQUANTIZE": "float output: export with io=uint8 or int8",
    "SHAPE": "dynamic shape: export with a static batch-1 signature",
    "ARG_MAX": "ARG_MAX is not in the Edge TPU op table: with a label output the argmax and "
               "the ops after it run on the CPU, at the head's resolution with labels-nearest",
    "DEPTH_TO_SPACE": "DEPTH_TO_SPACE is not in the Edge TPU op table: a quantization-aware run "
                      "trains transposed convs as 1x1 conv + depth-to-space, so its decoder "
                      "runs on the CPU; for the Edge TPU use a resize decoder "
                      "(mobilenet_edgetpu_unet, upsample='resize') or PTQ of the float run",
}

# Ops the table lists but upstream reports show left on the CPU or slow, depending on size.
CAUTION = {
    "TRANSPOSE_CONV": "stride-2 TRANSPOSE_CONV is reported unmapped or slow "
                      "(google-coral/edgetpu#509, #684); the unet head has upsample='resize'",
    "RESIZE_BILINEAR": "a large RESIZE_BILINEAR may stay on the CPU to avoid precision loss "
                       "(google-coral/edgetpu#31)",
    "MEAN": "large global pooling is reported to map poorly (google-coral/edgetpu#183)",
}


@dataclass
class EdgeTPUOptions(LiteRTInt8Options):
    """The full-integer model's options; the Edge TPU takes no float I/O."""

    io: str = option("uint8", "input/output type of the Edge TPU model: uint8 or int8",
                     choice("uint8", "int8"))


def op_report(path: Path) -> dict:
    """Each op of an int8 .tflite checked against the Edge TPU table, in execution order.

    Returns ``{"ops": [{"index", "op", "where", "reason", "tensor"}], "first_unmapped", "mapped",
    "cpu", "cautions", "summary"}`` where ``where`` is "edgetpu" or "cpu".
    """
    runner = LiteRTRunner(path)
    tensors = {t["index"]: t for t in runner.interpreter.get_tensor_details()}
    ops, first_unmapped, cautions = [], None, {}
    details = runner.interpreter._get_ops_details()
    for index, op in enumerate(tflite_ops(path)):
        reason = _unmapped_reason(op, details[index], tensors)
        if reason and first_unmapped is None:
            first_unmapped = index
        elif first_unmapped is not None and not reason:
            reason = f"after the first unmapped op (#{first_unmapped}): one mapped segment only"
        if op in CAUTION and _cautious(op, details[index], tensors):
            cautions.setdefault(op, []).append(f"#{index}")
        outputs = [tensors[int(t)]["name"] for t in details[index]["outputs"] if int(t) in tensors]
        ops.append({"index": index, "op": op, "where": "cpu" if reason else "edgetpu",
                    "reason": reason, "tensor": outputs[0] if outputs else ""})
    mapped = sum(o["where"] == "edgetpu" for o in ops)
    summary = f"{mapped} of {len(ops)} ops map to the Edge TPU"
    if first_unmapped is not None:
        summary += (f"; CPU from op #{first_unmapped} {ops[first_unmapped]['op']}: "
                    f"{ops[first_unmapped]['reason']}")
    return {"ops": ops, "first_unmapped": first_unmapped, "mapped": mapped,
            "cpu": len(ops) - mapped, "summary": summary,
            "cautions": [f"{op} ({', '.join(at)}): {CAUTION[op]}" for op, at in cautions.items()]}


def _cautious(op: str, detail: dict, tensors: dict) -> bool:
    """Whether a listed-but-risky op is risky at this size: bilinear resize by 4x or more."""
    if op != "RESIZE_BILINEAR":
        return True
    height_in = tensors[int(detail["inputs"][0])]["shape"][1]
    height_out = tensors[int(detail["outputs"][0])]["shape"][1]
    return height_out >= 4 * height_in


def _unmapped_reason(op: str, detail: dict, tensors: dict) -> str:
    if op not in SUPPORTED_OPS:
        return UNSUPPORTED_ADVICE.get(op, f"{op} is not in the Edge TPU op table")
    # Activations only: weights (e.g. conv kernels of rank 4) are not subject to the rank rule.
    for t in detail["outputs"]:
        tensor = tensors.get(int(t))
        if tensor is None:
            continue
        if np.dtype(tensor["dtype"]).name not in ("int8", "uint8", "int32"):
            return f"{op} has a {np.dtype(tensor['dtype']).name} tensor: int8/uint8 only"
        shape = [int(s) for s in tensor["shape"]]
        # Only the 3 innermost dimensions may exceed 1 (Coral: "Model requirements").
        if len(shape) > 3 and any(s > 1 for s in shape[:-3]):
            return f"{op} has a tensor of shape {shape}: batch 1 and rank <= 3 beyond it"
    return ""


def compile_with_edgetpu_compiler(path: Path, out_dir: Path) -> dict:
    """Run `edgetpu_compiler` when it is on PATH; fold its log into the report."""
    compiler = shutil.which("edgetpu_compiler")
    if compiler is None:
        return {"compiled": False,
                "message": "edgetpu_compiler not on PATH: not compiled (int8 model + op report "
                           "only)"}
    proc = subprocess.run([compiler, "-s", "-o", str(out_dir), str(path)], capture_output=True,
                          text=True, check=False)
    log = proc.stdout + proc.stderr
    mapped = re.search(r"Number of operations that will run on Edge TPU:\s*(\d+)", log)
    cpu = re.search(r"Number of operations that will run on CPU:\s*(\d+)", log)
    compiled = out_dir / f"{path.stem}_edgetpu.tflite"
    return {"compiled": proc.returncode == 0 and compiled.is_file(),
            "compiled_path": str(compiled) if compiled.is_file() else None,
            "compiler_mapped": int(mapped.group(1)) if mapped else None,
            "compiler_cpu": int(cpu.group(1)) if cpu else None,
            "message": f"edgetpu_compiler exit {proc.returncode}", "log": log[-4000:]}


def float_layers_on_cpu(report: dict, mixed: dict) -> dict:
    """What mixed precision costs on the Edge TPU: which kept float layers fall back to the
    CPU (any float32 op does) and how many int8 ops after the first of them go with it (the
    compiler maps one segment)."""
    tensors = set(mixed["float_tensors"])
    layers = dict(zip(mixed["float_tensors"], mixed["float_layers"], strict=True))
    cpu = [o for o in report["ops"] if o["where"] == "cpu"]
    on_cpu = list(dict.fromkeys(layers[o["tensor"]] for o in cpu if o["tensor"] in tensors))
    float_ops = [o for o in cpu if o["reason"].startswith(f"{o['op']} has a float32 tensor")]
    summary = (f"{len(on_cpu)} of {len(layers)} kept float layer(s) run on the CPU"
               f"{': ' + ', '.join(on_cpu) if on_cpu else ''}; {report['cpu']} of "
               f"{len(report['ops'])} ops on the CPU in all, {len(float_ops)} of them float32")
    return {"float_layers_on_cpu": on_cpu, "ops_on_cpu": report["cpu"],
            "float_ops_on_cpu": len(float_ops), "first_cpu_op": report["first_unmapped"],
            "summary": summary}


def report_section(entry: dict) -> list[str]:
    """report.md's Edge TPU section for one manifest entry: the summary, the compiler's word,
    cautions and the ops left on the CPU with the reason."""
    report = entry["details"]["report"]
    lines = ["", f"## Edge TPU ({entry['file']})", "", report["summary"] + ".",
             entry["details"].get("compiler", {}).get("message", ""), ""]
    lines += [f"- caution: {c}" for c in report["cautions"]]
    mixed = entry["details"].get("mixed_precision", {}).get("edgetpu")
    if mixed:
        lines += [f"- mixed precision: {mixed['summary']}"]
    lines += ["", *report_lines("edgetpu", entry["details"].get("layer_errors", []),
                                entry["details"].get("layer_error_kind", "local"))]
    cpu = [o for o in report["ops"] if o["where"] == "cpu"]
    if cpu:
        lines += ["", "| # | op | on CPU because |", "|---|---|---|"]
        lines += [f"| {o['index']} | {o['op']} | {o['reason']} |" for o in cpu]
    return lines


@register_format("edgetpu", EdgeTPUOptions, suffix=".edgetpu-int8.tflite", runtime="litert",
                 tolerance=INT8, tools=("tensorflow", "ai-edge-litert"),
                 read_metadata=read_metadata, report_section=report_section,
                 learned_ranges=True, read_weights=read_weights)
def convert(model, out_path: Path, options: EdgeTPUOptions, context: ExportContext
            ) -> Artifact:
    """The full-integer model (shared with tflite-int8), its op report and, when possible, the
    compiled model."""
    # The Edge TPU has TRANSPOSE_CONV but no DEPTH_TO_SPACE: keep the native op.
    artifact = int8_artifact("edgetpu", model, out_path, context, options=options,
                             transpose_conv="native")
    report = op_report(out_path)
    compiler = compile_with_edgetpu_compiler(out_path, context.scratch)
    print(f"edgetpu: {report['summary']}; {compiler['message']}")
    mixed = artifact.details.get("mixed_precision")
    if mixed:
        mixed["edgetpu"] = float_layers_on_cpu(report, mixed)
        print(f"edgetpu: {mixed['edgetpu']['summary']}")
    artifact.ops = [o["op"] for o in report["ops"]]
    artifact.details.update(report=report, compiler=compiler)
    return artifact
