"""onnxruntime on the CPU.

Example::

    runner = OnnxRunner(Path("model.onnx"), threads=2)
    runner.run(images[:1])             # float32 NHWC logits, or a uint8 label map
    onnx_io_info(onnx.load("model.int8.onnx"))   # (input, output) TensorInfo with scale/zp

The image goes in as the graph's input type: float32 0..255, or, for a graph whose input is an
integer tensor read by a DequantizeLinear (a quantized input), quantized with that node's scale
and zero point; an integer output written by a QuantizeLinear is dequantized the same way.
"""

from __future__ import annotations

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


def _initializer(graph, name: str) -> np.ndarray | None:
    from onnx import numpy_helper

    for init in graph.initializer:
        if init.name == name:
            return numpy_helper.to_array(init)
    return None


def _quant_params(graph, node) -> tuple[float | None, int | None]:
    """Per-tensor scale and zero point of a QuantizeLinear/DequantizeLinear node."""
    scale = _initializer(graph, node.input[1])
    zero = _initializer(graph, node.input[2]) if len(node.input) > 2 else None
    if scale is None or np.size(scale) != 1:
        return None, None
    return float(np.ravel(scale)[0]), int(np.ravel(zero)[0]) if zero is not None else 0


def _tensor_info(value, scale=None, zero_point=None) -> TensorInfo:
    import onnx

    dims = [d.dim_value for d in value.type.tensor_type.shape.dim]
    dtype = onnx.helper.tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type).name
    quantized = scale is not None and dtype in ("uint8", "int8")
    return TensorInfo(value.name, dtype, dims, scale if quantized else None,
                      zero_point if quantized else None)


def onnx_io_info(proto) -> tuple[TensorInfo, TensorInfo]:
    """The first input and output of an ONNX model, with scale and zero point when the input is
    read by a DequantizeLinear or the output written by a QuantizeLinear."""
    graph = proto.graph
    inp, out = graph.input[0], graph.output[0]
    in_q = next((_quant_params(graph, n) for n in graph.node
                 if n.op_type == "DequantizeLinear" and n.input[0] == inp.name), (None, None))
    out_q = next((_quant_params(graph, n) for n in graph.node
                  if n.op_type == "QuantizeLinear" and n.output[0] == out.name), (None, None))
    return _tensor_info(inp, *in_q), _tensor_info(out, *out_q)


@register_runtime("onnxruntime")
class OnnxRunner(Runner):
    """An .onnx file in onnxruntime's CPU execution provider.

    Intra-op threads spin between ops (onnxruntime's default), which scales better on 2
    threads; `spinning=False` gives the cores back between runs (for apps that run other work
    too). The benchmarks measure both (README, "Benchmarks")."""

    def __init__(self, path: Path, threads: int | None = None, spinning: bool = True) -> None:
        import onnx
        import onnxruntime as ort

        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = int(threads)
            opts.inter_op_num_threads = 1
        opts.add_session_config_entry("session.intra_op.allow_spinning",
                                      "1" if spinning else "0")
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.input_info, self.output_info = onnx_io_info(
            onnx.load(str(path), load_external_data=False))

    def run(self, images: np.ndarray) -> np.ndarray:
        x = np.asarray(images)
        if self.input_info.quantized:
            x = quantize(x, self.input_info)
        elif self.input_info.dtype in ("uint8", "int8"):
            x = x.astype(self.input_info.dtype)
        else:
            x = x.astype(np.float32)
        y = self.session.run(None, {self.input_name: x})[0]
        return dequantize(y, self.output_info) if self.output_info.quantized else as_output(y)
