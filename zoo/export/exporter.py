"""Export a trained run to every requested format, validate each artifact, write the manifest.

Example::

    result = export(run="checkpoints/mobileunet-a0.5-224x224-20261101-120000",
                    format="tflite-int8", io="uint8", calibration_images=100)
    result.ok, result.out_dir / "manifest.json"

    python export.py --format all --val-images 50 --threads 2
    python export.py --format all --output labels-nearest   # uint8 label maps, no float upsample

Format options are keywords: each goes to every selected format whose options dataclass
declares it, and one that no selected format takes is an error. This module names no format;
it reads what each one declares in `FORMATS`.

Files are written under a hidden temporary name and renamed to their final name only after
validation passed; a failed artifact is kept as ``model.<fmt>.FAILED.<ext>``, listed as failed,
and the command exits 1. The manifest is rewritten after every artifact, so an export killed
midway leaves only validated artifacts, each listed, and running the same command again
continues with the formats still missing: an artifact that is listed as passed, unchanged and
converted with the same options is kept. Any other existing artifact is never replaced without
`overwrite=True`, checked before anything is converted. Bad input (missing run or
checkpoint, a checkpoint that does not load, unknown format or option, no validation data) is
a one-line `ConfigError`.
"""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from zoo import checks
from zoo.config import RunConfig, load_config
from zoo.errors import ConfigError
from zoo.export.context import NORMALIZATION, ExportContext
from zoo.export.format import FORMATS, parse_options
from zoo.export.manifest import (
    artifact_entry,
    listed_entries,
    report_table,
    size_line,
    write_manifest,
)
from zoo.export.options import option_help
from zoo.export.validate import parse_overrides, reference, tolerance_for, validate
from zoo.files import error_line, remove_path, sha256_file
from zoo.registry import unknown_name_message
from zoo.runs import CHECKPOINTS_DIR, resolve_run


@dataclass
class ExportResult:
    out_dir: Path
    manifest: dict
    failed: list[str]

    @property
    def ok(self) -> bool:
        return not self.failed


def final_path(out_dir: Path, fmt: str) -> Path:
    return Path(out_dir) / f"model{FORMATS.get(fmt).suffix}"


def failed_path(out_dir: Path, fmt: str) -> Path:
    """``model.int8.tflite`` -> ``model.int8.FAILED.tflite``: the name says it failed."""
    path = final_path(out_dir, fmt)
    return path.with_name(f"{path.stem}.FAILED{path.suffix}")


def select_formats(format: Any) -> list[str]:
    """Format names from "all", one name, "a,b" or a list; unknown names are errors."""
    names = list(format) if isinstance(format, list | tuple) else str(format).split(",")
    names = [n.strip() for n in names if str(n).strip()]
    if not names:
        raise ConfigError(f"format: give one of {', '.join(FORMATS.list())} or all")
    if "all" in names:
        return FORMATS.list()
    for name in names:
        if name not in FORMATS:
            raise ConfigError(unknown_name_message("export format", name, FORMATS.list()))
    return list(dict.fromkeys(names))


def format_options(formats: list[str], given: dict[str, Any]) -> dict[str, Any]:
    """Each format's options from the keywords that were given (None: not given): a keyword goes
    to every format that declares it; one that no selected format takes is an error naming the
    formats that do."""
    given = {k: v for k, v in given.items() if v is not None}
    known: dict[str, list[str]] = {}
    for name, _, takers in option_help(_options_classes(FORMATS.list())):
        known.setdefault(name, []).extend(takers)
    for name in given:
        if name not in known:
            raise ConfigError(unknown_name_message("export option", name, sorted(known)))
    result, used = {}, set()
    for fmt in formats:
        spec = FORMATS.get(fmt)
        mine = {k: v for k, v in given.items() if k in spec.option_names()}
        used |= set(mine)
        result[fmt] = parse_options(spec, mine)
    unused = sorted(set(given) - used)
    if unused:
        raise ConfigError(f"option(s) {', '.join(unused)} not taken by format(s) "
                          f"{', '.join(formats)} (taken by "
                          f"{'; '.join(f'{u}: ' + ', '.join(known[u]) for u in unused)})")
    return result


