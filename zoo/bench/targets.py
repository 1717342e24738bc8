"""`python -m zoo.bench targets`: the grid's figures against the project's speed targets.

Example::

    python -m zoo.bench grid --archs all --alphas 1.0 --sizes 224 \\
        --runtimes tflite,tflite-int8,onnx --threads 1,2 --runs 30
    python -m zoo.bench grid --archs mobileunet --alphas 1.0 --sizes 512 \\
        --runtimes tflite,tflite-int8,onnx --threads 1,2 --runs 30
    python -m zoo.bench targets --results bench_out     # prints and writes bench_out/targets.md

    figures = target_figures(ResultTable(path, GRID_FIELDS, GRID_KEY).latest())
    figures["models"][0]["int8_over_fp32"][1]         # LiteRT int8 / fp32 latency, 1 thread
    figures["models"][0]["verdicts"]["int8_vs_fp32"]  # "yes", "NO" or "n/a"

Per arch (with its model options), alpha and input size, from the grid's ``ok`` rows: median
latency of LiteRT fp32 (``tflite``), LiteRT int8 (``tflite-int8``) and onnxruntime (``onnx``)
at 1 and 2 threads; int8/fp32 and fp32/onnx latency ratios per thread count; the 2-thread
speed-up (1-thread ms / 2-thread ms) per runtime; the best fp32 runtime's share of the matmul
peak on 1 thread; XNNPACK partitions per .tflite artifact. Then four targets:

- LiteRT int8 <= `INT8_OVER_FP32_MAX` x LiteRT fp32, at every thread count;
- LiteRT fp32 <= `FP32_OVER_ONNX_MAX` x onnxruntime, at every thread count;
- >= `PEAK_PCT_MIN` % of the matmul peak on 1 thread in the best of `PEAK_RUNTIMES` (the peak
  is an fp32 sgemm's, so int8's "GFLOP/s" would be measured against the wrong limit);
- 2 threads >= `SPEEDUP_MIN` x 1 thread in every runtime, at `SPEEDUP_SIZE` px only.

A verdict is ``yes``, ``NO``, or ``n/a`` when a cell it needs is missing and the cells present
do not settle it; ``None`` (``-`` in the table) when the target does not apply to the row.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from zoo.bench.report import model_name
from zoo.bench.results import GRID_FIELDS, GRID_KEY, ResultTable, number
from zoo.errors import ConfigError

FP32, INT8, ONNX = "tflite", "tflite-int8", "onnx"
TARGET_RUNTIMES = (FP32, INT8, ONNX)
THREADS = (1, 2)
PEAK_RUNTIMES = (FP32, ONNX)

INT8_OVER_FP32_MAX = 0.45
FP32_OVER_ONNX_MAX = 1.0
PEAK_PCT_MIN = 60.0
SPEEDUP_MIN = 1.6
SPEEDUP_SIZE = 512

YES, NO, NA = "yes", "NO", "n/a"
TARGETS = {
    "int8_vs_fp32": f"LiteRT int8 <= {INT8_OVER_FP32_MAX:g}x fp32",
    "fp32_vs_onnx": f"LiteRT fp32 <= {FP32_OVER_ONNX_MAX:g}x onnxruntime",
    "peak_1t": f">= {PEAK_PCT_MIN:g} % of matmul peak, 1 thread",
    "speedup_2t": f"2 threads >= {SPEEDUP_MIN:g}x 1 thread at {SPEEDUP_SIZE} px",
}
_SHORT = {FP32: "fp32", INT8: "int8", ONNX: "onnx"}


def target_figures(rows: Iterable[dict]) -> dict[str, Any]:
    """Figures and verdicts per (arch, options, alpha, size) of the grid rows `rows`.

    Returns {"models": [one dict per model, see `_model_figures`], "misses": [one line per
    missed target], "thresholds": {...}}. Missing figures are None. Models are listed when
    they have a row (of any status) of a target runtime.
    """
    groups: dict[tuple, dict[tuple[str, int], dict]] = {}
    for row in rows:
        if row["runtime"] not in TARGET_RUNTIMES:
            continue
        key = (row["arch"], row.get("options") or "", float(row["alpha"]), int(row["size"]))
        cells = groups.setdefault(key, {})
        if row["status"] == "ok":
            cells[(row["runtime"], int(float(row["threads"])))] = row
    order = sorted(groups, key=lambda k: (model_name({"arch": k[0], "options": k[1]}),
                                          -k[2], -k[3]))
    models = [_model_figures(*key, groups[key]) for key in order]
    return {"models": models, "misses": [m for model in models for m in _misses(model)],
            "thresholds": {"int8_over_fp32_max": INT8_OVER_FP32_MAX,
                           "fp32_over_onnx_max": FP32_OVER_ONNX_MAX,
                           "peak_pct_min": PEAK_PCT_MIN, "speedup_min": SPEEDUP_MIN,
                           "speedup_size": SPEEDUP_SIZE}}


def _value(row: dict | None, field: str) -> float | None:
    """A positive finite figure of a row, or None."""
    if row is None:
        return None
    value = number(row, field)
    return value if math.isfinite(value) and value > 0 else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a / b


def _at_most(value: float | None, limit: float) -> bool | None:
    return None if value is None else value <= limit


def _at_least(value: float | None, limit: float) -> bool | None:
    return None if value is None else value >= limit


def _all(checks: Iterable[bool | None]) -> str:
    """NO when one check fails, else n/a when one is unknown, else yes."""
    checks = list(checks)
    if False in checks:
        return NO
    return NA if None in checks else YES


def _any(checks: Iterable[bool | None]) -> str:
    """yes when one check passes, else n/a when one is unknown, else NO."""
    checks = list(checks)
    if True in checks:
        return YES
    return NA if None in checks else NO


def _partitions(cells: dict, runtime: str) -> str | None:
    """XNNPACK partitions of one runtime's artifact (one artifact serves every thread count;
    differing values, which would be a bug, are all shown)."""
    found = [cells[(runtime, t)].get("xnnpack_partitions") for t in THREADS
             if (runtime, t) in cells]
    found = [str(v) for v in found if v not in ("", None)]
    return "/".join(dict.fromkeys(found)) or None


def _model_figures(arch: str, options: str, alpha: float, size: int,
                   cells: dict[tuple[str, int], dict]) -> dict[str, Any]:
    ms = {r: {t: _value(cells.get((r, t)), "median_ms") for t in THREADS}
          for r in TARGET_RUNTIMES}
    peak_pct = {r: {t: _value(cells.get((r, t)), "peak_pct") for t in THREADS}
                for r in TARGET_RUNTIMES}
    int8_over_fp32 = {t: _ratio(ms[INT8][t], ms[FP32][t]) for t in THREADS}
    fp32_over_onnx = {t: _ratio(ms[FP32][t], ms[ONNX][t]) for t in THREADS}
    speedup = {r: _ratio(ms[r][1], ms[r][2]) for r in TARGET_RUNTIMES}
    measured = {r: peak_pct[r][1] for r in PEAK_RUNTIMES if peak_pct[r][1] is not None}
    best = max(measured, key=measured.get) if measured else None
    verdicts = {
        "int8_vs_fp32": _all(_at_most(v, INT8_OVER_FP32_MAX) for v in int8_over_fp32.values()),
        "fp32_vs_onnx": _all(_at_most(v, FP32_OVER_ONNX_MAX) for v in fp32_over_onnx.values()),
        "peak_1t": _any(_at_least(peak_pct[r][1], PEAK_PCT_MIN) for r in PEAK_RUNTIMES),
        "speedup_2t": (_all(_at_least(v, SPEEDUP_MIN) for v in speedup.values())
                       if size == SPEEDUP_SIZE else None),
    }
    return {"arch": arch, "options": options, "name": model_name({"arch": arch,
                                                                   "options": options}),
            "alpha": alpha, "size": size, "ms": ms, "peak_pct": peak_pct,
            "int8_over_fp32": int8_over_fp32, "fp32_over_onnx": fp32_over_onnx,
            "speedup_2t": speedup, "best_peak_runtime": best,
            "best_peak_pct_1t": measured.get(best), "verdicts": verdicts,
            "partitions": {r: _partitions(cells, r) for r in (FP32, INT8)}}


def _f(value: float | None, digits: int = 2, suffix: str = "") -> str:
    return "-" if value is None else f"{value:.{digits}f}{suffix}"


def _label(model: dict) -> str:
    return f"{model['name']} a{model['alpha']:g} {model['size']} px"


def _misses(model: dict) -> list[str]:
    """One line per target the model misses, with the figures that miss it."""
    details = {
        "int8_vs_fp32": ", ".join(f"{_f(v, 3)} at {t}t" for t, v in
                                  model["int8_over_fp32"].items()),
        "fp32_vs_onnx": ", ".join(f"{_f(v, 3)} at {t}t" for t, v in
                                  model["fp32_over_onnx"].items()),
        "peak_1t": ", ".join(f"{_SHORT[r]} {_f(model['peak_pct'][r][1], 1)} %"
                             for r in PEAK_RUNTIMES),
        "speedup_2t": ", ".join(f"{_SHORT[r]} {_f(v, 2, 'x')}" for r, v in
                                model["speedup_2t"].items()),
    }
    return [f"{_label(model)}: {TARGETS[k]} ({details[k]})"
            for k, verdict in model["verdicts"].items() if verdict == NO]


def render_markdown(figures: dict[str, Any]) -> str:
    """The figures table, the verdicts table and the line of misses."""
    runtimes = " / ".join(f"{_SHORT[r]} = `{r}`" for r in TARGET_RUNTIMES)
    lines = [f"Median ms at 1 and 2 threads ({runtimes}), latency ratios per thread count, "
             "2-thread speed-up (1t ms / 2t ms), the best fp32 runtime's share of the matmul "
             "peak on 1 thread, XNNPACK partitions per .tflite. A ratio compares runtimes timed "
             "round-robin in one grid call only when both cells come from the same call (a "
             "resumed grid may mix calls). `-`: not measured (or not applicable); `n/a`: a "
             "cell the target needs is missing.", ""]
    figure_columns = (["arch", "alpha", "size"]
                      + [f"{_SHORT[r]} ms {t}t" for r in TARGET_RUNTIMES for t in THREADS]
                      + [f"int8/fp32 {t}t" for t in THREADS]
                      + [f"fp32/onnx {t}t" for t in THREADS]
                      + [f"{_SHORT[r]} 2t speed-up" for r in TARGET_RUNTIMES]
                      + ["best % of peak 1t", "fp32 partitions", "int8 partitions"])
    lines += [_table_row(figure_columns), "|" + "---|" * len(figure_columns)]
    for m in figures["models"]:
        best = ("-" if m["best_peak_runtime"] is None else
                f"{m['best_peak_pct_1t']:.1f} ({_SHORT[m['best_peak_runtime']]})")
        lines.append(_table_row(
            [m["name"], f"{m['alpha']:g}", str(m["size"])]
            + [_f(m["ms"][r][t]) for r in TARGET_RUNTIMES for t in THREADS]
            + [_f(m["int8_over_fp32"][t], 3) for t in THREADS]
            + [_f(m["fp32_over_onnx"][t], 3) for t in THREADS]
            + [_f(m["speedup_2t"][r]) for r in TARGET_RUNTIMES]
            + [best, m["partitions"][FP32] or "-", m["partitions"][INT8] or "-"]))
    verdict_columns = ["arch", "alpha", "size", *TARGETS.values()]
    lines += ["", _table_row(verdict_columns), "|" + "---|" * len(verdict_columns)]
    for m in figures["models"]:
        lines.append(_table_row([m["name"], f"{m['alpha']:g}", str(m["size"])]
                                + [v or "-" for v in m["verdicts"].values()]))
    misses = figures["misses"]
    lines += ["", f"**Misses ({len(misses)}):** " + ("; ".join(misses) if misses else "none")]
    return "\n".join(lines) + "\n"


def _table_row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def has_target_runtimes(rows: Iterable[dict]) -> bool:
    """True when every runtime of the targets has at least one ok row."""
    found = {r["runtime"] for r in rows if r["status"] == "ok"}
    return set(TARGET_RUNTIMES) <= found


def write_targets(rows: list[dict], out_dir: Path) -> dict[str, str]:
    """Write OUT/targets.md when the rows have every target runtime; returns {"targets": path}
    (nothing when a runtime is missing). The grid calls this with its other reports."""
    if not has_target_runtimes(rows):
        return {}
    from zoo.files import write_text_atomic

    path = Path(out_dir) / "targets.md"
    write_text_atomic(path, render_markdown(target_figures(rows)))
    return {"targets": str(path)}


def read_results(results: str | Path, name: str = "--results") -> tuple[Path, list[dict]]:
    """The grid CSV at `results` (a grid --out folder or its grid.csv) and its latest rows;
    errors name the argument (`name`)."""
    path = Path(os.path.expanduser(str(results)))
    if path.is_dir():
        path = path / "grid.csv"
    if not path.is_file():
        raise ConfigError(f"{name} {path}: results file not found; give a grid --out folder or "
                          "its grid.csv")
    try:
        rows = ResultTable(path, GRID_FIELDS, GRID_KEY).latest()
    except (ConfigError, UnicodeDecodeError, csv.Error):
        raise ConfigError(f"{path}: not a grid.csv of this version (its columns differ)"
                          ) from None
    return path, rows


def targets(results: str = "bench_out") -> dict:
    """Print the targets table of a grid's results and write targets.md beside them.

    Args:
        results: a `python -m zoo.bench grid` output folder, or its grid.csv.

    Returns {"targets": path of targets.md, "models": [...], "misses": [...]}.
    """
    path, rows = read_results(results)
    if not any(r["status"] == "ok" and r["runtime"] in TARGET_RUNTIMES for r in rows):
        raise ConfigError(f"{path}: no measured rows of {', '.join(TARGET_RUNTIMES)}; run "
                          f"python -m zoo.bench grid --runtimes {','.join(TARGET_RUNTIMES)} "
                          "--threads 1,2")
    from zoo.files import write_text_atomic

    figures = target_figures(rows)
    text = render_markdown(figures)
    out = path.parent / "targets.md"
    write_text_atomic(out, text)
    print(text, end="")
    return {"targets": str(out), "models": figures["models"], "misses": figures["misses"]}
