"""Format options: one dataclass per format, built on the shared bases here.

Example::

    @dataclass
    class OnnxOptions(ExportOptions):
        opset: int = option(17, "ONNX opset, 13..18", check=int_range(13, 18))

    OnnxOptions(opset=12)   # ConfigError: --opset must be an integer between 13 and 18, got 12

A field's ``help`` is what ``export.py --help`` prints for the option, with the formats that
take it; ``check`` validates (and may convert) the value when the options are built, so a bad
value is a one-line `ConfigError` naming the flag before anything is converted (the checks are
`zoo.checks`', shared with every entry point). A new option is one field.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from zoo.checks import flag, int_range
from zoo.checks import one_of as choice
from zoo.export.outputs import OUTPUTS

__all__ = ["ExportOptions", "QuantizedOptions", "choice", "int_range", "option", "option_help"]


def option(default: Any, help: str, check: Callable[[str, Any], Any] | None = None) -> Any:
    """A dataclass field with its CLI help and an optional ``check(name, value) -> value``."""
    return field(default=default, metadata={"help": help, "check": check})


@dataclass
class ExportOptions:
    """Options every format takes; subclasses add theirs as `option` fields."""

    output: str = option(
        "logits", "what the artifact returns: logits (float32 (1, H, W, C)), labels (argmax "
        "label map (1, H, W)) or labels-nearest (argmax at the head's stride, then a nearest "
        "upsample)", choice(*OUTPUTS))
    author: str = option("mobileseg-zoo", "model author, written into the artifact's metadata")
    license: str = option("Apache-2.0 (model code); check your training data's terms",
                          "license text, written into the artifact's metadata")
    version: str = option("1", "model version string, written into the artifact's metadata")

    def provenance(self) -> dict[str, str]:
        """Author, license and version, as every format embeds them."""
        return {"author": str(self.author), "license": str(self.license),
                "version": str(self.version)}

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            check = f.metadata.get("check")
            if check is not None:
                setattr(self, f.name, check(flag(f.name), getattr(self, f.name)))


IO_TYPES = ("uint8", "int8", "float")


@dataclass
class QuantizedOptions(ExportOptions):
    """Full-integer formats: I/O type and the training images that calibrate ranges."""

    io: str = option("uint8", "input/output type of a full-integer model: uint8, int8 or "
                     "float (quantize/dequantize inside the model)", choice(*IO_TYPES))
    calibration_images: int = option(100, "training images that calibrate int8 activation "
                                     "ranges", int_range(1))


def option_help(options_classes: dict[str, type]) -> list[tuple[str, str, list[str]]]:
    """``(name, help, formats)`` for every option of the given ``{format: options_cls}``, in
    first-seen order, one row per distinct help text of a name: the table ``export.py --help``
    prints."""
    table: dict[tuple[str, str], list[str]] = {}
    for fmt, cls in options_classes.items():
        for f in dataclasses.fields(cls):
            table.setdefault((f.name, f.metadata.get("help", "")), []).append(fmt)
    rows = sorted(table.items(), key=lambda kv: [k[0] for k in table].index(kv[0][0]))
    return [(name, help_text, formats) for (name, help_text), formats in rows]
