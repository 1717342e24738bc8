"""`manifest.json` and `report.md` in the artifacts folder: what an app team needs to trust a file.

Example::

    entry = artifact_entry(artifact, final_path, result)
    write_manifest(out_dir, [entry], run={"run_id": ..., "arch": ...})
    json.loads((out_dir / "manifest.json").read_text())["artifacts"][0]["sha256"]

Per artifact: format, file, bytes, sha256, input/output dtype, shape, scale and zero point,
which output it has (``details["output"]``: logits, labels or labels-nearest), validation
figures, pass/fail, latency, plus tool versions (those every format declares) and the
calibration-set hash. Beside the raw ``bytes``, what the file costs to ship
(`zoo.export.weight_size`): ``download_bytes`` (gzip -9 of the file, or of a deterministic tar of
a package folder), ``compressed`` (every codec measured: zstd too when importable), and for a
format that reads its weights back (`FormatSpec.read_weights`) ``huffman_bytes`` and
``weights`` (Huffman-coded size of the weights as stored, Deep Compression's third stage). An
export of some formats keeps the entries of the other formats already in the folder. report.md
adds each artifact's runtime line (e.g. its XNNPACK partitions), its sizes, and any section its
format declares (e.g. the Edge TPU op report).
"""

from __future__ import annotations

import json
import platform
from dataclasses import asdict
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from zoo.export.format import FORMATS
from zoo.export.runtimes import RUNTIMES
from zoo.export.weight_size import megabytes, size_report
from zoo.files import sha256_file, size_bytes, write_text_atomic

BASE_TOOLS = ("keras", "numpy")


def tool_names() -> list[str]:
    """Every tool a registered format declares, then Keras and NumPy."""
    names = [t for fmt in FORMATS.list() for t in FORMATS.get(fmt).tools]
    return list(dict.fromkeys([*names, *BASE_TOOLS]))


def tool_versions() -> dict[str, str | None]:
    versions = {}
    for name in tool_names():
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    versions["python"] = platform.python_version()
    return versions


def artifact_entry(artifact, path: Path, result, options=None) -> dict:
    """The manifest entry of one artifact, as written at `path` (its final or FAILED name), with
    the format options it was converted with."""
    details = {**artifact.details, "output": artifact.output_kind}
    if artifact.calibration_sha256:
        details["calibration_sha256"] = artifact.calibration_sha256
    fmt = FORMATS.get(artifact.format) if artifact.format in FORMATS else None
    sizes = size_report(path, fmt.read_weights if fmt is not None else None)
    return {
        "format": artifact.format,
        "file": path.name,
        "bytes": size_bytes(path),
        **sizes,
        "sha256": sha256_file(path),
        "runtime": artifact.runtime,
        "input": asdict(artifact.input),
        "output": asdict(artifact.output),
        "passed": bool(result.passed),
        "status": result.status,
        "reason": result.reason,
        "validation": result.to_dict(),
        "ops": sorted(set(artifact.ops)),
        "details": details,
        "options": asdict(options) if options is not None else None,
    }


def listed_entries(out_dir: Path) -> dict[str, dict]:
    """The entries of the folder's manifest.json by format ({} without a readable one)."""
    path = Path(out_dir) / "manifest.json"
    try:
        entries = json.loads(path.read_text()).get("artifacts", [])
    except (OSError, json.JSONDecodeError, AttributeError):
        return {}
    return {e["format"]: e for e in entries if isinstance(e, dict) and "format" in e}


def write_manifest(out_dir: Path, entries: list[dict], run: dict) -> dict:
    """Write manifest.json and report.md; entries of formats not exported now are kept when
    their file is still there."""
    out_dir = Path(out_dir)
    path = out_dir / "manifest.json"
    new_formats = {e["format"] for e in entries}
    kept = [e for fmt, e in listed_entries(out_dir).items() if fmt not in new_formats
            and e.get("file") and (out_dir / e["file"]).exists()]
    manifest = {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "run": run,
        "tools": tool_versions(),
        "artifacts": sorted(kept + entries, key=lambda e: e["format"]),
    }
    write_text_atomic(path, json.dumps(manifest, indent=2, default=str))
    write_text_atomic(out_dir / "report.md", report_markdown(manifest))
    return manifest


