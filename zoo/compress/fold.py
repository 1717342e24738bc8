"""BatchNorm folded into the convolutions before it, as the converters fold it: for methods
whose constraint lives in the exported weights (shared values, ternary levels, fake-quant), the
weights trained must be the weights shipped.

Example::

    folded, plan = fold_batchnorm(model)     # same function, no BatchNorm after a conv
    plan.folded                              # the BatchNorm layers folded away

``W' = W * s``, ``b' = (b - mean) * s + beta`` with ``s = gamma / sqrt(var + eps)``
(Krishnamoorthi 2018, "Quantizing deep convolutional networks for efficient inference",
section 3.2, folds with frozen statistics the same way). A BatchNorm after a sum of such
convolutions folds into each of them (the shift into one). Transposed convs are first written
as `DepthToSpaceUpsample` (the TFLite graph's form), whose 1x1 conv folds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import keras
import numpy as np

from zoo.export.tflite_graph import DepthToSpaceUpsample, depth_to_space_transposes

FOLDABLE = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, DepthToSpaceUpsample)


@dataclass
class FoldPlan:
    """conv name -> (its BatchNorm, whether its bias takes the BN's shift); op name -> the BN
    whose output its output becomes; BN layers folded, and kept (no conv before)."""

    into: dict = field(default_factory=dict)
    output_of: dict[str, str] = field(default_factory=dict)
    folded: list[str] = field(default_factory=list)
    unfolded: list[str] = field(default_factory=list)


def graph_links(model) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """(parents, readers): operation name -> names of the operations it reads / that read it."""
    parents, readers = {}, {}
    for nodes in model._nodes_by_depth.values():
        for node in nodes:
            name = node.operation.name
            parents[name] = [p.operation.name for p in node.parent_nodes]
            for p in parents[name]:
                readers.setdefault(p, []).append(name)
    return parents, readers


def operations(model) -> dict:
    return {op.name: op for nodes in model._nodes_by_depth.values()
            for op in (n.operation for n in nodes)}


def foldable(op) -> bool:
    """A conv (exact type) without an activation of its own."""
    if type(op) not in FOLDABLE:
        return False
    return getattr(op.activation, "__name__", "linear") == "linear"


def plan_folding(graph) -> FoldPlan:
    """Which BatchNorm layers of `graph` fold into which convs."""
    parents, readers = graph_links(graph)
    by_name = operations(graph)
    plan = FoldPlan()
    for name, op in by_name.items():
        if not isinstance(op, keras.layers.BatchNormalization):
            continue
        (parent,) = parents[name]
        sole = readers.get(parent) == [name]
        if sole and foldable(by_name[parent]):
            plan.into[parent] = (op, True)
        elif sole and isinstance(by_name[parent], keras.layers.Add) and all(
                foldable(by_name[p]) and readers.get(p) == [parent] for p in parents[parent]):
            # BN(a + b) = s*a + s*b + shift: the scale into every conv, the shift into one.
            for i, p in enumerate(parents[parent]):
                plan.into[p] = (op, i == 0)
        else:
            plan.unfolded.append(name)
            continue
        plan.output_of[parent] = name
        plan.folded.append(name)
    return plan


def conv_weights(layer) -> tuple[np.ndarray, np.ndarray]:
    """(kernel, bias) of a conv layer, its 1x1 conv for `DepthToSpaceUpsample`."""
    inner = layer.conv if isinstance(layer, DepthToSpaceUpsample) else layer
    kernel, *bias = inner.get_weights()
    out = kernel.shape[-1] if not isinstance(inner, keras.layers.DepthwiseConv2D) \
        else kernel.shape[2] * kernel.shape[3]
    return kernel, (bias[0] if bias else np.zeros(out, kernel.dtype))


def fold(kernel: np.ndarray, bias: np.ndarray, bn, *, shift: bool, depthwise: bool,
         repeat: int) -> tuple[np.ndarray, np.ndarray]:
    """`kernel`, `bias` with `bn` folded in (its shift only when `shift`); `repeat` copies of
    the BN's channels per output channel block (4 for a depth-to-space conv)."""
    weights = dict(zip([w.path.split("/")[-1] for w in bn.weights], bn.get_weights(),
                       strict=True))
    n = weights["moving_mean"].shape[0]
    gamma = weights.get("gamma", np.ones(n, np.float32))
    beta = weights.get("beta", np.zeros(n, np.float32))
    scale = gamma / np.sqrt(weights["moving_variance"] + bn.epsilon)
    offset = beta - weights["moving_mean"] * scale
    scale, offset = np.tile(scale, repeat), np.tile(offset, repeat)
    if depthwise:  # kernel (kh, kw, C, multiplier): output channel c * multiplier + m
        kernel = kernel * scale.reshape(kernel.shape[2], kernel.shape[3])
    else:
        kernel = kernel * scale
    return kernel.astype(np.float32), (bias * scale + (offset if shift else 0.0)).astype(
        np.float32)


def set_folded(new, old, plan: FoldPlan) -> None:
    """`new` (the conv replacing `old`, with a bias) gets `old`'s weights, its BN folded in."""
    kernel, bias = conv_weights(old)
    if old.name in plan.into:
        bn, shift = plan.into[old.name]
        kernel, bias = fold(kernel, bias, bn, shift=shift,
                            depthwise=isinstance(old, keras.layers.DepthwiseConv2D),
                            repeat=4 if isinstance(old, DepthToSpaceUpsample) else 1)
    (new.conv if isinstance(new, DepthToSpaceUpsample) else new).set_weights([kernel, bias])


def _with_bias(layer):
    if isinstance(layer, DepthToSpaceUpsample):
        return DepthToSpaceUpsample(layer.filters, layer.activation, name=layer.name,
                                    dtype=layer.dtype_policy)
    return type(layer).from_config({**layer.get_config(), "use_bias": True})


def fold_batchnorm(model) -> tuple[keras.Model, FoldPlan]:
    """`model` with every foldable BatchNorm folded (see the module docstring); the other
    layers are shared with `model`."""
    graph = depth_to_space_transposes(model)
    plan = plan_folding(graph)
    if not plan.folded:
        return graph, plan
    folded = set(plan.folded)
    made = {}

    def clone(op):
        if op.name not in plan.into:
            return op
        new = _with_bias(op)
        made[new] = op
        return new

    def call(op, *args, **kwargs):
        if op.name in folded:
            return args[0]
        return op(*args, **kwargs)

    inputs = keras.Input(batch_shape=graph.input.shape, dtype=graph.input.dtype,
                         name=graph.input.name)
    outputs = graph._run_through_graph([inputs], operation_fn=clone, call_fn=call)
    result = keras.Model(inputs, outputs, name=graph.name)
    for new, old in made.items():
        set_folded(new, old, plan)
    return result, plan
