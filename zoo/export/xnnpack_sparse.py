"""Would XNNPACK run this TFLite graph with its sparse (NCHW) kernels? A checker of the rules.

Example::

    verdict = check(Path("model.tflite"))        # a .tflite path, its bytes, or a Keras model
    verdict["meets"], verdict["summary"]
    # False, "no: CONCATENATION #59 reads an NCHW tensor (...); 1x1 conv weights 75.0 % zero
    #         (needs > 66.7 %); sparse kernels run on ARM only"

XNNPACK's sparse inference (Elsen et al. 2019, "Fast Sparse ConvNets") runs a part of a float
graph in NCHW layout with sparse 1x1 convolutions. The rules, from the "Sparse Inference"
section of the TFLite XNNPACK delegate's README (tensorflow/lite/delegates/xnnpack/README.md)
and their code (google/XNNPACK src/subgraph.c: `xnn_check_nchw_compatibility`,
`xnn_subgraph_rewrite_for_nchw`; the delegate's `has_sparse_weights`):

- the weights are stored sparse, read through DENSIFY ops (else XNNPACK is not even asked);
- a sparse subgraph starts with a 3x3 stride-2 CONV_2D with 3 input channels and padding 1 on
  each side (no dilation), and ends with a MEAN over the spatial axes or a DEPTH_TO_SPACE;
- in between only: 1x1 CONV_2D (stride 1, no padding), DEPTHWISE_CONV_2D 3x3 or 5x5, stride 1
  or 2, padding 1 or 2 on each side, depth multiplier 1, RESIZE_BILINEAR (input larger than
  1x1), MEAN over the spatial axes, ADD and MUL of two 4-D tensors, and the unary ops ABS,
  CEIL, ELU, FLOOR, HARD_SWISH, LEAKY_RELU, LOGISTIC, NEG, RELU, RELU6, RELU_N1_TO_1, ROUND,
  SQUARE; every reader of a tensor inside the subgraph must be in it (a graph output, a
  CONCATENATION or a RESHAPE reading it disqualifies the whole subgraph);
- float only (fp32, or fp16 weights dequantized at load): int8 graphs never run sparse;
- more than 2/3 of the 1x1 convolution weights of the subgraph are exactly zero.

Two delegate details decide the padding rules in practice: TensorFlow SAME padding at stride 1
becomes explicit padding, but at stride 2 it stays a flag (padding fields 0), which fails the
"padding 1 on each side" test (`xnn_define_depthwise_convolution_2d`, google/XNNPACK); a zero
PAD op right before a VALID (depthwise) convolution is fused into its padding.

And the hardware: XNNPACK enables the NCHW kernels on ARM only; on x86 they exist for SSE but
are switched off on CPUs with AVX (`xnn_is_chw_compatible_config`: "on processors with AVX ISA
dense inference is expected to be faster than sparse"), so on this machine a graph that
meets the rules still runs dense. The verdict is about ARM phones.

`check` follows XNNPACK's cluster algorithm op by op on the TFLite graph and returns the
verdict, the op that breaks each would-be sparse subgraph and why, and the 1x1 zero fraction.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from typing import Any

import numpy as np

REQUIRED_ZEROS = 2 / 3  # strictly more than this fraction of 1x1 conv weights must be zero
ARM_ONLY = ("XNNPACK runs sparse NCHW kernels on ARM only (x86 CPUs with AVX stay dense: "
            "xnn_is_chw_compatible_config)")
UNARY = frozenset({"ABS", "CEIL", "ELU", "FLOOR", "HARD_SWISH", "LEAKY_RELU", "LOGISTIC", "NEG",
                   "RELU", "RELU6", "RELU_N1_TO_1", "ROUND", "SQUARE"})
# Ops whose inputs after the first are parameters of the XNNPACK node, not values it reads.
PARAMETER_INPUTS = frozenset({"MEAN", "SUM", "PAD", "RESHAPE", "RESIZE_BILINEAR"})

NCHW, NHWC2NCHW, NCHW2NHWC, INCOMPATIBLE = 1, 2, 4, 8  # XNNPACK's layout flags
SAME = 0
FLOAT_TYPES = (0, 1)  # TFLite FLOAT32, FLOAT16


@dataclass
class _Node:
    index: int  # the TFLite op index
    op: str
    inputs: list[int]  # value (tensor) ids the node reads, constants included
    outputs: list[int]
    flags: int = 0
    why: str = ""  # why it is not NCHW-compatible ("" when it is)
    leader: int = 0
    zeros: int = 0  # 1x1 conv weights that are zero / all of them, summed at the leader
    params: int = 0
    padding: tuple[int, int, int, int] = (0, 0, 0, 0)  # top, right, bottom, left (fused PADs)
    options: Any = None
    extra: dict = field(default_factory=dict)


class _Graph:
    """The TFLite subgraph 0 as XNNPACK sees it: static tensors (constants, and the outputs of
    DENSIFY / DEQUANTIZE ops the delegate unpacks at load), nodes, consumers."""

    def __init__(self, model) -> None:
        from tensorflow.lite.python import schema_py_generated as schema

        names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
        self.model, graph = model, model.subgraphs[0]
        self.tensors = graph.tensors
        self.inputs = {int(i) for i in graph.inputs}
        self.outputs = {int(i) for i in graph.outputs}
        codes = [names.get(max(c.builtinCode, c.deprecatedBuiltinCode), "CUSTOM")
                 for c in model.operatorCodes]
        self.static: set[int] = set()  # constants, and what the delegate unpacks at load
        self.sparse: set[int] = set()  # static tensors stored sparse (read through a DENSIFY)
        self.unpacked: dict[int, int] = {}  # unpacked tensor -> the constant it comes from
        for i, tensor in enumerate(graph.tensors):
            buffer = model.buffers[tensor.buffer] if 0 < tensor.buffer < len(model.buffers) \
                else None
            if buffer is not None and buffer.data is not None and len(buffer.data):
                self.static.add(i)
        self.nodes: list[_Node] = []
        for index, op in enumerate(graph.operators):
            name = codes[op.opcodeIndex]
            inputs = [int(t) for t in op.inputs if t >= 0]
            outputs = [int(t) for t in op.outputs]
            # The delegate unpacks static DENSIFY (float) and DEQUANTIZE (fp16 -> fp32) at load.
            if name in ("DENSIFY", "DEQUANTIZE") and len(inputs) == 1 and inputs[0] in self.static:
                source = self.tensors[inputs[0]]
                self.unpacked[outputs[0]] = inputs[0]  # its values, for the zero count
                if name == "DENSIFY" and source.type in FLOAT_TYPES or (
                        name == "DEQUANTIZE" and source.type == 1):  # float16 weights
                    self.static.add(outputs[0])
                    if name == "DENSIFY" or inputs[0] in self.sparse:
                        self.sparse.add(outputs[0])
                    continue
            self.nodes.append(_Node(index, name, inputs, outputs, options=op.builtinOptions))
        self.producer = {t: n for n in self.nodes for t in n.outputs}
        self.consumers: dict[int, list[_Node]] = {}
        for node in self.nodes:
            for t in self._read(node):
                self.consumers.setdefault(t, []).append(node)

    def _read(self, node: _Node) -> list[int]:
        return node.inputs[:1] if node.op in PARAMETER_INPUTS else node.inputs

    def reads(self, node: _Node) -> list[int]:
        """The non-static values a node reads."""
        return [t for t in self._read(node) if t not in self.static]

    def shape(self, t: int) -> list[int]:
        shape = self.tensors[t].shape
        return [int(s) for s in (shape if shape is not None else [])]

    def values(self, t: int) -> np.ndarray:
        """The dense values of a static tensor (sparse ones densified)."""
        from zoo.export.tflite_convert import TFLITE_DTYPES, densify

        while t in self.unpacked:
            t = self.unpacked[t]
        tensor = self.tensors[t]
        data = self.model.buffers[tensor.buffer].data
        raw = np.frombuffer(np.asarray(data, np.uint8).tobytes(),
                            np.dtype(TFLITE_DTYPES[tensor.type]))
        shape = self.shape(t)
        return densify(raw, shape, tensor.sparsity) if tensor.sparsity is not None \
            else raw.reshape(shape)

    def is_float(self, t: int) -> bool:
        return self.tensors[t].type in FLOAT_TYPES


def _label(node: _Node) -> str:
    return f"{node.op} #{node.index}"


def _conv_flags(graph: _Graph, node: _Node) -> tuple[int, str]:
    """`xnn_check_nchw_compatibility` for CONV_2D: a 1x1 (stride 1, no padding) is NCHW; a
    3x3 stride-2 with 3 input channels and padding 1 on each side starts a subgraph."""
    o = node.options
    _, kh, kw, cin = graph.shape(node.inputs[1])
    if (o.dilationHFactor, o.dilationWFactor) != (1, 1):
        return 0, "dilated CONV_2D"
    stride = (o.strideH, o.strideW)
    padding = _padding(node, kh, kw, stride)
    if (kh, kw) == (1, 1):
        if padding != (0, 0, 0, 0):
            return 0, f"1x1 CONV_2D with padding {padding}"
        if stride != (1, 1):
            return 0, f"1x1 CONV_2D with stride {stride[0]}"
        return NCHW, ""
    if (kh, kw) == (3, 3):
        if stride != (2, 2):
            return 0, f"3x3 CONV_2D with stride {stride[0]} (only the stride-2 first conv)"
        if cin != 3:
            return 0, f"3x3 CONV_2D with {cin} input channels (only the first conv, 3)"
        if padding != (1, 1, 1, 1):
            return 0, _padding_why("3x3 stride-2 CONV_2D", node, padding)
        return NHWC2NCHW, ""
    return 0, f"{kh}x{kw} CONV_2D (only 1x1, and 3x3 stride 2 first)"


def _padding(node: _Node, kh: int, kw: int, stride: tuple[int, int]):
    """(top, right, bottom, left) as XNNPACK defines it: SAME at stride 1 becomes explicit
    padding; SAME at a larger stride stays a flag (None); a fused PAD adds its amounts."""
    if node.options.padding == SAME:
        if stride != (1, 1):
            return None
        top, left = (kh - 1) // 2, (kw - 1) // 2
        pad = (top, kw - 1 - left, kh - 1 - top, left)
    else:
        pad = (0, 0, 0, 0)
    return tuple(a + b for a, b in zip(pad, node.padding, strict=True))


def _padding_why(what: str, node: _Node, padding) -> str:
    if padding is None:
        return (f"{what} with TensorFlow SAME padding at stride 2 (XNNPACK keeps it as a flag, "
                "not padding 1 on each side: write a symmetric zero PAD + VALID)")
    return f"{what} with padding {padding} (top, right, bottom, left), not symmetric"


def _depthwise_flags(graph: _Graph, node: _Node) -> tuple[int, str]:
    o = node.options
    _, kh, kw, _ = graph.shape(node.inputs[1])
    if (o.dilationHFactor, o.dilationWFactor) != (1, 1):
        return 0, "dilated DEPTHWISE_CONV_2D"
    if o.depthMultiplier != 1:
        return 0, f"DEPTHWISE_CONV_2D with depth multiplier {o.depthMultiplier}"
    stride = (o.strideH, o.strideW)
    if stride not in ((1, 1), (2, 2)):
        return 0, f"DEPTHWISE_CONV_2D with stride {stride}"
    if (kh, kw) not in ((3, 3), (5, 5)):
        return 0, f"{kh}x{kw} DEPTHWISE_CONV_2D (3x3 or 5x5 only)"
    padding = _padding(node, kh, kw, stride)
    half = kh // 2
    if padding != (half, half, half, half):
        return 0, _padding_why(f"{kh}x{kw} stride-{stride[0]} DEPTHWISE_CONV_2D", node, padding)
    return NCHW, ""


def _flags(graph: _Graph, node: _Node) -> tuple[int, str]:
    """XNNPACK's layout flags of one node and, when 0, why: the op's own rules, then float
    tensors only (`all_values_fp`)."""
    flags, why = _op_flags(graph, node)
    values = [t for t in node.inputs if t not in graph.static or node.op not in PARAMETER_INPUTS]
    if flags and not all(graph.is_float(t) for t in [*values, *node.outputs]):
        return 0, f"{node.op} on int8 tensors (sparse inference is float only)"
    return flags, why


def _op_flags(graph: _Graph, node: _Node) -> tuple[int, str]:
    op = node.op
    if op == "CONV_2D":
        return _conv_flags(graph, node)
    if op == "DEPTHWISE_CONV_2D":
        return _depthwise_flags(graph, node)
    if op == "FULLY_CONNECTED":
        return NCHW, ""
    if op == "DEPTH_TO_SPACE":
        return NCHW2NHWC, ""
    if op in ("MEAN", "SUM"):
        axes = sorted(int(a) % 4 for a in np.ravel(graph.values(node.inputs[1]))) \
            if node.inputs[1] in graph.static else None
        if len(graph.shape(node.inputs[0])) != 4 or axes != [1, 2]:
            return 0, f"{op} not over the spatial axes of a 4-D tensor"
        return NCHW | NCHW2NHWC, ""
    if op in ("ADD", "MUL"):
        if any(len(graph.shape(t)) != 4 for t in node.inputs[:2]):
            return 0, (f"{op} with an input that is not 4-D (e.g. a scalar constant: reshape it "
                       "to 1x1x1xC)")
        for t in node.inputs[:2]:
            if t in graph.static and sum(s != 1 for s in graph.shape(t)) > 1:
                return 0, f"{op} with a constant that is not a scalar or a vector"
        return NCHW, ""
    if op == "RESIZE_BILINEAR":
        _, h, w, _ = graph.shape(node.inputs[0])
        return (NCHW, "") if h > 1 and w > 1 else (0, "RESIZE_BILINEAR of a 1-pixel input")
    if op in UNARY:
        return (NCHW, "") if len(graph.shape(node.inputs[0])) == 4 else (0, f"{op} not 4-D")
    return 0, f"{op} is not in XNNPACK's sparse-inference op set"


def _fuse_pads(graph: _Graph) -> None:
    """A zero, spatial-only PAD read by one (depthwise) convolution becomes its padding
    (XNNPACK's subgraph fusion), and leaves the node list."""
    keep = []
    for node in graph.nodes:
        readers = graph.consumers.get(node.outputs[0], []) if node.op == "PAD" else []
        if (node.op == "PAD" and len(readers) == 1 and node.outputs[0] not in graph.outputs
                and readers[0].op in ("CONV_2D", "DEPTHWISE_CONV_2D")
                and node.inputs[1] in graph.static and len(node.inputs) == 2):
            pads = np.asarray(graph.values(node.inputs[1])).reshape(-1, 2)
            if pads.shape[0] == 4 and not pads[0].any() and not pads[3].any():
                reader = readers[0]
                reader.padding = tuple(int(x) for x in (pads[1][0], pads[2][1], pads[1][1],
                                                        pads[2][0]))
                reader.inputs = [node.inputs[0] if t == node.outputs[0] else t
                                 for t in reader.inputs]
                continue
        keep.append(node)
    graph.nodes = keep
    graph.producer = {t: n for n in graph.nodes for t in n.outputs}
    graph.consumers = {}
    for node in graph.nodes:
        for t in graph._read(node):
            graph.consumers.setdefault(t, []).append(node)


def _join(graph: _Graph, node: _Node, nodes: list[_Node]) -> bool:
    """One pass of XNNPACK's cluster growth from `node` to its producers; True if a leader
    changed."""
    changed = False
    for t in graph.reads(node):
        producer = graph.producer.get(t)
        if producer is None:  # a graph input (an external value): not in a cluster
            node.flags |= INCOMPATIBLE
            node.extra.setdefault("broken_by", f"graph input read by {_label(node)}")
            continue
        if producer.flags & (NHWC2NCHW | NCHW) and not producer.flags & INCOMPATIBLE:
            producer.flags &= ~NCHW2NHWC
            if producer.leader != node.leader:
                producer.leader = node.leader = max(producer.leader, node.leader)
                changed = True
        else:
            node.flags |= INCOMPATIBLE
            node.extra.setdefault("broken_by", _cause(producer))
    return changed


def _cause(producer: _Node) -> str:
    """Why a node reading `producer`'s output cannot be in an NCHW subgraph."""
    if producer.flags & INCOMPATIBLE:
        return producer.extra.get("broken_by", f"{_label(producer)} is in a broken subgraph")
    if producer.why:
        return f"{_label(producer)}: {producer.why}"
    return f"{_label(producer)} ends a subgraph (its output is NHWC)"


def _clusters(graph: _Graph) -> dict[int, list[_Node]]:
    """`xnn_subgraph_rewrite_for_nchw`: the NCHW clusters by leader, with INCOMPATIBLE set on
    the leaders of those that cannot switch."""
    nodes = graph.nodes
    by_index = {n.index: n for n in nodes}
    for node in nodes:
        node.leader = node.index
    update = False
    for node in nodes:
        if node.flags & NCHW2NHWC:
            update |= _join(graph, node, nodes)
    if not update:
        return {}
    while update:
        update = False
        for node in nodes:
            if node.flags & INCOMPATIBLE or not node.flags & (NCHW | NCHW2NHWC):
                continue
            update |= _join(graph, node, nodes)
    # Leaders change only upward: follow them to the final one.
    def root(node: _Node) -> _Node:
        while by_index[node.leader].leader != node.leader:
            node = by_index[node.leader]
        return by_index[node.leader]

    for node in nodes:
        leader = root(node)
        leader.flags |= node.flags & INCOMPATIBLE
        if node.flags & INCOMPATIBLE and "broken_by" in node.extra:
            leader.extra.setdefault("broken_by", node.extra["broken_by"])
    members: dict[int, list[_Node]] = {}
    for node in nodes:
        if node.flags & (NCHW | NCHW2NHWC | NHWC2NCHW):
            members.setdefault(root(node).index, []).append(node)
    # Every reader of a value a cluster reads must be in the cluster (a graph output counts as
    # one more reader, outside).
    for leader_index, cluster in members.items():
        leader = by_index[leader_index]
        if leader.flags & INCOMPATIBLE:
            continue
        inside = {n.index for n in cluster}
        for node in cluster:
            if not node.flags & (NCHW | NCHW2NHWC):
                continue
            for t in graph.reads(node):
                outside = [r for r in graph.consumers.get(t, []) if r.index not in inside
                           or not r.flags & (NCHW | NCHW2NHWC)]
                if outside or t in graph.outputs:
                    leader.flags |= INCOMPATIBLE
                    reader = outside[0] if outside else None
                    leader.extra.setdefault(
                        "broken_by", f"{_label(reader)}: {reader.why or 'outside the subgraph'}"
                        if reader else f"a graph output read inside the subgraph ({_label(node)})")
        # The README's "must end with MEAN or DEPTH_TO_SPACE": only an exit (a node that kept
        # its NCHW->NHWC flag) writes a tensor read outside the subgraph or a graph output.
        for node in cluster:
            if leader.flags & INCOMPATIBLE or node.flags & NCHW2NHWC:
                continue
            for t in node.outputs:
                leaving = [r for r in graph.consumers.get(t, []) if r.index not in inside]
                if leaving or t in graph.outputs:
                    leader.flags |= INCOMPATIBLE
                    where = _label(leaving[0]) if leaving else "a graph output"
                    leader.extra.setdefault(
                        "broken_by", f"{_label(node)} writes a tensor read outside the subgraph "
                        f"({where}): a sparse subgraph ends with MEAN or DEPTH_TO_SPACE")
                    break
    return members


def _zero_fraction(graph: _Graph, nodes: list[_Node]) -> tuple[int, int]:
    """(zero weights, weights) of the 1x1 CONV_2D and FULLY_CONNECTED filters of `nodes`."""
    zeros = params = 0
    for node in nodes:
        is_1x1 = node.op == "CONV_2D" and graph.shape(node.inputs[1])[1:3] == [1, 1]
        if (is_1x1 or node.op == "FULLY_CONNECTED") and (
                node.inputs[1] in graph.static or node.inputs[1] in graph.unpacked):
            weights = graph.values(node.inputs[1])
            zeros += int(np.count_nonzero(weights == 0))
            params += int(weights.size)
    return zeros, params


def _percent(zeros: int, params: int) -> str:
    return f"{100 * zeros / params:.1f} %" if params else "n/a"


def _flatbuffer_of(source):
    """A `ModelT` from a path, bytes, a `ModelT` or a Keras model (converted with
    `keras_tflite`)."""
    from zoo.export.tflite_convert import flatbuffer_model

    if hasattr(source, "layers") and hasattr(source, "weights"):
        source = keras_tflite(source)
    return flatbuffer_model(source)


def keras_tflite(model) -> bytes:
    """The float32 .tflite the export writes for a Keras model (the `tflite_graph` rewrite, a
    batch-1 SavedModel, sparse kernels stored sparse), for checking a model before export."""
    import tensorflow as tf

    from zoo.export.tflite_convert import sparse_kernels, write_saved_model
    from zoo.export.tflite_graph import tflite_graph

    graph = tflite_graph(model)
    shape = [1, *[int(s) for s in model.input_shape[1:]]]
    with tempfile.TemporaryDirectory(prefix="zoo-xnnpack-sparse-") as tmp:
        write_saved_model(graph, tmp, shape)
        converter = tf.lite.TFLiteConverter.from_saved_model(tmp)
        if sparse_kernels(model):
            converter.optimizations = [tf.lite.Optimize.EXPERIMENTAL_SPARSITY]
        return converter.convert()


def check(source) -> dict[str, Any]:
    """The XNNPACK sparse-inference verdict of a TFLite graph (path, bytes, `ModelT`) or of a
    Keras model (converted as the float32 export would). Returns::

        {"meets": bool, "summary": one line, "arm_only": ARM_ONLY,
         "sparse_weights": DENSIFY-read weights?, "float": float graph?,
         "entry": the first conv and why it can or cannot start a sparse subgraph,
         "breaks": [{"op", "index", "why"}] - NCHW-incompatible ops reading what an
                   NCHW-compatible op wrote (first 10),
         "conv1x1_zeros": {"zeros", "weights", "fraction", "required": "> 0.667"} over the
                   whole graph,
         "subgraphs": [{"ops", "first", "last", "zeros", "weights", "fraction", "sparse",
                        "why"}] - the would-be sparse subgraphs XNNPACK forms}
    """
    graph = _Graph(_flatbuffer_of(source))
    _fuse_pads(graph)
    for node in graph.nodes:
        node.flags, node.why = _flags(graph, node)
    nodes = graph.nodes
    convs = [n for n in nodes if n.op == "CONV_2D"]
    first = convs[0] if convs else None
    entry = ("no CONV_2D" if first is None else
             f"{_label(first)} starts a sparse subgraph" if first.flags & NHWC2NCHW else
             f"{_label(first)} cannot start one: {first.why}")
    is_float = all(graph.is_float(t) for n in nodes if n.op in ("CONV_2D", "DEPTHWISE_CONV_2D")
                   for t in n.outputs)
    sparse_weights = any(t in graph.sparse for n in nodes for t in n.inputs)
    members = _clusters(graph)
    by_index = {n.index: n for n in nodes}
    subgraphs = []
    for leader_index, cluster in sorted(members.items()):
        leader = by_index[leader_index]
        zeros, params = _zero_fraction(graph, cluster)
        ok_zeros = zeros * 3 > params * 2
        why = ("" if not leader.flags & INCOMPATIBLE and ok_zeros else
               leader.extra.get("broken_by", "broken") if leader.flags & INCOMPATIBLE else
               f"1x1 conv weights {_percent(zeros, params)} zero, needs > 66.7 %")
        if len(cluster) < 2 and leader.flags & INCOMPATIBLE:
            continue  # a lone compatible op between incompatible ones: not worth listing
        subgraphs.append({
            "ops": len(cluster), "first": _label(cluster[0]), "last": _label(cluster[-1]),
            "zeros": zeros, "weights": params,
            "fraction": round(zeros / params, 4) if params else 0.0,
            "sparse": not leader.flags & INCOMPATIBLE and ok_zeros, "why": why})
    compatible = {n.index for n in nodes if n.flags & (NCHW | NHWC2NCHW)}
    breaks = []
    for node in nodes:
        if node.flags & (NCHW | NCHW2NHWC):
            continue
        sources = [graph.producer[t] for t in graph.reads(node) if t in graph.producer]
        if any(s.index in compatible for s in sources):
            breaks.append({"op": node.op, "index": node.index, "why": node.why})
    zeros, params = _zero_fraction(graph, nodes)
    meets = is_float and sparse_weights and any(s["sparse"] for s in subgraphs)
    reasons = []
    if not is_float:
        reasons.append("int8 graph (sparse inference is float only)")
    elif not sparse_weights:
        reasons.append("weights stored dense (no DENSIFY: XNNPACK is not asked for sparse "
                       "inference)")
    if is_float and not (first is not None and first.flags & NHWC2NCHW):
        reasons.append(entry)
    if breaks:
        b = breaks[0]
        reasons.append(f"{b['op']} #{b['index']} breaks the NCHW subgraph ({b['why']})"
                       + (f", and {len(breaks) - 1} more op(s)" if len(breaks) > 1 else ""))
    elif is_float and not any(s["sparse"] for s in subgraphs):
        why = next((s["why"] for s in subgraphs if s["why"]), "")
        if not subgraphs:
            reasons.append("no MEAN or DEPTH_TO_SPACE ends a subgraph")
        elif why and not why.startswith("1x1 conv weights"):
            reasons.append(why)
    reasons.append(f"1x1 conv weights {_percent(zeros, params)} zero (needs > 66.7 %)")
    if meets:
        best = next(s for s in subgraphs if s["sparse"])
        summary = (f"yes: {best['ops']} ops from {best['first']} to {best['last']} run sparse, "
                   f"1x1 conv weights {100 * best['fraction']:.1f} % zero; ARM only")
    else:
        summary = "no: " + "; ".join(reasons) + "; sparse kernels run on ARM only"
    return {"meets": bool(meets), "summary": summary, "arm_only": ARM_ONLY,
            "sparse_weights": bool(sparse_weights), "float": bool(is_float), "entry": entry,
            "breaks": breaks[:10], "breaks_total": len(breaks),
            "conv1x1_zeros": {"zeros": zeros, "weights": params,
                              "fraction": round(zeros / params, 4) if params else 0.0,
                              "required": f"> {REQUIRED_ZEROS:.3f}"},
            "subgraphs": subgraphs[:10], "subgraphs_total": len(subgraphs)}
