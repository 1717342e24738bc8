"""The grid's report: JSON, a markdown table, latency heatmaps and the speed/accuracy plot.

Example::

    write_grid_report(ResultTable(path, GRID_FIELDS, GRID_KEY).latest(), Path("bench_out"))
    # bench_out/grid.json, grid.md, heatmap_tflite_t2.png, ..., pareto.png

The heatmap shows median latency over alpha x input size, one per runtime and thread count.
The Pareto plot puts latency against mIoU where a trained run under `checkpoints` has a
``metrics.json`` for that arch, alpha and size, and against GMACs otherwise.
"""

from __future__ import annotations

import json
import math
import os
import platform
from collections import defaultdict
from pathlib import Path
from statistics import median

from zoo.bench.results import number
from zoo.files import save_figure_atomic, write_text_atomic


def write_grid_report(rows: list[dict], out_dir: Path, checkpoints: str | Path = "checkpoints"
                      ) -> dict:
    """Write grid.json, grid.md and PNGs from `rows`; returns their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ok = [r for r in rows if r["status"] == "ok"]
    ious = trained_ious(Path(checkpoints))
    peak_path = out_dir / "peak.json"
    payload = {"machine": {"platform": platform.platform(), "processor": _cpu_model(),
                           "cpus": _cpus(), "load1_now": _load()},
               "peaks": json.loads(peak_path.read_text()) if peak_path.is_file() else [],
               "ratios": ratios(ok), "rows": rows}
    write_text_atomic(out_dir / "grid.json", json.dumps(payload, indent=2))
    write_text_atomic(out_dir / "grid.md", _header(payload) + markdown(rows, payload["ratios"]))
    plots = heatmaps(ok, out_dir) + [pareto(ok, ious, out_dir)] if ok else []
    return {"json": str(out_dir / "grid.json"), "markdown": str(out_dir / "grid.md"),
            "plots": [str(p) for p in plots]}


def _header(payload: dict) -> str:
    """What the figures were measured on and how, above the table."""
    machine = payload["machine"]
    peaks = "; ".join(f"{', '.join(f'{t} thread(s) {g:.0f}' for t, g in p['gflops'].items())} "
                      f"GFLOP/s (sgemm {p['size']}^2, load {p.get('load1', float('nan')):.1f})"
                      for p in payload["peaks"][-3:])
    return (f"Batch 1, untrained weights (BatchNorm statistics re-estimated on random images), "
            f"median of the timed runs after warm-up. TFLite: LiteRT with its default XNNPACK "
            f"delegate; "
            f"onnxruntime: CPU provider, intra-op spinning on (its default); runtimes timed in "
            f"round-robin blocks of 10 runs after 1 untimed, 0.15 s apart; keras: tf.function. "
            f"Machine: {machine['processor'] or machine['platform']}, {machine['cpus']} CPUs. "
            f"Matmul peak (numpy): {peaks or 'not measured'}. The load1 column is the 1-minute "
            f"load average while a cell ran (> threads means other processes shared the CPU)."
            "\n\n")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _cpus() -> int | None:
    return os.cpu_count()


def _load() -> float:
    return os.getloadavg()[0]


def trained_ious(checkpoints: Path) -> dict[tuple[str, str, str], float]:
    """Best validation mIoU per (arch, alpha, size) over the trained runs' metrics.json."""
    found: dict[tuple[str, str, str], float] = {}
    for path in sorted(Path(checkpoints).glob("*/metrics.json")):
        try:
            metrics = json.loads(path.read_text())
            model = metrics["config"]["model"]
            size = model["input_size"]
            size = size[0] if isinstance(size, list | tuple) else size
            key = (model["arch"], f"{float(model['alpha']):g}", str(int(size)))
            miou = float(metrics["best_val_miou"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if math.isfinite(miou):
            found[key] = max(miou, found.get(key, -1.0))
    return found


def model_name(row: dict) -> str:
    """The arch with its model options, e.g. ``mobileunet [upsample=resize]``."""
    return f"{row['arch']} [{row['options']}]" if row.get("options") else row["arch"]


def ratios(ok: list[dict]) -> dict[str, dict[str, float]]:
    """Per arch and thread count, the median over cells of tflite-int8 / tflite and of
    tflite / onnx latency (only cells where both were measured)."""
    by_cell: dict[tuple, dict[str, float]] = defaultdict(dict)
    for r in ok:
        by_cell[(model_name(r), r["alpha"], r["size"], r["threads"])][r["runtime"]] = number(
            r, "median_ms")
    pairs = {"int8/fp32 (tflite)": ("tflite-int8", "tflite"),
             "tflite-fp32/onnxruntime": ("tflite", "onnx"),
             "keras/onnxruntime": ("keras", "onnx")}
    out: dict[str, dict[str, float]] = {}
    for label, (a, b) in pairs.items():
        groups: dict[str, list[float]] = defaultdict(list)
        for (arch, _, _, threads), lat in by_cell.items():
            if a in lat and b in lat and lat[b] > 0:
                groups[f"{arch} t{threads}"].append(lat[a] / lat[b])
        if groups:
            out[label] = {k: median(v) for k, v in sorted(groups.items())}
    return out


def markdown(rows: list[dict], ratio_table: dict) -> str:
    """The grid as a markdown table (every row, incl. unavailable ones), then the ratios."""
    lines = ["| arch | alpha | size | threads | runtime | median ms | p90 ms | params M | GMACs "
             "| file MB | XNNPACK parts | GFLOP/s | % of matmul peak | load1 | note |",
             "|" + "---|" * 15]
    order = sorted(rows, key=lambda r: (model_name(r), -float(r["alpha"]), -int(r["size"]),
                                        int(r["threads"]), r["runtime"]))
    for r in order:
        def f(field, scale=1.0, digits=2, r=r):
            value = number(r, field)
            return "" if math.isnan(value) else f"{value / scale:.{digits}f}"

        note = r["note"] if r["status"] == "ok" else f"{r['status']}: {r['note']}"
        lines.append(f"| {model_name(r)} | {r['alpha']} | {r['size']} | {r['threads']} | "
                     f"{r['runtime']} | {f('median_ms')} | {f('p90_ms')} | {f('params', 1e6)} | "
                     f"{f('macs', 1e9, 3)} | {f('artifact_bytes', 1e6)} | "
                     f"{r['xnnpack_partitions']} | {f('gflops', 1, 1)} | {f('peak_pct', 1, 1)} | "
                     f"{f('load1', 1, 1)} | {note} |")
    for label, values in ratio_table.items():
        lines += ["", f"**{label}** (median over cells): " + ", ".join(
            f"{k} {v:.2f}" for k, v in values.items())]
    return "\n".join(lines) + "\n"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def heatmaps(ok: list[dict], out_dir: Path) -> list[Path]:
    """One PNG per (runtime, threads): median ms over alpha (rows) x size (columns), with one
    panel per arch."""
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in ok:
        groups[(r["runtime"], r["threads"])].append(r)
    paths = []
    for (runtime, threads), rows in sorted(groups.items()):
        panels: dict[str, list[dict]] = defaultdict(list)
        for r in rows:
            panels[model_name(r)].append(r)
        path = out_dir / f"heatmap_{runtime}_t{threads}.png"
        heatmap(dict(sorted(panels.items())), path, value="median_ms", label="median ms",
                title=f"{runtime}, {threads} thread(s): median latency")
        paths.append(path)
    return paths


def heatmap(panels: dict[str, list[dict]], path: Path, *, value: str, label: str, title: str,
            scale: float = 1.0, higher_is_better: bool = False) -> Path:
    """One heatmap panel per entry of `panels` (title -> rows with alpha, size and `value`):
    alpha as rows, input size as columns, each cell's value x `scale` written in it."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.8), squeeze=False)
    for ax, (name, mine) in zip(axes[0], panels.items(), strict=True):
        alphas = sorted({float(r["alpha"]) for r in mine}, reverse=True)
        sizes = sorted({int(r["size"]) for r in mine}, reverse=True)
        grid = [[math.nan] * len(sizes) for _ in alphas]
        for r in mine:
            grid[alphas.index(float(r["alpha"]))][sizes.index(int(r["size"]))] = (
                number(r, value) * scale)
        image = ax.imshow(grid, cmap="viridis" if higher_is_better else "viridis_r")
        for i, row in enumerate(grid):
            for j, v in enumerate(row):
                if not math.isnan(v):
                    text = f"{v:.2f}" if v < 10 else f"{v:.1f}"
                    bright = image.norm(v) > 0.6 if higher_is_better else image.norm(v) < 0.4
                    ax.text(j, i, text, ha="center", va="center", fontsize=8,
                            color="black" if bright else "white")
        ax.set_xticks(range(len(sizes)), [str(s) for s in sizes])
        ax.set_yticks(range(len(alphas)), [f"{a:g}" for a in alphas])
        ax.set_xlabel("input size (px)")
        ax.set_ylabel("alpha")
        ax.set_title(name)
        fig.colorbar(image, ax=ax, label=label)
    fig.suptitle(title)
    fig.tight_layout()
    save_figure_atomic(fig, path, dpi=110)
    plt.close(fig)
    return path


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points (latency, accuracy) no other point beats: none is at least as
    fast and at least as accurate while strictly better in one. Fastest first; of equal
    points, the first."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1], i))
    front, best = [], -math.inf
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def pareto(ok: list[dict], ious: dict, out_dir: Path) -> Path:
    """Latency vs mIoU (trained runs) or vs GMACs, one series per runtime and thread count,
    the Pareto front of each series drawn as a line."""
    plt = _pyplot()
    points = [(r, ious.get((r["arch"], f"{float(r['alpha']):g}", r["size"]))) for r in ok]
    with_iou = [(r, v) for r, v in points if v is not None]
    use_iou = bool(with_iou)
    fig, ax = plt.subplots(figsize=(7, 5))
    series: dict[tuple[str, str], list[tuple[float, float, str]]] = defaultdict(list)
    for r, iou in (with_iou if use_iou else points):
        y = iou if use_iou else number(r, "macs") / 1e9
        label = f"{model_name(r)} a{float(r['alpha']):g} {r['size']}"
        series[(r["runtime"], r["threads"])].append((number(r, "median_ms"), y, label))
    for (runtime, threads), pts in sorted(series.items()):
        pts.sort()
        ax.scatter([p[0] for p in pts], [p[1] for p in pts], label=f"{runtime} t{threads}", s=18)
        if use_iou:
            front = [pts[i] for i in pareto_front([(p[0], p[1]) for p in pts])]
            ax.plot([p[0] for p in front], [p[1] for p in front], alpha=0.6)
        for x, y, label in pts if len(pts) <= 16 else []:
            ax.annotate(label, (x, y), fontsize=6, alpha=0.7)
    ax.set_xlabel("median latency (ms, batch 1)")
    ax.set_ylabel("validation mIoU (trained runs)" if use_iou else "GMACs (no trained runs)")
    ax.set_title("speed vs accuracy" if use_iou else "speed vs compute")
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = out_dir / "pareto.png"
    save_figure_atomic(fig, path, dpi=110)
    plt.close(fig)
    return path
