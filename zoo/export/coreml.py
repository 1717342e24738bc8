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

Core ML prediction needs macOS; everywhere else the artifact runs in `mil_reference`, which
executes the saved program with NumPy (fp16 rounding emulated). On macOS the real runtime is
used as well (`CoreMLRunner`).
"""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zoo.errors import ConfigError
from zoo.export.base import Artifact, ExportContext, Runner, TensorInfo, register_format
from zoo.export.outputs import OUTPUTS, is_label_output, with_output

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


def _import_coremltools():
    try:
        import coremltools as ct
    except ImportError:
        raise ConfigError("Core ML export needs coremltools: pip install -e '.[export]'") from None
    return ct


@dataclass
class CoreMLOptions:
    """precision: fp16 (default) or fp32 compute; output: logits, labels or labels-nearest
    (argmax label maps, see zoo/export/outputs.py); minimum_deployment_target: iOS16 by
    default."""

    precision: str = "fp16"
    output: str = "logits"
    minimum_deployment_target: str = "iOS16"
    author: str = "mobileseg-zoo"
    license: str = "Apache-2.0 (model code); check your training data's terms"
    version: str = "1"

    def __post_init__(self):
        for name, value, allowed in (("precision", self.precision, PRECISIONS),
                                     ("output", self.output, OUTPUTS),
                                     ("minimum_deployment_target",
                                      self.minimum_deployment_target, TARGETS)):
            if value not in allowed:
                raise ConfigError(f"coreml {name} must be one of {', '.join(allowed)}, "
                                  f"got {value!r}")


def feature_name(output: str) -> str:
    """The ML program's output feature: ``logits``, or ``labels`` for either label map."""
    return "labels" if is_label_output(output) else "logits"


@register_format("coreml", CoreMLOptions, suffix=".mlpackage")
def convert(model, out_path: Path, options: CoreMLOptions, context: ExportContext) -> Artifact:
    """Convert the Keras model to an ML program and save it as `out_path` (.mlpackage)."""
    ct = _import_coremltools()
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
    _describe(mlmodel, options, context)
    mlmodel.save(str(out_path))

    from zoo.export.mil_reference import MilProgram

    program = MilProgram.load(out_path)
    classes = len(context.class_names)
    labels = is_label_output(options.output)
    return Artifact(
        "coreml", out_path, "mil-reference",
        TensorInfo("image", "image RGB (uint8 pixel buffer)", [1, h, w, 3]),
        TensorInfo(name, "int32" if labels else "float32",
                   [1, h, w] if labels else [1, h, w, classes]),
        ops=[o.op_type for o in program.function.operations if o.op_type != "const"],
        details={"precision": options.precision, "output": options.output,
                 "minimum_deployment_target": options.minimum_deployment_target,
                 "ane_warnings": ane_warnings(program),
                 "unsupported_by_reference": [f"{k} ({n})" for k, n in program.unsupported()],
                 "runtimes": ["mil-reference"] + (["coreml"] if is_macos() else [])},
    )


def _describe(mlmodel, options: CoreMLOptions, context: ExportContext) -> None:
    """Author, license, description, labels and Xcode's segmentation preview."""
    h, w = context.input_size
    mlmodel.author = options.author
    mlmodel.license = options.license
    mlmodel.version = options.version
    mlmodel.short_description = (
        f"{context.arch} (alpha {context.alpha:g}) semantic segmentation, {h}x{w}, "
        f"{len(context.class_names)} classes: {', '.join(context.class_names)}")
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


def is_macos() -> bool:
    return platform.system() == "Darwin"


class MilReferenceRunner(Runner):
    """Runs a saved ML program with the NumPy reference interpreter (every platform)."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        from zoo.export.mil_reference import MilProgram

        self.program = MilProgram.load(path)
        self.input_name = self.program.input_names[0]
        self.output_name = self.program.output_names[0]

    def run(self, images: np.ndarray) -> np.ndarray:
        x = np.transpose(np.asarray(images, np.float32), (0, 3, 1, 2))  # the program takes NCHW
        out = self.program.run({self.input_name: x})[self.output_name]
        # An integer label map as it is (int32), logits as float32 (as the other runners do).
        return out if np.issubdtype(out.dtype, np.integer) else out.astype(np.float32)


class CoreMLRunner(Runner):
    """The real Core ML runtime (macOS only)."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        ct = _import_coremltools()
        if not is_macos():
            raise ConfigError("Core ML prediction needs macOS; use the mil-reference runtime")
        self.model = ct.models.MLModel(str(path))
        self.output_name = self.model.get_spec().description.output[0].name

    def run(self, images: np.ndarray) -> np.ndarray:
        from PIL import Image

        out = self.model.predict({"image": Image.fromarray(np.asarray(images[0], np.uint8))})
        value = np.asarray(out[self.output_name])
        value = value if value.ndim in (3, 4) and value.shape[0] == 1 else value[None]
        return value if np.issubdtype(value.dtype, np.integer) else value.astype(np.float32)
