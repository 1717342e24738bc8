"""Export: one module per format behind `FORMATS`, one validator, one manifest writer.

Example::

    from zoo.export import FORMATS, export
    FORMATS.list()                  # ['edgetpu', 'onnx', 'tflite', 'tflite-dynamic', ...]
    result = export(run="checkpoints/mobileunet-a0.5-224x224-...", format="all")

Format modules register themselves on import; every module in this folder that is not one of
the shared ones below is a format module, so adding a file is the only step to add a format.
"""

from __future__ import annotations

import importlib
import pkgutil

from zoo.export.base import FORMATS, Artifact, ExportContext, parse_options, register_format

_SHARED = {"base", "validate", "manifest", "exporter"}
for _info in pkgutil.iter_modules(__path__):
    if _info.name not in _SHARED:
        importlib.import_module(f"{__name__}.{_info.name}")


def __getattr__(name: str):
    if name in ("export", "export_command"):
        from zoo.export import exporter

        return getattr(exporter, name)
    raise AttributeError(f"module 'zoo.export' has no attribute {name!r}")


__all__ = ["FORMATS", "Artifact", "ExportContext", "export", "export_command", "parse_options",
           "register_format"]
