"""`python -m zoo.bench grid`: latency of archs x alpha x input size x runtime x threads.

Example::

    python -m zoo.bench grid --archs mobileunet --alphas 1.0,0.75,0.5,0.25 \\
        --sizes 224,192,160,128 --runtimes tflite,onnx --threads 2 --runs 30

Untrained models (speed does not depend on the weights). Each cell (arch, alpha, size, threads)
times its runtimes round-robin (`zoo.bench.timing`), median and p90 of `runs` runs after
`warmup`. Rows go to ``OUT/grid.csv`` as each cell finishes; cells already there are skipped,
so an interrupted grid resumes. Then ``grid.json``, ``grid.md`` and the plots are rewritten from
the whole CSV (`zoo.bench.report`). Efficiency: achieved GFLOP/s = 2 x MACs / median latency,
and its share of this machine's numpy sgemm peak at the same thread count (`zoo.bench.peak`),
measured once per call.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from zoo.bench.results import GRID_FIELDS, GRID_KEY, ResultTable, cell_key
from zoo.bench.runtimes import (
    Target,
    bench_context,
    calibrate_statistics,
    export_option_names,
    prepare,
    runtime_names,
    set_tf_threads,
)
from zoo.bench.timing import BLOCKS, summarize, time_interleaved
from zoo.checks import each, folder, integer, number
from zoo.checks import size as check_size
from zoo.errors import ConfigError
from zoo.files import error_line, write_text_atomic

DEFAULT_ALPHAS = (1.0, 0.75, 0.5, 0.25)
DEFAULT_SIZES = (224, 192, 160, 128)
NUM_CLASSES_MAX = 256  # label-map outputs are uint8 (zoo.export.outputs)
PEAK_SIZE_MAX = 16384  # each float32 sgemm operand is then 1 GiB


def as_list(value: Any, cast=str) -> list:
    """A CLI value as a list: ``"a,b"``, ``("a", "b")``, ``"a"`` or ``0.5`` all work."""
    if isinstance(value, str):
        items = [v.strip() for v in value.split(",") if v.strip()]
    elif isinstance(value, list | tuple):
        items = list(value)
    else:
        items = [value]
    try:
        return [cast(v) for v in items]
    except (TypeError, ValueError):
        raise ConfigError(f"cannot read {value!r} as a list of {cast.__name__}") from None


def expand_archs(archs: Any) -> list[str]:
    """Arch names from names or glob patterns (``mobilenet_v3*``, ``all``)."""
    from zoo.models import list_archs

    names: list[str] = []
    for item in as_list(archs):
        found = list_archs("*" if item == "all" else item)
        if not found:
            raise ConfigError(f"--archs: no arch matches {item!r}; see python -m zoo list")
        names += [n for n in found if n not in names]
    return names


def check_runtimes(runtimes: Any) -> list[str]:
    """Runtime names from a comma list (``all``: keras and every export format)."""
    allowed = runtime_names()
    names = allowed if runtimes == "all" else as_list(runtimes)
    unknown = [r for r in names if r not in allowed]
    if unknown:
        raise ConfigError(f"--runtimes: unknown runtime(s) {', '.join(map(str, unknown))}; "
                          f"allowed: {', '.join(allowed)}")
    return names


def check_alphas(value: Any, name: str = "--alphas") -> list[float]:
    """Width multipliers: finite numbers > 0 (whether an arch takes one is its own row)."""
    return each(name, value, lambda n, v: number(n, v, 0, low_open=True))


def check_alphas_for(archs: list[str], alphas: list[float], name: str = "--alphas") -> None:
    """Every alpha allowed by every arch's backbone, for commands that stop on the first."""
    from zoo.backbones import BACKBONES
    from zoo.models import resolve_arch

    for arch in archs:
        for alpha in alphas:
            BACKBONES.get(resolve_arch(arch).backbone).check_alpha(alpha, name)


def check_common(*, sizes: Any, threads: Any, runs: Any, warmup: Any, out: Any,
                 num_classes: Any) -> tuple[list[int], list[int], int, int, Path, int]:
    """The arguments grid and split share, checked before anything is built or written:
    (sizes, threads, runs, warmup, out folder, num_classes)."""
    return (each("--sizes", sizes, check_size),
            each("--threads", threads, lambda n, v: integer(n, v, 1)),
            integer("--runs", runs, 1), integer("--warmup", warmup, 0), folder("--out", out),
            integer("--num-classes", num_classes, 1, NUM_CLASSES_MAX))


def check_export_options(runtimes: list[str], options: dict[str, Any]) -> None:
    """The export options among `options`, parsed by every format in `runtimes` that takes
    them, so a bad value stops the command instead of becoming an error row per cell."""
    from zoo.export import FORMATS, parse_options

    exporting = export_option_names()
    for runtime in runtimes:
        if runtime in FORMATS:
            fmt = FORMATS.get(runtime)
            parse_options(fmt, {k: v for k, v in options.items()
                                if k in exporting and k in fmt.option_names()})


