"""The backbone contract: a registered builder that returns taps ``P1``..``P5``.

A backbone family module registers each variant with `register_backbone`::

    @register_backbone("mobilenet_v2", alphas=AlphaRange(0.35, 1.4), channels=_channels,
                       paper="MobileNetV2: Inverted Residuals and Linear Bottlenecks",
                       imagenet=_IMAGENET)
    def mobilenet_v2(inputs, alpha, weights=None):
        ...
        return {"P1": t1, "P2": t2, "P3": t3, "P4": t4, "P5": t5}

The decorated function receives a Keras input (raw RGB in 0..255; the backbone scales it inside
the graph) and returns the five taps, tap ``Pn`` at stride ``2**n``. `build_backbone` wraps it into
a functional `keras.Model` whose output is that dict. `imagenet` declares the ImageNet files Keras
publishes for the network (`zoo.weights.PublishedWeights`): `build_backbone` resolves
``weights="imagenet"`` to one of them in Keras' cache, and the builder receives a local path.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras

from zoo.checks import input_size as check_input_size
from zoo.checks import number
from zoo.errors import ConfigError
from zoo.registry import Registry
from zoo.weights import PublishedWeights, imagenet_file_path

TAP_NAMES = ("P1", "P2", "P3", "P4", "P5")
TAP_STRIDES = {name: 2 ** (i + 1) for i, name in enumerate(TAP_NAMES)}

BACKBONES = Registry("backbone")
IMAGENET = "imagenet"  # weights="imagenet": the published ImageNet file (zoo.weights)


@dataclass(frozen=True)
class AlphaRange:
    """Continuous width multipliers ``low <= alpha <= high``."""

    low: float
    high: float

    def allows(self, alpha: float) -> bool:
        return self.low - 1e-9 <= alpha <= self.high + 1e-9

    def __str__(self) -> str:
        return f"{self.low}..{self.high}"


@dataclass(frozen=True)
class AlphaSet:
    """A discrete set of width multipliers."""

    values: tuple[float, ...]

    def allows(self, alpha: float) -> bool:
        return any(abs(alpha - v) < 1e-9 for v in self.values)

    def __str__(self) -> str:
        return ", ".join(str(v) for v in self.values)


@dataclass(frozen=True)
class TapInfo:
    """One multi-scale feature: tap name, channels and stride (timm's ``feature_info``)."""

    name: str
    channels: int
    stride: int


@dataclass(frozen=True)
class BackboneSpec:
    """A registered backbone variant and what it declares about itself."""

    name: str
    fn: Callable[..., dict[str, Any]]
    alphas: AlphaRange | AlphaSet
    channels: Callable[..., Sequence[int]]
    paper: str = ""
    options: tuple[str, ...] = ()
    imagenet: PublishedWeights | None = None  # the ImageNet files Keras publishes, if any

    def feature_info(self, alpha: float = 1.0, **options: Any) -> list[TapInfo]:
        """Declared taps for `alpha` and `options`, P1..P5."""
        chans = self.channels(alpha, **options)
        return [TapInfo(n, int(c), TAP_STRIDES[n]) for n, c in zip(TAP_NAMES, chans, strict=True)]

    def check_alpha(self, alpha: float, name: str = "alpha") -> float:
        """`alpha` as a float, or `ConfigError` naming the argument (`name`, e.g. ``--alpha``)
        and the allowed values."""
        value = number(name, alpha)
        if not self.alphas.allows(value):
            raise ConfigError(
                f"{name} {alpha} is not supported by backbone {self.name!r}; allowed: {self.alphas}"
            )
        return value


def register_backbone(
    name: str,
    *,
    alphas: AlphaRange | AlphaSet,
    channels: Callable[..., Sequence[int]],
    paper: str = "",
    options: tuple[str, ...] = (),
    imagenet: PublishedWeights | None = None,
) -> Callable:
    """Decorator registering a backbone builder function (see the module docstring)."""

    def decorator(fn: Callable) -> Callable:
        BACKBONES.register(name, BackboneSpec(name, fn, alphas, channels, paper=paper,
                                              options=options, imagenet=imagenet))
        return fn

    return decorator


def parse_input_size(input_size: Any) -> tuple[int, int]:
    """(height, width) from ``224``, ``(224, 288)``, ``[224, 288]`` or ``"224x288"``.

    Both sides must be >= 32 and divisible by 32 (the P5 tap is at stride 32).
    """
    return check_input_size("input_size", input_size)


def imagenet_weights(spec: BackboneSpec, alpha: float, input_size: tuple[int, int],
                     download: bool = False, **options: Any) -> str:
    """Path of the ImageNet file Keras publishes for this backbone, alpha, input size and options,
    from Keras' cache (fetched first when `download`); a one-line `ConfigError` when no such file
    is published, listing the ones that are."""
    if spec.imagenet is None:
        published = ", ".join(
            f"{name} ({BACKBONES.get(name).imagenet.describe()})"
            for name in BACKBONES.list() if BACKBONES.get(name).imagenet is not None
        )
        raise ConfigError(f"no published ImageNet weights for {spec.name}; Keras publishes them "
                          f"for {published}")
    file_name = spec.imagenet.file_for(alpha, input_size, **options)
    if file_name is None:
        given = "".join(f", {k}={v}" for k, v in options.items() if k in spec.imagenet.options)
        raise ConfigError(f"no published ImageNet weights for {spec.name} at alpha {alpha}"
                          f"{given}; published: {spec.imagenet.describe()}")
    return imagenet_file_path(file_name, spec.imagenet.url + file_name, download)


def resolve_weights(spec: BackboneSpec, weights: Any, alpha: float, input_size: tuple[int, int],
                    download: bool = False, **options: Any) -> str | None:
    """The local file a backbone loads: `None`; for ``"imagenet"`` the published file in Keras'
    cache (`imagenet_weights`; downloaded only when `download`); else the path of an existing
    local weights file (``./imagenet`` for a local file of that name)."""
    if download and weights != IMAGENET:
        raise ConfigError("download_weights fetches published weights: it needs weights='imagenet'")
    if weights is None:
        return None
    if weights == IMAGENET:
        return imagenet_weights(spec, alpha, input_size, download, **options)
    path = Path(os.path.expanduser(str(weights)))
    if not path.is_file():
        raise ConfigError(f"weights file not found: {weights}")
    return str(path)


def build_backbone(
    name: str,
    input_size: Any = 224,
    alpha: float = 1.0,
    weights: str | None = None,
    download_weights: bool = False,
    **options: Any,
) -> keras.Model:
    """Build backbone `name` as a functional model from RGB 0..255 to the dict of taps.

    `weights` is `None` (random), ``"imagenet"`` (the file Keras publishes, from its cache;
    `download_weights` fetches it when missing) or the path of a local weights file.

    Example::

        bb = build_backbone("mobilenet_v2", input_size=(96, 128), alpha=0.35)
        bb.output["P5"].shape   # (None, 3, 4, 1280)
        bb = build_backbone("mobilenet_v2", input_size=96, alpha=0.35, weights="imagenet")
    """
    spec = BACKBONES.get(name)
    alpha = spec.check_alpha(alpha)
    height, width = parse_input_size(input_size)
    unknown = sorted(set(options) - set(spec.options))
    if unknown:
        raise ConfigError(
            f"unknown option(s) {', '.join(unknown)} for backbone {name!r}; "
            f"allowed: {', '.join(spec.options) or '(none)'}"
        )
    weights = resolve_weights(spec, weights, alpha, (height, width), download_weights, **options)
    inputs = keras.Input((height, width, 3), name="image")
    taps = spec.fn(inputs, alpha=alpha, weights=weights, **options)
    return keras.Model(inputs, {n: taps[n] for n in TAP_NAMES}, name=name)


def taps_of(backbone: keras.Model) -> dict[str, Any]:
    """The symbolic tap tensors of a model made by `build_backbone`, by name."""
    return dict(backbone.output)


def layer_output(model: keras.Model, *names: str) -> Any:
    """Output tensor of the first layer of `names` present in `model` (keras.applications names
    depend on alpha: a residual ``..._add`` exists only when a block keeps its width)."""
    have = {layer.name for layer in model.layers}
    for name in names:
        if name in have:
            return model.get_layer(name).output
    raise KeyError(f"none of the layers {names} in {model.name}")


def load_local_weights(model: keras.Model, weights: str | None) -> None:
    """Load a local weights file into `model`, with a one-line error on mismatch."""
    if weights is None:
        return
    try:
        model.load_weights(weights)
    except Exception as exc:  # keras raises several types for a mismatched file
        reason = " ".join(str(exc).split())
        raise ConfigError(f"weights file {weights} does not fit {model.name}: {reason}") from None


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round channels to a multiple of `divisor`, never below 90 % of `value` (MobileNetV2)."""
    min_value = min_value or divisor
    new = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new < 0.9 * value:
        new += divisor
    return new