def _options_classes(formats: list[str]) -> dict[str, type]:
    return {fmt: FORMATS.get(fmt).options_cls for fmt in formats}


def load_checkpoint(path: Path):
    """`best.keras` without compiling (no training modules needed); errors are one line."""
    import keras

    import zoo.compress  # noqa: F401 - registers the layers of compressed models (ternary)
    import zoo.quantize  # noqa: F401 - registers the layers of quantization-aware models

    if not path.is_file():
        raise ConfigError(f"{path}: checkpoint not found")
    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as exc:  # noqa: BLE001 - any load failure is a bad checkpoint to the user
        raise ConfigError(f"{path}: checkpoint does not load ({error_line(exc)})") from None


def export(run: str | None = None, format: Any = "all", out: str | None = None,
           val_images: int | None = None, threads: int | None = None,
           min_agreement: Any = None, max_miou_drop: Any = None, overwrite: bool = False,
           checkpoints_dir: str = str(CHECKPOINTS_DIR), **options: Any) -> ExportResult:
    """Convert, validate and list every requested format; `options` are the formats' options
    (see the module docstring)."""
    formats = select_formats(format)
    parsed = format_options(formats, options)
    agreement = parse_overrides(min_agreement, formats, "--min-agreement", low=0.0, high=100.0)
    drop = parse_overrides(max_miou_drop, formats, "--max-miou-drop", low=0.0, high=100.0)
    tolerances = {f: tolerance_for(f, agreement.get(f), drop.get(f)) for f in formats}
    val_images = checks.optional(checks.integer)("--val-images", val_images, 1)
    threads = checks.optional(checks.integer)("--threads", threads, 1, 1024)
    if out is not None:
        checks.folder("--out", out)
    run_dir = resolve_run(run, Path(checkpoints_dir))
    cfg = load_config(run_dir / "config.yaml")
    out_dir = Path(out) if out else run_dir / "artifacts"
    if not overwrite:
        kept = _kept_formats(formats, parsed, out_dir)
        formats = [f for f in formats if f not in kept]
        for fmt in kept:
            print(f"{fmt}: kept {final_path(out_dir, fmt).name} (validated and listed, same "
                  "options; --overwrite converts it again)")
        if not formats:
            manifest = json.loads((out_dir / "manifest.json").read_text())
            return ExportResult(out_dir, manifest, [])
    model = load_checkpoint(run_dir / "best.keras")
    formats = _formats_for(model, formats, explicit=format != "all", cfg=cfg)
    spec, images, masks = validation_data(cfg, val_images)
    ref = reference(model, images, masks, spec.num_classes, spec.ignore_index)
    context = export_context(cfg, run_dir, spec, threads)
    context.validation_images, context.reference = images, ref
    context.max_miou_drop = {f: t.max_miou_drop for f, t in tolerances.items()}
    out_dir.mkdir(parents=True, exist_ok=True)
    h, w = cfg.model.input_size
    run_facts = {
        "run_id": cfg.run_id or run_dir.name, "run_dir": str(run_dir),
        "arch": context.arch, "alpha": cfg.model.alpha, "input_size": [h, w],
        "classes": spec.classes, "ignore_index": spec.ignore_index,
        "normalization": NORMALIZATION, "keras_miou": ref.miou,
        "keras_latency_ms": ref.latency_ms, "val_images": len(images), "threads": threads,
        "calibration_sha256": None,
        **({"compress": {"parent": cfg.compress.parent, "methods": cfg.compress.methods}}
           if cfg.compress.methods else {})}
    entries, failed, manifest = [], [], {}
    try:
        for fmt in formats:
            entry = _export_one(fmt, model, options=parsed[fmt], context=context, ref=ref,
                                tolerance=tolerances[fmt], out_dir=out_dir, threads=threads)
            entries.append(entry)
            if not entry["passed"]:
                failed.append(fmt)
            run_facts["calibration_sha256"] = run_facts["calibration_sha256"] or entry[
                "details"].get("calibration_sha256")
            # After every artifact: a killed export leaves each validated artifact listed.
            manifest = write_manifest(out_dir, entries, run=run_facts)
    finally:
        shutil.rmtree(context.scratch, ignore_errors=True)
    return ExportResult(out_dir, manifest, failed)


