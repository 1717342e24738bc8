"""The runtimes a benchmark times, each prepared from one Keras model.

Example::

    target = prepare(model, "tflite-int8", folder, context)
    run = target.runner(threads=2)          # () -> logits of one random uint8 image
    target.artifact_bytes, target.details   # file size, {"xnnpack_partitions": 1}
    runtime_names()                         # ["keras", every registered export format]

A benchmark runtime is ``keras`` (a `tf.function` of the model) or the name of any export
format: the model is converted by the format's own converter, so what is timed is what
`export.py` ships, and run in the runtime the format declares for speed (its `speed_runtime`,
else its validating runtime). Where that runtime cannot run here (Core ML off macOS) the target
is `unavailable` with the reason. Formats that calibrate get a few random images: fine for
speed, meaningless for accuracy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

KERAS = "keras"
# Random calibration images for formats that take them: int8 speed does not depend on ranges.
BENCH_CALIBRATION_IMAGES = 8


def runtime_names() -> list[str]:
    """``keras`` and every registered export format."""
    from zoo.export import FORMATS

    return [KERAS, *FORMATS.list()]


def export_option_names() -> set[str]:
    """Every option some export format declares (e.g. output, transpose_conv)."""
    from zoo.export import FORMATS

    return {name for fmt in FORMATS.list() for name in FORMATS.get(fmt).option_names()}


@dataclass
class Target:
    """One runtime ready to time: the Keras model or the converted artifact."""

    runtime: str
    input_size: tuple[int, int]
    model: Any = None
    artifact: Any = None  # zoo.export.Artifact
    timed_runtime: str = ""  # the zoo.export.runtimes entry that runs the artifact
    unavailable: str = ""  # why this runtime cannot be timed here ("" when it can)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def artifact_bytes(self) -> int | None:
        if self.artifact is None:
            return None
        path = Path(self.artifact.path)
        from zoo.files import size_bytes

        return size_bytes(path)

    def runner(self, threads: int, seed: int = 0) -> Callable[[], Any]:
        """A no-argument callable running one inference on a fixed random uint8 image."""
        h, w = self.input_size
        image = np.random.default_rng(seed).integers(0, 256, (1, h, w, 3), dtype=np.uint8)
        if self.runtime == KERAS:
            import tensorflow as tf

            model = self.model
            infer = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
            x = tf.constant(image.astype(np.float32))
            return lambda: np.asarray(infer(x))
        from zoo.export.runtimes import get_runner

        runner = get_runner(self.timed_runtime, self.artifact.path, threads=int(threads))
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
    from zoo.batchnorm import recompute_batchnorm

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
    from zoo.errors import ConfigError
    from zoo.export import FORMATS, RUNTIMES, parse_options

    names = runtime_names()
    if runtime not in names:
        raise ConfigError(f"unknown runtime {runtime!r}; allowed: {', '.join(names)}")
    size = tuple(context.input_size)
    if runtime == KERAS:
        return Target(runtime, size, model=model)
    fmt = FORMATS.get(runtime)
    timed = fmt.speed_runtime or fmt.runtime
    why = RUNTIMES.get(timed).available()
    if why:
        return Target(runtime, size, timed_runtime=timed, unavailable=why)
    folder.mkdir(parents=True, exist_ok=True)
    accepted = set(fmt.option_names())
    given = {"calibration_images": BENCH_CALIBRATION_IMAGES} if (
        "calibration_images" in accepted) else {}
    if "layer_report" in accepted:  # the per-layer int8 error report: no figure of a benchmark
        given["layer_report"] = 0
    given.update({k: v for k, v in (export_options or {}).items() if k in accepted})
    artifact = fmt.convert(model, folder / f"{stem}{fmt.suffix}", parse_options(fmt, given),
                           context)
    return Target(runtime, size, artifact=artifact, timed_runtime=timed)


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
