"""LiteRT (the TFLite runtime, `ai_edge_litert`) with its default XNNPACK delegate.

Example::

    runner = LiteRTRunner(Path("model.int8.tflite"), threads=2)
    runner.run(images[:1])                    # uint8 in, dequantized float32 logits out
    runner.delegate_report()                  # {"xnnpack_partitions": 1, "outside_delegate": ...}
    tflite_ops(Path("model.tflite"))          # ["CONV_2D", "DEPTHWISE_CONV_2D", ...]

`tf.lite.Interpreter` is deprecated in favour of `ai_edge_litert.interpreter.Interpreter`, which
gives identical results.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from zoo.export.runtimes.base import (
    Runner,
    TensorInfo,
    as_output,
    dequantize,
    quantize,
    register_runtime,
)


def delegate_line(details: dict) -> str:
    """``XNNPACK 1 partition; ops outside: QUANTIZE x2`` from a delegate report ("" without)."""
    if "xnnpack_partitions" not in details:
        return ""
    n = details["xnnpack_partitions"]
    outside = details.get("outside_delegate") or {}
    ops = ", ".join(f"{op} x{count}" for op, count in outside.items()) or "none"
    return f"XNNPACK {n} partition{'s' if n != 1 else ''}; ops outside: {ops}"


@register_runtime("litert", describe=delegate_line)
class LiteRTRunner(Runner):
    """A .tflite file in the LiteRT interpreter; integer inputs are quantized from the uint8
    image and integer outputs dequantized."""

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
        return dequantize(y, self.output_info) if self.output_info.quantized else as_output(y)

    def delegate_report(self) -> dict:
        """XNNPACK partitions (1 is the goal: no hops to the reference kernels between) and the
        ops left outside them, e.g. ``{"xnnpack_partitions": 1, "outside_delegate":
        {"QUANTIZE": 2}}`` (see `ops_outside_delegate`)."""
        details = self.interpreter._get_ops_details()
        outside = ops_outside_delegate(details)
        return {"xnnpack_partitions": sum(d["op_name"] == "DELEGATE" for d in details),
                "outside_delegate": dict(sorted(Counter(d["op_name"] for d in outside).items()))}


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
