"""LR-ASPP, the MobileNetV3 segmentation head.

Howard et al., "Searching for MobileNetV3" (2019), section 6.4: a 1x1 conv branch on the deep
tap gated by a sigmoid of its globally pooled features, upsampled to the low-level tap (P3),
each branch classified by a 1x1 conv and summed (here the deep branch is classified before its
upsampling, which is the same function). Logits at stride 8. (The paper pools with a
large strided average pool; global pooling is the usual form, as in torchvision.)
"""

from __future__ import annotations

import keras

from zoo.heads.base import (
    check_deep_and_low,
    classifier,
    conv_bn_relu,
    register_head,
    tap_stride,
)


@register_head("lraspp", options=("high_tap", "low_tap", "filters"),
               paper="Searching for MobileNetV3 (2019), LR-ASPP")
def lraspp(taps: dict, num_classes: int, high_tap: str = "P5", low_tap: str = "P3",
           filters: int = 128):
    """LR-ASPP on `high_tap` with a `low_tap` skip; logits at the low tap's stride."""
    check_deep_and_low(taps, ("high_tap", high_tap), ("low_tap", low_tap))
    high = taps[high_tap]
    x = conv_bn_relu(high, filters, "lraspp_cbr")
    gate = keras.layers.GlobalAveragePooling2D(keepdims=True, name="lraspp_pool")(high)
    gate = keras.layers.Conv2D(filters, 1, use_bias=False, name="lraspp_gate_conv")(gate)
    gate = keras.layers.Activation("sigmoid", name="lraspp_gate")(gate)
    x = keras.layers.Multiply(name="lraspp_mul")([x, gate])
    # Classify, then upsample: the 1x1 classifier is linear and bilinear weights sum to 1, so
    # this equals the paper's upsample-then-classify, with the conv on 1/16 of the pixels and
    # the resize moving num_classes channels instead of `filters`.
    high_logits = classifier(x, num_classes, "lraspp_high_classifier")
    factor = tap_stride(high_tap) // tap_stride(low_tap)
    high_logits = keras.layers.UpSampling2D(factor, interpolation="bilinear",
                                            name="lraspp_upsample")(high_logits)
    low_logits = classifier(taps[low_tap], num_classes, "lraspp_low_classifier")
    return keras.layers.Add(name="lraspp_add")([high_logits, low_logits])
