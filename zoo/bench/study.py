"""`python -m zoo.bench study`: the MobileUNet study of one arch on one dataset, end to end.

Example::

    python -m zoo.bench study --data camvid --arch mobileunet --alphas 1,0.75,0.5,0.25 \\
        --sizes 224,192,160,128 --epochs 8 --lr 2e-3 --class-weights median_freq \\
        --formats tflite,tflite-int8 --threads 1,2

Every cell (alpha x square input size) is trained with the same recipe as an ordinary run
folder under ``OUT/runs/``, exported to each format through the usual gate
(`zoo.export.exporter.export`: an artifact that fails it is listed, never timed), and then every
cell's artifacts are timed with the grid's method (`zoo.bench.timing.time_interleaved`, blocks
with pauses), each beside the cell's encoder alone (the backbone up to its stride-32 tap,
converted to the same format) so that decoder = full - encoder is measured under the same
machine state. Timing comes last, for all cells together, so the latencies compare.

Resumable: run the same command again. A cell with metrics.json is never trained again, a cell
with a completed epoch resumes after it, an exported artifact is kept, a timed cell is not
timed again. ``OUT/study.json`` records the configuration (arch, data, alphas, sizes, recipe);
a different one given for the same folder is an error and nothing is written.

Outputs in OUT: latency_<runtime>_t<threads>.png (alpha x size heatmaps), miou.png (Keras and
each format), scatter_<runtime>_t<threads>.png (speed against accuracy, Pareto front, picks),
encoder_decoder.png; cells.csv and latency.csv (the figures' data), study.json (everything,
the picks included) and summary.md (the table and the recommended speed and accuracy picks).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from zoo.bench.grid import DEFAULT_ALPHAS, DEFAULT_SIZES, check_alphas, check_alphas_for
from zoo.bench.results import ResultTable, number
from zoo.checks import each, folder, integer, optional
from zoo.checks import number as check_number
from zoo.checks import size as check_size
from zoo.errors import ConfigError
from zoo.files import error_line, write_text_atomic

# The recipe flags: train.py's, less the model (the study sets alpha and size per cell) and the
# machine switches (one process, default strategy).
RECIPE_ARGS = ("augment", "limit", "epochs", "batch_size", "lr", "schedule", "warmup_epochs",
               "weight_decay", "loss", "class_weights", "precise_bn_images", "seed",
               "steps_per_epoch")
LATENCY_KEY = ("alpha", "size", "runtime", "threads")
LATENCY_FIELDS = (*LATENCY_KEY, "status", "median_ms", "p90_ms", "runs", "encoder_ms",
                  "encoder_p90_ms", "decoder_ms", "decoder_share", "load1", "note")
DEFAULT_EPOCHS = 8


@dataclass(frozen=True, order=True)
class Cell:
    alpha: float
    size: int

    @property
    def name(self) -> str:
        return f"a{self.alpha:g}/{self.size}"


def study(data: str = "shapes", arch: str = "mobileunet", alphas: Any = DEFAULT_ALPHAS,
          sizes: Any = DEFAULT_SIZES, epochs: int = DEFAULT_EPOCHS,
          formats: Any = "tflite,tflite-int8", threads: Any = (1, 2), runs: int = 30,
          warmup: int = 5, out: str | None = None, val_images: int | None = None,
          speed_tolerance: float = 5.0, accuracy_tolerance: float = 1.0,
          augment: Any = None, limit: int | None = None, batch_size: int | None = None,
          lr: float | None = None, schedule: str | None = None,
          warmup_epochs: int | None = None, weight_decay: float | None = None,
          loss: str | None = None, class_weights: Any = None,
          precise_bn_images: int | None = None, seed: int | None = None,
          steps_per_epoch: int | None = None, **options: Any) -> dict:
    """Train, export and time every alpha x size cell; write the study folder.

    Args:
        data: dataset name (camvid, shapes, ...), dataset yaml, or a folder with images/ and
            masks/ (as train.py --data).
        arch: one named arch (python -m zoo list).
        alphas: width multipliers, each allowed by the arch's backbone.
        sizes: square input sizes, positive multiples of 32.
        epochs: epochs per cell (the same for every cell).
        formats: export formats, comma-separated (each validated against its Keras model).
        threads: thread counts to time every artifact at, e.g. 1,2.
        runs: timed runs per artifact and thread count, >= 1.
        warmup: untimed runs first, >= 0.
        out: the study folder (default bench_out/study-<arch>-<dataset>); give the same one
            to resume.
        val_images: validation images per artifact at export (default: the whole split).
        speed_tolerance: the speed pick is the fastest cell within this many mIoU points of
            the best.
        accuracy_tolerance: the accuracy pick is the fastest cell within this many points.
        augment, limit, batch_size, lr, schedule, warmup_epochs, weight_decay, loss,
            class_weights, precise_bn_images, seed, steps_per_epoch: the training recipe,
            as in train.py, the same for every cell.
        **options: backbone/head options, as in train.py (e.g. --upsample resize).
    """
    from zoo.config import RunConfig, check_config, check_values
    from zoo.data import resolve_dataset
    from zoo.export.exporter import select_formats
    from zoo.models import resolve_arch
    from zoo.train.cli import ARG_KEYS
    from zoo.train.loop import _apply

    spec = resolve_arch(arch)
    alpha_values = check_alphas(alphas)
    check_alphas_for([spec.name], alpha_values)
    size_values = each("--sizes", sizes, check_size)
    format_names = select_formats(formats)
    thread_values = each("--threads", threads, lambda n, v: integer(n, v, 1))
    runs, warmup = integer("--runs", runs, 1), integer("--warmup", warmup, 0)
    val_images = optional(integer)("--val-images", val_images, 1)
    speed_tolerance = check_number("--speed-tolerance", speed_tolerance, 0)
    accuracy_tolerance = check_number("--accuracy-tolerance", accuracy_tolerance, 0)
    recipe_args = {k: v for k, v in locals().items() if k in RECIPE_ARGS and v is not None}
    flat = check_values({ARG_KEYS[k]: v for k, v in recipe_args.items()},
                        {ARG_KEYS[k]: f"--{k.replace('_', '-')}" for k in RECIPE_ARGS})
    if options:
        flat["model.options"] = dict(options)
    flat.update({"model.arch": spec.name, "data.data": str(data)})
    template = check_config(_apply(RunConfig(), flat))
    dataset = resolve_dataset(template.data.data)
    out_dir = folder("--out", out or f"bench_out/study-{spec.name}-{dataset.name}")
    cells = [Cell(a, s) for a in sorted(set(alpha_values), reverse=True)
             for s in sorted(set(size_values), reverse=True)]
    identity = _identity(template, cells)
    state = _open_study(out_dir, identity)
    state["invocations"].append({"started": _now(), "seconds": None})
    _save_state(out_dir, state)
    started = time.time()

    print(f"study {out_dir}: {spec.name} on {dataset.name}, {len(cells)} cells "
          f"(alpha {', '.join(f'{a:g}' for a in alpha_values)} x size "
          f"{', '.join(map(str, size_values))}, square inputs)\n"
          f"recipe, the same for every cell: {recipe_line(template)}", flush=True)
    tracker = Tracker(cells, template, out_dir / "runs")
    for i, cell in enumerate(cells):
        run_dir = train_cell(cell, template, out_dir / "runs", tracker=tracker, index=i)
        export_cell(cell, run_dir, formats=format_names, val_images=val_images,
                    tracker=tracker)
    time_cells(cells, out_dir, arch=spec.name, formats=format_names, threads=thread_values,
               runs=runs, warmup=warmup)
    state["invocations"][-1]["seconds"] = round(time.time() - started, 1)
    _save_state(out_dir, state)
    result = write_report(out_dir, cells=cells, formats=format_names,
                          tolerances=(speed_tolerance, accuracy_tolerance))
    print((out_dir / "summary.md").read_text())
    return result


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def recipe_line(cfg) -> str:
    t, d = cfg.train, cfg.data
    return (f"{t.epochs} epochs, batch {t.batch_size}, AdamW lr {t.lr:g} ({t.schedule}, "
            f"{t.warmup_epochs} warm-up), weight decay {t.weight_decay:g}, loss {t.loss}, "
            f"class weights {t.class_weights or 'none'}, augment {d.augment}, precise BN "
            f"{t.precise_bn_images} images, seed {t.seed}"
            + (f", {t.steps_per_epoch} steps/epoch" if t.steps_per_epoch else "")
            + (f", first {d.limit} training pairs" if d.limit else "")
            + (f", options {cfg.model.options}" if cfg.model.options else ""))


def _identity(template, cells: list[Cell]) -> dict:
    """What makes two studies the same: arch, data, cells, recipe (every config key but the
    ones a cell sets)."""
    from zoo.config import config_to_dict

    recipe = config_to_dict(template)
    for key in ("alpha", "input_size", "num_classes"):
        recipe["model"].pop(key, None)
    recipe.pop("run_id", None)
    recipe["data"].pop("spec", None)
    return {"arch": template.model.arch, "data": template.data.data,
            "alphas": sorted({c.alpha for c in cells}, reverse=True),
            "sizes": sorted({c.size for c in cells}, reverse=True), "recipe": recipe}


def _differences(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b))
                for d in _differences(a.get(k), b.get(k), f"{prefix}{k}.")]
    return [] if a == b else [prefix.rstrip(".")]


def _open_study(out_dir: Path, identity: dict) -> dict:
    """study.json of `out_dir`, made now or checked against `identity` (nothing is written
    when it differs)."""
    path = out_dir / "study.json"
    if path.is_file():
        try:
            state = json.loads(path.read_text())
            found = state["identity"]
        except (ValueError, KeyError, TypeError):
            raise ConfigError(f"{path}: not a study file this version reads; use another "
                              "--out") from None
        # JSON round trip: tuples come back as lists.
        differ = _differences(found, json.loads(json.dumps(identity)))
        if differ:
            raise ConfigError(f"--out {out_dir}: a study of a different configuration "
                              f"({', '.join(differ)} differ); give the same arguments to "
                              "resume it, or another --out")
        return state
    if out_dir.is_dir() and any(out_dir.iterdir()):
        raise ConfigError(f"--out {out_dir}: a folder with files but no study.json; give an "
                          "empty or new folder")
    return {"identity": identity, "created": _now(), "invocations": []}


def _save_state(out_dir: Path, state: dict) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out_dir / "study.json", json.dumps(state, indent=2))


# ---------------------------------------------------------------- training and export


def cell_runs(runs_dir: Path) -> dict[Cell, list[Path]]:
    """Run folders under `runs_dir` by cell, newest last."""
    from zoo.config import load_config

    found: dict[Cell, list[Path]] = {}
    if not runs_dir.is_dir():
        return found
    for run in sorted(p for p in runs_dir.iterdir() if (p / "config.yaml").is_file()):
        m = load_config(run / "config.yaml").model
        found.setdefault(Cell(float(m.alpha), int(m.input_size[0])), []).append(run)
    return found


def cell_status(runs: list[Path]) -> tuple[str, Path | None]:
    """("trained", run) when a run has metrics.json; ("resume", run) when one has a completed
    epoch; ("new", None) otherwise (a run killed before its first epoch is left as it is)."""
    for run in reversed(runs):
        if (run / "metrics.json").is_file():
            return "trained", run
    for run in reversed(runs):
        if (run / "state.json").is_file() and (run / "last.keras").is_file():
            return "resume", run
    return "new", None


def completed_epochs(run: Path | None) -> int:
    if run is None or not (run / "state.json").is_file():
        return 0
    return int(json.loads((run / "state.json").read_text())["epoch"])


class Tracker:
    """Progress and ETA of the whole study: epoch time modelled as a + b x the cell's MACs
    (least squares over the epochs timed in this call), export time per cell as measured."""

    def __init__(self, cells: list[Cell], template, runs_dir: Path) -> None:
        import keras

        from zoo.models import build_model
        from zoo.stats import count_macs

        self.cells, self.epochs = cells, template.train.epochs
        self.macs = {}
        for cell in cells:
            keras.backend.clear_session()
            m = template.model
            model = build_model(m.arch, alpha=cell.alpha, input_size=(cell.size, cell.size),
                                num_classes=2, **m.options)
            self.macs[cell] = count_macs(model)
        keras.backend.clear_session()
        found = cell_runs(runs_dir)
        self.done = {c: self.epochs if cell_status(found.get(c, []))[0] == "trained"
                     else completed_epochs(cell_status(found.get(c, []))[1]) for c in cells}
        self.exported = {c: False for c in cells}
        self.epoch_times: list[tuple[float, float]] = []  # (macs, seconds)
        self.export_times: list[float] = []

    def epoch_seconds(self, cell: Cell) -> float | None:
        if not self.epoch_times:
            return None
        xs = [m for m, _ in self.epoch_times]
        ys = [s for _, s in self.epoch_times]
        if len(set(xs)) >= 2:
            mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
            b = (sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
                 / sum((x - mx) ** 2 for x in xs))
            a = my - b * mx
            if b > 0 and a >= 0:
                return a + b * self.macs[cell]
        return sum(ys) / sum(xs) * self.macs[cell]

    def eta_seconds(self) -> float | None:
        total = 0.0
        for cell in self.cells:
            left = self.epochs - self.done[cell]
            if left:
                per = self.epoch_seconds(cell)
                if per is None:
                    return None
                total += left * per
            if not self.exported[cell] and self.export_times:
                total += sum(self.export_times) / len(self.export_times)
        return total

    def line(self, text: str) -> str:
        eta = self.eta_seconds()
        done = sum(self.done.values())
        total = self.epochs * len(self.cells)
        when = ("ETA after the first epoch" if eta is None else
                f"ETA {timedelta(seconds=round(eta))} (training and export; "
                f"{(datetime.now(UTC) + timedelta(seconds=eta)):%H:%M} UTC), timing follows")
        return f"{text} | study: {done}/{total} epochs, {when}"

    def epoch_done(self, index: int, cell: Cell, epoch: int, seconds: float, logs: dict) -> None:
        self.done[cell] = epoch
        self.epoch_times.append((self.macs[cell], seconds))
        miou = logs.get("val_miou", math.nan)
        print(self.line(f"[cell {index + 1}/{len(self.cells)} {cell.name}] epoch "
                        f"{epoch}/{self.epochs}: {seconds:.0f} s, loss "
                        f"{logs.get('loss', math.nan):.3f}, val mIoU {miou:.3f}"), flush=True)


def _progress_callback(tracker: Tracker, index: int, cell: Cell):
    import keras

    class StudyProgress(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.time()

        def on_epoch_end(self, epoch, logs=None):
            tracker.epoch_done(index, cell, epoch + 1, time.time() - self.start, logs or {})

    return StudyProgress()


def train_cell(cell: Cell, template, runs_dir: Path, *, tracker: Tracker, index: int) -> Path:
    """The cell's trained run folder: found, resumed, or trained now."""
    from zoo.train.loop import resume, train

    status, run = cell_status(cell_runs(runs_dir).get(cell, []))
    head = f"[cell {index + 1}/{len(tracker.cells)} {cell.name}]"
    if status == "trained":
        print(f"{head} trained: {run.name}", flush=True)
        return run
    callback = _progress_callback(tracker, index, cell)
    if status == "resume":
        print(tracker.line(f"{head} resuming {run.name} after epoch {completed_epochs(run)}"),
              flush=True)
        return resume(run, runs_dir, verbose=0, callbacks=[callback])
    print(tracker.line(f"{head} training"), flush=True)
    cfg = replace(template, model=replace(template.model, alpha=cell.alpha,
                                          input_size=(cell.size, cell.size)))
    return train(cfg, runs_dir, verbose=0, callbacks=[callback])


