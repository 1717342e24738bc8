"""Per-layer int8 error: which quantized tensors lose the accuracy, worst first.

Example::

    rows = Int8Calibration(converter).layer_errors(images, [l.name for l in model.layers])
    report_lines("tflite-int8", rows)   # the report.md section
    rows[0]   # {"layer": "conv_pw_13", "op": "CONV_2D", "snr_db": 18.2, "cosine": 0.992, ...}

Measured with LiteRT's `tf.lite.experimental.QuantizationDebugger` (run by
`zoo.export.int8_calibration`) on the model quantized in debug mode, where every quantized op
is followed by a NumericVerify op that runs the same op in float32 on the dequantized int8
inputs, and compares the two outputs on each image. The
error of a tensor is therefore the error its own op adds (local), not the error accumulated
from the layers before it: the first layers' small errors do not make every later layer look
bad, and a layer with a bad range or bad weights ranks first on its own. (ai-edge-quantizer's
validation compares each tensor of the whole quantized model with the float model's, which
measures the accumulated error instead; its per-op recipes are the way to mixed precision, not
needed for this report.) For each tensor: signal-to-quantization-noise ratio in dB (higher is
better; 8 bits over a well-used range gives about 40 dB), cosine similarity, and RMSE relative
to the float output's RMS, over every element of every image.
"""

from __future__ import annotations

import numpy as np

TOP_LOG = 5     # tensors printed in the export log
TOP_REPORT = 20  # tensors in report.md; the manifest keeps them all


def _flat(values, scale=None, zero_point=None) -> np.ndarray:
    out = np.concatenate([np.asarray(v, np.float64).ravel() for v in values])
    return out if scale is None else (out - float(zero_point)) * float(scale)


def _snr_db(floats, quants, scale, zero_point) -> float:
    a, b = _flat(floats), _flat(quants, scale, zero_point)
    noise = float((a - b) @ (a - b))
    return float(10.0 * np.log10((float(a @ a) + 1e-20) / (noise + 1e-20)))


def _cosine(floats, quants, scale, zero_point) -> float:
    a, b = _flat(floats), _flat(quants, scale, zero_point)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-20))


def _relative_rmse(floats, quants, scale, zero_point) -> float:
    a, b = _flat(floats), _flat(quants, scale, zero_point)
    return float(np.linalg.norm(a - b) / (np.linalg.norm(a) + 1e-20))


def layer_name(tensor_name: str, layer_names: list[str]) -> str:
    """The Keras layer a TFLite tensor name comes from: the longest layer name that starts the
    second path component of the name's first fused location (``model_1/conv_pw_1_relu_1/
    Relu6;...`` -> ``conv_pw_1_relu``), else that component."""
    first = tensor_name.split(";")[0]
    parts = first.split("/")
    part = parts[1] if len(parts) > 1 else parts[0]
    matches = [n for n in layer_names if part == n or part.startswith(n + "_")]
    return max(matches, key=len) if matches else part


def metric_options():
    """The debugger's options that compute this report's metrics."""
    import tensorflow as tf

    return tf.lite.experimental.QuantizationDebugOptions(layer_direct_compare_metrics={
        "snr_db": _snr_db, "cosine": _cosine, "relative_rmse": _relative_rmse})


def rows_from_debugger(debugger, names: list[str]) -> list[dict]:
    """The report's rows from a debugger that has run, worst first. Read from its CSV dump,
    which has the quantized tensor's own name (the keys of `layer_statistics` name the
    NumericVerify op, the tensor's name plus a suffix)."""
    import csv
    import io

    buffer = io.StringIO()
    debugger.layer_statistics_dump(buffer)
    rows = []
    for stats in csv.DictReader(io.StringIO(buffer.getvalue())):
        tensor = stats["tensor_name"]
        rows.append({
            "tensor": tensor, "layer": layer_name(tensor, names), "op": stats["op_name"],
            "snr_db": round(float(stats["snr_db"]), 2),
            "cosine": round(float(stats["cosine"]), 6),
            "relative_rmse": round(float(stats["relative_rmse"]), 5),
            "max_abs_error": float(stats["max_abs_error"]),
        })
    return sorted(rows, key=lambda r: r["snr_db"])


