"""Parameters and multiply-accumulates counted from a Keras graph.

MACs are summed over the layers that multiply: Conv2D (incl. 1x1), DepthwiseConv2D,
Conv2DTranspose, SeparableConv2D and Dense, as output elements x kernel area x input channels
per group (transposed conv: input elements x kernel area x output channels). Elementwise ops,
BatchNorm (folded at export), activations, pooling and resizes are not counted, as in the
MobileNet papers' "mult-adds".
"""

from __future__ import annotations

import math

import keras


def _prod(shape) -> int:
    if any(s is None for s in shape):
        raise ValueError(f"MACs need a fixed input size; got a tensor of shape {shape}")
    return math.prod(int(s) for s in shape)


def layer_macs(layer: keras.layers.Layer) -> int:
    """MACs of one layer for one image (batch 1)."""
    if isinstance(layer, keras.layers.Conv2DTranspose):
        kh, kw = layer.kernel_size
        return _prod(layer.input.shape[1:]) * kh * kw * layer.filters
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        kh, kw = layer.kernel_size
        return _prod(layer.output.shape[1:]) * kh * kw
    if isinstance(layer, keras.layers.SeparableConv2D):
        kh, kw = layer.kernel_size
        cin = int(layer.input.shape[-1])
        spatial = _prod(layer.output.shape[1:3])
        return spatial * cin * layer.depth_multiplier * (kh * kw + layer.filters)
    if isinstance(layer, keras.layers.Conv2D):
        kh, kw = layer.kernel_size
        cin = int(layer.input.shape[-1]) // layer.groups
        return _prod(layer.output.shape[1:]) * kh * kw * cin
    if isinstance(layer, keras.layers.Dense):
        return _prod(layer.output.shape[1:]) * int(layer.input.shape[-1])
    return 0


def count_macs(model: keras.Model) -> int:
    """Total MACs of `model` for one image, over every layer including nested models."""
    total = 0
    for layer in model.layers:
        total += count_macs(layer) if isinstance(layer, keras.Model) else layer_macs(layer)
    return total


def count_params(model: keras.Model) -> int:
    """All parameters, trainable or not (BatchNorm statistics included, as Keras counts)."""
    return int(model.count_params())