def export_cell(cell: Cell, run_dir: Path, *, formats: list[str], val_images: int | None,
                tracker: Tracker) -> None:
    """The cell's formats exported through the gate into run/artifacts (kept when there)."""
    from zoo.export.exporter import export

    start = time.time()
    try:
        result = export(run=str(run_dir), format=formats, val_images=val_images,
                        checkpoints_dir=str(run_dir.parent))
        failed = result.failed
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - one cell's converter crash is that cell's row
        print(f"[{cell.name}] export error: {error_line(exc, 300)}", flush=True)
        failed = formats
    seconds = time.time() - start
    tracker.exported[cell] = True
    if seconds > 5:  # not just the kept artifacts listed again
        tracker.export_times.append(seconds)
    entries = _manifest_entries(run_dir)
    said = ", ".join(f"{f} mIoU {entries[f]['validation']['miou']:.4f}"
                     + ("" if entries[f]["passed"] else " (failed the gate)")
                     for f in formats if f in entries and entries[f].get("validation"))
    print(tracker.line(f"[{cell.name}] exported in {seconds:.0f} s: {said or 'nothing'}"
                       + (f"; failed: {', '.join(failed)}" if failed else "")), flush=True)


def _manifest_entries(run_dir: Path) -> dict[str, dict]:
    path = run_dir / "artifacts" / "manifest.json"
    if not path.is_file():
        return {}
    return {e["format"]: e for e in json.loads(path.read_text())["artifacts"]}


