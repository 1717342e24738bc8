"""What a full-integer TFLite file really holds: float tensors left behind, and where each
activation range came from.

Example::

    facts, defects = int8_facts(data, model, io="uint8")
    facts["ranges"]   # {"learned": 61, "fixed": 1, "calibrated": []} for a QAT model
    defects           # ["float32 tensors left: conv_1/BiasAdd, ..."] -> fails validation

The converter leaves an op in float32 when it finds no range for one of its tensors (a
fake-quant missing from a QAT graph, an op it cannot quantize), silently with
``TFLITE_BUILTINS`` allowed; such a file is not the int8 model it is called, so it fails
validation whatever its accuracy. With ``io="float"`` the graph input and output are float32
by request and are not counted.

Ranges: the int8 conversion always gets the calibration images, and the converter keeps the
range of every tensor a fake-quant op sits on (a QAT model's learned range) and calibrates the
rest. A tensor is "learned" when its scale is one of the model's learned ranges
(``(max - min) / 255``), "fixed" when its op has a fixed output range (LOGISTIC: 1/256),
"calibrated" otherwise; the manifest lists the calibrated ones by name.
"""

from __future__ import annotations

import numpy as np

FIXED_RANGE_OPS = frozenset({"LOGISTIC", "SOFTMAX", "TANH", "LOG_SOFTMAX"})
MAX_LISTED = 20  # names in a defect line
SCALE_TOLERANCE = 1e-4  # relative: a learned range's scale as the converter writes it


def learned_scale(low: float, high: float) -> float:
    """The int8 scale of the learned range [low, high]."""
    return (float(high) - float(low)) / 255.0


def is_learned(scale: float, learned) -> bool:
    """Whether a tensor's `scale` is one of the `learned` scales."""
    learned = np.asarray(learned, np.float64)
    return bool(learned.size) and float(np.min(np.abs(learned - scale))) <= SCALE_TOLERANCE * scale


def _parsed(data: bytes):
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(data))
    codes = {value: name for name, value in vars(schema.BuiltinOperator).items()
             if not name.startswith("_")}
    op_names = [codes.get(max(c.builtinCode, c.deprecatedBuiltinCode), str(c.builtinCode))
                for c in model.operatorCodes]
    return model, schema, op_names


def _name(tensor) -> str:
    name = tensor.name
    return name.decode() if isinstance(name, bytes) else str(name)


def float_tensors(data: bytes, io: str) -> list[str]:
    """Names of the float32 tensors of a TFLite file, but the graph's input and output when
    `io` is "float"."""
    model, schema, _ = _parsed(data)
    graph = model.subgraphs[0]
    allowed = set(graph.inputs) | set(graph.outputs) if io == "float" else set()
    return [_name(t) for i, t in enumerate(graph.tensors)
            if t.type == schema.TensorType.FLOAT32 and i not in allowed]


def range_sources(data: bytes, learned: list[float]) -> dict:
    """Every per-tensor int8/uint8 op output, classified by where its range came from (see
    the module docstring), with `learned` the learned scales."""
    model, schema, op_names = _parsed(data)
    graph = model.subgraphs[0]
    counts = {"learned": 0, "fixed": 0}
    calibrated = []
    for op in graph.operators:
        for index in op.outputs:
            tensor = graph.tensors[index]
            q = tensor.quantization
            if tensor.type not in (schema.TensorType.INT8, schema.TensorType.UINT8) or (
                    q is None or q.scale is None or len(q.scale) != 1):
                continue
            scale = float(q.scale[0])
            if op_names[op.opcodeIndex] in FIXED_RANGE_OPS:
                counts["fixed"] += 1
            elif is_learned(scale, learned):
                counts["learned"] += 1
            else:
                calibrated.append(_name(tensor))
    return {**counts, "calibrated": calibrated}


def int8_facts(data: bytes, model, io: str) -> tuple[dict, list[str]]:
    """(manifest details, defects) of a full-integer file converted from `model`: the float
    tensors left (a defect), and for a quantization-aware model the range sources."""
    from zoo.quantize import is_quantization_aware, quantization_ranges

    facts, defects = {}, []
    left = float_tensors(data, io)
    if left:
        shown = ", ".join(left[:MAX_LISTED]) + (f" (+{len(left) - MAX_LISTED} more)"
                                                if len(left) > MAX_LISTED else "")
        defects.append(f"{len(left)} float32 tensor(s) left in the int8 model: {shown}")
    facts["float_tensors"] = left
    if is_quantization_aware(model):
        learned = [learned_scale(low, high) for low, high in quantization_ranges(model).values()]
        facts["ranges"] = range_sources(data, learned)
    return facts, defects
