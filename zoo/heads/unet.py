"""U-Net decoder as in MobileUNet.

Ronneberger et al., "U-Net" (2015); the mobile form follows MobileUNet (akirasosa,
mobile-semantic-segmentation): from P5, four x2 upsamplings by 2x2 stride-2 transposed convs,
each concatenated with the skip tap of that stride and fused by a depthwise-separable conv
block whose width is the skip's width; logits at stride 2 (P1).

``upsample="resize"`` replaces each transposed conv by bilinear x2 resize + 1x1 conv, for targets
that run stride-2 transposed conv badly (the Edge TPU, some GPU delegates).
"""

from __future__ import annotations

import keras

from zoo.errors import ConfigError
from zoo.heads.base import classifier, conv_bn_relu, register_head, separable_conv_bn_relu

UPSAMPLE_MODES = ("transpose", "resize")


def _upsample(x, filters: int, mode: str, name: str):
    if mode == "transpose":
        return keras.layers.Conv2DTranspose(filters, 2, strides=2, padding="same",
                                            name=f"{name}_transpose")(x)
    x = keras.layers.UpSampling2D(2, interpolation="bilinear", name=f"{name}_resize")(x)
    return conv_bn_relu(x, filters, name)


@register_head("unet", options=("upsample", "decoder_filters"),
               paper="U-Net (2015); MobileUNet decoder")
def unet(taps: dict, num_classes: int, upsample: str = "transpose",
         decoder_filters: tuple[int, ...] | None = None):
    """MobileUNet decoder: P5 -> P4 -> P3 -> P2 -> P1, logits at stride 2.

    `decoder_filters` gives the four stage widths (default: each skip tap's channels).
    """
    if upsample not in UPSAMPLE_MODES:
        raise ConfigError(f"upsample must be one of {', '.join(UPSAMPLE_MODES)}, got {upsample!r}")
    skips = ("P4", "P3", "P2", "P1")
    widths = decoder_filters or tuple(int(taps[s].shape[-1]) for s in skips)
    if len(widths) != len(skips):
        raise ConfigError(f"decoder_filters needs {len(skips)} widths, got {len(widths)}")
    x = taps["P5"]
    for i, (skip, width) in enumerate(zip(skips, widths, strict=True), start=1):
        x = _upsample(x, width, upsample, f"unet_up{i}")
        x = keras.layers.Concatenate(name=f"unet_up{i}_concat")([x, taps[skip]])
        x = separable_conv_bn_relu(x, width, f"unet_up{i}_fuse", relu6=True)
    return classifier(x, num_classes, "unet_classifier")