# ---------------------------------------------------------------- timing


def time_cells(cells: list[Cell], out_dir: Path, *, arch: str, formats: list[str],
               threads: list[int], runs: int, warmup: int) -> None:
    """Every cell's passed artifacts timed beside its encoder, per thread count, into
    OUT/latency.csv (a cell and thread count already there is not timed again)."""
    import keras
    import numpy as np

    from zoo.bench.runtimes import bench_context, calibrate_statistics, prepare
    from zoo.bench.split import encoder_model
    from zoo.bench.timing import BLOCKS, summarize, time_interleaved
    from zoo.export import FORMATS, RUNTIMES
    from zoo.export.runtimes import get_runner

    table = ResultTable(out_dir / "latency.csv", LATENCY_FIELDS, LATENCY_KEY)
    found = cell_runs(out_dir / "runs")
    for cell in cells:
        todo = [t for t in threads if any(not table.done(_latency_key(cell, f, t))
                                          for f in formats)]
        run = cell_status(found.get(cell, []))[1]
        if not todo or run is None:
            continue
        entries = _manifest_entries(run)
        print(f"[{cell.name}] timing {', '.join(formats)} at {', '.join(map(str, todo))} "
              "thread(s), each beside its encoder", flush=True)
        image = np.random.default_rng(0).integers(0, 256, (1, cell.size, cell.size, 3),
                                                  dtype=np.uint8)
        with tempfile.TemporaryDirectory(prefix="zoo-study-") as tmp:
            keras.backend.clear_session()
            encoder = calibrate_statistics(encoder_model(arch, cell.alpha, cell.size),
                                           (cell.size, cell.size))
            context = bench_context(arch, cell.alpha, (cell.size, cell.size), 2,
                                    Path(tmp) / "scratch")
            skipped, timable = {}, {}
            for fmt in formats:
                spec = FORMATS.get(fmt)
                timed = spec.speed_runtime or spec.runtime
                entry = entries.get(fmt)
                why = RUNTIMES.get(timed).available()
                if why or entry is None or not entry["passed"]:
                    skipped[fmt] = ("unavailable", why) if why else (
                        "failed", "not exported" if entry is None else
                        f"failed the gate: {entry.get('reason', '')}")
                    continue
                try:
                    target = prepare(encoder, fmt, Path(tmp), context, stem=f"encoder-{fmt}")
                except Exception as exc:  # noqa: BLE001 - the full model is timed all the same
                    target, skipped[f"encoder {fmt}"] = None, ("", error_line(exc, 200))
                timable[fmt] = (timed, run / "artifacts" / entry["file"], target)
            for t in todo:
                fns = {}
                for fmt, (timed, path, target) in timable.items():
                    runner = get_runner(timed, path, threads=t)
                    fns[fmt] = (lambda runner=runner, image=image: runner.run(image))
                    if target is not None:
                        fns[f"encoder {fmt}"] = target.runner(t)
                samples = time_interleaved(fns, runs, warmup, **BLOCKS) if fns else {}
                load1 = os.getloadavg()[0]
                rows = []
                for fmt in formats:
                    base = {"alpha": cell.alpha, "size": cell.size, "runtime": fmt,
                            "threads": t, "load1": load1}
                    if fmt not in samples:
                        status, note = skipped[fmt]
                        rows.append({**base, "status": status, "note": note})
                        continue
                    full = summarize(samples[fmt])
                    row = {**base, "status": "ok", "median_ms": full["median_ms"],
                           "p90_ms": full["p90_ms"], "runs": full["runs"], "note": ""}
                    if f"encoder {fmt}" in samples:
                        enc = summarize(samples[f"encoder {fmt}"])
                        decoder = full["median_ms"] - enc["median_ms"]
                        row.update(encoder_ms=enc["median_ms"], encoder_p90_ms=enc["p90_ms"],
                                   decoder_ms=decoder,
                                   decoder_share=decoder / full["median_ms"])
                    else:
                        row["note"] = "encoder: " + skipped.get(f"encoder {fmt}", ("", ""))[1]
                    rows.append(row)
                table.append(rows)
                print(f"[{cell.name}] {t} thread(s): " + ", ".join(
                    f"{r['runtime']} {r['median_ms']:.1f} ms (encoder "
                    f"{r.get('encoder_ms', math.nan):.1f})" if r["status"] == "ok" else
                    f"{r['runtime']} {r['status']}" for r in rows), flush=True)


