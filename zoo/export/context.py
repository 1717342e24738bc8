"""What every converter may need besides the model: the run, its data and a scratch folder.

Example::

    context = ExportContext(run_id="r", arch="mobileunet", alpha=0.5, input_size=(128, 128),
                            class_names=["background", "hair"], load_calibration=loader)
    images, sha256 = context.calibration(100)     # loaded once, hashed once
    context.metadata()                            # what every format embeds
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from zoo.errors import ConfigError

NORMALIZATION = "RGB 0..255, scaled inside"


@dataclass
class ExportContext:
    """The run's facts, a calibration-image loader, a scratch folder and a cache formats share
    (one SavedModel for all TFLite variants, one int8 model for tflite-int8 and edgetpu)."""

    run_id: str
    arch: str
    alpha: float
    input_size: tuple[int, int]
    class_names: list[str]
    load_calibration: Callable[[int], np.ndarray]
    threads: int | None = None
    validation_images: np.ndarray | None = None  # for reports that measure on validation data
    reference: Any = None  # the validator's `Reference` (Keras predictions on those images)
    max_miou_drop: dict[str, float] = field(default_factory=dict)  # the gate's, per format
    scratch: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="zoo-export-")))
    cache: dict[Any, Any] = field(default_factory=dict)

    def metadata(self) -> dict[str, str]:
        """What an app needs to feed the model and read its output; every format embeds it
        (ONNX metadata_props, TFLite metadata buffer, Core ML user_defined_metadata)."""
        h, w = self.input_size
        return {
            "arch": self.arch,
            "alpha": f"{self.alpha:g}",
            "input_size": f"{h}x{w}",
            "input_layout": "NHWC",
            "normalization": NORMALIZATION,
            "class_names": json.dumps(self.class_names),
            "run_id": self.run_id,
        }

    def description(self) -> str:
        """One line for the metadata of every format: what the model is and what it sees."""
        h, w = self.input_size
        return (f"{self.arch} (alpha {self.alpha:g}) semantic segmentation, {h}x{w}, "
                f"{len(self.class_names)} classes: {', '.join(self.class_names)}")

    def calibration(self, count: int) -> tuple[np.ndarray, str]:
        """`count` training images (uint8 NHWC, validation preprocessing) and their sha256,
        loaded once per count."""
        key = ("calibration", int(count))
        if key not in self.cache:
            images = self.load_calibration(int(count))
            if len(images) == 0:
                raise ConfigError("no training images for int8 calibration")
            self.cache[key] = (images, hashlib.sha256(images.tobytes()).hexdigest())
        return self.cache[key]

    def calibration_images(self, count: int) -> np.ndarray:
        return self.calibration(count)[0]
