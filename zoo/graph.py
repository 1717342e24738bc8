"""The Keras graph as the converters run it: units of layers that become one TFLite op (a
multiplying, resizing or merging layer plus the BatchNorm and activation after it, which TFLite
fuses into it), and the sub-model that ends after any unit.

Example::

    units = units_of(model)                       # in graph order
    layers = [layer for unit in units for layer in unit.layers]
    front = prefix_model(model, layers, 10)       # outputs: every tensor a later layer uses

`zoo.bench.ops` times a model unit by unit; `zoo.split` cuts it between device and server at
unit boundaries.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Unit:
    """Consecutive layers that TFLite runs as one op (plus fused elementwise ops)."""

    op: str
    layers: list[Any] = field(default_factory=list)
    macs: int = 0


def op_name(layer) -> str | None:
    """The TFLite op a Keras layer becomes, or None for a layer fused into the previous one."""
    import keras

    L = keras.layers
    if isinstance(layer, L.Conv2DTranspose):
        return "TRANSPOSE_CONV"
    if isinstance(layer, L.DepthwiseConv2D):
        return "DEPTHWISE_CONV_2D"
    if isinstance(layer, L.SeparableConv2D):
        return "SEPARABLE_CONV (dw+1x1)"
    if isinstance(layer, L.Conv2D):
        kh, kw = layer.kernel_size
        return f"CONV_2D {kh}x{kw}"
    if isinstance(layer, L.Dense):
        return "FULLY_CONNECTED"
    if isinstance(layer, L.UpSampling2D | L.Resizing):
        method = getattr(layer, "interpolation", "nearest")
        return "RESIZE_BILINEAR" if method == "bilinear" else f"RESIZE ({method})"
    if isinstance(layer, L.Concatenate):
        return "CONCATENATION"
    if isinstance(layer, L.Add):
        return "ADD"
    if isinstance(layer, L.Multiply):
        return "MUL"
    if isinstance(layer, L.GlobalAveragePooling2D | L.AveragePooling2D):
        return "MEAN / AVERAGE_POOL_2D"
    if isinstance(layer, L.MaxPooling2D):
        return "MAX_POOL_2D"
    return None


def units_of(model) -> list[Unit]:
    """The model's operations in graph order, grouped into units (see the module docstring).

    Operations, not only layers: Keras 3 records arithmetic on tensors (``x + 3.0`` and the
    scaling of a hard-sigmoid gate) as operations of `model.operations` that `model.layers`
    leaves out, and a cut that did not see them would hand on the wrong tensors. A
    ZeroPadding2D opens the unit of the conv after it (XNNPACK folds the padding into that
    conv), so no cut hands on both a tensor and its padded copy."""
    import keras

    from zoo.stats import layer_macs

    units: list[Unit] = []
    pending: list = []  # padding waiting for the op it belongs to
    for layer in model.operations:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if isinstance(layer, keras.layers.ZeroPadding2D):
            pending.append(layer)
            continue
        name = op_name(layer)
        if name is not None or not units:
            units.append(Unit(name or "input prep"))
        for op in [*pending, layer]:
            units[-1].layers.append(op)
            units[-1].macs += layer_macs(op)
        pending = []
    if pending:
        units[-1].layers.extend(pending)
    return units


def _inputs(layer) -> list:
    value = layer.input
    return list(value) if isinstance(value, list | tuple) else [value]


def crossing(layers: list, done: int) -> list:
    """The layers among `layers[:done]` whose output a layer of `layers[done:]` reads, in
    order: what a sub-model ending after `done` layers must hand on."""
    later = {id(t) for layer in layers[done:] for t in _inputs(layer)}
    return [layer for layer in layers[:done] if id(layer.output) in later]


def prefix_model(model, layers: list, done: int):
    """The sub-model of `layers[:done]`, outputting every tensor a later layer still uses."""
    import keras

    outputs = [layer.output for layer in crossing(layers, done)]
    last = layers[done - 1].output
    if all(o is not last for o in outputs):
        outputs.append(last)
    return keras.Model(model.input, outputs, name=f"prefix_{done}")
