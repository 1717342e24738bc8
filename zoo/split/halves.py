"""Export the two halves of a cut model and validate them as a pair (`split.py export`).

Example::

    result = export_halves("checkpoints/mobileunet-a0.5-224x288-...", "conv_pw_5_relu",
                           transfer="int8", device="tflite")
    result["validation"]["miou_drop_pt"]     # server(device(x)) against Keras, on val images

    device = DeviceHalf(folder)              # device.tflite + split.json, checksums checked
    sent = device.run(image)                 # {name: array in the transfer dtype}
    labels = ServerHalf(folder).run(sent)    # the ONNX server half, locally

A folder holds:

- ``device.tflite``: image (float32 RGB 0..255, NHWC, batch 1) -> every tensor crossing the cut,
  float32, from the float (``--device tflite``) or full-integer (``tflite-int8``, float I/O)
  converter of the export pipeline;
- ``server.onnx``: those tensors **in the transfer precision** -> the uint8 label map
  ``(1, H, W)`` named ``labels``. Its inputs are what the client sends: float32 as it is,
  float16 through a Cast, int8 through a DequantizeLinear with the scale and zero point of
  each tensor (per tensor, asymmetric, from the tensor's range on calibration images). So any
  Open Inference Protocol server (ours, `zoo.split.server`, or Triton's onnxruntime backend)
  serves the file as it is. At the ``input`` cut the server takes the uint8 frame;
- ``full.tflite``: the whole model (image -> uint8 labels) in float32, which the client runs
  when the server is down or too slow (at the ``output`` cut it is device.tflite itself);
- ``split.json``: the run, the cut, every crossing tensor (name, producing layer, shape, dtype,
  scale, zero point), the sha256 of both files and of the pair, the model name the server
  publishes (it ends with the pair's checksum, so a device half and a server half of two
  different exports never meet unnoticed), and the pair's validation.

The pair goes through the export gate (`zoo.export.validate`) as one artifact: each validation
image runs through device.tflite in LiteRT, is encoded as sent, and runs through server.onnx in
onnxruntime; the labels are compared with the Keras model's. Tolerances: a float32 transfer and
a float device half are judged as float32 (`FLOAT32`), a float16 transfer as float16, an int8
transfer or an int8 device half may lose at most `INT8_TRANSFER_DROP` pt mIoU.

The folder is written under a temporary name beside it and renamed only once the pair passed;
a failed pair is left as ``<out>.FAILED`` for inspection and the command exits 1. An existing
folder is never replaced without ``overwrite``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from zoo import checks
from zoo.errors import ConfigError
from zoo.export.format import FLOAT16, FLOAT32, Tolerance
from zoo.files import write_bytes_atomic, write_text_atomic
from zoo.split.cuts import ALL_DEVICE, ALL_SERVER, PRECISIONS, Cut, candidate_cuts, find_cut

DEVICE_FORMATS = ("tflite", "tflite-int8")
INT8_TRANSFER_DROP = 0.5  # pt mIoU an int8 transfer (or int8 device half) may lose
CALIBRATION_IMAGES = 32  # training images that set each int8 tensor's range
OPSET = 17
DEVICE_FILE, SERVER_FILE, SPEC_FILE = "device.tflite", "server.onnx", "split.json"
FULL_FILE = "full.tflite"  # the whole model on the device: the client's fallback
ONNX_TYPES = {"float32": 1, "uint8": 2, "int8": 3, "float16": 10}  # onnx.TensorProto codes
OIP_TYPES = {"float32": "FP32", "float16": "FP16", "int8": "INT8", "uint8": "UINT8"}


@dataclass
class Wire:
    """One tensor as it crosses the link."""

    name: str  # the server half's input name
    layer: str  # the Keras layer producing it
    shape: tuple[int, ...]
    dtype: str  # float32 | float16 | int8 | uint8 (the frame)
    scale: float | None = None  # int8 only: real = scale * (q - zero_point)
    zero_point: int | None = None

    def encode(self, x: np.ndarray) -> np.ndarray:
        if self.dtype == "int8":
            q = np.round(x / self.scale) + self.zero_point
            return np.clip(q, -128, 127).astype(np.int8)
        if self.dtype == "uint8":
            return np.clip(np.round(x), 0, 255).astype(np.uint8)
        return x.astype(self.dtype)

    def to_dict(self) -> dict:
        return {"name": self.name, "layer": self.layer, "shape": list(self.shape),
                "dtype": self.dtype, "datatype": OIP_TYPES[self.dtype], "scale": self.scale,
                "zero_point": self.zero_point}


def wires_of(cut: Cut, transfer: str, ranges: list[tuple[float, float]] | None = None
             ) -> list[Wire]:
    """The tensors crossing `cut` as sent with `transfer` (int8 needs each tensor's range)."""
    if cut.name == ALL_SERVER:
        return [Wire("image", "image", cut.shapes[0], "uint8")]
    wires = []
    for i, (layer, shape) in enumerate(zip(cut.layers, cut.shapes, strict=True)):
        wire = Wire(f"cut_{i}", layer, shape, transfer)
        if transfer == "int8":
            low, high = ranges[i]
            low, high = min(low, 0.0), max(high, 0.0)  # zero exactly representable
            scale = (high - low) / 255.0 or 1.0
            wire = replace(wire, scale=float(scale),
                           zero_point=int(np.clip(round(-128 - low / scale), -128, 127)))
        wires.append(wire)
    return wires


def tensor_ranges(front, images: np.ndarray) -> list[tuple[float, float]]:
    """(min, max) of each output of the Keras device half over `images`."""
    lows, highs = None, None
    for image in images:
        outs = front(image[None].astype(np.float32), training=False)
        outs = [np.asarray(o) for o in (outs if isinstance(outs, list | tuple) else [outs])]
        mins, maxs = [float(o.min()) for o in outs], [float(o.max()) for o in outs]
        lows = mins if lows is None else [min(a, b) for a, b in zip(lows, mins, strict=True)]
        highs = maxs if highs is None else [max(a, b) for a, b in zip(highs, maxs, strict=True)]
    return list(zip(lows, highs, strict=True))


def device_bytes(front, context, device: str) -> bytes:
    """The device half as TFLite: float32, or full-integer int8 with float I/O."""
    from zoo.export.tflite_convert import converter, int8_converter

    if device == "tflite":
        return converter(front, context, output="logits",
                         transpose_conv="depth-to-space").convert()
    conv, _ = int8_converter(front, context, calibration_images=CALIBRATION_IMAGES,
                             output="logits", transpose_conv="depth-to-space")
    return conv.convert()


def server_proto(back, wires: list[Wire], opset: int = OPSET):
    """The server half as ONNX: `wires` in their dtype -> uint8 labels (1, H, W)."""
    import onnx
    import tensorflow as tf
    import tf2onnx

    from zoo.export.outputs import with_output

    specs = [tf.TensorSpec(w.shape, tf.float32, name=f"{w.name}_float") for w in wires]
    proto, _ = tf2onnx.convert.from_keras(with_output(back, "labels"), input_signature=specs,
                                          opset=int(opset))
    graph = proto.graph
    if len(graph.input) != len(wires):
        raise ConfigError(f"server half: {len(graph.input)} ONNX inputs for {len(wires)} tensors")
    nodes, inputs = [], []
    for wire, given in zip(wires, list(graph.input), strict=True):
        floated = given.name
        inputs.append(onnx.helper.make_tensor_value_info(
            wire.name, ONNX_TYPES[wire.dtype], list(wire.shape)))
        if wire.dtype == "int8":
            graph.initializer.extend([
                onnx.helper.make_tensor(f"{wire.name}_scale", onnx.TensorProto.FLOAT, [],
                                        [wire.scale]),
                onnx.helper.make_tensor(f"{wire.name}_zero_point", onnx.TensorProto.INT8, [],
                                        [wire.zero_point])])
            nodes.append(onnx.helper.make_node(
                "DequantizeLinear", [wire.name, f"{wire.name}_scale", f"{wire.name}_zero_point"],
                [floated], name=f"{wire.name}_dequantize"))
        else:
            nodes.append(onnx.helper.make_node("Cast", [wire.name], [floated],
                                               to=onnx.TensorProto.FLOAT, name=f"{wire.name}_cast"))
    del graph.input[:]
    graph.input.extend(inputs)
    rest = list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes + rest)
    _rename_output(graph, "labels")
    onnx.checker.check_model(proto)
    return proto


