"""MobileNetV3 Small and Large.

Howard et al., "Searching for MobileNetV3", 2019. The networks are
`keras.applications.MobileNetV3Small/Large` (include_top=False, preprocessing inside the graph);
`minimalistic=True` is the variant without squeeze-excite and hard-swish, with 3x3 kernels only,
which maps to the Edge TPU and keeps int8 graphs inside XNNPACK. The published ImageNet weights
expect the graph's own `Rescaling` to [-1, 1] (``include_preprocessing=True``). Example::

    bb = build_backbone("mobilenet_v3_small", input_size=96, alpha=0.75, weights="imagenet")
"""

from __future__ import annotations

import keras

from zoo.backbones.base import (
    AlphaRange,
    layer_output,
    load_local_weights,
    make_divisible,
    register_backbone,
)
from zoo.weights import KERAS_WEIGHTS_URL, PublishedWeights


def _imagenet(model_type: str) -> PublishedWeights:
    """The no-top files keras/src/applications/mobilenet_v3.py loads (224 px, alpha 0.75 and 1.0,
    minimalistic 1.0), named as it names them; Keras checks their md5 (zoo.weights)."""
    files = {
        (alpha, 224, minimalistic): "weights_mobilenet_v3_{}{}_224_{}_float_no_top_v2.h5".format(
            model_type, "_minimalistic" if minimalistic else "", alpha)
        for alpha, minimalistic in ((0.75, False), (1.0, False), (1.0, True))
    }
    return PublishedWeights(KERAS_WEIGHTS_URL + "mobilenet_v3/", files, {"minimalistic": False})


def _block(i: int) -> str:
    return "expanded_conv_" if i == 0 else f"expanded_conv_{i}_"


def _block_output(net: keras.Model, i: int):
    return layer_output(net, f"{_block(i)}add", f"{_block(i)}project_bn")


def _large_channels(alpha: float, minimalistic: bool = False) -> list[int]:
    d = [make_divisible(c * alpha) for c in (16, 24, 40, 112, 160)]
    return [*d[:4], make_divisible(d[4] * 6)]


def _small_channels(alpha: float, minimalistic: bool = False) -> list[int]:
    d = [make_divisible(c * alpha) for c in (16, 24, 48, 96)]
    return [16, *d[:3], make_divisible(d[3] * 6)]  # the stem (P1) is not width-scaled


@register_backbone(
    "mobilenet_v3_large",
    alphas=AlphaRange(0.25, 1.5),
    channels=_large_channels,
    paper="Searching for MobileNetV3 (2019)",
    options=("minimalistic",),
    imagenet=_imagenet("large"),
)
def mobilenet_v3_large(
    inputs, alpha: float = 1.0, weights: str | None = None, minimalistic: bool = False
) -> dict:
    """MobileNetV3-Large taps P1..P5 (16, 24, 40, 112, 960 channels at alpha 1)."""
    net = keras.applications.MobileNetV3Large(
        input_tensor=inputs, alpha=alpha, minimalistic=minimalistic, include_top=False,
        weights=None, include_preprocessing=True,
    )
    load_local_weights(net, weights)
    taps = {tap: _block_output(net, i) for tap, i in (("P1", 0), ("P2", 2), ("P3", 5),
                                                      ("P4", 11))}
    taps["P5"] = net.output
    return taps


@register_backbone(
    "mobilenet_v3_small",
    alphas=AlphaRange(0.25, 1.5),
    channels=_small_channels,
    paper="Searching for MobileNetV3 (2019)",
    options=("minimalistic",),
    imagenet=_imagenet("small"),
)
def mobilenet_v3_small(
    inputs, alpha: float = 1.0, weights: str | None = None, minimalistic: bool = False
) -> dict:
    """MobileNetV3-Small taps P1..P5 (16, 16, 24, 48, 576 channels at alpha 1)."""
    net = keras.applications.MobileNetV3Small(
        input_tensor=inputs, alpha=alpha, minimalistic=minimalistic, include_top=False,
        weights=None, include_preprocessing=True,
    )
    load_local_weights(net, weights)
    # Block 0 is already stride 2 -> 4, so P1 is the stem: the input of its padding.
    taps = {"P1": net.get_layer("expanded_conv_depthwise_pad").input}
    taps.update({tap: _block_output(net, i) for tap, i in (("P2", 0), ("P3", 2), ("P4", 7))})
    taps["P5"] = net.output
    return taps