def _latency_key(cell: Cell, fmt: str, threads: int) -> tuple[str, ...]:
    from zoo.bench.results import cell_key

    return cell_key({"alpha": cell.alpha, "size": cell.size, "runtime": fmt,
                     "threads": threads}, LATENCY_KEY)


# ---------------------------------------------------------------- report


def picks(points: list[dict], tolerances: tuple[float, float]) -> dict:
    """The Pareto front (fastest first) and the picks of one series of points (each with
    ``median_ms`` and ``miou``): the fastest point within each tolerance (mIoU points) of the
    best mIoU, {"front": [...], "best": p, "speed": p, "accuracy": p}."""
    from zoo.bench.report import pareto_front

    if not points:
        return {"front": [], "best": None, "speed": None, "accuracy": None}
    front = [points[i] for i in pareto_front([(p["median_ms"], p["miou"]) for p in points])]
    best = max(points, key=lambda p: p["miou"])

    def fastest_within(points_below: float) -> dict:
        near = [p for p in points if p["miou"] >= best["miou"] - points_below / 100]
        return min(near, key=lambda p: p["median_ms"])

    speed_tol, accuracy_tol = tolerances
    return {"front": front, "best": best, "speed": fastest_within(speed_tol),
            "accuracy": fastest_within(accuracy_tol)}


