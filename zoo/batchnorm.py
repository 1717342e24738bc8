"""Re-estimating BatchNorm statistics ("precise BN"), for training, export and benchmarks.

Example::

    recompute_batchnorm(model, train_images[:64])   # moving stats = mean of batch stats

From scratch, weights move faster than a 0.99-0.999 moving average follows them, and a model in
inference mode (which uses the moving statistics) can predict one class everywhere while its
training loss falls; converters fold the moving statistics into the convolutions, so every
exported artifact inherits that. Re-estimating them on a fixed set of training images before
each validation makes the saved checkpoint's statistics match its weights (Wu & Johnson,
"Rethinking 'Batch' in BatchNorm", 2021, section 3: "precise BN"). For random-weight models in
benchmarks it makes activations O(1) as a trained model's are.
"""

from __future__ import annotations

import numpy as np


def batchnorm_layers(model) -> list:
    """Every BatchNormalization layer of `model`, nested ones included."""
    import keras

    return [layer for layer in model._flatten_layers()
            if isinstance(layer, keras.layers.BatchNormalization)]


def recompute_batchnorm(model, images: np.ndarray, batch_size: int = 16) -> None:
    """Set every BatchNorm's moving statistics to the average batch statistics of `images`.

    Gradients and the optimizer are untouched; the layers' momenta are restored afterwards.
    """
    layers = batchnorm_layers(model)
    if not layers or len(images) == 0:
        return
    momenta = [layer.momentum for layer in layers]
    try:
        for i, start in enumerate(range(0, len(images), batch_size)):
            # Cumulative average over chunks: new = old * i/(i+1) + batch / (i+1).
            for layer in layers:
                layer.momentum = i / (i + 1)
            model(images[start:start + batch_size].astype("float32"), training=True)
    finally:
        for layer, momentum in zip(layers, momenta, strict=True):
            layer.momentum = momentum
