"""MobileNet-EdgeTPU.

Gupta and Akin, "Accelerator-aware Neural Network Design using AutoML", 2020: the network that
architecture search found for the Edge TPU (Pixel 4, Coral), released by Google in 2019. Early
stages use fused inverted residuals: one full kxk convolution does the job of the 1x1 expansion
and the depthwise conv, which the Edge TPU runs faster on narrow, high-resolution tensors. Later
stages use regular (depthwise) inverted residuals. Every activation is ReLU, and there is no
squeeze-excite and no hard-swish, so the whole graph maps to the Edge TPU.

No Keras 3 package ships it, so it is built here from the published block table, `V3_EDGETPU`
in TF-slim ``research/slim/nets/mobilenet/mobilenet_v3.py`` (tensorflow/models); the TF Model
Garden table (``official/projects/edgetpu/vision/modeling/mobilenet_edgetpu_v1_model_blocks.py``)
describes the same network. Example::

    bb = build_backbone("mobilenet_edgetpu", input_size=(96, 128), alpha=0.5)
    bb.output["P3"].shape   # (None, 12, 16, 24)
"""

from __future__ import annotations

from typing import NamedTuple

import keras

# Keras' own helper for MobileNet padding; `keras.applications` does not re-export it.
from keras.src.applications.imagenet_utils import correct_pad

from zoo.backbones.base import AlphaRange, load_local_weights, make_divisible, register_backbone

_BN = {"momentum": 0.99, "epsilon": 1e-3}


class _Block(NamedTuple):
    """One row of the block table."""

    fused: bool
    kernel: int
    stride: int
    expansion: int
    filters: int  # before alpha
    residual: bool = True


def _conv_bn(x, filters: int, kernel: int, stride: int, name: str, relu: bool = True):
    """Full conv + BN (+ ReLU). Stride 2 pads explicitly, so TFLite matches TF 'same'."""
    if stride == 2:
        x = keras.layers.ZeroPadding2D(correct_pad(x, kernel), name=f"{name}_pad")(x)
    x = keras.layers.Conv2D(
        filters, kernel, strides=stride, padding="valid" if stride == 2 else "same",
        use_bias=False, name=name,
    )(x)
    x = keras.layers.BatchNormalization(name=f"{name}_bn", **_BN)(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x) if relu else x


def _depthwise_bn(x, kernel: int, stride: int, name: str):
    """Depthwise conv + BN + ReLU, padded like `_conv_bn`."""
    if stride == 2:
        x = keras.layers.ZeroPadding2D(correct_pad(x, kernel), name=f"{name}_pad")(x)
    x = keras.layers.DepthwiseConv2D(
        kernel, strides=stride, padding="valid" if stride == 2 else "same", use_bias=False,
        name=name,
    )(x)
    x = keras.layers.BatchNormalization(name=f"{name}_bn", **_BN)(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def _inverted_residual(x, spec: _Block, filters: int, i: int):
    """One block of the table: expand, (depthwise), linear 1x1 projection, (residual add).

    Fused: the expansion is a full `kernel` x `kernel` conv with the block's stride, and there is
    no depthwise conv. Regular: 1x1 expansion, then the depthwise conv carries kernel and stride.
    As in TF-slim's ``expanded_conv``, the expansion is skipped when it would not widen the
    input (expansion 1), and the residual is added when the stride is 1, the width is kept and
    the table does not turn it off.
    """
    prefix = f"block_{i}"
    inputs = x
    in_channels = x.shape[-1]
    inner = make_divisible(in_channels * spec.expansion)
    if inner > in_channels:
        if spec.fused:
            x = _conv_bn(x, inner, spec.kernel, spec.stride, f"{prefix}_expand")
        else:
            x = _conv_bn(x, inner, 1, 1, f"{prefix}_expand")
    if not spec.fused:
        x = _depthwise_bn(x, spec.kernel, spec.stride, f"{prefix}_depthwise")
    x = _conv_bn(x, filters, 1, 1, f"{prefix}_project", relu=False)
    if spec.residual and spec.stride == 1 and in_channels == filters:
        x = keras.layers.Add(name=f"{prefix}_add")([inputs, x])
    return x


# TF-slim `V3_EDGETPU` (research/slim/nets/mobilenet/mobilenet_v3.py), row for row:
# mbv3_fused(k, s, ef, n) -> _Block(True, ...), mbv3_op(k, s, ef, n) -> _Block(False, ...).
_STEM = 32
_BLOCKS = (
    _Block(True, 3, 1, 1, 16),  # 0: expansion 1 = no expansion: only the 1x1 projection
    _Block(True, 3, 2, 8, 32),  # 1
    _Block(True, 3, 1, 4, 32),
    _Block(True, 3, 1, 4, 32),
    _Block(True, 3, 1, 4, 32),  # 4
    _Block(True, 3, 2, 8, 48),  # 5
    _Block(True, 3, 1, 4, 48),
    _Block(True, 3, 1, 4, 48),
    _Block(True, 3, 1, 4, 48),  # 8
    _Block(False, 3, 2, 8, 96),  # 9
    _Block(False, 3, 1, 4, 96),
    _Block(False, 3, 1, 4, 96),
    _Block(False, 3, 1, 4, 96),
    _Block(False, 3, 1, 8, 96, residual=False),  # 13: the table turns this residual off
    _Block(False, 3, 1, 4, 96),
    _Block(False, 3, 1, 4, 96),
    _Block(False, 3, 1, 4, 96),  # 16
    _Block(False, 5, 2, 8, 160),  # 17
    _Block(False, 5, 1, 4, 160),
    _Block(False, 5, 1, 4, 160),
    _Block(False, 5, 1, 4, 160),
    _Block(False, 3, 1, 8, 192),  # 21
)
_HEAD = 1280
# Last block at each stride (P5 is the 1x1 head conv after block 21).
_TAP_BLOCKS = {"P1": 0, "P2": 4, "P3": 8, "P4": 16}


def _head_channels(alpha: float) -> int:
    # As the released 0.75 checkpoint (slim `edge_tpu_075`, finegrain mode) and MobileNetV2:
    # the head keeps 1280 channels below alpha 1 and widens with alpha above it.
    return _HEAD if alpha <= 1.0 else make_divisible(_HEAD * alpha)


def _channels(alpha: float) -> list[int]:
    taps = [make_divisible(_BLOCKS[i].filters * alpha) for i in _TAP_BLOCKS.values()]
    return [*taps, _head_channels(alpha)]


@register_backbone(
    "mobilenet_edgetpu",
    alphas=AlphaRange(0.25, 1.75),
    channels=_channels,
    paper="Accelerator-aware Neural Network Design using AutoML (2020); MobileNet-EdgeTPU (2019)",
)
def mobilenet_edgetpu(inputs, alpha: float = 1.0, weights: str | None = None) -> dict:
    """MobileNet-EdgeTPU taps P1..P5 (16, 32, 48, 96, 1280 channels at alpha 1)."""
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="preprocess")(inputs)
    x = _conv_bn(x, make_divisible(_STEM * alpha), 3, 2, "stem_conv")
    taps = {}
    tap_of_block = {i: tap for tap, i in _TAP_BLOCKS.items()}
    for i, spec in enumerate(_BLOCKS):
        x = _inverted_residual(x, spec, make_divisible(spec.filters * alpha), i)
        if i in tap_of_block:
            taps[tap_of_block[i]] = x
    taps["P5"] = _conv_bn(x, _head_channels(alpha), 1, 1, "head_conv")
    if weights is not None:
        load_local_weights(keras.Model(inputs, taps, name="mobilenet_edgetpu"), weights)
    return taps