def collect_cells(out_dir: Path, cells: list[Cell], formats: list[str]) -> list[dict]:
    """One row per cell: its run, size of model, epochs, training time, Keras and format
    mIoU."""
    found = cell_runs(out_dir / "runs")
    rows = []
    for cell in cells:
        status, run = cell_status(found.get(cell, []))
        row: dict[str, Any] = {"alpha": cell.alpha, "size": cell.size,
                               "run": run.name if run else None, "trained": status == "trained"}
        if status == "trained":
            metrics = json.loads((run / "metrics.json").read_text())
            row.update(keras_miou=metrics["best_val_miou"], epochs=metrics["epochs"],
                       best_epoch=metrics["best_epoch"], train_s=metrics["wall_time_s"])
            entries = _manifest_entries(run)
            for fmt in formats:
                entry = entries.get(fmt) or {}
                v = entry.get("validation") or {}
                row[f"{fmt}_miou"] = v.get("miou")
                row[f"{fmt}_passed"] = entry.get("passed")
                row[f"{fmt}_bytes"] = entry.get("bytes")
        rows.append(row)
    return rows


def write_report(out_dir: Path, *, cells: list[Cell], formats: list[str],
                 tolerances: tuple[float, float]) -> dict:
    """cells.csv, study.json, summary.md and the figures, from the runs and latency.csv."""
    import csv
    import io

    from zoo.bench.report import _cpu_model

    cell_rows = collect_cells(out_dir, cells, formats)
    by_cell = {(r["alpha"], r["size"]): r for r in cell_rows}
    table = ResultTable(out_dir / "latency.csv", LATENCY_FIELDS, LATENCY_KEY)
    latency = [r for r in table.latest() if r["status"] == "ok"
               and (float(r["alpha"]), int(r["size"])) in by_cell]
    series: dict[tuple[str, int], list[dict]] = {}
    for r in latency:
        cell = by_cell[(float(r["alpha"]), int(r["size"]))]
        miou = cell.get(f"{r['runtime']}_miou")
        if miou is None:
            continue
        series.setdefault((r["runtime"], int(r["threads"])), []).append(
            {"alpha": cell["alpha"], "size": cell["size"], "median_ms": number(r, "median_ms"),
             "encoder_ms": number(r, "encoder_ms"), "decoder_ms": number(r, "decoder_ms"),
             "miou": float(miou)})
    chosen = {f"{rt} t{t}": picks(pts, tolerances) for (rt, t), pts in sorted(series.items())}
    buffer = io.StringIO(newline="")
    fields = list(dict.fromkeys(k for r in cell_rows for k in r))
    writer = csv.DictWriter(buffer, fields)
    writer.writeheader()
    writer.writerows(cell_rows)
    write_text_atomic(out_dir / "cells.csv", buffer.getvalue())
    state = json.loads((out_dir / "study.json").read_text())
    payload = {**state, "cpu": _cpu_model(), "cpus": os.cpu_count(),
               "tolerances_pt": {"speed": tolerances[0], "accuracy": tolerances[1]},
               "cells": cell_rows, "latency": table.latest(), "picks": chosen}
    write_text_atomic(out_dir / "study.json", json.dumps(payload, indent=2))
    plots = write_figures(out_dir, cell_rows=cell_rows, series=series, chosen=chosen,
                          formats=formats, arch=state["identity"]["arch"])
    write_text_atomic(out_dir / "summary.md", summary(payload, formats=formats, series=series))
    return {"summary": str(out_dir / "summary.md"), "plots": [str(p) for p in plots],
            "picks": chosen}


