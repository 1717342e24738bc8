"""Core ML weight compression: a compressed run's weights carried exactly, and post-training
compression of any run (``export.py --format coreml --compress int8|palettize:N|prune:S``).

Example::

    mlmodel, plan = compress_weights(mlmodel, setting="palettize:16", target="iOS16")
    record = describe_weights(MilProgram.load(path), plan)   # the manifest's details["weights"]
    record["kinds"]["palettized"]["kernels"], record["exact"]["verified"]

**Exact carry** (always, from the weights alone: export knows nothing of how a run was
compressed). Each conv / transposed conv / linear kernel of the converted program gets the
smallest encoding that reproduces it exactly, among those the deployment target has:

- *palettized* (``constexpr_lut_to_dense``) when it has at most 256 distinct values (weight
  sharing, ternary levels): the palette is the kernel's own values, looked up, never
  re-clustered (`palettize_weights` with ``mode="unique"``). Indices take log2 of the palette
  size, rounded up to what Core ML stores: 1, 2, 4, 6 or 8 bits (3 from iOS 18), so a
  clustered K = 8 or 32 run takes 4 or 6 bits before iOS 18. The values are those of the
  program, which in an fp16 program are the Keras weights rounded to fp16 (the palette is
  fp16), in fp32 the Keras weights themselves.
- *sparse* (``constexpr_sparse_to_dense``: a bit mask and the non-zero values) when at least
  half of it is exactly zero (pruning). Sparse pays for size above 1/16 zeros in fp16, but
  below a half the gain is small against a decoding step at load time, exact zeros in such
  numbers come only from pruning, and a half is coremltools' own default
  (``OpThresholdPrunerConfig.minimum_sparsity_percentile``); the threshold is 0, so only
  exact zeros go.
- *palettized+sparse* (``constexpr_lut_to_sparse`` + ``constexpr_sparse_to_dense``, iOS 18 /
  macOS 15 only) for a kernel that is both: indices for the non-zero values only, plus the
  mask. Before iOS 18 such a kernel is palettized (zero is a palette entry) unless sparse is
  smaller (many zeros and a wide palette).

Of the encodings a kernel qualifies for, the smallest stored size wins; a kernel whose values a
converter changed (a BatchNorm fused into it by coremltools: a scaled kernel has as many values
as weights) stays dense, without error. After saving, every exactly carried kernel is decoded
by `zoo.export.mil_reference` and compared bit for bit with the converted program's kernel.

**Post-training** (`--compress`, any run): ``int8`` is per-channel symmetric int8
(`linear_quantize_weights`), ``palettize:N`` a 1-D k-means palette of N values
(`palettize_weights` with our k-means as its ``lut_function``: coremltools' ``kmeans`` mode
needs scikit-learn, which the export extra does not install), ``prune:S`` magnitude pruning to
sparsity S (`prune_weights`). It applies to the kernels of more than 2048 values that the
exact carry left dense (2048 is coremltools' default ``weight_threshold``: small kernels,
depthwise ones mostly, hold little of the size and are the most sensitive), so a compressed
run keeps its exact weights and `--compress` takes the rest (a ternary run's full-precision
first conv and classifier, for instance). The artifact then faces the format's usual
validation gate.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from zoo.errors import ConfigError

SETTING_HELP = ("Core ML weight compression after conversion: none, int8 (per-channel "
                "symmetric), palettize:N (k-means palette of N = 2, 4, 16, 64 or 256 values; 8 "
                "from iOS18/macOS15) or prune:S (magnitude pruning to sparsity 0 < S < 1); "
                "weights a compressed run holds exactly are carried exactly either way")
IOS18 = ("iOS18", "macOS15")  # joint sparse + palettized forms, 3-bit palettes
NO_COMPRESSION = ("iOS15", "macOS12")  # compressed weight ops are iOS 16 / macOS 13 ops
SPARSE_SHARE = 0.5  # at least this share of exact zeros: stored sparse
LOSSY_THRESHOLD = 2048  # coremltools' default weight_threshold, for --compress
KERNEL_INPUTS = {"conv": ("weight",), "conv_transpose": ("weight",), "linear": ("weight",),
                 "matmul": ("x", "y")}


def palette_sizes(target: str) -> tuple[int, ...]:
    """Palette sizes the target's ``constexpr_lut_to_dense`` stores."""
    return (2, 4, 8, 16, 64, 256) if target in IOS18 else (2, 4, 16, 64, 256)