def report_table(manifest: dict) -> str:
    """The per-format table (Markdown) that the CLI prints and report.md starts with."""
    rows = ["| format | file | size | download | weights (Huffman) | mIoU | drop (pt) "
            "| agreement | IoU vs Keras | max diff | latency | status |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for e in manifest["artifacts"]:
        v = e["validation"]
        label = "NOT RUN" if e.get("status") == "not run" else "FAIL"
        status = "pass" if e["passed"] else f"{label}: {e['reason']}"
        rows.append(
            f"| {_format_cell(e)} | {e['file']} | {megabytes(e['bytes'])} | "
            f"{megabytes(e.get('download_bytes'))} | {megabytes(e.get('huffman_bytes'))} | "
            f"{v['miou']:.4f} | "
            f"{v['miou_drop_pt']:+.2f} | {v['agreement_pct']:.3f}% | {v['iou_vs_keras']:.4f} | "
            f"{_diff(v['max_abs_logit_diff'])} | {v['latency_ms']:.2f} ms | {status} |")
    return "\n".join(rows)


def output_kind(entry: dict) -> str:
    """logits, labels or labels-nearest (entries written before outputs existed: logits)."""
    return entry.get("details", {}).get("output", "logits")


def _format_cell(entry: dict) -> str:
    kind = output_kind(entry)
    return entry["format"] if kind == "logits" else f"{entry['format']} ({kind})"


def _runtime_line(entry: dict) -> str:
    runtime = entry.get("runtime")
    return RUNTIMES.get(runtime).describe(entry["details"]) if runtime in RUNTIMES else ""


def _diff(value) -> str:
    return "n/a (labels)" if value is None else f"{value:.2g}"


def size_line(entry: dict) -> str:
    """``size 0.58 MB, download 0.47 MB gzip-9; weights 0.21 MB Huffman-coded (3.95 bits per
    value, 1.70 MB stored, 50 tensors)`` ("" for an entry written before sizes existed)."""
    if "download_bytes" not in entry:
        return ""
    codecs = ", ".join(f"{megabytes(n)} {name}" for name, n in entry.get("compressed", {}).items())
    line = f"size {megabytes(entry['bytes'])}, download {codecs}"
    weights = entry.get("weights")
    if weights and "error" in weights:
        line += f"; weights not read ({weights['error']})"
    elif weights:
        line += (f"; weights {megabytes(weights['huffman_bytes'])} Huffman-coded "
                 f"({weights['huffman_bits_per_value']:.2f} bits per value, "
                 f"{megabytes(weights['stored_bytes'])} stored, {weights['tensors']} tensors)")
    return line


def report_markdown(manifest: dict) -> str:
    run = manifest["run"]
    lines = [f"# Export report: {run.get('run_id', '')}", "",
             f"arch {run.get('arch')}, alpha {run.get('alpha')}, input {run.get('input_size')}, "
             f"Keras val mIoU {run.get('keras_miou', float('nan')):.4f} on "
             f"{run.get('val_images')} images, threads {run.get('threads')}; "
             f"created {manifest['created']}.", "", report_table(manifest), ""]
    for e in manifest["artifacts"]:
        inp, out = e["input"], e["output"]
        lines.append(f"- {_format_cell(e)}: input {inp['dtype']} {inp['shape']}"
                     + (f" scale {inp['scale']:.6g} zp {inp['zero_point']}" if inp["scale"]
                        else "")
                     + f"; output {out['dtype']} {out['shape']}"
                     + (f" scale {out['scale']:.6g} zp {out['zero_point']}" if out["scale"]
                        else "")
                     + f"; sha256 {e['sha256'][:16]}...; ops {', '.join(e['ops'])}"
                     + "".join(f"; {line}" for line in [_runtime_line(e), size_line(e)]
                               if line))
    for e in manifest["artifacts"]:
        fmt = FORMATS.get(e["format"]) if e["format"] in FORMATS else None
        if fmt is not None and fmt.report_section is not None:
            lines += fmt.report_section(e)
    tools = ", ".join(f"{k} {v}" for k, v in manifest["tools"].items() if v)
    lines += ["", f"Tools: {tools}.", ""]
    return "\n".join(lines)