def grid(archs: Any = "mobileunet", alphas: Any = DEFAULT_ALPHAS, sizes: Any = DEFAULT_SIZES,
         runtimes: Any = "all", threads: Any = (1, 2), runs: int = 30, warmup: int = 5,
         out: str = "bench_out", num_classes: int = 2, peak_size: int = 2048,
         checkpoints: str = "checkpoints", report: bool = True, progress: bool = True,
         **options: Any) -> dict:
    """Time the grid, append to OUT/grid.csv, and rewrite the report from the whole CSV.

    Args:
        archs: arch names or glob patterns, comma-separated (``all`` for every arch).
        alphas: width multipliers, e.g. 1.0,0.5.
        sizes: square input sizes, multiples of 32, e.g. 224,160.
        runtimes: keras and/or export format names, comma-separated, or all.
        threads: thread counts (>= 1), e.g. 1,2.
        runs: timed runs per cell and runtime, >= 1 (>= 30 for the published figures).
        warmup: untimed runs first, >= 0.
        out: output folder (CSV, JSON, markdown, PNGs).
        num_classes: output classes of the untrained models, 1..256.
        peak_size: side of the sgemm that measures the matmul peak, 1..16384.
        checkpoints: where trained runs' metrics.json give IoU for the Pareto plot.
        report: write grid.json, grid.md and the plots afterwards, and targets.md when the
            CSV has tflite, tflite-int8 and onnx rows (`zoo.bench.targets`).
        progress: show a progress bar.
        **options: model options for every arch, e.g. --upsample resize, and the export
            options the export formats declare (--transpose-conv native, --output
            labels-nearest), for the formats that take them; all kept in the ``options``
            column, so variants are separate cells.

    Returns {"measured": new rows, "skipped": cells already done, "csv": path, ...}.
    """
    arch_names = expand_archs(archs)
    alpha_values = check_alphas(alphas)
    runtime_names = check_runtimes(runtimes)
    size_values, thread_values, runs, warmup, out_dir, num_classes = check_common(
        sizes=sizes, threads=threads, runs=runs, warmup=warmup, out=out,
        num_classes=num_classes)
    peak_size = integer("--peak-size", peak_size, 1, PEAK_SIZE_MAX)
    check_export_options(runtime_names, options)
    label = options_label(options)
    if "keras" in runtime_names and len(thread_values) > 1:
        # TensorFlow's thread pools are fixed at its first op: one process per thread count.
        for t in thread_values:
            _child(archs=arch_names, alphas=alpha_values, sizes=size_values,
                   runtimes=runtime_names, threads=t, runs=runs, warmup=warmup, out=out,
                   num_classes=num_classes, peak_size=peak_size, progress=progress,
                   options=options)
        table = ResultTable(out_dir / "grid.csv", GRID_FIELDS, GRID_KEY)
        result = {"measured": None, "skipped": None, "csv": str(table.path)}
        if report:
            from zoo.bench.report import write_grid_report
            from zoo.bench.targets import write_targets

            result.update(write_grid_report(table.latest(), out_dir, checkpoints))
            result.update(write_targets(table.latest(), out_dir))
            print(Path(result["markdown"]).read_text())
        return result

    table = ResultTable(out_dir / "grid.csv", GRID_FIELDS, GRID_KEY)
    models = [(a, al, s) for a in arch_names for al in alpha_values for s in size_values]
    pending = {}
    skipped = 0
    for arch, alpha, size in models:
        for t in thread_values:
            todo = [r for r in runtime_names
                    if not table.done(cell_key({"arch": arch, "options": label, "alpha": alpha,
                                                "size": size, "runtime": r, "threads": t},
                                               GRID_KEY))]
            skipped += len(runtime_names) - len(todo)
            if todo:
                pending[(arch, alpha, size, t)] = todo

    tf_note = ""
    if "keras" in runtime_names and pending and not set_tf_threads(thread_values[0]):
        tf_note = "TF threads were set before this call; keras thread count not enforced"
    peaks = _peaks({t for (*_, t) in pending}, peak_size, out_dir) if pending else {}

    from tqdm import tqdm

    measured = 0
    bar = tqdm(total=len(pending), desc="bench grid", unit="cell", disable=not progress)
    for arch, alpha, size in models:
        cells = [(t, pending[(arch, alpha, size, t)]) for t in thread_values
                 if (arch, alpha, size, t) in pending]
        if not cells:
            continue
        bar.set_postfix_str(f"{arch} a{alpha:g} {size}px")
        rows = _measure_model(arch, alpha, size, cells=cells, runs=runs, warmup=warmup,
                              num_classes=num_classes, peaks=peaks, tf_note=tf_note, bar=bar,
                              options=options)
        table.append(rows)
        measured += sum(r["status"] == "ok" for r in rows)
    bar.close()
    result = {"measured": measured, "skipped": skipped, "csv": str(table.path), "peaks": peaks}
    if report:
        from zoo.bench.report import write_grid_report
        from zoo.bench.targets import write_targets

        result.update(write_grid_report(table.latest(), out_dir, checkpoints))
        result.update(write_targets(table.latest(), out_dir))
        print(Path(result["markdown"]).read_text())
    return result


