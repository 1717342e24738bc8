"""Export a trained run to every requested format, validate each artifact, write the manifest.

Example::

    result = export(run="checkpoints/mobileunet-a0.5-224x224-20261101-120000",
                    format="tflite-int8", io="uint8", calibration_images=100)
    result.ok, result.out_dir / "manifest.json"

    python export.py --format all --val-images 50 --threads 2
    python export.py --format all --output labels-nearest   # uint8 label maps, no float upsample

Files are written under a hidden temporary name and renamed to their final name only after
validation passed; a failed artifact is kept as ``model.<fmt>.FAILED.<ext>``, listed as failed,
and the command exits 1 after writing the manifest. Existing artifacts are never replaced
without `overwrite=True`, checked before anything is converted. Bad input (missing run or
checkpoint, a checkpoint that does not load, unknown format or option, no validation data) is
a one-line `ConfigError`.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from zoo.config import RunConfig, load_config
from zoo.errors import ConfigError
from zoo.export.base import FORMATS, ExportContext, parse_options
from zoo.export.manifest import artifact_entry, report_table, write_manifest
from zoo.export.validate import parse_overrides, reference, tolerance_for, validate
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
    """Each format's options from the CLI flags that were given: a flag goes to every format
    that declares it; a flag that no selected format takes is an error naming the allowed ones."""
    given = {k: v for k, v in given.items() if v is not None}
    result, used = {}, set()
    for fmt in formats:
        spec = FORMATS.get(fmt)
        accepted = {f.name for f in fields(spec.options_cls)}
        mine = {k: v for k, v in given.items() if k in accepted}
        used |= set(mine)
        result[fmt] = parse_options(spec, mine)
    unused = sorted(set(given) - used)
    if unused:
        raise ConfigError(f"option(s) {', '.join(unused)} not taken by format(s) "
                          f"{', '.join(formats)}")
    return result


def load_checkpoint(path: Path):
    """`best.keras` without compiling (no training modules needed); errors are one line."""
    import keras

    if not path.is_file():
        raise ConfigError(f"{path}: checkpoint not found")
    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as exc:  # noqa: BLE001 - any load failure is a bad checkpoint to the user
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise ConfigError(f"{path}: checkpoint does not load ({type(exc).__name__}: {first})"
                          ) from None


def export(run: str | None = None, format: Any = "all", out: str | None = None,
           calibration_images: int | None = None, val_images: int | None = None,
           io: str | None = None, threads: int | None = None, min_agreement: Any = None,
           max_miou_drop: Any = None, overwrite: bool = False, opset: int | None = None,
           checkpoints_dir: str = str(CHECKPOINTS_DIR), precision: str | None = None,
           output: str | None = None, minimum_deployment_target: str | None = None,
           transpose_conv: str | None = None) -> ExportResult:
    """Convert, validate and list every requested format; see the module docstring."""
    formats = select_formats(format)
    options = format_options(formats, {"calibration_images": calibration_images, "io": io,
                                       "opset": opset, "precision": precision,
                                       "output": output, "transpose_conv": transpose_conv,
                                       "minimum_deployment_target": minimum_deployment_target})
    agreement = parse_overrides(min_agreement, formats, "min_agreement")
    drop = parse_overrides(max_miou_drop, formats, "max_miou_drop")
    tolerances = {f: tolerance_for(f, agreement.get(f), drop.get(f)) for f in formats}
    if val_images is not None and int(val_images) < 1:
        raise ConfigError(f"val_images must be >= 1, got {val_images}")
    run_dir = resolve_run(run, Path(checkpoints_dir))
    cfg = load_config(run_dir / "config.yaml")
    out_dir = Path(out) if out else run_dir / "artifacts"
    if not overwrite:
        existing = [p for f in formats for p in (final_path(out_dir, f), failed_path(out_dir, f))
                    if p.exists()]
        if existing:
            raise ConfigError(f"{existing[0]} exists: pass --overwrite to replace it "
                              f"({len(existing)} existing artifact(s))")
    model = load_checkpoint(run_dir / "best.keras")
    spec, images, masks = _validation_data(cfg, val_images)
    ref = reference(model, images, masks, spec.num_classes, spec.ignore_index)
    context = _context(cfg, run_dir, spec, threads)
    out_dir.mkdir(parents=True, exist_ok=True)
    entries, failed = [], []
    try:
        for fmt in formats:
            entry = _export_one(fmt, model, options[fmt], context, ref, tolerances[fmt],
                                out_dir, threads)
            entries.append(entry)
            if not entry["passed"]:
                failed.append(fmt)
    finally:
        shutil.rmtree(context.scratch, ignore_errors=True)
    h, w = cfg.model.input_size
    manifest = write_manifest(out_dir, entries, run={
        "run_id": cfg.run_id or run_dir.name, "run_dir": str(run_dir),
        "arch": context.arch, "alpha": cfg.model.alpha, "input_size": [h, w],
        "classes": spec.classes, "ignore_index": spec.ignore_index,
        "normalization": "RGB 0..255, scaled inside", "keras_miou": ref.miou,
        "keras_latency_ms": ref.latency_ms, "val_images": len(images), "threads": threads,
        "calibration_sha256": context.calibration_sha256})
    return ExportResult(out_dir, manifest, failed)


def _export_one(fmt, model, options, context, ref, tolerance, out_dir: Path, threads) -> dict:
    spec = FORMATS.get(fmt)
    final, failed = final_path(out_dir, fmt), failed_path(out_dir, fmt)
    # Hidden temporary name in the same folder: a killed export leaves nothing under the final
    # name, and the rename after validation is atomic.
    # The suffix stays last: coremltools insists on saving to a name ending in .mlpackage.
    tmp = out_dir / f".{final.stem}.tmp{final.suffix}"
    try:
        _remove(tmp)
        artifact = spec.convert(model, tmp, options, context)
        result = validate(artifact, ref, tolerance, threads)
        target, stale = (final, failed) if result.passed else (failed, final)
        _remove(target)  # only reached with --overwrite (checked up front)
        tmp.replace(target)
        _remove(stale)
        artifact.path = target
        print(f"{fmt}: {'pass' if result.passed else 'FAILED'} {target.name} "
              f"({artifact.details['output']}) agreement "
              f"{result.agreement_pct:.3f}% mIoU {result.miou:.4f} (Keras {ref.miou:.4f})"
              + (f": {result.reason}" if result.reason else ""))
        return artifact_entry(artifact, target, result)
    finally:
        _remove(tmp)


def _remove(path: Path) -> None:
    """Remove a file or a package folder (.mlpackage) if it exists."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _validation_data(cfg: RunConfig, val_images: int | None):
    from zoo.data import load_split_arrays, spec_from_dict

    if not cfg.data.spec:
        raise ConfigError("run config has no data.spec: cannot rebuild its dataset")
    spec = spec_from_dict(cfg.data.spec)
    images, masks = load_split_arrays(spec, cfg.data.val_split, tuple(cfg.model.input_size),
                                      limit=int(val_images) if val_images else None)
    if len(images) == 0:
        raise ConfigError(f"no validation data in split {cfg.data.val_split!r} of {spec.name}")
    return spec, images, masks