def parse_setting(name: str, value: Any) -> str:
    """The `--compress` value, normalised (``prune:0.50`` -> ``prune:0.5``), or a one-line
    ConfigError naming `name` and what it takes."""
    text = str(value).strip().lower()
    kind, _, argument = text.partition(":")
    if text in ("none", "int8"):
        return text
    if kind == "palettize" and argument.isdigit() and int(argument) in palette_sizes("iOS18"):
        return f"palettize:{int(argument)}"
    if kind == "prune":
        try:
            sparsity = float(argument)
        except ValueError:
            sparsity = math.nan
        if 0 < sparsity < 1:
            return f"prune:{sparsity:g}"
    raise ConfigError(f"{name} must be none, int8, palettize:N (N = 2, 4, 8, 16, 64 or 256) or "
                      f"prune:S (0 < S < 1), got {value!r}")


def check_target(setting: str, target: str) -> None:
    """One-line ConfigError when the deployment target cannot store `setting`."""
    if setting != "none" and target in NO_COMPRESSION:
        raise ConfigError(f"--compress {setting} needs --minimum-deployment-target iOS16/macOS13 "
                          f"or later (compressed weights are iOS 16 ops), got {target}")
    if setting == "palettize:8" and target not in IOS18:
        raise ConfigError(f"--compress palettize:8 needs --minimum-deployment-target iOS18 or "
                          f"macOS15 (3-bit palettes are iOS 18's; before: N = 2, 4, 16, 64 or "
                          f"256), got {target}")


# ---------------------------------------------------------------------------- exact carry
@dataclass
class Plan:
    """What `compress_weights` did: kernel const name -> exact encoding, the `--compress`
    setting and the kernels it could take, and each exactly carried kernel's values by layer
    (to verify the saved program against)."""

    target: str
    setting: str = "none"
    exact: dict[str, str] = field(default_factory=dict)
    lossy: list[str] = field(default_factory=list)
    reference: dict[str, np.ndarray] = field(default_factory=dict)


def kernels(program) -> dict[str, Any]:
    """Layer (op) name -> the weight variable of every conv, transposed conv and linear layer
    of a `MilProgram` (a matmul's constant operand)."""
    found = {}
    for operation in program.function.operations:
        for name in KERNEL_INPUTS.get(operation.op_type, ()):
            var = operation.inputs.get(name)
            if var is not None and var.op is not None and (
                    var.op.op_type == "const" or var.op.op_type.startswith("constexpr_")):
                found[operation.name] = var
    return found


def exact_encoding(value: np.ndarray, target: str) -> str:
    """dense, palettized, sparse or palettized+sparse: the smallest exact encoding of a kernel
    that `target` stores (see the module docstring)."""
    if target in NO_COMPRESSION or value.size < 10:  # smaller consts are inlined, never packed
        return "dense"
    item = value.dtype.itemsize
    count = value.size
    nonzero = int(np.count_nonzero(value))
    sizes = {"dense": count * item}
    distinct = len(np.unique(value))
    bits = next((max(1, (size - 1).bit_length()) for size in palette_sizes(target)
                 if distinct <= size), None)
    if bits is not None:
        sizes["palettized"] = math.ceil(count * bits / 8) + (1 << bits) * item
    if count - nonzero >= SPARSE_SHARE * count:
        sizes["sparse"] = math.ceil(count / 8) + nonzero * item
        if bits is not None and target in IOS18:
            sizes["palettized+sparse"] = (math.ceil(count / 8) + math.ceil(nonzero * bits / 8)
                                          + (1 << bits) * item)
    return min(sizes, key=lambda kind: sizes[kind])  # ties: the first (the simplest)