def _formats_for(model, formats: list[str], *, explicit: bool, cfg) -> list[str]:
    """The formats a model exports to: a quantization-aware model (`compress.py --method qat`)
    only to those that convert it with its learned ranges (`FormatSpec.learned_ranges`); its
    float weights are its parent run's."""
    from zoo.quantize import is_quantization_aware

    if not is_quantization_aware(model):
        return formats
    kept = [f for f in formats if FORMATS.get(f).learned_ranges]
    dropped = [f for f in formats if f not in kept]
    able = ", ".join(f for f in FORMATS.list() if FORMATS.get(f).learned_ranges)
    parent = cfg.compress.parent or "its parent run"
    if dropped and (explicit or not kept):
        raise ConfigError(f"--format: {', '.join(dropped)}: the run is quantization-aware and "
                          f"exports with its learned ranges to {able} only; export other "
                          f"formats from {parent}")
    if dropped:
        print(f"quantization-aware run: exporting {', '.join(kept)} (the formats that keep its "
              f"learned ranges; the others come from {parent})")
    return kept


def _agreement(other: dict) -> str:
    if other["status"] == "not run":
        return f"not run ({other['reason']})"
    return f"agreement {other['agreement_pct']:.3f}% mIoU {other['miou']:.4f}"


def _kept_formats(formats: list[str], parsed: dict, out_dir: Path) -> list[str]:
    """Formats whose artifact is already there, listed as passed with the same file hash and
    the same options: an interrupted export continues with the others. Any other existing
    artifact (failed, unlisted, changed or converted with other options) is an error: only
    --overwrite replaces it."""
    listed, kept = listed_entries(out_dir), []
    for fmt in formats:
        final, failed = final_path(out_dir, fmt), failed_path(out_dir, fmt)
        if not final.exists() and not failed.exists():
            continue
        entry = listed.get(fmt, {})
        if (final.exists() and not failed.exists() and entry.get("passed")
                and entry.get("file") == final.name
                and entry.get("options") == asdict(parsed[fmt])
                and entry.get("sha256") == sha256_file(final)):
            kept.append(fmt)
            continue
        why = ("was converted with other options" if final.exists() and entry.get("passed")
               and entry.get("options") != asdict(parsed[fmt]) else
               "is not listed as validated in manifest.json" if final.exists() else
               "failed validation")
        raise ConfigError(f"{final if final.exists() else failed} exists and {why}: pass "
                          "--overwrite to replace it")
    return kept


def _export_one(fmt, model, *, options, context, ref, tolerance, out_dir: Path, threads
                ) -> dict:
    spec = FORMATS.get(fmt)
    final, failed = final_path(out_dir, fmt), failed_path(out_dir, fmt)
    # Hidden temporary name in the same folder: a killed export leaves nothing under the final
    # name, and the rename after validation is atomic.
    # The suffix stays last: coremltools insists on saving to a name ending in .mlpackage.
    tmp = out_dir / f".{final.stem}.tmp{final.suffix}"
    try:
        remove_path(tmp)
        artifact = spec.convert(model, tmp, options, context)
        result = validate(artifact, ref, tolerance, threads)
        target, stale = (final, failed) if result.passed else (failed, final)
        remove_path(target)  # only reached with --overwrite (checked up front)
        tmp.replace(target)
        remove_path(stale)
        artifact.path = target
        print(f"{fmt}: {'pass' if result.passed else 'FAILED'} {target.name} "
              f"({artifact.output_kind}) agreement "
              f"{result.agreement_pct:.3f}% mIoU {result.miou:.4f} (Keras {ref.miou:.4f})"
              + "".join(f"; in {name} {_agreement(other)}"
                        for name, other in result.other_runtimes.items())
              + (f": {result.reason}" if result.reason else ""))
        entry = artifact_entry(artifact, target, result, options)
        print(f"{fmt}: {size_line(entry)}")
        return entry
    finally:
        remove_path(tmp)