def _label(p: dict) -> str:
    return f"{p['alpha']:g}/{p['size']}"


def write_figures(out_dir: Path, *, cell_rows: list[dict], series: dict, chosen: dict,
                  formats: list[str], arch: str) -> list[Path]:
    from zoo.bench.report import _pyplot, heatmap
    from zoo.files import save_figure_atomic

    paths = []
    for (runtime, threads), pts in sorted(series.items()):
        paths.append(heatmap({arch: pts}, out_dir / f"latency_{runtime}_t{threads}.png",
                             value="median_ms", label="median ms (batch 1)",
                             title=f"{runtime}, {threads} thread(s): median latency"))
    trained = [r for r in cell_rows if r["trained"]]
    if trained:
        panels = {"keras": [{**r, "miou": r["keras_miou"]} for r in trained]}
        for fmt in formats:
            mine = [{**r, "miou": r[f"{fmt}_miou"]} for r in trained
                    if r.get(f"{fmt}_miou") is not None]
            if mine:
                panels[fmt] = mine
        paths.append(heatmap(panels, out_dir / "miou.png", value="miou", scale=100,
                             label="validation mIoU (%)", title="validation mIoU",
                             higher_is_better=True))
    plt = _pyplot()
    from matplotlib.ticker import ScalarFormatter

    for (runtime, threads), pts in sorted(series.items()):
        chosen_here = chosen[f"{runtime} t{threads}"]
        fig, ax = plt.subplots(figsize=(10, 5))
        ax.scatter([p["median_ms"] for p in pts], [100 * p["miou"] for p in pts], s=22,
                   color="tab:blue", label="cell (alpha/size)")
        front = chosen_here["front"]
        ax.plot([p["median_ms"] for p in front], [100 * p["miou"] for p in front], "-o",
                color="tab:orange", ms=4, label="Pareto front")
        for p in pts:
            ax.annotate(_label(p), (p["median_ms"], 100 * p["miou"]), fontsize=7,
                        xytext=(3, 3), textcoords="offset points")
        for key, marker, color in (("speed", "s", "tab:green"), ("accuracy", "D", "tab:red")):
            p = chosen_here[key]
            ax.scatter([p["median_ms"]], [100 * p["miou"]], s=120, marker=marker,
                       facecolors="none", edgecolors=color, linewidths=2,
                       label=f"{key} pick {_label(p)}: {p['median_ms']:.1f} ms, "
                             f"{100 * p['miou']:.1f} %")
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(ScalarFormatter())
        ax.tick_params(axis="x", which="minor", labelsize=7)
        ax.set_xlabel(f"median latency, ms (batch 1, {runtime}, {threads} thread(s), log scale)")
        ax.set_ylabel(f"validation mIoU of the {runtime} artifact (%)")
        ax.set_title("speed vs accuracy")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        fig.tight_layout()
        path = out_dir / f"scatter_{runtime}_t{threads}.png"
        save_figure_atomic(fig, path, dpi=110)
        plt.close(fig)
        paths.append(path)
    with_parts = {k: [p for p in v if not math.isnan(p["encoder_ms"])]
                  for k, v in sorted(series.items())}
    with_parts = {k: v for k, v in with_parts.items() if v}
    if with_parts:
        fig, axes = plt.subplots(len(with_parts), 1, figsize=(9, 2.8 * len(with_parts)),
                                 squeeze=False)
        for ax, ((runtime, threads), pts) in zip(axes[:, 0], with_parts.items(), strict=True):
            pts = sorted(pts, key=lambda p: (-p["alpha"], -p["size"]))
            x = range(len(pts))
            enc = [p["encoder_ms"] for p in pts]
            dec = [max(p["decoder_ms"], 0.0) for p in pts]
            ax.bar(x, enc, color="tab:blue", label="encoder (to stride 32)")
            ax.bar(x, dec, bottom=enc, color="tab:orange", label="decoder (full - encoder)")
            for i, p in enumerate(pts):
                share = p["decoder_ms"] / p["median_ms"]
                ax.text(i, p["median_ms"], f"{100 * share:.0f} %", ha="center", va="bottom",
                        fontsize=7)
            ax.set_xticks(list(x), [_label(p) for p in pts], fontsize=7, rotation=45)
            ax.set_ylabel("median ms")
            ax.set_title(f"{runtime}, {threads} thread(s): encoder and decoder (decoder share "
                         "above each bar)", fontsize=9)
            ax.margins(y=0.15)
            ax.legend(fontsize=7)
        axes[-1, 0].set_xlabel("cell (alpha/input size)")
        fig.tight_layout()
        path = out_dir / "encoder_decoder.png"
        save_figure_atomic(fig, path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def summary(payload: dict, *, formats: list[str], series: dict) -> str:
    """summary.md: the recipe, the picks, the table of every cell."""
    ident = payload["identity"]
    cells = payload["cells"]
    seconds = sum(i["seconds"] or 0 for i in payload["invocations"])
    train_s = sum(c.get("train_s") or 0 for c in cells)
    lines = [f"# Study: {ident['arch']} on {ident['data']}", "",
             f"Cells: alpha {', '.join(f'{a:g}' for a in ident['alphas'])} x input "
             f"{', '.join(map(str, ident['sizes']))} px (square). "
             f"CPU: {payload['cpu']}, {payload['cpus']} cores. "
             f"Wall time of the finished calls: {seconds / 3600:.2f} h "
             f"(training {train_s / 3600:.2f} h).", "",
             f"Recipe, every cell: {json.dumps(ident['recipe']['train'])}; data "
             f"{json.dumps(ident['recipe']['data'])}.", ""]
    tol = payload["tolerances_pt"]
    lines += [f"Speed pick: the fastest cell within {tol['speed']:g} mIoU points of the best; "
              f"accuracy pick: the fastest within {tol['accuracy']:g} point(s) (each a point "
              "of the Pareto front). mIoU is the artifact's own, on the validation split.", ""]
    for name, chosen in payload["picks"].items():
        if chosen["best"] is None:
            continue
        lines.append(f"- **{name}**: speed pick **{_pick(chosen['speed'])}**, accuracy pick "
                     f"**{_pick(chosen['accuracy'])}** (best {_pick(chosen['best'])}); Pareto "
                     f"front: {', '.join(_label(p) for p in chosen['front'])}")
    timed = sorted(series)
    head = ["alpha", "size", "Keras mIoU", *[f"{f} mIoU" for f in formats],
            *[f"{rt} t{t} ms" for rt, t in timed], *[f"{rt} t{t} decoder" for rt, t in timed],
            "epochs (best)", "train min"]
    lines += ["", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lookup = {(rt, t): {(p["alpha"], p["size"]): p for p in pts}
              for (rt, t), pts in series.items()}
    for c in cells:
        if not c["trained"]:
            lines.append(f"| {c['alpha']:g} | {c['size']} | not trained |" + " |" * (
                len(head) - 3))
            continue

        def pct(v):
            return "" if v is None else f"{100 * v:.1f}"

        fmt_cols = [pct(c.get(f"{f}_miou")) + ("" if c.get(f"{f}_passed") in (True, None)
                                                else " (failed)") for f in formats]
        times = [lookup[k].get((c["alpha"], c["size"])) for k in timed]
        lines.append("| " + " | ".join([
            f"{c['alpha']:g}", str(c["size"]), pct(c["keras_miou"]), *fmt_cols,
            *["" if p is None else f"{p['median_ms']:.1f}" for p in times],
            *["" if p is None or math.isnan(p["decoder_ms"]) else
              f"{100 * p['decoder_ms'] / p['median_ms']:.0f} %" for p in times],
            f"{c['epochs']} ({c['best_epoch']})", f"{c['train_s'] / 60:.1f}"]) + " |")
    return "\n".join(lines) + "\n"


def _pick(p: dict) -> str:
    return f"alpha {p['alpha']:g} at {p['size']} px ({p['median_ms']:.1f} ms, " \
           f"{100 * p['miou']:.1f} % mIoU)"
