"""MobileNet v1, the MobileUNet encoder.

Howard et al., "MobileNets: Efficient Convolutional Neural Networks for Mobile Vision
Applications", 2017. The network is `keras.applications.MobileNet` (include_top=False); this
module only scales the input inside the graph, to [-1, 1] as `keras.applications.mobilenet.
preprocess_input` does for the published ImageNet weights, and taps its layers by name. Example::

    bb = build_backbone("mobilenet_v1", input_size=128, alpha=0.25, weights="imagenet")
"""

from __future__ import annotations

import keras

from zoo.backbones.base import AlphaSet, load_local_weights, register_backbone
from zoo.weights import KERAS_WEIGHTS_URL, PublishedWeights

# The no-top files keras/src/applications/mobilenet.py loads: the TF-slim MobileNet v1
# checkpoints (research/slim/nets/mobilenet_v1.md), every alpha at 128, 160, 192 and 224 px.
_IMAGENET = PublishedWeights(
    KERAS_WEIGHTS_URL + "mobilenet/",
    {(alpha, size): f"mobilenet_{text}_{size}_tf_no_top.h5"
     for alpha, text in ((0.25, "2_5"), (0.5, "5_0"), (0.75, "7_5"), (1.0, "1_0"))
     for size in (128, 160, 192, 224)},
)

# Last layer of each stride: the pointwise activations before each stride-2 depthwise conv.
_TAPS = {
    "P1": "conv_pw_1_relu",
    "P2": "conv_pw_3_relu",
    "P3": "conv_pw_5_relu",
    "P4": "conv_pw_11_relu",
    "P5": "conv_pw_13_relu",
}
_WIDTHS = (64, 128, 256, 512, 1024)


def _channels(alpha: float) -> list[int]:
    return [int(w * alpha) for w in _WIDTHS]


@register_backbone(
    "mobilenet_v1",
    alphas=AlphaSet((0.25, 0.5, 0.75, 1.0)),
    channels=_channels,
    paper="MobileNets: Efficient Convolutional Neural Networks for Mobile Vision (2017)",
    imagenet=_IMAGENET,
)
def mobilenet_v1(inputs, alpha: float = 1.0, weights: str | None = None) -> dict:
    """MobileNet v1 taps P1..P5 (64, 128, 256, 512, 1024 channels x alpha)."""
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="preprocess")(inputs)
    net = keras.applications.MobileNet(
        input_tensor=x, alpha=alpha, include_top=False, weights=None
    )
    load_local_weights(net, weights)
    return {tap: net.get_layer(layer).output for tap, layer in _TAPS.items()}