def validation_data(cfg: RunConfig, val_images: int | None):
    """(dataset spec, images, masks) of the run's validation split, `val_images` at most."""
    from zoo.data import load_split_arrays, spec_from_dict

    if not cfg.data.spec:
        raise ConfigError("run config has no data.spec: cannot rebuild its dataset")
    spec = spec_from_dict(cfg.data.spec)
    images, masks = load_split_arrays(spec, cfg.data.val_split, tuple(cfg.model.input_size),
                                      limit=int(val_images) if val_images else None)
    if len(images) == 0:
        raise ConfigError(f"no validation data in split {cfg.data.val_split!r} of {spec.name}")
    return spec, images, masks


def export_context(cfg: RunConfig, run_dir: Path, spec, threads: int | None = None
                   ) -> ExportContext:
    """The run's `ExportContext`: its facts, and calibration images from its training split."""
    from zoo.data import load_split_arrays
    from zoo.models import resolve_arch

    m = cfg.model
    arch = m.arch or resolve_arch(None, m.backbone, m.head).name

    def calibration(count: int):
        images, _ = load_split_arrays(spec, cfg.data.train_split, tuple(m.input_size),
                                      limit=count)
        return images

    return ExportContext(run_id=cfg.run_id or run_dir.name, arch=arch, alpha=m.alpha,
                         input_size=tuple(m.input_size), class_names=list(spec.classes),
                         load_calibration=calibration, threads=threads)


def export_command(run: str | None = None, format: str = "all", out: str | None = None,
                   val_images: int | None = None, threads: int | None = None,
                   min_agreement: Any = None, max_miou_drop: Any = None,
                   overwrite: bool = False, checkpoints_dir: str = str(CHECKPOINTS_DIR),
                   **options: Any) -> None:
    result = export(run=run, format=format, out=out, val_images=val_images, threads=threads,
                    min_agreement=min_agreement, max_miou_drop=max_miou_drop,
                    overwrite=overwrite, checkpoints_dir=checkpoints_dir, **options)
    print(report_table(result.manifest))
    print(f"manifest: {result.out_dir / 'manifest.json'}")
    if not result.ok:
        print(f"error: validation failed for {', '.join(result.failed)}", file=sys.stderr)
        sys.exit(1)


def command_help() -> str:
    """`export.py --help`: the common flags, then every format option with its help and the
    formats that take it, read from the options dataclasses."""
    lines = [
        "Export a run to one or more formats, validate every artifact against the Keras model, "
        "and write artifacts/manifest.json and report.md. Exits 1 when an artifact fails "
        "validation, 2 on bad input.",
        "",
        "Flags:",
        f"  --format F         {'|'.join(FORMATS.list())}|all, or a comma list (default all)",
        "  --run DIR          the run folder (default: the newest in --checkpoints-dir)",
        "  --out DIR          artifacts folder (default: <run>/artifacts)",
        "  --val-images N     validation images to check each artifact on (default: all)",
        "  --threads N        runtime threads while validating",
        "  --min-agreement X  pixel agreement with Keras in % (a number, or fmt=x,fmt=y)",
        "  --max-miou-drop X  mIoU drop in points (a number, or fmt=x,fmt=y)",
        "  --overwrite        replace existing artifacts",
        "",
        "Format options (each goes to every selected format that takes it):",
    ]
    for name, help_text, takers in option_help(_options_classes(FORMATS.list())):
        lines.append(f"  --{name.replace('_', '-')}: {help_text} [{', '.join(takers)}]")
    return "\n".join(lines)


export_command.__doc__ = command_help()
