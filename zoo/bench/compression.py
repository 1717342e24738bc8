"""`python -m zoo.bench compression`: the Deep Compression table of a run and every run
compressed from it, from their exports, with the latencies timed again side by side.

Example::

    python compress.py --run checkpoints/mobileunet-... --method prune:0.75,cluster:16
    python export.py --run <each run> --format tflite,tflite-int8,onnx,coreml
    python -m zoo.bench compression --run checkpoints/mobileunet-... --threads 1

A row per (run, artifact): the methods applied in order, the Keras model's parameters and
non-zero weights, the artifact's raw size, download size (gzip -9, what an app ships) and
Huffman-coded weight size (the manifest's, see `zoo.export.weight_size`), the ratio of its
download size to the parent's fp32 TFLite file, its validated mIoU and drop against its own
Keras model, and its drop against the **parent's** Keras model (what compression cost in
all). Latency: every TFLite and ONNX artifact of the table timed again in one interleaved run
at `threads` threads (`zoo.bench.timing.time_interleaved`, blocks with pauses for
onnxruntime), so the figures compare; Core ML cannot run here and has none.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from zoo.errors import ConfigError
from zoo.runs import CHECKPOINTS_DIR, resolve_run

TIMED_RUNTIMES = ("litert", "onnxruntime")


def descendants(parent: Path, checkpoints: Path) -> list[Path]:
    """`parent` and every run under `checkpoints` compressed from it (through any chain), the
    parent first, then by name."""
    from zoo.config import load_config

    parents = {}
    for run in sorted(p for p in checkpoints.iterdir() if (p / "config.yaml").is_file()):
        parents[run.name] = load_config(run / "config.yaml").compress.parent
    out = []
    for name in sorted(parents):
        node = name
        while node is not None and node != parent.name:
            node = parents.get(node)
        if node == parent.name and name != parent.name:
            out.append(checkpoints / name)
    return [parent, *out]


def weight_counts(run: Path) -> dict[str, int]:
    """Parameters and non-zero parameters of the run's best checkpoint."""
    from zoo.export.exporter import load_checkpoint

    model = load_checkpoint(run / "best.keras")
    values = [w.numpy() for w in model.weights]
    return {"parameters": int(sum(v.size for v in values)),
            "nonzero": int(sum(np.count_nonzero(v) for v in values))}


def _label(entry: dict) -> str:
    compress = (entry.get("options") or {}).get("compress")
    return entry["format"] + (f" --compress {compress}" if compress not in (None, "none") else "")


def collect(parent: Path, checkpoints: Path) -> list[dict]:
    """One row per artifact (see the module docstring), latency not yet filled."""
    from zoo.config import load_config

    rows = []
    parent_miou = None
    for run in descendants(parent, checkpoints):
        cfg = load_config(run / "config.yaml")
        methods = cfg.compress.methods
        manifests = sorted(run.glob("artifacts*/manifest.json"))
        counts = weight_counts(run) if manifests else {}
        for manifest in manifests:
            data = json.loads(manifest.read_text())
            keras_miou = data["run"]["keras_miou"]
            if run == parent:
                parent_miou = keras_miou
            for entry in data["artifacts"]:
                v = entry.get("validation") or {}
                rows.append({
                    "run": run.name, "methods": ",".join(methods) or "none (parent)",
                    "finetune": f"{cfg.train.epochs} ep, lr {cfg.train.lr:g}" if methods else "",
                    **counts, "artifact": _label(entry), "format": entry["format"],
                    "path": str(manifest.parent / entry["file"]), "runtime": entry["runtime"],
                    "passed": entry["passed"], "bytes": entry["bytes"],
                    "download_bytes": entry.get("download_bytes"),
                    "huffman_bytes": entry.get("huffman_bytes"),
                    "keras_miou": keras_miou, "miou": v.get("miou"),
                    "drop_pt": v.get("miou_drop_pt")})
    if parent_miou is None:
        raise ConfigError(f"--run {parent}: no artifacts*/manifest.json; export the parent "
                          "first (export.py --run ... --format tflite,...)")
    base = [r for r in rows if r["run"] == parent.name and r["format"] == "tflite"]
    if not base:
        raise ConfigError(f"--run {parent}: no fp32 tflite artifact to compare sizes with")
    for row in rows:
        row["ratio_vs_fp32_tflite"] = base[0]["bytes"] / (row["download_bytes"] or row["bytes"])
        row["drop_vs_parent_pt"] = (100 * (parent_miou - row["miou"])
                                    if row["miou"] is not None else None)
    return rows


