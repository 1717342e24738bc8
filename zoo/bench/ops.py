"""`python -m zoo.bench ops`: where a model spends its time, op by op, in LiteRT or onnxruntime.

Example::

    python -m zoo.bench ops --arch mobileunet --alpha 0.5 --size 224 --threads 1 --runs 30
    python -m zoo.bench ops --arch mobileunet --alpha 0.5 --size 224 --runtime onnx

ai_edge_litert 2.3's Python interpreter exposes no op profiler, so this times sub-models: the
Keras graph is cut into units (a multiplying, resizing or merging layer plus the BatchNorm and
activation after it, which TFLite fuses into it), and the prefix up to each cut is converted to
TFLite fp32 with every tensor still needed later as an output (so prefix k is exactly prefix
k-1 plus the next unit). All prefixes are timed round-robin; a unit's time is the difference of
consecutive prefix medians (noisy for small units: a unit can come out slightly negative).
With ``--every N`` N units form one segment (fewer conversions); a segment's time is then
shared among its op types in proportion to their MACs, as the printout says.

``--runtime`` names an export format: one that LiteRT runs (e.g. ``tflite``, ``tflite-int8``)
is profiled by timed prefixes as above; one that onnxruntime runs (e.g. ``onnx``) by
onnxruntime's own profiler (`zoo.bench.ops_onnx`), with its nodes classified under the TFLite op
names so the two runtimes can be compared op type by op type. Writes ``OUT/ops_<format>.csv``
and ``.md``; prints the top segments, the time per op type, and the shares of TRANSPOSE_CONV vs
RESIZE_* and DEPTHWISE_CONV_2D vs CONV_2D.
"""

from __future__ import annotations

import csv
import io
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

from zoo.bench.runtimes import bench_context, calibrate_statistics, prepare
from zoo.bench.timing import summarize, time_interleaved
from zoo.checks import folder, integer, number
from zoo.checks import size as check_size
from zoo.errors import ConfigError
from zoo.files import write_text_atomic
from zoo.graph import prefix_model, units_of


def ops(arch: str = "mobileunet", alpha: float = 0.5, size: int = 224, threads: int = 1,
        runs: int = 30, warmup: int = 5, every: int = 1, runtime: str | None = None,
        out: str = "bench_out", num_classes: int = 2, top: int = 10, progress: bool = True,
        **options: Any) -> dict:
    """Profile one model per op; print and write OUT/ops_RUNTIME.csv and .md.

    Args:
        arch: a named arch.
        alpha: width multiplier.
        size: square input size (a positive multiple of 32).
        threads: runtime threads, >= 1.
        runs: timed runs, >= 1 (TFLite: per prefix, round-robin over all prefixes).
        warmup: untimed runs first, >= 0.
        every: TFLite: units per segment, >= 1 (1: one conversion per unit, the finest
            profile).
        runtime: an export format run by LiteRT (timed prefixes) or onnxruntime (its
            profiler, `zoo.bench.ops_onnx`), to compare where each spends its time; default:
            the float32 format LiteRT runs.
        out: output folder.
        num_classes: output classes of the untrained model, 1..256.
        top: how many segments or nodes to print, >= 1.
        progress: show a progress bar over the conversions.
        **options: model options, e.g. --upsample resize.
    """
    import keras

    from zoo.bench.grid import NUM_CLASSES_MAX, check_alphas_for
    from zoo.export import FORMATS
    from zoo.models import build_model

    alpha = number("--alpha", alpha, 0, low_open=True)
    check_alphas_for([arch], [alpha], "--alpha")
    size, threads = check_size("--size", size), integer("--threads", threads, 1)
    runs, warmup = integer("--runs", runs, 1), integer("--warmup", warmup, 0)
    every, top = integer("--every", every, 1), integer("--top", top, 1)
    num_classes = integer("--num-classes", num_classes, 1, NUM_CLASSES_MAX)
    out_dir = folder("--out", out)

    profilers = {"litert": _tflite_segments, "onnxruntime": _onnx_nodes}
    runtime = runtime or next(f for f in FORMATS.list() if FORMATS.get(f).runtime == "litert"
                              and FORMATS.get(f).tolerance.min_agreement is not None)
    fmt = FORMATS.get(runtime) if runtime in FORMATS else None
    if fmt is None or fmt.runtime not in profilers:
        usable = [f for f in FORMATS.list() if FORMATS.get(f).runtime in profilers]
        raise ConfigError(f"--runtime must be one of {', '.join(usable)}, got {runtime!r}")
    keras.backend.clear_session()
    model = build_model(arch, alpha=alpha, input_size=size, num_classes=num_classes, **options)
    calibrate_statistics(model, (size, size))
    with tempfile.TemporaryDirectory(prefix="zoo-ops-") as tmp:
        context = bench_context(arch, alpha, (size, size), num_classes, Path(tmp) / "scratch")
        rows, total = profilers[fmt.runtime](
            model, context, Path(tmp), runtime=runtime, threads=threads, runs=runs,
            warmup=warmup, every=every, progress=progress)
    per_op: dict[str, float] = defaultdict(float)
    for row in rows:
        for op, ms in row.pop("per_op").items():
            per_op[op] += ms
    result = {"arch": arch, "options": options, "alpha": alpha, "size": size, "threads": threads,
              "runtime": runtime, "profiled_by": fmt.runtime, "total_ms": total, "segments": rows,
              "per_op_ms": dict(per_op), "shares": _shares(per_op, total)}
    _write(result, out_dir, top, every)
    return result


