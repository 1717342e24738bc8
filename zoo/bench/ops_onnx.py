"""Per-op time of an ONNX model from onnxruntime's own profiler (the TFLite side has none).

Example::

    per_node = onnx_node_times(Path("model.onnx"), threads=1, runs=30, warmup=5)
    per_node[0]   # {"node": "mobileunet_1/conv_pw_1_relu_1/Relu6:0_nchwc",
                  #  "op": "CONV_2D 1x1", "ms": 0.21}

The session is the one the grid times (all graph optimizations on, intra-op spinning on as in
`OnnxRunner`), with profiling enabled;
ORT's optimized graph is saved beside the model so that each profiled node (fused, NCHWc) can be
classified with the TFLite op names `zoo.bench.ops` uses: grouped Conv -> DEPTHWISE_CONV_2D,
ConvTranspose -> TRANSPOSE_CONV, Resize/Upsample -> RESIZE_BILINEAR, and the layout changes ORT
adds (Transpose, ReorderInput/Output) as "LAYOUT (Transpose/Reorder)". Profiling adds a little
overhead per node; shares are more trustworthy than absolute times.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np

_LAYOUT = ("Transpose", "ReorderInput", "ReorderOutput")


def classify(node) -> str:
    """The TFLite-style op name of an (optimized) ONNX node."""
    attrs = {a.name: a for a in node.attribute}
    if node.op_type in ("Conv", "FusedConv"):
        group = attrs["group"].i if "group" in attrs else 1
        kernel = list(attrs["kernel_shape"].ints) if "kernel_shape" in attrs else []
        if group > 1:
            return "DEPTHWISE_CONV_2D"
        return f"CONV_2D {kernel[0]}x{kernel[1]}" if len(kernel) == 2 else "CONV_2D"
    if node.op_type == "ConvTranspose":
        return "TRANSPOSE_CONV"
    if node.op_type in ("Resize", "Upsample"):
        return "RESIZE_BILINEAR"
    if node.op_type == "Concat":
        return "CONCATENATION"
    if node.op_type in _LAYOUT:
        return "LAYOUT (Transpose/Reorder)"
    return node.op_type.upper()


def onnx_node_times(path: Path, threads: int, runs: int = 30, warmup: int = 5,
                    seed: int = 0) -> list[dict]:
    """Mean ms per run of every executed node over the `runs` runs after `warmup`, slowest
    first."""
    import onnx
    import onnxruntime as ort

    path = Path(path)
    optimized = path.with_suffix(".optimized.onnx")
    options = ort.SessionOptions()
    options.intra_op_num_threads = int(threads)
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "1")  # as timed
    options.optimized_model_filepath = str(optimized)
    options.enable_profiling = True
    options.profile_file_prefix = str(path.with_suffix("")) + "_profile"
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feed = _feed(session, seed)
    for _ in range(int(warmup) + int(runs)):
        session.run(None, feed)
    events = json.loads(Path(session.end_profiling()).read_text())
    starts = sorted(e["ts"] for e in events if e.get("name") == "model_run")
    first = starts[int(warmup)] if len(starts) > int(warmup) else 0  # skip warm-up runs
    nodes = {n.name: n for n in onnx.load(str(optimized)).graph.node}
    total: dict[str, float] = defaultdict(float)
    for event in events:
        if (event.get("cat") == "Node" and event["name"].endswith("_kernel_time")
                and event["ts"] >= first):
            total[event["name"][: -len("_kernel_time")]] += event["dur"] / 1e3
    rows = [{"node": name, "op": classify(nodes[name]) if name in nodes else "?",
             "ms": ms / int(runs)} for name, ms in total.items()]
    return sorted(rows, key=lambda r: -r["ms"])


def _feed(session, seed: int) -> dict[str, np.ndarray]:
    spec = session.get_inputs()[0]
    shape = [int(s) for s in spec.shape]
    image = np.random.default_rng(seed).integers(0, 256, shape).astype(np.float32)
    return {spec.name: image}
