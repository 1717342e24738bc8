"""Measured latency of every cut: the device half in LiteRT, the server half in onnxruntime.

Example::

    prof = measure(model, context, threads_device=1, threads_server=2, runs=20)
    prof.device_ms[k], prof.server_ms[k]    # medians, the halves of cut k
    prof.units[k - 1]                       # the unit cut k adds to the device: op, MACs, bytes

Each cut's device half (image -> every tensor crossing the cut) is converted to float32 TFLite
and its server half (those tensors -> the label map) to ONNX, exactly as `split.py export`
writes them (`zoo.split.halves`), so what is timed is what ships. The device halves are timed
against each other round-robin (`zoo.bench.timing.time_interleaved`), then the server halves:
consecutive cuts are measured under the same machine state, and a unit's own time is the
difference of two consecutive medians (noisy for small units: it can come out slightly
negative). ``every=N`` measures every N-th cut only (fewer conversions); the cuts between are
left to the latency model (`zoo.split.latency_model`), which is fitted on what was measured.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from zoo.bench.timing import BLOCKS, summarize, time_interleaved
from zoo.split.cuts import ALL_DEVICE, ALL_SERVER, Cut, candidate_cuts, device_model, server_model


@dataclass
class UnitFacts:
    """What the latency model knows of a unit (the op cut k adds to the device side)."""

    op: str
    layer: str  # its last layer
    macs: int
    in_bytes: int  # float32 bytes it reads
    out_bytes: int  # float32 bytes it writes
    params: int


@dataclass
class Profile:
    """Per cut (index = cut index): names, transfer values, measured medians (None where not
    measured); per unit: its facts."""

    cuts: list[str]
    ops: list[str]
    values: list[int]  # values crossing each cut (the frame's pixels x 3 at ``input``)
    image_shape: list[int]
    output_shape: list[int]  # the label map (1, H, W)
    units: list[UnitFacts]
    device_ms: list[float | None]
    server_ms: list[float | None]
    threads_device: int
    threads_server: int
    runs: int
    cpu: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Profile:
        data = dict(data)
        data["units"] = [UnitFacts(**u) for u in data["units"]]
        return cls(**data)


def unit_facts(model) -> list[UnitFacts]:
    """The facts of every unit of `model` (`zoo.graph.units_of`), in graph order."""
    from zoo.graph import units_of

    facts = []
    for unit in units_of(model):
        first, last = unit.layers[0], unit.layers[-1]
        inputs = first.input if isinstance(first.input, list | tuple) else [first.input]
        in_values = sum(int(np.prod(t.shape[1:])) for t in inputs)
        facts.append(UnitFacts(unit.op, last.name, int(unit.macs), in_bytes=4 * in_values,
                               out_bytes=4 * int(np.prod(last.output.shape[1:])),
                               params=int(sum(getattr(layer, "count_params", lambda: 0)()
                                              for layer in unit.layers))))
    return facts


def cpu_model() -> str:
    """The CPU's model name, family and model (/proc/cpuinfo), for every figure's caption: a
    virtual machine may report a bare "AMD EPYC"."""
    try:
        info = dict(line.split(":", 1) for line in
                    Path("/proc/cpuinfo").read_text().split("\n\n")[0].splitlines()
                    if ":" in line)
        info = {k.strip(): v.strip() for k, v in info.items()}
        return (f"{info.get('model name', '?')} (family {info.get('cpu family', '?')} model "
                f"{info.get('model', '?')}, {os.cpu_count()} cores)")
    except OSError:
        import platform

        return platform.processor() or platform.machine()


def measured_cuts(count: int, every: int) -> list[int]:
    """The cut indices measured with `every`: 0, every, 2 every, ..., and the last."""
    return sorted({*range(0, count, int(every)), count - 1})


def measure(model, context, *, threads_device: int = 1, threads_server: int = 1,
            runs: int = 20, warmup: int = 3, every: int = 1, progress: bool = True) -> Profile:
    """Convert and time the halves of `model`'s cuts (see the module docstring)."""
    from tqdm import tqdm

    cuts = candidate_cuts(model)
    chosen = measured_cuts(len(cuts), every)
    device, server = {}, {}
    rng = np.random.default_rng(0)
    h, w = context.input_size
    image = rng.integers(0, 256, (1, h, w, 3)).astype(np.float32)
    for k in tqdm(chosen, desc="split: converting halves", unit="cut", disable=not progress):
        cut = cuts[k]
        if cut.name != ALL_SERVER:
            device[k] = _device_runner(model, cut, context, image, threads_device)
        if cut.name != ALL_DEVICE:
            server[k] = _server_runner(model, cut, threads_server, rng)
    device_ms = _medians(device, runs, warmup)
    server_ms = _medians(server, runs, warmup)
    device_ms[0], server_ms[len(cuts) - 1] = 0.0, 0.0
    return Profile(
        cuts=[c.name for c in cuts], ops=[c.op for c in cuts], values=[c.values for c in cuts],
        image_shape=[1, h, w, 3], output_shape=[1, h, w], units=unit_facts(model),
        device_ms=[device_ms.get(k) for k in range(len(cuts))],
        server_ms=[server_ms.get(k) for k in range(len(cuts))],
        threads_device=int(threads_device), threads_server=int(threads_server), runs=int(runs),
        cpu=cpu_model(), extra={"every": int(every)})


def _medians(runners: dict[int, Any], runs: int, warmup: int) -> dict[int, float]:
    if not runners:
        return {}
    samples = time_interleaved(runners, runs, warmup, **BLOCKS)
    return {k: summarize(v)["median_ms"] for k, v in samples.items()}


def _device_runner(model, cut: Cut, context, image: np.ndarray, threads: int):
    from ai_edge_litert.interpreter import Interpreter

    from zoo.split.halves import _labels_model, device_bytes

    front = device_model(model, cut) if cut.name != ALL_DEVICE else _labels_model(model)
    interpreter = Interpreter(model_content=device_bytes(front, context, "tflite"),
                              num_threads=int(threads))
    runner = interpreter.get_signature_runner()
    name = next(iter(runner.get_input_details()))
    return lambda: runner(**{name: image})


def _server_runner(model, cut: Cut, threads: int, rng):
    import onnxruntime as ort

    from zoo.split.halves import server_proto, wires_of

    wires = wires_of(cut, "float32")
    proto = server_proto(server_model(model, cut), wires)
    options = ort.SessionOptions()
    options.intra_op_num_threads = int(threads)
    session = ort.InferenceSession(proto.SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    feed = {wire.name: (rng.integers(0, 256, wire.shape).astype(np.uint8)
                        if wire.dtype == "uint8" else rng.random(wire.shape, np.float32))
            for wire in wires}
    return lambda: session.run(None, feed)

