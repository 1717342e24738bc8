"""`python -m zoo.bench split`: encoder alone vs full model, per runtime; decoder = the rest.

Example::

    python -m zoo.bench split --archs mobileunet --alphas 0.5 --sizes 224 \\
        --runtimes tflite,onnx --threads 2 --runs 30

The encoder is the arch's backbone built by `build_backbone` with its output cut to the P5 tap
(input to stride 32); the full model is `build_model`. Both are converted per runtime and all
of them are timed round-robin in one loop, so decoder ms = full median - encoder median is
measured under the same machine state. Rows go to ``OUT/split.csv`` (+ ``split.md``).
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any

from zoo.bench.grid import (
    check_alphas,
    check_alphas_for,
    check_common,
    check_runtimes,
    expand_archs,
)
from zoo.bench.results import ResultTable, number
from zoo.bench.runtimes import (
    Target,
    bench_context,
    calibrate_statistics,
    prepare,
    set_tf_threads,
)
from zoo.bench.timing import BLOCKS, summarize, time_interleaved
from zoo.errors import ConfigError
from zoo.files import write_text_atomic

SPLIT_KEY = ("arch", "alpha", "size", "runtime", "threads")
SPLIT_FIELDS = (*SPLIT_KEY, "status", "encoder_ms", "full_ms", "decoder_ms", "decoder_share",
                "encoder_p90_ms", "full_p90_ms", "runs", "encoder_macs", "full_macs", "note")


def encoder_model(arch: str, alpha: float, size: int):
    """The arch's backbone from image to P5 only (what the full model's decoder consumes)."""
    import keras

    from zoo.backbones import build_backbone
    from zoo.models import resolve_arch

    spec = resolve_arch(arch)
    backbone = build_backbone(spec.backbone, (size, size), alpha, None,
                              **dict(spec.backbone_options))
    return keras.Model(backbone.input, backbone.output["P5"], name=f"{arch}_encoder")


def split(archs: Any = "mobileunet", alphas: Any = 0.5, sizes: Any = 224,
          runtimes: Any = "tflite,onnx", threads: Any = 2, runs: int = 30, warmup: int = 5,
          out: str = "bench_out", num_classes: int = 2) -> list[dict]:
    """Time encoder and full model per runtime; print and append rows to OUT/split.csv.

    Args:
        archs: arch names or glob patterns, comma-separated.
        alphas: width multipliers, each allowed by every arch's backbone.
        sizes: square input sizes (positive multiples of 32).
        runtimes: keras and/or export format names (comma-separated); a runtime that
            cannot run here (Core ML off macOS) is an error.
        threads: thread count(s); with keras, pass one (TF's pools are fixed at start).
        runs: timed runs per model and runtime, >= 1.
        warmup: untimed runs first, >= 0.
        out: output folder.
        num_classes: output classes of the untrained full model, 1..256.
    """
    import keras

    from zoo.models import build_model
    from zoo.stats import count_macs

    arch_names = expand_archs(archs)
    alpha_values = check_alphas(alphas)
    check_alphas_for(arch_names, alpha_values)
    runtime_names = check_runtimes(runtimes)
    size_values, thread_values, runs, warmup, out_dir, num_classes = check_common(
        sizes=sizes, threads=threads, runs=runs, warmup=warmup, out=out,
        num_classes=num_classes)
    if "keras" in runtime_names:
        set_tf_threads(thread_values[0])
    table = ResultTable(out_dir / "split.csv", SPLIT_FIELDS, SPLIT_KEY)
    rows = []
    for arch in arch_names:
        for alpha in alpha_values:
            for size in size_values:
                keras.backend.clear_session()
                models = {"encoder": encoder_model(arch, alpha, size),
                          "full": build_model(arch, alpha=alpha, input_size=size,
                                              num_classes=num_classes)}
                for model in models.values():
                    calibrate_statistics(model, (size, size))
                macs = {k: count_macs(m) for k, m in models.items()}
                with tempfile.TemporaryDirectory(prefix="zoo-split-") as tmp:
                    targets: dict[tuple[str, str], Target] = {}
                    for part, model in models.items():
                        context = bench_context(arch, alpha, (size, size), num_classes,
                                                Path(tmp) / f"scratch_{part}")
                        for r in runtime_names:
                            target = prepare(model, r, Path(tmp), context, stem=part)
                            if target.unavailable:
                                raise ConfigError(f"split: runtime {r}: {target.unavailable}")
                            targets[(part, r)] = target
                    for t in thread_values:
                        timed = {f"{p}/{r}": tg.runner(t) for (p, r), tg in targets.items()}
                        samples = time_interleaved(timed, runs, warmup, **BLOCKS)
                        for r in runtime_names:
                            enc = summarize(samples[f"encoder/{r}"])
                            full = summarize(samples[f"full/{r}"])
                            decoder = full["median_ms"] - enc["median_ms"]
                            rows.append({
                                "arch": arch, "alpha": alpha, "size": size, "runtime": r,
                                "threads": t, "status": "ok", "encoder_ms": enc["median_ms"],
                                "full_ms": full["median_ms"], "decoder_ms": decoder,
                                "decoder_share": decoder / full["median_ms"],
                                "encoder_p90_ms": enc["p90_ms"], "full_p90_ms": full["p90_ms"],
                                "runs": enc["runs"], "encoder_macs": macs["encoder"],
                                "full_macs": macs["full"], "note": ""})
    table.append(rows)
    _print_and_write(table.latest(), out_dir)
    return rows


def _print_and_write(rows: list[dict], out: Path) -> None:
    lines = ["| arch | alpha | size | threads | runtime | encoder ms | full ms | decoder ms | "
             "decoder share | encoder GMACs | full GMACs |", "|" + "---|" * 11]
    for r in rows:
        share = number(r, "decoder_share")
        lines.append(
            f"| {r['arch']} | {r['alpha']} | {r['size']} | {r['threads']} | {r['runtime']} | "
            f"{number(r, 'encoder_ms'):.2f} | {number(r, 'full_ms'):.2f} | "
            f"{number(r, 'decoder_ms'):.2f} | "
            f"{'' if math.isnan(share) else f'{100 * share:.0f} %'} | "
            f"{number(r, 'encoder_macs') / 1e9:.3f} | {number(r, 'full_macs') / 1e9:.3f} |")
    text = "\n".join(lines) + "\n"
    write_text_atomic(out / "split.md", text)
    print(text)
