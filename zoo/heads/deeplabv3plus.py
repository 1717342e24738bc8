"""DeepLabV3+ head: ASPP on the deepest tap plus a low-level decoder.

Chen et al., "Encoder-Decoder with Atrous Separable Convolution for Semantic Image Segmentation"
(2018). ASPP = 1x1 branch, three depthwise-separable atrous 3x3 branches and image pooling;
the rates (6, 12, 18) are those for output stride 16 and are scaled to the stride of the tap
ASPP runs on (P5 -> 3, 6, 9). The decoder upsamples to the low-level tap (P2), concatenates its
48-channel projection and refines with two separable 3x3 convs. Logits at stride 4.
"""

from __future__ import annotations

import keras

from zoo.heads.base import (
    check_deep_and_low,
    classifier,
    conv_bn_relu,
    register_head,
    separable_conv_bn_relu,
    tap_stride,
)


def _image_pooling(x, filters: int, name: str):
    """Global average pool + 1x1 conv-BN-ReLU: one (1, 1, filters) vector per image."""
    y = keras.layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_pool")(x)
    return conv_bn_relu(y, filters, name)


def _project(branches: list, pooled, filters: int, name: str):
    """The ASPP projection of ``concat(branches + [broadcast(pooled)])`` without building the
    broadcast: a 1x1 conv is linear, so its pooled-branch rows act on the (1, 1, C) vector alone
    and the result is added with broadcasting before BN + ReLU. Same function as the paper's
    tile + concat + 1x1 conv, but the TFLite graph has no TILE (which XNNPACK does not take:
    it split the fp32 graph into 3 partitions) and no full-size copy of a constant map."""
    x = keras.layers.Concatenate(name=f"{name}_concat")(branches)
    x = keras.layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_conv")(x)
    pooled = keras.layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_pool_conv")(pooled)
    x = keras.layers.Add(name=f"{name}_add")([x, pooled])
    x = keras.layers.BatchNormalization(epsilon=1e-3, momentum=0.99, name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


@register_head("deeplabv3plus",
               options=("aspp_tap", "low_tap", "filters", "low_filters", "rates"),
               paper="DeepLabV3+ (2018)")
def deeplabv3plus(taps: dict, num_classes: int, aspp_tap: str = "P5", low_tap: str = "P2",
                  filters: int = 256, low_filters: int = 48,
                  rates: tuple[int, ...] = (6, 12, 18)):
    """ASPP on `aspp_tap` + decoder on `low_tap`; logits at the low tap's stride."""
    check_deep_and_low(taps, ("aspp_tap", aspp_tap), ("low_tap", low_tap))
    x = taps[aspp_tap]
    scale = 16 / tap_stride(aspp_tap)
    branches = [conv_bn_relu(x, filters, "aspp_b0")]
    for i, rate in enumerate(rates, start=1):
        branches.append(separable_conv_bn_relu(x, filters, f"aspp_b{i}",
                                               dilation=max(1, round(rate * scale))))
    x = _project(branches, _image_pooling(x, filters, "aspp_pool"), filters, "aspp_project")
    x = keras.layers.Dropout(0.1, name="aspp_dropout")(x)

    factor = tap_stride(aspp_tap) // tap_stride(low_tap)
    x = keras.layers.UpSampling2D(factor, interpolation="bilinear", name="decoder_upsample")(x)
    low = conv_bn_relu(taps[low_tap], low_filters, "decoder_low")
    x = keras.layers.Concatenate(name="decoder_concat")([x, low])
    x = separable_conv_bn_relu(x, filters, "decoder_conv1")
    x = separable_conv_bn_relu(x, filters, "decoder_conv2")
    return classifier(x, num_classes, "decoder_classifier")
