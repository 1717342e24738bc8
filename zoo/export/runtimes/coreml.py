"""Core ML ML programs: the real Core ML runtime (macOS only) and, on every platform, the NumPy
reference interpreter of `zoo.export.mil_reference`.

Example::

    MilReferenceRunner(Path("model.mlpackage")).run(images[:1])   # any OS
    CoreMLRunner(Path("model.mlpackage")).run(images[:1])         # macOS
    RUNTIMES.get("coreml").available()   # "Core ML prediction needs macOS" elsewhere

Both take the uint8 image NHWC like every runner; the program's ImageType input is NCHW.
"""

from __future__ import annotations

import platform
from pathlib import Path

import numpy as np

from zoo.errors import ConfigError
from zoo.export.runtimes.base import Runner, as_output, register_runtime


def is_macos() -> bool:
    return platform.system() == "Darwin"


def import_coremltools():
    """coremltools, or a one-line error saying how to install it."""
    try:
        import coremltools as ct
    except ImportError:
        raise ConfigError("Core ML needs coremltools: pip install -e '.[export]'") from None
    return ct


def _coreml_available() -> str:
    return "" if is_macos() else "Core ML prediction needs macOS"


@register_runtime("mil-reference")
class MilReferenceRunner(Runner):
    """Runs a saved ML program with the NumPy reference interpreter (every platform)."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        from zoo.export.mil_reference import MilProgram

        self.program = MilProgram.load(path)
        self.input_name = self.program.input_names[0]
        self.output_name = self.program.output_names[0]

    def run(self, images: np.ndarray) -> np.ndarray:
        x = np.transpose(np.asarray(images, np.float32), (0, 3, 1, 2))  # the program takes NCHW
        return as_output(self.program.run({self.input_name: x})[self.output_name])


@register_runtime("coreml", available=_coreml_available)
class CoreMLRunner(Runner):
    """The real Core ML runtime (macOS only)."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        ct = import_coremltools()
        if not is_macos():
            raise ConfigError("Core ML prediction needs macOS; use the mil-reference runtime")
        self.model = ct.models.MLModel(str(path))
        self.output_name = self.model.get_spec().description.output[0].name

    def run(self, images: np.ndarray) -> np.ndarray:
        from PIL import Image

        out = self.model.predict({"image": Image.fromarray(np.asarray(images[0], np.uint8))})
        value = np.asarray(out[self.output_name])
        value = value if value.ndim in (3, 4) and value.shape[0] == 1 else value[None]
        return as_output(value)
