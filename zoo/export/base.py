"""The export format registry, format options, artifacts and the runtimes that execute them.

Example::

    @register_format("onnx", OnnxOptions, suffix=".onnx")
    def convert(model, out_path, options, context) -> Artifact: ...

    fmt = FORMATS.get("onnx")
    options = parse_options(fmt, {"opset": 17})      # unknown keys raise ConfigError
    artifact = fmt.convert(model, Path("m.onnx"), options, context)
    logits = artifact.runner(threads=2).run(images[:1])   # float32 (1, H, W, C)

A format module defines a dataclass of options and a `convert` function; the exporter,
validator and manifest only ever see `Artifact`s. Runtimes (ai_edge_litert, onnxruntime) are
imported lazily, inside the runner that uses them.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from zoo.errors import ConfigError
from zoo.registry import Registry

FORMATS = Registry("export format")


@dataclass
class FormatSpec:
    """A registered format: its name, options dataclass, converter and file suffix."""

    name: str
    options_cls: type
    convert: Callable[..., Artifact]
    suffix: str


def register_format(name: str, options_cls: type, suffix: str) -> Callable:
    """Decorator registering `convert(model, out_path, options, context) -> Artifact`."""

    def decorator(fn: Callable) -> Callable:
        FORMATS.register(name, FormatSpec(name, options_cls, fn, suffix))
        return fn

    return decorator


def parse_options(fmt: FormatSpec, options: dict[str, Any] | None) -> Any:
    """The format's options dataclass from a dict; unknown keys are a ConfigError naming them."""
    options = dict(options or {})
    allowed = [f.name for f in dataclasses.fields(fmt.options_cls)]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ConfigError(f"format {fmt.name}: unknown option(s) {', '.join(unknown)}; "
                          f"allowed: {', '.join(allowed) or '(none)'}")
    return fmt.options_cls(**options)


@dataclass
class TensorInfo:
    """dtype and shape of a model input or output; scale/zero point when quantized."""

    name: str
    dtype: str
    shape: list[int]
    scale: float | None = None
    zero_point: int | None = None

    @property
    def quantized(self) -> bool:
        return bool(self.scale) and self.dtype in ("uint8", "int8")


@dataclass
class Artifact:
    """A converted file, how to run it, and what the manifest says about it."""

    format: str
    path: Path
    runtime: str  # "litert" | "onnxruntime" | "mil-reference" | "coreml"
    input: TensorInfo
    output: TensorInfo
    ops: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)  # format-specific manifest entries

    def runner(self, threads: int | None = None) -> Runner:
        if self.runtime == "litert":
            return LiteRTRunner(self.path, threads)
        if self.runtime == "onnxruntime":
            return OnnxRunner(self.path, threads)
        if self.runtime in ("mil-reference", "coreml"):
            from zoo.export.coreml import CoreMLRunner, MilReferenceRunner

            cls = MilReferenceRunner if self.runtime == "mil-reference" else CoreMLRunner
            return cls(self.path, threads)
        raise ConfigError(f"artifact {self.path}: unknown runtime {self.runtime!r}")


class Runner:
    """Runs one artifact: `run(uint8 (1, H, W, 3)) -> float32 logits (1, H, W, C)`, or integer
    class labels (1, H, W) for an artifact whose output is a label map."""

    def run(self, images: np.ndarray) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError


def _as_output(y: np.ndarray) -> np.ndarray:
    """Logits as float32; an integer label map as it is."""
    return y if np.issubdtype(y.dtype, np.integer) else y.astype(np.float32)


def quantize(x: np.ndarray, info: TensorInfo) -> np.ndarray:
    """Float values to the integer type of `info` with its scale and zero point."""
    limits = np.iinfo(info.dtype)
    q = np.round(np.asarray(x, np.float32) / info.scale + info.zero_point)
    return np.clip(q, limits.min, limits.max).astype(info.dtype)


def dequantize(q: np.ndarray, info: TensorInfo) -> np.ndarray:
    return ((q.astype(np.float32) - info.zero_point) * info.scale).astype(np.float32)