def _tflite_segments(model, context, folder: Path, *, runtime: str, threads: int, runs: int,
                     warmup: int, every: int, progress: bool) -> tuple[list[dict], float]:
    """Timed prefixes: one row per segment of `every` units; total = full model median."""
    from tqdm import tqdm

    units = units_of(model)
    layers = [layer for u in units for layer in u.layers]
    segments = [units[i:i + every] for i in range(0, len(units), every)]
    ends, count = [], 0
    for seg in segments:
        count += sum(len(u.layers) for u in seg)
        ends.append(count)
    runners = {}
    for k, end in enumerate(tqdm(ends, desc="bench ops: converting prefixes", unit="model",
                                 disable=not progress)):
        sub = model if end == len(layers) else prefix_model(model, layers, end)
        runners[k] = prepare(sub, runtime, folder, context, stem=f"prefix_{k:03d}").runner(
            threads)
    samples = time_interleaved(runners, runs, warmup)
    cumulative = [summarize(samples[k])["median_ms"] for k in range(len(ends))]
    rows, previous = [], 0.0
    for k, seg in enumerate(segments):
        ms, previous = cumulative[k] - previous, cumulative[k]
        seg_macs = sum(u.macs for u in seg)
        per_op: dict[str, float] = defaultdict(float)
        for u in seg:
            share = (u.macs / seg_macs if seg_macs else 1 / len(seg)) if len(seg) > 1 else 1.0
            per_op[u.op] += ms * share
        rows.append({"segment": k, "ops": "+".join(u.op for u in seg),
                     "layers": f"{seg[0].layers[0].name}..{seg[-1].layers[-1].name}",
                     "macs": seg_macs, "ms": ms, "per_op": dict(per_op)})
    return rows, cumulative[-1]


def _onnx_nodes(model, context, folder: Path, *, runtime: str, threads: int, runs: int,
                warmup: int, **_: Any) -> tuple[list[dict], float]:
    """onnxruntime's profiler: one row per executed node; total = sum of node times."""
    from zoo.bench.ops_onnx import onnx_node_times

    artifact = prepare(model, runtime, folder, context).artifact
    nodes = onnx_node_times(artifact.path, threads, runs, warmup)
    rows = [{"segment": i, "ops": n["op"], "layers": n["node"], "macs": "", "ms": n["ms"],
             "per_op": {n["op"]: n["ms"]}} for i, n in enumerate(nodes)]
    return rows, sum(n["ms"] for n in nodes)


def _shares(per_op: dict[str, float], total: float) -> dict[str, float]:
    def frac(pred) -> float:
        return sum(v for k, v in per_op.items() if pred(k)) / total if total else float("nan")

    return {"transpose_conv": frac(lambda k: k == "TRANSPOSE_CONV"),
            "resize": frac(lambda k: k.startswith("RESIZE")),
            "depthwise_conv": frac(lambda k: k == "DEPTHWISE_CONV_2D"),
            "regular_conv": frac(lambda k: k.startswith("CONV_2D")),
            "conv_1x1": frac(lambda k: k == "CONV_2D 1x1")}


def _write(result: dict, out: Path, top: int, every: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    stem = f"ops_{result['runtime']}"
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, ["segment", "ops", "layers", "macs", "ms"])
    writer.writeheader()
    writer.writerows(result["segments"])
    write_text_atomic(out / f"{stem}.csv", buffer.getvalue())
    total = result["total_ms"]
    extra = "".join(f" {k}={v}" for k, v in result["options"].items())
    tflite = result["profiled_by"] == "litert"
    how = (f"LiteRT {result['runtime']} (timed prefixes, difference of medians; total = full "
           "model median)"
           if tflite else "onnxruntime (its profiler; total = sum of node times)")
    lines = [f"{result['arch']}{extra} alpha {result['alpha']} {result['size']}px, {how}, "
             f"{result['threads']} thread(s): {total:.2f} ms", "",
             f"top {top} {'segments' if tflite else 'nodes'}:", "",
             "| # | ops | layers | ms | share |", "|---|---|---|---|---|"]
    for r in sorted(result["segments"], key=lambda r: -r["ms"])[:top]:
        lines.append(f"| {r['segment']} | {r['ops']} | {r['layers']} | {r['ms']:.3f} | "
                     f"{100 * r['ms'] / total:.1f} % |")
    lines += ["", "time per op type" + (" (segments of several units shared by MACs)"
                                       if tflite and every > 1 else "") + ":", "",
              "| op | ms | share |", "|---|---|---|"]
    for op, ms in sorted(result["per_op_ms"].items(), key=lambda kv: -kv[1]):
        lines.append(f"| {op} | {ms:.3f} | {100 * ms / total:.1f} % |")
    s = result["shares"]
    lines += ["", f"transposed conv {100 * s['transpose_conv']:.1f} % vs resize "
              f"{100 * s['resize']:.1f} %; depthwise conv {100 * s['depthwise_conv']:.1f} % vs "
              f"regular conv {100 * s['regular_conv']:.1f} % (1x1: {100 * s['conv_1x1']:.1f} %)"]
    text = "\n".join(lines) + "\n"
    write_text_atomic(out / f"{stem}.md", text)
    print(text)