def _rename_output(graph, name: str) -> None:
    old = graph.output[0].name
    if old == name:
        return
    for node in graph.node:
        node.output[:] = [name if o == old else o for o in node.output]
    graph.output[0].name = name


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def pair_checksum(hashes: dict[str, str]) -> str:
    return hashlib.sha256("".join(hashes[k] for k in sorted(hashes)).encode()).hexdigest()


class SplitSpecError(ConfigError):
    pass


def read_spec(folder: Path) -> dict:
    """split.json of `folder`, with each file present checked against its sha256."""
    folder = Path(folder)
    path = folder / SPEC_FILE
    if not path.is_file():
        raise SplitSpecError(f"{path}: not found (a folder written by `split.py export`)")
    try:
        spec = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise SplitSpecError(f"{path}: not readable JSON ({exc})") from None
    for name, digest in spec.get("sha256", {}).items():
        file = folder / name
        if file.is_file() and sha256(file) != digest:
            raise SplitSpecError(f"{file}: sha256 does not match {path} (the files of two "
                                 "different exports?)")
    return spec


class DeviceHalf:
    """device.tflite in LiteRT: the uint8/float image -> the tensors to send, encoded."""

    def __init__(self, folder: Path, threads: int | None = 1) -> None:
        self.spec = read_spec(folder)
        self.wires = [Wire(**{k: (tuple(v) if k == "shape" else v) for k, v in w.items()
                              if k != "datatype"}) for w in self.spec["tensors"]]
        self.interpreter = None
        path = Path(folder) / DEVICE_FILE
        if self.spec["cut"] != ALL_SERVER:
            from ai_edge_litert.interpreter import Interpreter

            if not path.is_file():
                raise SplitSpecError(f"{path}: not found")
            self.interpreter = Interpreter(model_path=str(path), num_threads=threads)
            self.runner = self.interpreter.get_signature_runner()
            keys = sorted(self.runner.get_output_details(),
                          key=lambda k: int(k.rsplit("_", 1)[-1]) if k[-1].isdigit() else 0)
            self.output_keys = keys

    def outputs(self, image: np.ndarray) -> list[np.ndarray]:
        """The float tensors the device half computes (the label map at the ``output`` cut)."""
        x = np.asarray(image, np.float32).reshape(1, *np.shape(image)[-3:])
        if self.interpreter is None:
            return [x]
        out = self.runner(**{self.runner.get_input_details().popitem()[0]: x})
        return [np.asarray(out[k]) for k in self.output_keys]

    def run(self, image: np.ndarray) -> dict[str, np.ndarray]:
        """What goes on the wire for `image`: {server input name: array}; {} at ``output``."""
        outs = self.outputs(image)
        if self.spec["cut"] == ALL_DEVICE:
            return {}
        return {w.name: w.encode(o) for w, o in zip(self.wires, outs, strict=True)}