def _context(cfg: RunConfig, run_dir: Path, spec, threads) -> ExportContext:
    from zoo.data import load_split_arrays
    from zoo.models import resolve_arch

    m = cfg.model
    arch = m.arch or resolve_arch(None, m.backbone, m.head).name

    def calibration(count: int):
        images, _ = load_split_arrays(spec, cfg.data.train_split, tuple(m.input_size),
                                      limit=count)
        return images

    return ExportContext(cfg.run_id or run_dir.name, arch, m.alpha, tuple(m.input_size),
                         list(spec.classes), calibration, threads)


def export_command(run: str | None = None, format: str = "all", out: str | None = None,
                   calibration_images: int | None = None, val_images: int | None = None,
                   io: str | None = None, threads: int | None = None,
                   min_agreement: Any = None, max_miou_drop: Any = None,
                   overwrite: bool = False, opset: int | None = None,
                   checkpoints_dir: str = str(CHECKPOINTS_DIR), precision: str | None = None,
                   output: str | None = None,
                   minimum_deployment_target: str | None = None,
                   transpose_conv: str | None = None) -> None:
    """Export a run: --format tflite|tflite-fp16|tflite-dynamic|tflite-int8|edgetpu|onnx|
    coreml|all (or a comma list).

    --output logits|labels|labels-nearest (every format: float logits, the argmax label map,
    or argmax at the head's resolution + nearest upsample), --calibration-images N (int8,
    default 100), --val-images N (default all), --io uint8|int8|float, --threads N,
    --min-agreement 99.5 or fmt=x,fmt=y, --max-miou-drop 2 or fmt=x, --overwrite; Core ML:
    --precision fp16|fp32, --minimum-deployment-target iOS16; TFLite: --transpose-conv
    depth-to-space|native (2x2 stride-2 transposed convs as 1x1 conv + DEPTH_TO_SPACE, the
    default and faster in XNNPACK, or the TRANSPOSE_CONV op). Exits 1 when an artifact fails
    validation.
    """
    result = export(run, format, out, calibration_images, val_images, io, threads,
                    min_agreement, max_miou_drop, overwrite, opset, checkpoints_dir, precision,
                    output, minimum_deployment_target, transpose_conv)
    print(report_table(result.manifest))
    print(f"manifest: {result.out_dir / 'manifest.json'}")
    if not result.ok:
        print(f"error: validation failed for {', '.join(result.failed)}", file=sys.stderr)
        sys.exit(1)
