"""The export format registry: everything the rest of the package knows about a format.

Example::

    @register_format("onnx", OnnxOptions, suffix=".onnx", runtime="onnxruntime",
                     tolerance=FLOAT32, tools=("tf2onnx", "onnx", "onnxruntime"),
                     read_metadata=read_onnx_metadata)
    def convert(model, out_path, options, context) -> Artifact: ...

    fmt = FORMATS.get("onnx")
    options = parse_options(fmt, {"opset": 17})      # unknown keys raise ConfigError
    artifact = fmt.convert(model, Path("m.onnx"), options, context)

A format module (one file in `zoo/export/formats/`) declares its name, options dataclass
(`zoo.export.options`), file suffix, the runtime that executes it (`zoo.export.runtimes`), its
default validation tolerance, the tools whose versions go into the manifest, how to read back
the metadata it embeds, and optionally a report.md section of its own. The exporter, validator,
manifest and benchmarks read only this.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from zoo.errors import ConfigError
from zoo.registry import Registry

FORMATS = Registry("export format")


@dataclass(frozen=True)
class Tolerance:
    """Pass thresholds: pixel agreement with Keras in % (None: not checked), mIoU drop in pt."""

    min_agreement: float | None = 99.9
    max_miou_drop: float = 0.1


FLOAT32 = Tolerance(99.9, 0.1)  # the same predictions as Keras, up to float rounding
FLOAT16 = Tolerance(None, 0.3)
INT8 = Tolerance(None, 2.0)


@dataclass
class FormatSpec:
    """A registered format (see the module docstring).

    `read_metadata(path) -> dict` reads back the metadata the format embeds (what
    `ExportContext.metadata` gives, at least); `report_section(entry) -> lines` adds a section
    to report.md for each of the format's manifest entries; `speed_runtime` is the runtime
    benchmarks time when it differs from the validating one (Core ML: validated in the NumPy
    interpreter, timed in Core ML itself); `learned_ranges` says the format converts a
    quantization-aware model (`compress.py --method qat`) with the ranges it learned, and a
    QAT run exports to those formats only. `read_weights(path) -> {name: array}` reads back
    the artifact's constant weight tensors decoded to dense arrays (what the runtime computes
    with: palettes looked up, sparse tensors filled, int8 kept as stored), for the weight-size
    report."""

    name: str
    options_cls: type
    convert: Callable[..., Any]
    suffix: str
    runtime: str
    tolerance: Tolerance = FLOAT32
    tools: tuple[str, ...] = ()
    read_metadata: Callable[[Any], dict[str, str]] | None = None
    report_section: Callable[[dict], list[str]] | None = None
    speed_runtime: str | None = None
    learned_ranges: bool = False  # converts a quantization-aware model with its learned ranges
    read_weights: Callable[[Any], dict[str, Any]] | None = None

    def option_names(self) -> list[str]:
        return [f.name for f in dataclasses.fields(self.options_cls)]


def register_format(name: str, options_cls: type, *, suffix: str, runtime: str,
                    tolerance: Tolerance = FLOAT32, tools: tuple[str, ...] = (),
                    read_metadata: Callable[[Any], dict[str, str]] | None = None,
                    report_section: Callable[[dict], list[str]] | None = None,
                    speed_runtime: str | None = None, learned_ranges: bool = False,
                    read_weights: Callable[[Any], dict[str, Any]] | None = None) -> Callable:
    """Decorator registering `convert(model, out_path, options, context) -> Artifact`."""

    def decorator(fn: Callable) -> Callable:
        FORMATS.register(name, FormatSpec(
            name=name, options_cls=options_cls, convert=fn, suffix=suffix, runtime=runtime,
            tolerance=tolerance, tools=tuple(tools), read_metadata=read_metadata,
            report_section=report_section, speed_runtime=speed_runtime,
            learned_ranges=learned_ranges, read_weights=read_weights))
        return fn

    return decorator


def parse_options(fmt: FormatSpec, options: dict[str, Any] | None) -> Any:
    """The format's options dataclass from a dict; unknown keys are a ConfigError naming them,
    bad values the dataclass's own one-line ConfigError prefixed by the format."""
    options = dict(options or {})
    allowed = fmt.option_names()
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ConfigError(f"format {fmt.name}: unknown option(s) {', '.join(unknown)}; "
                          f"allowed: {', '.join(allowed) or '(none)'}")
    try:
        return fmt.options_cls(**options)
    except ConfigError as exc:
        raise ConfigError(f"{fmt.name}: {exc}") from None
