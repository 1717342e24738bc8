"""Export: one module per format behind `FORMATS`, one validator, one manifest writer.

Example::

    from zoo.export import FORMATS, export
    FORMATS.list()                  # ['edgetpu', 'onnx', 'tflite', 'tflite-dynamic', ...]
    result = export(run="checkpoints/mobileunet-a0.5-224x224-...", format="all")

Format modules register themselves on import: every module of this folder whose source uses
``@register_format`` is imported here (helpers such as mil_reference are not), so adding a file
is the only step to add a format.
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

from zoo.export.base import FORMATS, Artifact, ExportContext, parse_options, register_format

for _info in pkgutil.iter_modules(__path__):
    _source = Path(__path__[0]) / f"{_info.name}.py"
    if _info.name != "base" and _source.is_file() and "@register_format(" in _source.read_text():
        importlib.import_module(f"{__name__}.{_info.name}")


def __getattr__(name: str):
    if name in ("export", "export_command"):
        from zoo.export import exporter

        return getattr(exporter, name)
    raise AttributeError(f"module 'zoo.export' has no attribute {name!r}")


__all__ = ["FORMATS", "Artifact", "ExportContext", "export", "export_command", "parse_options",
           "register_format"]