class LiteRTRunner(Runner):
    """A .tflite file in the LiteRT interpreter (tf.lite.Interpreter is deprecated); integer
    inputs are quantized from the uint8 image and integer outputs dequantized."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_path=str(path), num_threads=threads)
        self.interpreter.allocate_tensors()
        self.input_detail = self.interpreter.get_input_details()[0]
        self.output_detail = self.interpreter.get_output_details()[0]
        self.input_info = litert_tensor_info(self.input_detail)
        self.output_info = litert_tensor_info(self.output_detail)

    def run(self, images: np.ndarray) -> np.ndarray:
        x = np.asarray(images)
        if self.input_info.quantized:
            x = quantize(x, self.input_info)
        else:
            x = x.astype(self.input_detail["dtype"])
        self.interpreter.set_tensor(self.input_detail["index"], x)
        self.interpreter.invoke()
        y = self.interpreter.get_tensor(self.output_detail["index"])
        return dequantize(y, self.output_info) if self.output_info.quantized else _as_output(y)

    def delegate_report(self) -> dict:
        """XNNPACK partitions (1 is the goal: no hops to the reference kernels between) and the
        ops left outside them, e.g. ``{"xnnpack_partitions": 1, "outside_delegate":
        {"QUANTIZE": 2}}`` (see `ops_outside_delegate`)."""
        details = self.interpreter._get_ops_details()
        outside = ops_outside_delegate(details)
        return {"xnnpack_partitions": sum(d["op_name"] == "DELEGATE" for d in details),
                "outside_delegate": dict(sorted(Counter(d["op_name"] for d in outside).items()))}


def delegate_line(details: dict) -> str:
    """``XNNPACK 1 partition; outside: QUANTIZE x2`` from a delegate report."""
    n = details["xnnpack_partitions"]
    outside = details.get("outside_delegate") or {}
    ops = ", ".join(f"{op} x{count}" for op, count in outside.items()) or "none"
    return f"XNNPACK {n} partition{'s' if n != 1 else ''}; ops outside: {ops}"


def ops_outside_delegate(details: list[dict]) -> list[dict]:
    """The ops of a delegated interpreter's op table that run outside every DELEGATE node.

    LiteRT keeps the original ops in the table and appends one DELEGATE op per partition, whose
    inputs are the tensors the partition reads (activations and weights) and whose outputs are
    those it writes for the rest of the graph. An op is inside a partition when it is reached by
    walking producers back from the partition's outputs without crossing its inputs.
    """
    producer = {int(t): d for d in details if d["op_name"] != "DELEGATE" for t in d["outputs"]}
    inside: set[int] = set()
    for node in (d for d in details if d["op_name"] == "DELEGATE"):
        boundary = {int(t) for t in node["inputs"]}
        stack = [int(t) for t in node["outputs"]]
        while stack:
            op = producer.get(stack.pop())
            if op is None or op["index"] in inside:
                continue
            inside.add(op["index"])
            stack.extend(int(t) for t in op["inputs"] if int(t) not in boundary)
    return [d for d in details if d["op_name"] != "DELEGATE" and d["index"] not in inside]


def tflite_ops(path: Path) -> list[str]:
    """Builtin op names of a .tflite file in execution order, without delegate nodes.

    Uses the interpreter's private `_get_ops_details()` (the public API has no op table) with
    default delegates off, so XNNPACK does not fold the graph into DELEGATE nodes.
    """
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interpreter = Interpreter(
        model_path=str(path),
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interpreter.allocate_tensors()
    return [d["op_name"] for d in interpreter._get_ops_details()]


def litert_tensor_info(detail: dict) -> TensorInfo:
    scale, zero_point = detail.get("quantization", (0.0, 0))
    dtype = np.dtype(detail["dtype"]).name
    quantized = bool(scale) and dtype in ("uint8", "int8")
    return TensorInfo(detail["name"], dtype, [int(s) for s in detail["shape"]],
                      float(scale) if quantized else None, int(zero_point) if quantized else None)


class OnnxRunner(Runner):
    """An .onnx file in onnxruntime on the CPU; the image goes in as float32 0..255 NHWC.

    Intra-op threads spin between ops (onnxruntime's default): with them parked instead, 2
    threads gave 1.23x over 1 on MobileNetV3-Large LR-ASPP at 512 px, with spinning 1.63x.
    `spinning=False` gives the cores back between runs (for apps that run other work too)."""

    def __init__(self, path: Path, threads: int | None = None, spinning: bool = True) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = int(threads)
            opts.inter_op_num_threads = 1
        opts.add_session_config_entry("session.intra_op.allow_spinning",
                                      "1" if spinning else "0")
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def run(self, images: np.ndarray) -> np.ndarray:
        x = np.asarray(images, np.float32)
        return _as_output(self.session.run(None, {self.input_name: x})[0])


@dataclass
class ExportContext:
    """What every converter may need besides the model: the run, the data and a scratch folder.

    `calibration_images()` loads N training images through validation preprocessing once;
    `cache` lets formats share work (one SavedModel for all TFLite variants, one int8 model
    for tflite-int8 and edgetpu).
    """

    run_id: str
    arch: str
    alpha: float
    input_size: tuple[int, int]
    class_names: list[str]
    load_calibration: Callable[[int], np.ndarray]
    threads: int | None = None
    scratch: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="zoo-export-")))
    cache: dict[Any, Any] = field(default_factory=dict)
    calibration_sha256: str | None = None

    def metadata(self) -> dict[str, str]:
        """What an app needs to feed the model and read its output; every format embeds it
        (ONNX metadata_props, TFLite metadata buffer, Core ML user_defined_metadata)."""
        import json

        h, w = self.input_size
        return {
            "arch": self.arch,
            "alpha": f"{self.alpha:g}",
            "input_size": f"{h}x{w}",
            "input_layout": "NHWC",
            "normalization": "RGB 0..255, scaled inside",
            "class_names": json.dumps(self.class_names),
            "run_id": self.run_id,
        }

    def calibration_images(self, count: int) -> np.ndarray:
        key = ("calibration", count)
        if key not in self.cache:
            import hashlib

            images = self.load_calibration(count)
            if len(images) == 0:
                raise ConfigError("no training images for int8 calibration")
            self.cache[key] = images
            self.calibration_sha256 = hashlib.sha256(images.tobytes()).hexdigest()
        return self.cache[key]
