"""MobileNetV2.

Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks", 2018. The network is
`keras.applications.MobileNetV2` (include_top=False, so P5 includes the final 1x1 conv to 1280
channels); taps are the block outputs, not the 6x-wide expansions, which keeps decoders small.
The input is scaled to [-1, 1] inside the graph, as `keras.applications.mobilenet_v2.
preprocess_input` does for the published ImageNet weights. Example::

    bb = build_backbone("mobilenet_v2", input_size=96, alpha=0.35, weights="imagenet")
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

# The no-top files keras/src/applications/mobilenet_v2.py loads, converted from the TF-slim
# checkpoints (research/slim/nets/mobilenet/README.md; keras-team/keras#10047): alpha 0.35 to
# 1.0 at 96 to 224 px, 1.3 and 1.4 at 224 px only.
_IMAGENET = PublishedWeights(
    KERAS_WEIGHTS_URL + "mobilenet_v2/",
    {(alpha, size): f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{alpha}_{size}_no_top.h5"
     for alpha in (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)
     for size in ((96, 128, 160, 192, 224) if alpha <= 1.0 else (224,))},
)

# Last block at each stride: (block prefix, its output channels before alpha).
_TAP_BLOCKS = {"P1": ("expanded_conv", 16), "P2": ("block_2", 24), "P3": ("block_5", 32),
               "P4": ("block_12", 96)}


def _channels(alpha: float) -> list[int]:
    taps = [make_divisible(int(c * alpha), 8) for _, c in _TAP_BLOCKS.values()]
    return [*taps, 1280 if alpha <= 1.0 else make_divisible(1280 * alpha, 8)]


@register_backbone(
    "mobilenet_v2",
    alphas=AlphaRange(0.35, 1.4),
    channels=_channels,
    paper="MobileNetV2: Inverted Residuals and Linear Bottlenecks (2018)",
    imagenet=_IMAGENET,
)
def mobilenet_v2(inputs, alpha: float = 1.0, weights: str | None = None) -> dict:
    """MobileNetV2 taps P1..P5 (16, 24, 32, 96, 1280 channels, alpha-scaled)."""
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="preprocess")(inputs)
    net = keras.applications.MobileNetV2(
        input_tensor=x, alpha=alpha, include_top=False, weights=None
    )
    load_local_weights(net, weights)
    taps = {
        tap: layer_output(net, f"{block}_add", f"{block}_project_BN")
        for tap, (block, _) in _TAP_BLOCKS.items()
    }
    taps["P5"] = net.output
    return taps
