"""End to end: each format from a tiny trained run, a damaged artifact, overwrite, bad input."""

import hashlib
import json
import sys

import keras
import numpy as np
import pytest

from zoo.cli import run
from zoo.errors import ConfigError, ZooError
from zoo.export import FORMATS
from zoo.export.exporter import export, export_command
from zoo.export.tflite_convert import read_metadata
from zoo.files import sha256_file


def tree_digest(path):
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(path)).encode() + file.read_bytes())
    return digest.hexdigest()


def cli(monkeypatch, *args):
    """Run export.py's command in-process; returns the exit status."""
    monkeypatch.setattr(sys, "argv", ["export.py", *args])
    try:
        run(export_command, name="export")
    except SystemExit as exc:
        return exc.code
    return 0


def test_every_format_converts_runs_and_passes(trained_run, tmp_path):
    checkpoints, run_dir = trained_run
    out = tmp_path / "artifacts"
    result = export(run=str(run_dir), format="all", out=str(out), calibration_images=8,
                    val_images=4, threads=1)
    assert result.ok, result.failed
    entries = {e["format"]: e for e in result.manifest["artifacts"]}
    assert set(entries) == set(FORMATS.list())
    for fmt, entry in entries.items():
        path = out / entry["file"]
        assert entry["passed"] and path.exists(), fmt
        if fmt == "coreml":  # an .mlpackage folder: hashed over its files
            assert path.is_dir() and entry["sha256"] == sha256_file(path)
            assert entry["bytes"] == sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
        else:
            assert entry["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest(), fmt
            assert entry["bytes"] == path.stat().st_size
        v = entry["validation"]
        assert v["images"] == 4 and 0.0 <= v["miou"] <= 1.0 and v["latency_ms"] > 0
        assert entry["output"]["shape"] == [1, 64, 64, 2]
    for fmt in ("tflite", "onnx"):  # float32: the same predictions as Keras
        assert entries[fmt]["validation"]["agreement_pct"] >= 99.9
        assert entries[fmt]["validation"]["max_abs_logit_diff"] < 1e-3
    int8 = entries["tflite-int8"]
    assert int8["input"]["dtype"] == "uint8" and int8["input"]["scale"] > 0
    assert int8["output"]["zero_point"] is not None
    assert len(int8["details"]["calibration_sha256"]) == 64
    assert "DEQUANTIZE" not in int8["ops"]
    # XNNPACK formats write 2x2 stride-2 transposed convs as DEPTH_TO_SPACE; the Edge TPU,
    # which lacks that op, keeps TRANSPOSE_CONV.
    for fmt in ("tflite", "tflite-fp16", "tflite-int8"):
        ops = entries[fmt]["ops"]
        assert "DEPTH_TO_SPACE" in ops and "TRANSPOSE_CONV" not in ops, fmt
        assert entries[fmt]["details"]["transpose_conv"] == "depth-to-space"
    assert "TRANSPOSE_CONV" in entries["edgetpu"]["ops"]
    for fmt in ("tflite", "tflite-int8"):
        assert entries[fmt]["details"]["xnnpack_partitions"] == 1, fmt
    assert entries["edgetpu"]["details"]["report"]["first_unmapped"] is None
    assert not list(out.glob(".*")), "temporary files left behind"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["tools"]["tensorflow"] and manifest["tools"]["onnxruntime"]
    assert manifest["run"]["calibration_sha256"] == int8["details"]["calibration_sha256"]
    assert "| tflite-int8 |" in (out / "report.md").read_text()

    import onnx

    props = {p.key: p.value for p in onnx.load(str(out / "model.onnx")).metadata_props}
    assert props["arch"] == "mobileunet" and props["input_size"] == "64x64"
    assert json.loads(props["class_names"]) == result.manifest["run"]["classes"]
    assert props["run_id"] == run_dir.name
    for fmt in ("tflite", "tflite-fp16", "tflite-dynamic", "tflite-int8", "edgetpu"):
        meta = read_metadata(out / entries[fmt]["file"])
        assert meta == props, fmt  # the same metadata inside every TFLite file


def test_int8_io_and_newest_run_default(trained_run, tmp_path, monkeypatch):
    checkpoints, run_dir = trained_run
    out = tmp_path / "a"
    result = export(format="tflite-int8", io="int8", out=str(out), calibration_images=4,
                    val_images=2, checkpoints_dir=str(checkpoints))
    entry = result.manifest["artifacts"][0]
    assert result.manifest["run"]["run_dir"] == str(run_dir)
    assert entry["input"]["dtype"] == "int8" and entry["input"]["zero_point"] == -128


def _perturbed(model):
    clone = keras.models.clone_model(model)
    rng = np.random.default_rng(0)
    clone.set_weights([w + rng.normal(0, 0.5, w.shape).astype(w.dtype) * (np.std(w) + 0.1)
                       for w in model.get_weights()])
    return clone


def test_damaged_artifact_fails_and_is_not_listed_as_passed(trained_run, tmp_path,
                                                            monkeypatch, capsys):
    checkpoints, run_dir = trained_run
    spec = FORMATS.get("tflite")
    convert = spec.convert
    monkeypatch.setattr(spec, "convert", lambda model, *a: convert(_perturbed(model), *a))
    out = tmp_path / "damaged"
    status = cli(monkeypatch, "--run", str(run_dir), "--format", "tflite,onnx", "--out", str(out),
                 "--val-images", "4")
    assert status == 1
    assert "validation failed for tflite" in capsys.readouterr().err
    entries = {e["format"]: e for e in json.loads((out / "manifest.json").read_text())[
        "artifacts"]}
    assert not entries["tflite"]["passed"] and "tflite:" in entries["tflite"]["reason"]
    assert entries["tflite"]["file"] == "model.FAILED.tflite"
    assert not (out / "model.tflite").exists() and (out / "model.FAILED.tflite").is_file()
    assert entries["onnx"]["passed"] and (out / "model.onnx").is_file()
    assert "FAIL: tflite" in (out / "report.md").read_text()


def test_second_export_keeps_validated_artifacts_and_refuses_changed_ones(
        trained_run, tmp_path, monkeypatch, capsys):
    checkpoints, run_dir = trained_run
    out = tmp_path / "art"
    assert export(run=str(run_dir), format="onnx", out=str(out), val_images=2).ok
    before = tree_digest(out)
    # The same command again: the validated, listed artifact is kept, nothing is rewritten.
    capsys.readouterr()
    assert cli(monkeypatch, "--run", str(run_dir), "--format", "onnx", "--out", str(out)) == 0
    assert "onnx: kept model.onnx" in capsys.readouterr().out
    assert tree_digest(out) == before
    # Other options for the same file: refused in one line, nothing changes.
    status = cli(monkeypatch, "--run", str(run_dir), "--format", "onnx", "--out", str(out),
                 "--opset", "15")
    err = capsys.readouterr().err.strip()
    assert status == 2 and err.startswith("error: ") and "--overwrite" in err
    assert "other options" in err and len(err.splitlines()) == 1
    assert tree_digest(out) == before
    # A changed file is not trusted either.
    (out / "model.onnx").write_bytes((out / "model.onnx").read_bytes() + b"\0")
    changed = tree_digest(out)
    assert cli(monkeypatch, "--run", str(run_dir), "--format", "onnx", "--out", str(out)) == 2
    assert "not listed as validated" in capsys.readouterr().err
    assert tree_digest(out) == changed
    # A new format beside it keeps the first entry; --overwrite replaces.
    assert export(run=str(run_dir), format="tflite", out=str(out), val_images=2).ok
    assert export(run=str(run_dir), format="onnx", out=str(out), val_images=2,
                  overwrite=True).ok
    manifest = json.loads((out / "manifest.json").read_text())
    assert [e["format"] for e in manifest["artifacts"]] == ["onnx", "tflite"]


@pytest.mark.slow
def test_killed_export_leaves_only_listed_artifacts_and_continues(trained_run, tmp_path):
    import os
    import signal
    import subprocess
    import time
    from pathlib import Path

    checkpoints, run_dir = trained_run
    out = tmp_path / "killed"
    root = Path(__file__).resolve().parents[2]
    args = [sys.executable, "export.py", "--run", str(run_dir), "--out", str(out),
            "--format", "onnx,coreml", "--val-images", "2"]
    proc = subprocess.Popen(args, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 600
        while time.time() < deadline and proc.poll() is None:
            manifest = out / "manifest.json"
            if manifest.is_file() and json.loads(manifest.read_text())["artifacts"]:
                break
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)  # while coreml converts
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    listed = {e["file"]: e for e in json.loads((out / "manifest.json").read_text())[
        "artifacts"]}
    assert listed and all(e["passed"] for e in listed.values())
    for path in out.iterdir():
        if path.name.startswith(".") or path.name in ("manifest.json", "report.md"):
            continue
        entry = listed.get(path.name)
        assert entry is not None, f"{path.name} left behind unlisted"
        assert entry["sha256"] == sha256_file(path)
    first = {name: entry["sha256"] for name, entry in listed.items()}
    # The same command again, without --overwrite: the rest is converted, the first kept.
    result = export(run=str(run_dir), format="onnx,coreml", out=str(out), val_images=2)
    assert result.ok
    entries = {e["file"]: e for e in result.manifest["artifacts"]}
    assert set(entries) == {"model.onnx", "model.mlpackage"}
    assert all(entries[name]["sha256"] == sha for name, sha in first.items())
    assert not [p for p in out.iterdir() if p.name.startswith(".")], "temporary files left"


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"format": "tflite-int9"}, "unknown export format 'tflite-int9'; did you mean"),
    ({"format": "tflite", "io": "uint8"}, "option(s) io not taken by format(s) tflite"),
    ({"format": "tflite-int8", "io": "int4"}, "io must be one of uint8, int8, float"),
    ({"format": "edgetpu", "io": "float"}, "edgetpu: --io must be one of uint8, int8"),
    ({"format": "onnx", "max_miou_drop": "tflite=1"}, "--max-miou-drop: tflite not among"),
    ({"format": "onnx", "max_miou_drop": 101}, "--max-miou-drop must be a"),
    ({"format": "onnx", "val_images": 0}, "--val-images must be an integer >= 1"),
    ({"format": "onnx", "threads": 0}, "--threads must be an integer between 1 and 1024"),
])
def test_bad_arguments_are_one_line_errors(trained_run, tmp_path, kwargs, message):
    checkpoints, run_dir = trained_run
    with pytest.raises(ConfigError, match=None) as info:
        export(run=str(run_dir), out=str(tmp_path / "x"), **kwargs)
    assert message in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "x").exists()


