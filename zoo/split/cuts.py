"""Where a segmentation network can be cut between device and server, and what crosses each cut.

Example::

    cuts = candidate_cuts(model)            # all-server, one per unit boundary, all-device
    cut = find_cut(cuts, "conv_pw_5_relu")
    cut.transfer_bytes("int8")              # every tensor crossing it, 1 byte per value
    front, back = device_model(model, cut), server_model(model, cut)
    back(front(image))                      # == model(image)

A candidate cut sits after a unit of `zoo.graph.units_of` (a conv, depthwise, resize or merge
with the BatchNorm and activation the converters fuse into it), so no cut splits a fused op.
What crosses it is **every tensor a later layer still reads**: in a U-Net the skip taps
(the encoder outputs the decoder concatenates) cross every cut between the tap and its
concatenation, which is why a cut's transfer is not one feature map (Neurosurgeon, Kang et al.
ASPLOS 2017, cuts chains of layers only; DADS, Hu et al. INFOCOM 2019, cuts DAGs by min-cut
over the same crossing sets).

The two ends: cut 0, ``input``, sends the camera frame (uint8 RGB, 1 byte per value whatever
the precision) and runs everything on the server; the last, ``output``, runs everything on the
device and sends nothing. The server always answers with the label map (uint8, 1 byte per
pixel), never logits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from zoo.errors import ConfigError
from zoo.graph import crossing, units_of

# Bytes per value sent for each transfer precision (the image is sent as uint8 whatever it is).
PRECISIONS = {"float32": 4, "float16": 2, "int8": 1}
ALL_SERVER, ALL_DEVICE = "input", "output"


@dataclass
class Cut:
    """A cut after `index` units (0: all-server; len(units): all-device)."""

    index: int
    name: str  # ALL_SERVER, ALL_DEVICE, or the last layer of the last device unit
    op: str  # the op of that unit ("" at the ends)
    tensors: list[Any] = field(default_factory=list)  # KerasTensors crossing, graph order
    layers: list[str] = field(default_factory=list)  # the layer producing each tensor
    shapes: list[tuple[int, ...]] = field(default_factory=list)  # batch 1
    device_macs: int = 0
    server_macs: int = 0

    @property
    def values(self) -> int:
        """Values crossing the cut (per image)."""
        return int(sum(np.prod(s) for s in self.shapes))

    def transfer_bytes(self, precision: str) -> int:
        """Bytes sent from device to server for one image."""
        if self.name == ALL_DEVICE:
            return 0
        if self.name == ALL_SERVER:
            return self.values  # the uint8 frame
        return self.values * bytes_per_value(precision)

    def result_bytes(self, output_shape: tuple[int, ...]) -> int:
        """Bytes sent back: the uint8 label map, or nothing when the device runs everything."""
        return 0 if self.name == ALL_DEVICE else int(np.prod(output_shape[1:-1]))


def bytes_per_value(precision: str) -> int:
    if precision not in PRECISIONS:
        raise ConfigError(f"--transfer must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return PRECISIONS[precision]


def _batch1(shape) -> tuple[int, ...]:
    return (1, *(int(d) for d in shape[1:]))


def candidate_cuts(model) -> list[Cut]:
    """Every cut of `model` in graph order: ``input``, one after each unit but the last, and
    ``output``."""
    units = units_of(model)
    layers = [layer for unit in units for layer in unit.layers]
    total = sum(u.macs for u in units)
    cuts = [Cut(0, ALL_SERVER, "", tensors=[model.input], layers=["image"],
                shapes=[_batch1(model.input.shape)], device_macs=0, server_macs=total)]
    done, macs = 0, 0
    for k, unit in enumerate(units[:-1], start=1):
        done += len(unit.layers)
        macs += unit.macs
        front = crossing(layers, done)
        cuts.append(Cut(k, unit.layers[-1].name, unit.op,
                        tensors=[layer.output for layer in front],
                        layers=[layer.name for layer in front],
                        shapes=[_batch1(layer.output.shape) for layer in front],
                        device_macs=macs, server_macs=total - macs))
    cuts.append(Cut(len(units), ALL_DEVICE, "", device_macs=total, server_macs=0))
    return cuts


def find_cut(cuts: list[Cut], name: str) -> Cut:
    """The cut called `name` (a layer name, ``input`` or ``output``); else a one-line error
    naming the nearest names."""
    for cut in cuts:
        if cut.name == name:
            return cut
    import difflib

    close = difflib.get_close_matches(str(name), [c.name for c in cuts], n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise ConfigError(f"--cut {name!r} is not a cut of this model ({len(cuts)} cuts: "
                      f"`split.py plan` lists them){hint}")


def device_model(model, cut: Cut):
    """image -> the tensors crossing `cut` (a list, in `cut.tensors` order); the whole model
    for ``output``. None for ``input`` (the device sends the frame)."""
    import keras

    if cut.name == ALL_SERVER:
        return None
    if cut.name == ALL_DEVICE:
        return model
    return keras.Model(model.input, list(cut.tensors), name=f"{model.name}_device")


def server_model(model, cut: Cut):
    """The tensors crossing `cut` -> the model's logits; the whole model for ``input``; None for
    ``output``. Its inputs are `cut.tensors` themselves (Keras 3 builds a functional model from
    intermediate tensors), so it shares the model's layers and weights."""
    import keras

    if cut.name == ALL_DEVICE:
        return None
    if cut.name == ALL_SERVER:
        return model
    return keras.Model(list(cut.tensors), model.output, name=f"{model.name}_server")