class ServerHalf:
    """server.onnx in onnxruntime (what `zoo.split.server` serves), locally."""

    def __init__(self, folder: Path, threads: int | None = 1) -> None:
        import onnxruntime as ort

        read_spec(folder)  # the checksums
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
        self.session = ort.InferenceSession(str(Path(folder) / SERVER_FILE), options,
                                            providers=["CPUExecutionProvider"])

    def run(self, sent: dict[str, np.ndarray]) -> np.ndarray:
        return self.session.run(["labels"], sent)[0]


class PairRunner:
    """The validator's runner for a pair: image -> labels (1, H, W)."""

    def __init__(self, folder: Path, threads: int | None = 1) -> None:
        self.device = DeviceHalf(folder, threads)
        self.server = ServerHalf(folder, threads) if self.device.spec["cut"] != ALL_DEVICE \
            else None

    def run(self, images: np.ndarray) -> np.ndarray:
        if self.server is None:
            return np.asarray(self.device.outputs(images)[0])
        return self.server.run(self.device.run(images))


@dataclass
class PairArtifact:
    """What `zoo.export.validate` needs of an artifact."""

    format: str
    output_kind: str = "labels"
    defects: list[str] = field(default_factory=list)


def pair_tolerance(transfer: str, device: str, cut: str = "") -> Tolerance:
    """The gate of a pair: the frame at ``input`` goes exactly as uint8 whatever `transfer`."""
    if cut == ALL_SERVER:
        return FLOAT32
    if transfer == "int8" or device == "tflite-int8":
        return Tolerance(None, INT8_TRANSFER_DROP)
    return FLOAT16 if transfer == "float16" else FLOAT32


