"""The runtimes a benchmark times, each prepared from one Keras model.

Example::

    target = prepare(model, "tflite-int8", folder, input_size=(224, 224))
    run = target.runner(threads=2)          # () -> logits of one random uint8 image
    target.artifact_bytes, target.details   # file size, {"xnnpack_partitions": 1}

Runtimes: ``keras`` (a `tf.function` of the model), ``tflite`` (fp32), ``tflite-int8``
(full-integer, uint8 I/O, calibrated on a few random images: fine for speed, meaningless for
accuracy), ``onnx`` (onnxruntime as `zoo.export.base.OnnxRunner` runs it) and
``coreml`` (needs macOS to run: elsewhere the target is `unavailable` with the reason).
Conversions go through the exporters' own `FORMATS`, so what is timed is what `export.py`
ships.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

RUNTIMES = ("keras", "tflite", "tflite-int8", "onnx", "coreml")
_FORMAT = {"tflite": "tflite", "tflite-int8": "tflite-int8", "onnx": "onnx", "coreml": "coreml"}
_OPTIONS = {"tflite-int8": {"io": "uint8", "calibration_images": 8}}


@dataclass
class Target:
    """One runtime ready to time: the Keras model or the converted artifact."""

    runtime: str
    input_size: tuple[int, int]
    model: Any = None
    artifact: Any = None  # zoo.export.Artifact
    unavailable: str = ""  # why this runtime cannot be timed here ("" when it can)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def artifact_bytes(self) -> int | None:
        if self.artifact is None:
            return None
        path = Path(self.artifact.path)
        if path.is_dir():
            return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        return path.stat().st_size

    def runner(self, threads: int, seed: int = 0) -> Callable[[], Any]:
        """A no-argument callable running one inference on a fixed random uint8 image."""
        h, w = self.input_size
        image = np.random.default_rng(seed).integers(0, 256, (1, h, w, 3), dtype=np.uint8)
        if self.runtime == "keras":
            import tensorflow as tf

            model = self.model
            infer = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
            x = tf.constant(image.astype(np.float32))
            return lambda: np.asarray(infer(x))
        runner = self.artifact.runner(threads=int(threads))
        if hasattr(runner, "delegate_report"):
            self.details.update(runner.delegate_report())
        return lambda: runner.run(image)


def calibrate_statistics(model, input_size: tuple[int, int], count: int = 16, seed: int = 0):
    """Re-estimate `model`'s BatchNorm statistics on random images, so that its activations are
    O(1) like a trained model's; returns `model`.

    With untouched random weights the activations of deep layers shrink to ~1e-8, and int8
    conversion then produces scales that XNNPACK refuses (an ADD whose input-to-output scale
    ratio is below 1/1024 stays outside the delegate), so int8 timings and partition counts of
    raw random models say nothing about trained ones."""
    from zoo.train.callbacks import recompute_batchnorm

    h, w = input_size
    images = np.random.default_rng(seed).integers(0, 256, (count, h, w, 3), dtype=np.uint8)
    recompute_batchnorm(model, images, batch_size=8)
    return model


def bench_context(arch: str, alpha: float, input_size: tuple[int, int], num_classes: int,
                  scratch: Path):
    """An `ExportContext` for benchmarks: random calibration images, a scratch folder."""
    from zoo.export import ExportContext

    h, w = input_size

    def random_images(count: int) -> np.ndarray:
        return np.random.default_rng(0).integers(0, 256, (count, h, w, 3), dtype=np.uint8)

    scratch.mkdir(parents=True, exist_ok=True)
    return ExportContext(run_id="bench", arch=arch, alpha=float(alpha), input_size=input_size,
                         class_names=[f"class{i}" for i in range(num_classes)],
                         load_calibration=random_images, scratch=scratch)


def prepare(model, runtime: str, folder: Path, context, stem: str = "model",
            export_options: dict[str, Any] | None = None) -> Target:
    """Convert `model` for `runtime` into `folder` (nothing to convert for keras).

    `export_options` (e.g. ``{"transpose_conv": "native", "output": "labels"}``) go to the
    format when it declares them, so one set can serve every runtime of a grid."""
    from dataclasses import fields

    from zoo.errors import ConfigError
    from zoo.export import FORMATS, parse_options

    if runtime not in RUNTIMES:
        raise ConfigError(f"unknown runtime {runtime!r}; allowed: {', '.join(RUNTIMES)}")
    size = tuple(context.input_size)
    if runtime == "keras":
        return Target(runtime, size, model=model)
    if runtime == "coreml" and sys.platform != "darwin":
        return Target(runtime, size, unavailable="not measurable off macOS")
    fmt = FORMATS.get(_FORMAT[runtime])
    folder.mkdir(parents=True, exist_ok=True)
    accepted = {f.name for f in fields(fmt.options_cls)}
    given = {**_OPTIONS.get(runtime, {}),
             **{k: v for k, v in (export_options or {}).items() if k in accepted}}
    artifact = fmt.convert(model, folder / f"{stem}{fmt.suffix}", parse_options(fmt, given),
                           context)
    return Target(runtime, size, artifact=artifact)


def set_tf_threads(threads: int) -> bool:
    """Pin TensorFlow's intra-op pool to `threads` (inter-op 1); False when TF already started
    (its pools cannot change after the first op) and the setting did not take."""
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(int(threads))
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        return tf.config.threading.get_intra_op_parallelism_threads() == int(threads)
    return True
