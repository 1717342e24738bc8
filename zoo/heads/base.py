"""The head contract: taps in, logits out.

A head is a registered function ``fn(taps, num_classes, **options) -> logits`` that sees only
the tap tensors ``P1``..``P5`` (tap ``Pn`` at stride ``2**n``), never a backbone name, and returns
logits at its own output stride (e.g. 2 for the U-Net, 4 for DeepLabV3+, 8 for LR-ASPP);
`zoo.models` upsamples them to the input resolution.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import keras

from zoo.errors import ConfigError
from zoo.registry import Registry

HEADS = Registry("head")


@dataclass(frozen=True)
class HeadSpec:
    """A registered head and the options it accepts."""

    name: str
    fn: Callable[..., Any]
    options: tuple[str, ...] = ()
    paper: str = ""


def register_head(name: str, *, options: tuple[str, ...] = (), paper: str = "") -> Callable:
    """Decorator registering a head function (see the module docstring)."""

    def decorator(fn: Callable) -> Callable:
        HEADS.register(name, HeadSpec(name, fn, options, paper))
        return fn

    return decorator


def tap_stride(tap: str) -> int:
    """Stride of a tap name: ``"P3"`` -> 8."""
    return 2 ** int(tap[1:])


def check_deep_and_low(taps: dict, deep: tuple[str, str], low: tuple[str, str]) -> None:
    """Both taps exist and the low-level one is shallower: ``deep=("aspp_tap", "P5")``."""
    for arg, tap in (deep, low):
        if tap not in taps:
            raise ConfigError(f"{arg} must be one of {', '.join(taps)}, got {tap!r}")
    if tap_stride(low[1]) >= tap_stride(deep[1]):
        raise ConfigError(f"{low[0]} {low[1]} must be shallower than {deep[0]} {deep[1]}")


def conv_bn_relu(x, filters: int, name: str, kernel_size: int = 1, relu6: bool = False):
    """Conv (no bias) + BatchNorm + ReLU, layers named ``{name}_conv/_bn/_relu``."""
    x = keras.layers.Conv2D(filters, kernel_size, padding="same", use_bias=False,
                            name=f"{name}_conv")(x)
    x = keras.layers.BatchNormalization(epsilon=1e-3, momentum=0.99, name=f"{name}_bn")(x)
    return keras.layers.ReLU(6.0 if relu6 else None, name=f"{name}_relu")(x)


def separable_conv_bn_relu(x, filters: int, name: str, dilation: int = 1, relu6: bool = False):
    """Depthwise 3x3 (optionally dilated) + BN + ReLU, then pointwise conv + BN + ReLU."""
    x = keras.layers.DepthwiseConv2D(3, padding="same", dilation_rate=dilation, use_bias=False,
                                     name=f"{name}_dw")(x)
    x = keras.layers.BatchNormalization(epsilon=1e-3, momentum=0.99, name=f"{name}_dw_bn")(x)
    x = keras.layers.ReLU(6.0 if relu6 else None, name=f"{name}_dw_relu")(x)
    return conv_bn_relu(x, filters, f"{name}_pw", relu6=relu6)


def classifier(x, num_classes: int, name: str):
    """The 1x1 conv to class logits."""
    return keras.layers.Conv2D(num_classes, 1, padding="same", name=name)(x)
