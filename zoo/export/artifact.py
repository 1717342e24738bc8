"""What a format's converter returns: the file, how to run it, and what the manifest says.

Example::

    artifact = FORMATS.get("tflite").convert(model, path, options, context)
    artifact.runner(threads=2).run(images[:1])   # the runtime looked up by name
    artifact.output_kind                          # "logits" | "labels" | "labels-nearest"
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo.export.runtimes import Runner, TensorInfo, get_runner


@dataclass
class Artifact:
    """A converted file and its facts.

    `runtime` names the `zoo.export.runtimes` entry that executes it; `output_kind` is the
    `ExportOptions.output` it was converted with; `calibration_sha256` is the hash of the
    calibration images for formats that calibrate; `also_runs_in` names further runtimes that
    load the file as it is (MediaPipe for TFLite logits), which the validator runs too;
    `details` holds format-specific manifest
    entries (delegate partitions, the Edge TPU report, ...)."""

    format: str
    path: Path
    runtime: str
    input: TensorInfo
    output: TensorInfo
    output_kind: str = "logits"
    ops: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    calibration_sha256: str | None = None
    also_runs_in: list[str] = field(default_factory=list)  # more runtimes the validator runs
    # What the converter found wrong with the file whatever its figures (float tensors left in
    # an int8 model): each fails validation.
    defects: list[str] = field(default_factory=list)

    def runner(self, threads: int | None = None) -> Runner:
        return get_runner(self.runtime, self.path, threads)