def export_halves(run: str | None = None, cut: str | None = None, transfer: str = "float32",
                  device: str = "tflite", out: str | None = None, val_images: int | None = None,
                  threads: int | None = 1, overwrite: bool = False,
                  checkpoints_dir: str = "checkpoints") -> dict[str, Any]:
    """Write and validate the two halves of `run` cut at `cut` (see the module docstring);
    returns split.json's content."""
    from zoo.config import load_config
    from zoo.export.exporter import (
        export_context,
        load_checkpoint,
        validation_data,
    )
    from zoo.export.validate import reference, validate
    from zoo.runs import resolve_run

    if cut is None:
        raise ConfigError("--cut is required: a layer name `split.py plan` lists, or input / "
                          "output")
    if transfer not in PRECISIONS:
        raise ConfigError(f"--transfer must be one of {', '.join(PRECISIONS)}, got {transfer!r}")
    if device not in DEVICE_FORMATS:
        raise ConfigError(f"--device must be one of {', '.join(DEVICE_FORMATS)}, got {device!r}")
    val_images = checks.optional(checks.integer)("--val-images", val_images, 1)
    threads = checks.optional(checks.integer)("--threads", threads, 1, 1024)
    run_dir = resolve_run(run, Path(checkpoints_dir))
    cfg = load_config(run_dir / "config.yaml")
    model = load_checkpoint(run_dir / "best.keras")
    chosen = find_cut(candidate_cuts(model), str(cut))
    out_dir = Path(out) if out else run_dir / "split" / f"{chosen.name}-{transfer}-{device}"
    if out_dir.exists() and not overwrite:
        raise ConfigError(f"{out_dir}: exists (--overwrite replaces it)")
    spec, images, masks = validation_data(cfg, val_images)
    context = export_context(cfg, run_dir, spec, threads)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        facts = _write_halves(model, chosen, tmp, context, transfer=transfer, device=device)
        facts.update(run=str(run_dir.resolve()), run_id=cfg.run_id or run_dir.name,
                     arch=context.arch, alpha=cfg.model.alpha,
                     input_size=list(cfg.model.input_size), classes=list(spec.classes))
        write_text_atomic(tmp / SPEC_FILE, json.dumps(facts, indent=2) + "\n")
        ref = reference(model, images, masks, spec.num_classes, spec.ignore_index)
        name = f"split {chosen.name} {transfer}" + ("" if device == "tflite" else f" {device}")
        result = validate(PairArtifact(name), ref, pair_tolerance(transfer, device, chosen.name),
                          threads,
                          runner=PairRunner(tmp, threads))
        facts["validation"] = result.to_dict()
        write_text_atomic(tmp / SPEC_FILE, json.dumps(facts, indent=2) + "\n")
        if not result.passed:
            failed = out_dir.with_name(out_dir.name + ".FAILED")
            shutil.rmtree(failed, ignore_errors=True)
            tmp.rename(failed)
            raise ConfigError(f"{failed}: the pair failed validation: {result.reason}")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(context.scratch, ignore_errors=True)
    facts["folder"] = str(out_dir)
    return facts


def _write_halves(model, cut: Cut, folder: Path, context, *, transfer: str, device: str
                  ) -> dict[str, Any]:
    """device.tflite and server.onnx of `cut` in `folder`; split.json's facts (no validation)."""
    from zoo.split.cuts import device_model, server_model

    front, back = device_model(model, cut), server_model(model, cut)
    ranges = None
    if transfer == "int8" and cut.name not in (ALL_SERVER, ALL_DEVICE):
        ranges = tensor_ranges(front, context.calibration_images(CALIBRATION_IMAGES))
    wires = wires_of(cut, transfer, ranges) if cut.name != ALL_DEVICE else []
    hashes = {}
    if front is not None:
        source = front if cut.name != ALL_DEVICE else _labels_model(model)
        write_bytes_atomic(folder / DEVICE_FILE, device_bytes(source, context, device))
        hashes[DEVICE_FILE] = sha256(folder / DEVICE_FILE)
    if cut.name != ALL_DEVICE:  # what the client runs when the server cannot be reached
        write_bytes_atomic(folder / FULL_FILE,
                           device_bytes(_labels_model(model), context, "tflite"))
        hashes[FULL_FILE] = sha256(folder / FULL_FILE)
    if back is not None:
        write_bytes_atomic(folder / SERVER_FILE, server_proto(back, wires).SerializeToString())
        hashes[SERVER_FILE] = sha256(folder / SERVER_FILE)
    pair = pair_checksum(hashes)
    h, w = context.input_size
    return {"cut": cut.name, "cut_index": cut.index, "op": cut.op, "transfer": transfer,
            "device": device if front is not None else None,
            "tensors": [wire.to_dict() for wire in wires],
            "transfer_bytes": cut.transfer_bytes(transfer),
            "result_bytes": cut.result_bytes((1, h, w, 1)),
            "output": {"name": "labels", "shape": [1, h, w], "dtype": "uint8",
                       "datatype": "UINT8"},
            "sha256": hashes, "pair_sha256": pair,
            "model_name": f"{context.arch}-{cut.name}-{transfer}-{pair[:10]}",
            "model_version": "1"}


def _labels_model(model):
    from zoo.export.outputs import with_output

    return with_output(model, "labels")