def test_missing_run_bad_checkpoint_and_novalidation_data(trained_run, tmp_path, monkeypatch,
                                                           capsys):
    checkpoints, run_dir = trained_run
    with pytest.raises(ConfigError, match="no run folder"):
        export(run=str(tmp_path / "nope"))
    with pytest.raises(ConfigError, match="no runs in"):
        export(checkpoints_dir=str(tmp_path / "empty"))
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.yaml").write_text((run_dir / "config.yaml").read_text())
    with pytest.raises(ConfigError, match="best.keras: checkpoint not found"):
        export(run=str(broken))
    (broken / "best.keras").write_bytes(b"not a zip")
    capsys.readouterr()
    assert cli(monkeypatch, "--run", str(broken), "--format", "onnx") == 2
    err = capsys.readouterr().err
    assert "checkpoint does not load" in err and len(err.strip().splitlines()) == 1
    (broken / "best.keras").write_bytes((run_dir / "best.keras").read_bytes())
    # An empty val split: one-line DataError from the readers (a ZooError: exit 2 in the CLI).
    with pytest.raises(ZooError, match="no image/mask pairs|no validation data"):
        export(run=str(broken), format="onnx", val_images=None, **_empty_val(broken, run_dir))


def _empty_val(broken, run_dir):
    """Point the copied run at a dataset whose val split has no pairs."""
    import yaml

    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    data = broken / "data"
    (data / "images" / "val").mkdir(parents=True)
    (data / "masks" / "val").mkdir(parents=True)
    cfg["data"]["spec"]["root"] = str(data)
    (broken / "config.yaml").write_text(yaml.safe_dump(cfg))
    return {}