def qat_layer_errors(model, data: bytes, images: np.ndarray) -> list[dict]:
    """Per-tensor errors of the int8 file `data` of a quantization-aware `model`: each tensor
    a learned range sits on, against the Keras model's fake-quantized activation there (found
    by its scale, ``(max - min) / 255``), on `images`; worst first.

    QuantizationDebugger cannot debug a model whose ranges come from fake-quant ops (its
    debug-mode model gets no NumericVerify ops: "Please check if the quantized model is in
    debug mode", tensorflow/tensorflow#86949), and the float reference of a QAT model is its
    own simulation: the error here is how far the integer kernels drift from what was
    trained, accumulated from the input (rounding in requantization, bilinear resize, int32
    bias)."""
    import keras
    from ai_edge_litert.interpreter import Interpreter

    from zoo.export.int8_check import is_learned, learned_scale
    from zoo.quantize import ActivationQuantizer

    quantizers = [layer for layer in model.layers if isinstance(layer, ActivationQuantizer)
                  and layer.fixed is None]
    if not quantizers or len(images) == 0:
        return []
    probe = keras.Model(model.inputs, [q.output for q in quantizers])
    interpreter = Interpreter(model_content=data, experimental_preserve_all_tensors=True)
    interpreter.allocate_tensors()
    inp = interpreter.get_input_details()[0]
    outputs = {o for op in interpreter._get_ops_details() for o in op["outputs"]}
    tensors = [t for t in interpreter.get_tensor_details() if t["index"] in outputs
               and len(t["quantization_parameters"]["scales"]) == 1]
    pairs = {}
    for q in quantizers:
        scale = learned_scale(q.min.numpy(), q.max.numpy())
        shape = tuple(q.output.shape[1:])
        match = [t for t in tensors if tuple(t["shape"][1:]) == shape
                 and is_learned(float(t["quantization_parameters"]["scales"][0]), [scale])]
        # Many ranges are equal (every ReLU6 learns [0, 6]): the tensor's name, which holds
        # the fused locations of its ops, names the quantizer.
        source = q.name.removesuffix("_quant")
        named = [t for t in match if _names(t["name"], q.name)] or [
            t for t in match if _names(t["name"].split(";")[0], source)]
        if named or len(match) == 1:
            pairs[q.name] = (named or match)[-1]
    floats = {name: [] for name in pairs}
    quants = {name: [] for name in pairs}
    for image in images:
        feed = image[None]
        if inp["dtype"] == np.int8:
            feed = (feed.astype(np.int16) - 128).astype(np.int8)
        interpreter.set_tensor(inp["index"], feed.astype(inp["dtype"]))
        interpreter.invoke()
        reference = probe.predict_on_batch(image[None].astype(np.float32))
        for q, value in zip(quantizers, reference, strict=True):
            if q.name not in pairs:
                continue
            t = pairs[q.name]
            params = t["quantization_parameters"]
            raw = interpreter.get_tensor(t["index"])
            floats[q.name].append(value)
            quants[q.name].append(_flat([raw], params["scales"][0], params["zero_points"][0]))
    rows = []
    for name, t in pairs.items():
        a, b = _flat(floats[name]), np.concatenate(quants[name])
        args = ([a], [b], 1.0, 0.0)
        rows.append({"tensor": t["name"], "layer": name.removesuffix("_quant"),
                     "snr_db": round(_snr_db(*args), 2), "cosine": round(_cosine(*args), 6),
                     "relative_rmse": round(_relative_rmse(*args), 5),
                     "max_abs_error": float(np.max(np.abs(a - b)))})
    return sorted(rows, key=lambda r: r["snr_db"])


def _names(tensor_name: str, layer: str) -> bool:
    """Whether a TFLite tensor name has `layer` as a path component (``.../layer_1/...``)."""
    return f"/{layer}_" in tensor_name or f"/{layer}/" in tensor_name


def log_lines(rows: list[dict], top: int = TOP_LOG) -> list[str]:
    return [f"  {r['layer']}: SNR {r['snr_db']:.1f} dB, cosine {r['cosine']:.4f}, "
            f"relative RMSE {r['relative_rmse']:.3f}" for r in rows[:top]]


KINDS = {
    "local": "Each tensor's own error: its int8 op against the same op in float on the same "
             "dequantized inputs (LiteRT QuantizationDebugger).",
    "qat": "Each learned-range tensor against the quantization-aware Keras model's "
           "fake-quantized activation, accumulated from the input.",
}


def report_lines(fmt: str, rows: list[dict], kind: str = "local", top: int = TOP_REPORT
                 ) -> list[str]:
    """A report.md section: the worst `top` tensors; `kind` says what was compared."""
    if not rows:
        return []
    lines = [f"### {fmt}: per-layer int8 error (worst {min(top, len(rows))} of {len(rows)})", "",
             KINDS[kind], "",
             "| layer | SNR (dB) | cosine | relative RMSE |", "|---|---|---|---|"]
    lines += [f"| {r['layer']} | {r['snr_db']:.1f} | {r['cosine']:.4f} | "
              f"{r['relative_rmse']:.3f} |" for r in rows[:top]]
    return [*lines, ""]
