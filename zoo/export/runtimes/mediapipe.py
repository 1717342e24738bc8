"""MediaPipe Tasks' `ImageSegmenter`, the API Android, iOS, web and Python apps use to run a
segmentation .tflite: it reads the standard TFLite metadata (normalization, labels), runs the
model and returns a category mask.

Example::

    runner = MediaPipeRunner(Path("model.tflite"))
    runner.labels                      # the class names from the packed labels file
    runner.run(images[:1])             # uint8 (1, H, W): MediaPipe's category mask

A float model without NormalizationOptions metadata is refused by MediaPipe ("Input tensor has
type float32: it requires specifying NormalizationOptions metadata"); the zoo's TFLite artifacts
carry it (`zoo.export.tflite_metadata`).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from zoo.export.runtimes.base import Runner, register_runtime


def _available() -> str:
    return "" if importlib.util.find_spec("mediapipe") else (
        "mediapipe is not installed: pip install -e '.[export]'")


@register_runtime("mediapipe", available=_available)
class MediaPipeRunner(Runner):
    """A .tflite with segmenter metadata in MediaPipe's ImageSegmenter (category mask only)."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        from mediapipe.tasks.python import vision
        from mediapipe.tasks.python.core import base_options

        options = vision.ImageSegmenterOptions(
            base_options=base_options.BaseOptions(model_asset_path=str(path)),
            output_category_mask=True, output_confidence_masks=False)
        self.segmenter = vision.ImageSegmenter.create_from_options(options)
        self.labels = list(self.segmenter.labels)

    def run(self, images: np.ndarray) -> np.ndarray:
        import mediapipe as mp

        image = mp.Image(image_format=mp.ImageFormat.SRGB,
                         data=np.ascontiguousarray(np.asarray(images[0], np.uint8)))
        mask = self.segmenter.segment(image).category_mask
        # numpy_view() is a view into a buffer the next call reuses: copy it.
        labels = mask.numpy_view().copy()
        return labels.reshape(1, *labels.shape[:2])

    def close(self) -> None:
        """Release the segmenter. Explicitly: closing it from a finalizer during garbage
        collection deadlocks MediaPipe's dispatcher."""
        self.segmenter.close()
