"""Backbones: one module per family; importing this package registers them all."""

from zoo.backbones import mobilenet_edgetpu, mobilenet_v1, mobilenet_v2, mobilenet_v3  # noqa: F401  (registers)
from zoo.backbones.base import (
    BACKBONES,
    TAP_NAMES,
    TAP_STRIDES,
    BackboneSpec,
    TapInfo,
    build_backbone,
    parse_input_size,
    resolve_weights,
    taps_of,
)

__all__ = [
    "BACKBONES",
    "TAP_NAMES",
    "TAP_STRIDES",
    "BackboneSpec",
    "TapInfo",
    "build_backbone",
    "parse_input_size",
    "resolve_weights",
    "taps_of",
]
