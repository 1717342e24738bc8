"""Named archs (backbone + head + defaults) and `build_model`.

Example::

    model = build_model("mobileunet", alpha=0.5, input_size=(224, 288), num_classes=12)
    model = build_model(backbone="mobilenet_v2", head="lraspp", alpha=0.35, input_size=96)

Backbones and heads meet here only through the taps P1..P5. The head's logits are upsampled
bilinearly to the input resolution; the model's output is float32 logits ``(B, H, W, C)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import keras

from zoo.backbones import BACKBONES, build_backbone, parse_input_size, resolve_weights, taps_of
from zoo.errors import ConfigError
from zoo.heads import HEADS
from zoo.registry import Registry

ARCHS = Registry("arch")


@dataclass(frozen=True)
class ArchSpec:
    """A named pairing of a backbone and a head, with option defaults for each."""

    name: str
    backbone: str
    head: str
    backbone_options: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    head_options: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    description: str = ""


def register_arch(name: str, backbone: str, head: str, description: str = "",
                  **options: Any) -> ArchSpec:
    """Register a named arch; `options` are split between the backbone's and the head's."""
    backbone_options, head_options = _split_options(backbone, head, options)
    spec = ArchSpec(name, backbone, head, backbone_options=MappingProxyType(backbone_options),
                    head_options=MappingProxyType(head_options), description=description)
    return ARCHS.register(name, spec)


def _split_options(backbone: str, head: str, options: dict[str, Any]) -> tuple[dict, dict]:
    """Route each option to the backbone or the head that declares it; unknown ones raise."""
    bb, hd = BACKBONES.get(backbone), HEADS.get(head)
    backbone_options, head_options = {}, {}
    for key, value in options.items():
        if value is None:  # a CLI default never overrides a model's own default
            continue
        if key in bb.options:
            backbone_options[key] = value
        elif key in hd.options:
            head_options[key] = value
        else:
            allowed = sorted({*bb.options, *hd.options})
            raise ConfigError(
                f"unknown option {key!r} for {backbone} + {head}; "
                f"allowed: {', '.join(allowed) or '(none)'}"
            )
    return backbone_options, head_options


def resolve_arch(arch: str | None = None, backbone: str | None = None,
                 head: str | None = None) -> ArchSpec:
    """The arch to build: a named arch (optionally with its backbone or head swapped), or an
    ad-hoc pairing of `backbone` and `head`."""
    if arch is not None:
        spec = ARCHS.get(arch)
        if backbone in (None, spec.backbone) and head in (None, spec.head):
            return spec
        backbone, head = backbone or spec.backbone, head or spec.head
        return ArchSpec(f"{backbone}_{head}", backbone, head)
    if backbone is None or head is None:
        raise ConfigError("give arch=NAME, or both backbone=NAME and head=NAME")
    BACKBONES.get(backbone)
    HEADS.get(head)
    return ArchSpec(f"{backbone}_{head}", backbone, head)


def build_model(
    arch: str | None = None,
    backbone: str | None = None,
    head: str | None = None,
    alpha: float = 1.0,
    input_size: Any = 224,
    num_classes: int = 2,
    weights: str | None = None,
    download_weights: bool = False,
    **options: Any,
) -> keras.Model:
    """Build a segmentation model: RGB uint8-range input ``(B, H, W, 3)`` -> logits
    ``(B, H, W, num_classes)`` in float32.

    `options` go to the backbone or the head that declares them (e.g. ``minimalistic=True``,
    ``upsample="resize"``); options left `None` keep the arch's defaults. `weights` is the
    backbone's start: `None` (random), ``"imagenet"`` (the file Keras publishes, from Keras'
    cache; `download_weights` fetches it) or a local weights file.
    """
    spec = resolve_arch(arch, backbone, head)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ConfigError(f"num_classes must be an integer >= 1, got {num_classes!r}")
    height, width = parse_input_size(input_size)
    backbone_options, head_options = _split_options(spec.backbone, spec.head, options)
    backbone_options = {**spec.backbone_options, **backbone_options}
    head_options = {**spec.head_options, **head_options}

    encoder = build_backbone(spec.backbone, (height, width), alpha, weights, download_weights,
                             **backbone_options)
    logits = HEADS.get(spec.head).fn(taps_of(encoder), num_classes, **head_options)
    factor = height // int(logits.shape[1])
    if factor > 1:
        logits = keras.layers.UpSampling2D(factor, interpolation="bilinear",
                                           name="logits_upsample")(logits)
    # float32 output even under mixed precision: losses and argmax need the full range.
    logits = keras.layers.Activation("linear", dtype="float32", name="logits")(logits)
    return keras.Model(encoder.input, logits, name=spec.name)


def backbone_weights(
    arch: str | None = None,
    backbone: str | None = None,
    head: str | None = None,
    alpha: float = 1.0,
    input_size: Any = 224,
    weights: str | None = None,
    download_weights: bool = False,
    **options: Any,
) -> str | None:
    """The local file `build_model` with these arguments would load into its backbone, without
    building it; with ``weights="imagenet", download_weights=True`` this fetches the file.

    Example::

        backbone_weights("mobileunet", alpha=0.5, input_size=224, weights="imagenet",
                         download_weights=True)   # ~/.keras/models/mobilenet_5_0_224_tf_no_top.h5
    """
    spec = resolve_arch(arch, backbone, head)
    backbone_options, _ = _split_options(spec.backbone, spec.head, options)
    bb = BACKBONES.get(spec.backbone)
    return resolve_weights(bb, weights, bb.check_alpha(alpha), parse_input_size(input_size),
                           download_weights, **{**spec.backbone_options, **backbone_options})


def list_archs(pattern: str = "*") -> list[str]:
    """Names of the registered archs matching the glob `pattern`."""
    return ARCHS.list(pattern)


def list_backbones(pattern: str = "*") -> list[str]:
    """Names of the registered backbones matching the glob `pattern`."""
    return BACKBONES.list(pattern)


def list_heads(pattern: str = "*") -> list[str]:
    """Names of the registered heads matching the glob `pattern`."""
    return HEADS.list(pattern)


# The named archs: at least one per backbone family.
register_arch("mobileunet", "mobilenet_v1", "unet", upsample="transpose",
              description="MobileUNet: MobileNet v1 encoder + transposed-conv U-Net decoder")
register_arch("mobilenet_v2_unet", "mobilenet_v2", "unet", upsample="transpose",
              description="MobileNetV2 + transposed-conv U-Net decoder")
register_arch("mobilenet_v2_deeplabv3plus", "mobilenet_v2", "deeplabv3plus",
              description="MobileNetV2 + DeepLabV3+ (ASPP on P5, P2 decoder)")
register_arch("mobilenet_v3_large_lraspp", "mobilenet_v3_large", "lraspp",
              description="MobileNetV3-Large + LR-ASPP (the paper's segmentation model)")
register_arch("mobilenet_v3_small_lraspp", "mobilenet_v3_small", "lraspp",
              description="MobileNetV3-Small + LR-ASPP")
register_arch("mobilenet_v3_large_minimal_lraspp", "mobilenet_v3_large", "lraspp",
              minimalistic=True,
              description="MobileNetV3-Large minimalistic (ReLU, no SE) + LR-ASPP")
register_arch("mobilenet_edgetpu_unet", "mobilenet_edgetpu", "unet", upsample="resize",
              description="MobileNet-EdgeTPU + resize U-Net decoder: maps to the Edge TPU")
