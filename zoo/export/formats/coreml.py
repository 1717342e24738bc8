"""Core ML ML program via coremltools, for iOS apps to drop into Xcode.

Example::

    art = FORMATS.get("coreml").convert(model, Path("model.mlpackage"), CoreMLOptions(), ctx)
    art.runner().run(images[:1])      # the NumPy reference interpreter (any OS)

The input is an `ImageType` (RGB, batch 1) so apps feed pixel buffers directly; scale 1 and bias
0 match the model, whose Rescaling is inside the graph. The output is float32 logits
``(1, H, W, C)`` named ``logits`` or, with ``output="labels"`` or ``"labels-nearest"`` (see
zoo/export/outputs.py), an argmax label map ``(1, H, W)`` (int32: Core ML multiarrays have no
uint8) named ``labels``, which is what apps usually want and cheaper to move. Both label
outputs share the name: ML program feature names must be identifiers (``labels-nearest`` is
refused), and an app can swap one label model for the other. Xcode's segmentation preview is
set up from the class labels.

Core ML prediction needs macOS; everywhere else the artifact is validated by the NumPy
interpreter of `zoo.export.mil_reference` (fp16 rounding emulated); benchmarks time the real
runtime, on macOS (`zoo.export.runtimes.coreml`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zoo.export.artifact import Artifact
from zoo.export.context import ExportContext
from zoo.export.coreml_compress import (
    SETTING_HELP,
    check_target,
    compress_weights,
    describe_weights,
    parse_setting,
    report_line,
    stored_weights,
)
from zoo.export.format import FLOAT16, register_format
from zoo.export.options import ExportOptions, choice, option
from zoo.export.outputs import is_label_output, with_output
from zoo.export.runtimes import TensorInfo
from zoo.export.runtimes.coreml import import_coremltools, is_macos

PRECISIONS = ("fp16", "fp32")
TARGETS = ("iOS15", "iOS16", "iOS17", "iOS18", "macOS12", "macOS13", "macOS14", "macOS15")

# Ops reported not to run on the Apple Neural Engine; Core ML then moves the rest of the graph
# to the GPU or CPU (hollance/neural-engine, docs/unsupported-layers.md: "some are guesses").
# MLComputePlan, which says so per op, exists only on macOS 14.4+.
ANE_UNFRIENDLY = {
    "conv": ("dilations", "dilated convolution"),
    "gather": (None, "gather"),
    "lstm": (None, "recurrent layer"),
}


@dataclass
class CoreMLOptions(ExportOptions):
    """Core ML's own options besides the output."""

    precision: str = option("fp16", "Core ML compute precision: fp16 or fp32",
                            choice(*PRECISIONS))
    minimum_deployment_target: str = option("iOS16", "Core ML minimum deployment target: "
                                            + ", ".join(TARGETS), choice(*TARGETS))
    compress: str = option("none", SETTING_HELP, parse_setting)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_target(self.compress, self.minimum_deployment_target)


def read_coreml_metadata(path: Path) -> dict[str, str]:
    """The user-defined metadata of a saved .mlpackage (readable on every OS)."""
    ct = import_coremltools()
    spec = ct.utils.load_spec(str(path))
    return dict(spec.description.metadata.userDefined)


def read_coreml_weights(path: Path) -> dict[str, np.ndarray]:
    """The program's weight tensors by variable name: palettes looked up and sparse tensors
    filled by the reference interpreter, quantized ones as their stored integers
    (`zoo.export.coreml_compress.stored_weights`)."""
    from zoo.export.mil_reference import MilProgram

    return stored_weights(MilProgram.load(path))


def coreml_report_section(entry: dict) -> list[str]:
    """report.md: how the kernels are stored (palettized, sparse, quantized, dense)."""
    weights = entry["details"].get("weights")
    return ["", f"Core ML weights: {report_line(weights)}"] if weights else []


def feature_name(output: str) -> str:
    """The ML program's output feature: ``logits``, or ``labels`` for either label map."""
    return "labels" if is_label_output(output) else "logits"


# fp16 ML program by default (fp32 with --precision fp32 is well inside this too).
@register_format("coreml", CoreMLOptions, suffix=".mlpackage", runtime="mil-reference",
                 tolerance=FLOAT16, tools=("tensorflow", "coremltools"),
                 read_metadata=read_coreml_metadata, speed_runtime="coreml",
                 report_section=coreml_report_section, read_weights=read_coreml_weights)