def options_label(options: dict[str, Any]) -> str:
    """Model options as one sorted string, e.g. ``upsample=resize`` ("" for none)."""
    return ",".join(f"{k}={v}" for k, v in sorted(options.items()) if v is not None)


def _measure_model(arch, alpha, size, *, cells, runs, warmup, num_classes, peaks, tf_note,
                   bar, options) -> list[dict]:
    """Build one model, convert it once per runtime, time each thread count's cell."""
    import keras

    from zoo.models import build_model
    from zoo.stats import count_macs, count_params

    base = {"arch": arch, "options": options_label(options), "alpha": alpha, "size": size}
    order = runtime_names()
    needed = sorted({r for _, todo in cells for r in todo}, key=order.index)
    keras.backend.clear_session()
    exporting = export_option_names()
    export_options = {k: v for k, v in options.items() if k in exporting}
    try:
        model = build_model(arch, alpha=alpha, input_size=size, num_classes=num_classes,
                            **{k: v for k, v in options.items() if k not in exporting})
    except ConfigError as exc:
        bar.update(len(cells))
        return [{**base, "runtime": r, "threads": t, "status": "unsupported", "note": str(exc)}
                for t, todo in cells for r in todo]
    calibrate_statistics(model, (size, size))
    params, macs = count_params(model), count_macs(model)
    rows = []
    with tempfile.TemporaryDirectory(prefix="zoo-bench-") as tmp:
        context = bench_context(arch, alpha, (size, size), num_classes, Path(tmp) / "scratch")
        targets: dict[str, Target] = {}
        for r in needed:
            try:
                targets[r] = prepare(model, r, Path(tmp), context,
                                     export_options=export_options)
            except Exception as exc:  # a failed conversion is a row, not the end of the grid
                targets[r] = Target(r, (size, size), unavailable=f"error: {error_line(exc, 300)}")
        for t, todo in cells:
            timed = {r: targets[r].runner(t) for r in todo if not targets[r].unavailable}
            samples = time_interleaved(timed, runs, warmup, **BLOCKS) if timed else {}
            load1 = os.getloadavg()[0]  # other processes' share of the CPU while timing
            for r in todo:
                target = targets[r]
                row = {**base, "runtime": r, "threads": t, "params": params, "macs": macs,
                       "artifact_bytes": target.artifact_bytes,
                       "xnnpack_partitions": target.details.get("xnnpack_partitions"),
                       "load1": load1}
                if r not in samples:
                    error = target.unavailable.startswith("error")
                    rows.append({**row, "status": "error" if error else "unavailable",
                                 "note": target.unavailable})
                    continue
                stats = summarize(samples[r])
                gflops = 2 * macs / (stats["median_ms"] / 1e3) / 1e9
                peak = peaks.get(t)
                rows.append({**row, **stats, "status": "ok", "gflops": gflops,
                             "peak_gflops": peak, "peak_pct": 100 * gflops / peak if peak else None,
                             "note": tf_note if r == "keras" else ""})
            bar.update(1)
    return rows


def _peaks(thread_values, peak_size: int, out_dir: Path) -> dict[int, float]:
    """The sgemm peak per thread count, measured now and recorded in OUT/peak.json."""
    from zoo.bench.peak import matmul_peak_gflops

    peaks = {int(t): matmul_peak_gflops(int(t), size=int(peak_size)) for t in sorted(thread_values)}
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "peak.json"
    history = json.loads(path.read_text()) if path.is_file() else []
    history.append({"size": int(peak_size), "gflops": {str(k): v for k, v in peaks.items()},
                    "load1": os.getloadavg()[0]})
    write_text_atomic(path, json.dumps(history, indent=2))
    return peaks


def _child(*, archs, alphas, sizes, runtimes, threads, runs, warmup, out, num_classes,
           peak_size, progress, options) -> None:
    args = [sys.executable, "-m", "zoo.bench", "grid", "--archs", ",".join(archs),
            "--alphas", ",".join(f"{a:g}" for a in alphas),
            "--sizes", ",".join(str(s) for s in sizes), "--runtimes", ",".join(runtimes),
            "--threads", str(threads), "--runs", str(runs), "--warmup", str(warmup),
            "--out", str(out), "--num_classes", str(num_classes), "--peak_size", str(peak_size),
            "--noreport", "--progress" if progress else "--noprogress"]
    for key, value in options.items():
        args += [f"--{key}", str(value)]
    subprocess.run(args, check=True)