def time_rows(rows: list[dict], input_size, threads: int, runs: int) -> None:
    """Fill `latency_ms` (median) of every TFLite / ONNX artifact, timed interleaved."""
    from zoo.bench.timing import BLOCKS, time_interleaved
    from zoo.export.runtimes import get_runner

    image = np.random.default_rng(0).integers(0, 256, (1, *input_size, 3)).astype(np.float32)
    runners = {}
    for i, row in enumerate(rows):
        if row["runtime"] in TIMED_RUNTIMES and row["passed"]:
            runner = get_runner(row["runtime"], Path(row["path"]), threads=threads)
            runners[str(i)] = (lambda runner=runner: runner.run(image))
    if not runners:
        return
    samples = time_interleaved(runners, runs=runs, warmup=3, **BLOCKS)
    for key, ms in samples.items():
        rows[int(key)]["latency_ms"] = float(np.median(ms))


def markdown(rows: list[dict]) -> list[str]:
    mb = 1e6
    lines = ["| methods | fine-tune | artifact | params | non-zero | raw MB | download MB | "
             "Huffman MB | ratio vs fp32 TFLite | mIoU | drop (own Keras) | drop vs parent | ms |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        def fmt(v, spec):
            return "" if v is None else format(v, spec)
        lines.append(
            f"| {r['methods']} | {r['finetune']} | {r['artifact']}"
            f"{'' if r['passed'] else ' (failed)'} | "
            f"{r['parameters']:,} | {r['nonzero']:,} | {r['bytes'] / mb:.2f} | "
            f"{fmt(r['download_bytes'] and r['download_bytes'] / mb, '.2f')} | "
            f"{fmt(r['huffman_bytes'] and r['huffman_bytes'] / mb, '.2f')} | "
            f"{r['ratio_vs_fp32_tflite']:.1f}x | {fmt(r['miou'], '.4f')} | "
            f"{fmt(r['drop_pt'], '+.2f')} | {fmt(r['drop_vs_parent_pt'], '+.2f')} | "
            f"{fmt(r.get('latency_ms'), '.1f')} |")
    return lines


def compression(run: str | None = None, checkpoints: str = str(CHECKPOINTS_DIR),
                threads: int = 1, runs: int = 20, out: str = "bench_out/compression") -> dict:
    """The Deep Compression table of run `run` and its compressed descendants.

    Args:
        run: the parent run (folder or name); its compressed runs are found under
            `checkpoints` by their config's compress.parent chain.
        checkpoints: folder of run folders.
        threads: threads for the latency of every TFLite / ONNX artifact (timed again,
            interleaved, in this one call).
        runs: timed calls per artifact.
        out: folder for compression.json and compression.md.
    """
    from zoo import checks
    from zoo.config import load_config
    from zoo.files import write_text_atomic

    threads = checks.integer("--threads", threads, 1)
    runs = checks.integer("--runs", runs, 1)
    checkpoints_dir = Path(checks.folder("--checkpoints", checkpoints))
    try:
        parent = resolve_run(run, checkpoints_dir)
    except ConfigError as exc:
        raise ConfigError(f"--run: {exc}") from None
    rows = collect(parent, checkpoints_dir)
    size = tuple(load_config(parent / "config.yaml").model.input_size)
    time_rows(rows, size, threads, runs)
    lines = markdown(rows)
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out_dir / "compression.json", json.dumps(rows, indent=2))
    write_text_atomic(out_dir / "compression.md", "\n".join(lines) + "\n")
    print("\n".join(lines))
    return {"rows": rows, "markdown": str(out_dir / "compression.md")}