def unique_lut(entries: int) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """A ``lut_function`` whose palette is the weight's own distinct values (what
    ``mode="unique"`` does) padded with zeros to `entries`."""

    def lut_function(weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        values, inverse = np.unique(weight.reshape(-1), return_inverse=True)
        lut = np.zeros(entries, weight.dtype)
        lut[:len(values)] = values
        return lut, inverse.reshape(-1).astype(np.uint8)

    return lut_function


def _exact_palettizer(value: np.ndarray, target: str):
    import coremltools.optimize.coreml as cto

    distinct = len(np.unique(value))
    if target not in IOS18 and 4 < distinct <= 8:
        # coremltools 9.0's unique mode picks 3 bits for 5..8 values whatever the target, and
        # the iOS 16 constexpr_lut_to_dense refuses an 8-entry palette ("Parameter lut should
        # be a vector of size from one of {2, 4, 16, 64, 256}"): the same palette, 16 entries.
        return cto.OpPalettizerConfig(mode="custom", lut_function=unique_lut(16),
                                      weight_threshold=0)
    return cto.OpPalettizerConfig(mode="unique", weight_threshold=0)


def compress_weights(mlmodel, setting: str, target: str) -> tuple[Any, Plan]:
    """`mlmodel` (an ML program) with its kernels carried exactly where they allow it, then
    `setting` (`parse_setting`) applied to the other kernels; the `Plan` for
    `describe_weights`."""
    import coremltools.optimize.coreml as cto

    from zoo.export.mil_reference import MilProgram

    plan = Plan(target=target, setting=setting)
    layers = kernels(MilProgram.of(mlmodel))
    values = {}
    for layer, var in layers.items():
        if var.op.op_type != "const":
            continue
        values[var.op.name] = var.val
        kind = exact_encoding(var.val, target)
        if kind == "dense":
            if var.val.size > LOSSY_THRESHOLD:
                plan.lossy.append(var.op.name)
            continue
        plan.exact[var.op.name] = kind
        plan.reference[layer] = var.val
    by_kind = {kind: [n for n, k in plan.exact.items() if k == kind]
               for kind in ("palettized", "sparse", "palettized+sparse")}
    exact_zeros = cto.OpThresholdPrunerConfig(threshold=0.0, weight_threshold=0,
                                              minimum_sparsity_percentile=SPARSE_SHARE)
    passes = []
    palettes = by_kind["palettized"] + by_kind["palettized+sparse"]
    if palettes:
        passes.append(_pass("palettize_weights", {
            name: _exact_palettizer(values[name], target) for name in palettes}))
    if by_kind["palettized+sparse"]:
        # Joint compression turns each named constexpr_lut_to_dense into constexpr_lut_to_sparse
        # + constexpr_sparse_to_dense; coremltools names a palettized const "<const>_palettized"
        # (optimize/coreml/_quantization_passes.py, palettize_weights.transform_op).
        passes.append(_pass("prune_weights", {
            f"{name}_palettized": exact_zeros for name in by_kind["palettized+sparse"]},
            joint=True))
    if by_kind["sparse"]:
        passes.append(_pass("prune_weights", dict.fromkeys(by_kind["sparse"], exact_zeros)))
    if setting != "none" and plan.lossy:
        passes.append(_post_training(setting, plan.lossy))
    if passes:
        from coremltools.models.utils import _apply_graph_pass

        # What palettize_weights / prune_weights / linear_quantize_weights do, with all passes
        # in one round trip: each public call converts the whole program back to a model
        # (the backend pipeline again: 4-8 s for a small model on this machine).
        mlmodel = _apply_graph_pass(mlmodel, passes)
    return mlmodel, plan


def _pass(name: str, configs: dict[str, Any], joint: bool = False):
    """A fresh instance of coremltools' compression pass `name` (``palettize_weights``,
    ``prune_weights``, ``linear_quantize_weights``) with per-const `configs`."""
    import coremltools.optimize.coreml as cto
    from coremltools.converters.mil.mil.passes.graph_pass import PassOption
    from coremltools.converters.mil.mil.passes.pass_registry import PASS_REGISTRY

    graph_pass = type(PASS_REGISTRY[f"compression::{name}"])()
    graph_pass.set_options([PassOption("config", cto.OptimizationConfig(op_name_configs=configs)),
                            PassOption("joint_compression", joint)])
    return graph_pass


# ---------------------------------------------------------------------------- post-training
def _post_training(setting: str, names: list[str]):
    """The compression pass of `setting` for the kernel consts `names`."""
    import coremltools.optimize.coreml as cto

    kind, _, argument = setting.partition(":")
    if kind == "int8":
        return _pass("linear_quantize_weights", dict.fromkeys(names, cto.OpLinearQuantizerConfig(
            mode="linear_symmetric", dtype="int8", granularity="per_channel",
            weight_threshold=LOSSY_THRESHOLD)))
    if kind == "palettize":
        return _pass("palettize_weights", dict.fromkeys(names, cto.OpPalettizerConfig(
            mode="custom", lut_function=kmeans_lut(int(argument)),
            weight_threshold=LOSSY_THRESHOLD)))
    return _pass("prune_weights", dict.fromkeys(names, cto.OpMagnitudePrunerConfig(
        target_sparsity=float(argument), weight_threshold=LOSSY_THRESHOLD)))


def kmeans_lut(entries: int) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """A ``lut_function`` for ``OpPalettizerConfig(mode="custom")``: a palette of `entries`
    values by 1-D k-means (`kmeans_1d`) and each weight's index; a weight with no more distinct
    values than that keeps them exactly."""
    exact = unique_lut(entries)

    def lut_function(weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        values, inverse, counts = np.unique(weight.reshape(-1), return_inverse=True,
                                            return_counts=True)
        if len(values) <= entries:
            return exact(weight)
        centroids, cluster = kmeans_1d(values.astype(np.float64), counts, entries)
        return centroids.astype(weight.dtype), cluster[inverse.reshape(-1)].astype(np.uint8)

    return lut_function


def kmeans_1d(values: np.ndarray, weights: np.ndarray, k: int, iterations: int = 100
              ) -> tuple[np.ndarray, np.ndarray]:
    """``(centroids, cluster of each value)``: Lloyd's algorithm on sorted `values` with
    `weights` (their counts), from centroids spaced linearly over the range (Han et al. 2016,
    Deep Compression: linear initialisation keeps the rare large weights)."""
    centroids = np.linspace(values[0], values[-1], k)

    def nearest(c: np.ndarray) -> np.ndarray:
        return np.searchsorted((c[1:] + c[:-1]) / 2, values)

    for _ in range(iterations):
        cluster = nearest(centroids)
        totals = np.bincount(cluster, weights, k)
        means = np.bincount(cluster, weights * values, k) / np.maximum(totals, 1e-300)
        updated = np.sort(np.where(totals > 0, means, centroids))  # an empty cluster stays
        if np.array_equal(updated, centroids):
            break
        centroids = updated
    return centroids, nearest(centroids)


# ---------------------------------------------------------------------------- what ships
def _bits(var) -> int:
    """Storage bits per element of a MIL variable's dtype."""
    from coremltools.converters.mil.mil.types import builtin_to_string

    name = builtin_to_string(var.dtype)
    return {"fp16": 16, "fp32": 32, "bool": 8}.get(name) or int("".join(
        c for c in name if c.isdigit()))


def _stored_bytes(op) -> float:
    """Bytes of the constants an op's value is decoded from (each const once: a joint form's
    mask and values come from one op)."""
    consts, stack = {}, [op]
    while stack:
        current = stack.pop()
        if current.op_type == "const":
            consts[current.name] = current.outputs[0]
            continue
        for arg in current.inputs.values():
            stack += [v.op for v in (arg if isinstance(arg, list | tuple) else [arg])
                      if v.op is not None]
    return sum(var.val.size * _bits(var) / 8 for var in consts.values()
               if isinstance(var.val, np.ndarray))


def encoding(var) -> dict[str, Any]:
    """How a kernel variable is stored: ``{"kind": dense|palettized|sparse|palettized+sparse|
    quantized|quantized+sparse, "bits": ...}``, read from the ops that produce it."""
    op = var.op
    kind = op.op_type
    if kind == "const":
        return {"kind": "dense"}
    if kind == "constexpr_lut_to_dense":
        lut = op.inputs["lut"]
        entries = lut.shape[-2] if "shape" not in op.inputs else lut.shape[0]
        return {"kind": "palettized", "bits": max(1, (entries - 1).bit_length())}
    if kind in ("constexpr_affine_dequantize", "constexpr_blockwise_shift_scale"):
        data = op.inputs.get("quantized_data", op.inputs.get("data"))
        return {"kind": "quantized", "bits": _bits(data)}
    if kind == "constexpr_sparse_to_dense":
        source = op.inputs["nonzero_data"].op
        if source.op_type == "constexpr_lut_to_sparse":
            return {"kind": "palettized+sparse",
                    "bits": max(1, (source.inputs["lut"].shape[-2] - 1).bit_length())}
        if source.op_type == "constexpr_sparse_blockwise_shift_scale":
            return {"kind": "quantized+sparse", "bits": _bits(source.inputs["nonzero_data"])}
        return {"kind": "sparse"}
    return {"kind": kind}


def stored_weights(program) -> dict[str, np.ndarray]:
    """`FormatSpec.read_weights` of Core ML: the weight tensors the computing ops read, by
    variable name (`MilProgram.weights`: kernels and biases, palettes looked up and sparse
    tensors filled by the reference interpreter), a quantized one as its stored integers
    (int8 / int4, zeros filled for the joint sparse form), as the TFLite and ONNX readers keep
    int8 weights."""
    from zoo.export.mil_reference import sparse_to_dense

    constants = program.constants()
    weights = program.weights()
    for operation in program.function.operations:
        data = None
        if operation.op_type == "constexpr_affine_dequantize":
            data = constants[operation.inputs["quantized_data"].name]
        elif operation.op_type == "constexpr_blockwise_shift_scale":
            data = constants[operation.inputs["data"].name]
        elif operation.op_type == "constexpr_sparse_to_dense":
            source = operation.inputs["nonzero_data"].op
            if source.op_type == "constexpr_sparse_blockwise_shift_scale":
                data = sparse_to_dense(constants[source.inputs["nonzero_data"].name],
                                       constants[source.inputs["data_mask"].name])
        name = operation.outputs[0].name
        if name in weights and data is not None and np.asarray(data).dtype.kind in "iu":
            weights[name] = np.asarray(data)
    return weights


def describe_weights(program, plan: Plan) -> tuple[dict[str, Any], list[str]]:
    """(the manifest's ``details["weights"]``, defects) of a saved program: per kernel how it
    is stored, its values and zeros as decoded by the reference interpreter, and whether the
    exactly carried ones decode to the converted program's kernels bit for bit."""
    constants = program.constants()
    records, kinds, defects = [], {}, []
    exact_layers = set(plan.reference)
    mismatched = []
    for layer, var in kernels(program).items():
        value = np.asarray(constants[var.name])
        stored = encoding(var)
        record = {"layer": layer, "shape": list(value.shape), **stored,
                  "how": "exact" if layer in exact_layers else
                  ("dense" if stored["kind"] == "dense" else plan.setting),
                  "values": int(len(np.unique(value))) if stored["kind"] != "dense" else None,
                  "sparsity": round(1 - int(np.count_nonzero(value)) / value.size, 4),
                  "bytes": int(math.ceil(_stored_bytes(var.op)))}
        records.append(record)
        summary = kinds.setdefault(stored["kind"], {"kernels": 0, "params": 0, "bytes": 0,
                                                     "zeros": 0})
        summary["kernels"] += 1
        summary["params"] += int(value.size)
        summary["bytes"] += record["bytes"]
        summary["zeros"] += int(value.size - np.count_nonzero(value))
        if "bits" in stored:
            bits = summary.setdefault("bits", {})
            bits[str(stored["bits"])] = bits.get(str(stored["bits"]), 0) + 1
        if layer in plan.reference:
            want = plan.reference[layer]
            if value.dtype != want.dtype or not np.array_equal(value, want):
                mismatched.append(layer)
    missing = sorted(exact_layers - {r["layer"] for r in records})
    for summary in kinds.values():
        summary["sparsity"] = round(summary.pop("zeros") / max(summary["params"], 1), 4)
    if mismatched or missing:
        defects.append(f"Core ML weights carried exactly decode to other values than the "
                       f"converted model's: {', '.join(mismatched + missing)}")
    exact_counts = {}
    for kind in plan.exact.values():
        exact_counts[kind] = exact_counts.get(kind, 0) + 1
    details = {
        "compress": plan.setting,
        "exact": {**exact_counts, "verified": not (mismatched or missing)},
        "kinds": kinds,
        "bytes": sum(s["bytes"] for s in kinds.values()),
        "kernels": records,
    }
    return details, defects


def report_line(weights: dict[str, Any]) -> str:
    """One line for report.md: the kernels per encoding and what they take, e.g. ``kernels: 39
    palettized (4-bit x39, 217.8 kB), 2 dense (1.2 kB); carried exactly: 39 palettized
    (verified)``."""
    parts = []
    for kind, summary in sorted(weights["kinds"].items(), key=lambda kv: -kv[1]["kernels"]):
        notes = [f"{bits}-bit x{count}" for bits, count in
                 sorted(summary.get("bits", {}).items(), key=lambda bc: int(bc[0]))]
        if "sparse" in kind:
            notes.append(f"{100 * summary['sparsity']:.1f} % zeros")
        notes.append(f"{summary['bytes'] / 1e3:.1f} kB")
        parts.append(f"{summary['kernels']} {kind} ({', '.join(notes)})")
    line = f"kernels: {', '.join(parts)}"
    exact = {k: v for k, v in weights["exact"].items() if k != "verified"}
    if exact:
        line += (f"; carried exactly: {', '.join(f'{n} {k}' for k, n in exact.items())} "
                 f"({'verified' if weights['exact']['verified'] else 'MISMATCH'})")
    if weights["compress"] != "none":
        line += f"; --compress {weights['compress']}"
    return line
