"""Format options: one dataclass per format, built on the shared bases here.

Example::

    @dataclass
    class OnnxOptions(ExportOptions):
        opset: int = option(17, "ONNX opset, 13..18", check=int_range(13, 18))

    OnnxOptions(opset=12)   # ConfigError: opset must be between 13 and 18, got 12

A field's ``help`` is what ``export.py --help`` prints for the option, with the formats that
take it; ``check`` validates (and may convert) the value when the options are built, so a bad
value is a one-line `ConfigError` before anything is converted. A new option is one field.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from zoo.errors import ConfigError
from zoo.export.outputs import OUTPUTS


def option(default: Any, help: str, check: Callable[[str, Any], Any] | None = None) -> Any:
    """A dataclass field with its CLI help and an optional ``check(name, value) -> value``."""
    return field(default=default, metadata={"help": help, "check": check})


def choice(*allowed: str) -> Callable[[str, Any], Any]:
    def check(name: str, value: Any) -> Any:
        if value not in allowed:
            raise ConfigError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
        return value

    return check


def int_range(low: int, high: int | None = None) -> Callable[[str, Any], int]:
    def check(name: str, value: Any) -> int:
        try:
            number = int(value)
            if number != float(value) or isinstance(value, bool):
                raise ValueError
        except (TypeError, ValueError):
            raise ConfigError(f"{name} must be an integer, got {value!r}") from None
        if number < low or (high is not None and number > high):
            bounds = f">= {low}" if high is None else f"between {low} and {high}"
            raise ConfigError(f"{name} must be {bounds}, got {value!r}")
        return number

    return check


@dataclass
class ExportOptions:
    """Options every format takes; subclasses add theirs as `option` fields."""

    output: str = option(
        "logits", "what the artifact returns: logits (float32 (1, H, W, C)), labels (argmax "
        "label map (1, H, W)) or labels-nearest (argmax at the head's stride, then a nearest "
        "upsample)", choice(*OUTPUTS))

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            check = f.metadata.get("check")
            if check is not None:
                setattr(self, f.name, check(f.name, getattr(self, f.name)))


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
