"""Export: one module per format in `formats/`, one per runtime in `runtimes/`, one validator,
one manifest writer, and the exporter that ties them together without naming any format.

Example::

    from zoo.export import FORMATS, export
    FORMATS.list()                  # ['coreml', 'edgetpu', 'onnx', 'onnx-int8', 'tflite', ...]
    result = export(run="checkpoints/mobileunet-a0.5-224x224-...", format="all")

Importing this package imports every module of `formats/` (each registers itself), so adding a
file there is the only step to add a format.
"""

from __future__ import annotations

from zoo.export import formats  # noqa: F401 - registers every format
from zoo.export.artifact import Artifact
from zoo.export.context import ExportContext
from zoo.export.format import FORMATS, FormatSpec, Tolerance, parse_options, register_format
from zoo.export.options import ExportOptions, QuantizedOptions, option
from zoo.export.runtimes import RUNTIMES, TensorInfo


def __getattr__(name: str):
    if name in ("export", "export_command"):
        from zoo.export import exporter

        return getattr(exporter, name)
    raise AttributeError(f"module 'zoo.export' has no attribute {name!r}")


__all__ = ["FORMATS", "RUNTIMES", "Artifact", "ExportContext", "ExportOptions", "FormatSpec",
           "QuantizedOptions", "TensorInfo", "Tolerance", "export", "export_command", "option",
           "parse_options", "register_format"]