def convert(model, out_path: Path, options: CoreMLOptions, context: ExportContext) -> Artifact:
    """Convert the Keras model to an ML program and save it as `out_path` (.mlpackage)."""
    ct = import_coremltools()
    h, w = context.input_size
    source = with_output(model, options.output, label_dtype="int32", cache=context.cache)
    name = feature_name(options.output)
    mlmodel = ct.convert(
        source,
        source="tensorflow",
        convert_to="mlprogram",
        inputs=[ct.ImageType(name="image", shape=(1, h, w, 3), scale=1.0, bias=[0.0, 0.0, 0.0],
                             color_layout=ct.colorlayout.RGB)],
        minimum_deployment_target=getattr(ct.target, options.minimum_deployment_target),
        compute_precision=(ct.precision.FLOAT16 if options.precision == "fp16"
                           else ct.precision.FLOAT32),
    )
    # The TF graph names its output "Identity"; apps should see "logits" or "labels".
    spec = mlmodel.get_spec()
    ct.utils.rename_feature(spec, spec.description.output[0].name, name)
    mlmodel = ct.models.MLModel(spec, weights_dir=mlmodel.weights_dir, skip_model_load=True)
    # Kernels a compressed run holds exactly (shared values, pruned zeros) stay so; then
    # --compress (zoo/export/coreml_compress.py).
    mlmodel, plan = compress_weights(mlmodel, options.compress,
                                     options.minimum_deployment_target)
    _describe(mlmodel, options, context)
    mlmodel.save(str(out_path))  # a package folder: the exporter renames it into place

    from zoo.export.mil_reference import MilProgram

    program = MilProgram.load(out_path)
    weights, defects = describe_weights(program, plan)
    classes = len(context.class_names)
    labels = is_label_output(options.output)
    return Artifact(
        "coreml", out_path, "mil-reference",
        TensorInfo("image", "image RGB (uint8 pixel buffer)", [1, h, w, 3]),
        TensorInfo(name, "int32" if labels else "float32",
                   [1, h, w] if labels else [1, h, w, classes]),
        output_kind=options.output,
        ops=[o.op_type for o in program.function.operations if o.op_type != "const"],
        details={"precision": options.precision,
                 "minimum_deployment_target": options.minimum_deployment_target,
                 "ane_warnings": ane_warnings(program),
                 "unsupported_by_reference": [f"{k} ({n})" for k, n in program.unsupported()],
                 "runtimes": ["mil-reference"] + (["coreml"] if is_macos() else []),
                 "weights": weights},
        defects=defects,
    )


def _describe(mlmodel, options: CoreMLOptions, context: ExportContext) -> None:
    """Author, license, description, labels and Xcode's segmentation preview."""
    h, w = context.input_size
    mlmodel.author = options.author
    mlmodel.license = options.license
    mlmodel.version = options.version
    mlmodel.short_description = context.description()
    mlmodel.input_description["image"] = f"RGB image, {w}x{h} (width x height)"
    how = {"labels": "argmax of the full-resolution logits",
           "labels-nearest": "argmax at the head's resolution, nearest-neighbour upsampled"}
    mlmodel.output_description[feature_name(options.output)] = (
        f"class index per pixel (1, {h}, {w}), int32: {how[options.output]}"
        if is_label_output(options.output)
        else f"class logits per pixel (1, {h}, {w}, {len(context.class_names)}), NHWC")
    meta = mlmodel.user_defined_metadata
    meta.update(context.metadata())
    meta["input_layout"] = "image (pixel buffer)"
    meta["output"] = options.output
    meta["com.apple.coreml.model.preview.type"] = "imageSegmenter"
    meta["com.apple.coreml.model.preview.params"] = json.dumps({"labels": context.class_names})


def ane_warnings(program) -> list[str]:
    """Layers whose ops the Neural Engine is reported not to run (a static list)."""
    warnings = []
    for operation in program.function.operations:
        rule = ANE_UNFRIENDLY.get(operation.op_type)
        if rule is None:
            continue
        attr, reason = rule
        if attr is not None:
            value = operation.inputs.get(attr)
            if value is None or value.val is None or max(np.atleast_1d(value.val)) <= 1:
                continue
        warnings.append(f"{operation.name}: {reason} may not run on the Neural Engine")
    return warnings
