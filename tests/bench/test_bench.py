"""zoo.bench on the smallest grid: files written, finite positive figures, resume, split, ops.

No assertion on speed itself: figures are printed by the commands, never tested.
"""

import csv
import json
import math

import pytest

from zoo.bench import grid as grid_module
from zoo.bench.grid import as_list, grid
from zoo.bench.ops import ops
from zoo.bench.split import split
from zoo.bench.timing import summarize, time_interleaved
from zoo.errors import ConfigError

SMALL = dict(archs="mobileunet", alphas=0.25, sizes=64, runtimes="tflite,onnx", threads=1,
             runs=3, warmup=1, peak_size=256, progress=False)
# `grid_out` (tests/bench/conftest.py): a grid of 6 cells, shared with test_targets.py.
CELLS = 6


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_grid_writes_csv_json_markdown_and_plots(grid_out):
    out, result = grid_out
    assert result["measured"] == CELLS and result["skipped"] == 0
    for name in ("grid.csv", "grid.json", "grid.md", "peak.json", "pareto.png",
                 "heatmap_tflite_t1.png", "heatmap_onnx_t1.png", "heatmap_tflite-int8_t2.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    payload = json.loads((out / "grid.json").read_text())
    assert {r["runtime"] for r in payload["rows"]} == {"tflite", "tflite-int8", "onnx"}
    assert "tflite-fp32/onnxruntime" in payload["ratios"]
    assert "| mobileunet | 0.25 | 64 | 1 | onnx |" in (out / "grid.md").read_text()


def test_grid_values_are_positive_and_finite(grid_out):
    out, _ = grid_out
    rows = _rows(out / "grid.csv")
    assert len(rows) == CELLS
    for row in rows:
        assert row["status"] == "ok"
        for field in ("median_ms", "p90_ms", "params", "macs", "artifact_bytes", "gflops",
                      "peak_gflops", "peak_pct"):
            value = float(row[field])
            assert math.isfinite(value) and value > 0, (row["runtime"], field)
        assert float(row["p90_ms"]) >= float(row["median_ms"])
        assert int(row["runs"]) == 3
    tflite = next(r for r in rows if r["runtime"] == "tflite")
    assert int(tflite["xnnpack_partitions"]) >= 1


def test_resumed_grid_skips_finished_cells(grid_out, grid_args, monkeypatch):
    out, _ = grid_out
    before = (out / "grid.csv").read_text()

    def no_conversion(*args, **kwargs):
        raise AssertionError("a finished cell was converted again")

    monkeypatch.setattr(grid_module, "prepare", no_conversion)
    monkeypatch.setattr(grid_module, "time_interleaved", no_conversion)
    result = grid(**grid_args, out=str(out), checkpoints=str(out / "no-runs"))
    assert result["measured"] == 0 and result["skipped"] == CELLS
    assert (out / "grid.csv").read_text() == before


def test_coreml_is_reported_not_measurable(tmp_path, monkeypatch):
    monkeypatch.setattr("platform.system", lambda: "Linux")
    result = grid(**{**SMALL, "runtimes": "coreml"}, out=str(tmp_path), report=False)
    (row,) = _rows(tmp_path / "grid.csv")
    assert result["measured"] == 0
    assert row["status"] == "unavailable" and "needs macOS" in row["note"]


def test_split_encoder_is_faster_than_full_model(tmp_path):
    rows = split(archs="mobileunet", alphas=0.25, sizes=64, runtimes="tflite,onnx", threads=1,
                 runs=5, warmup=2, out=str(tmp_path))
    assert {r["runtime"] for r in rows} == {"tflite", "onnx"}
    for row in rows:
        assert 0 < row["encoder_ms"] < row["full_ms"]
        assert 0 < row["encoder_macs"] < row["full_macs"]
    assert (tmp_path / "split.csv").is_file() and (tmp_path / "split.md").is_file()


def test_ops_profile_by_prefixes(tmp_path):
    result = ops(arch="mobileunet", alpha=0.25, size=64, threads=1, runs=3, warmup=1, every=23,
                 out=str(tmp_path), progress=False)
    assert len(result["segments"]) == 2  # 46 units in groups of 23: a prefix, then the model
    assert result["total_ms"] > 0 and math.isfinite(result["total_ms"])
    assert sum(r["ms"] for r in result["segments"]) == pytest.approx(result["total_ms"])
    assert {"TRANSPOSE_CONV", "DEPTHWISE_CONV_2D", "RESIZE_BILINEAR"} <= set(result["per_op_ms"])
    assert all(math.isfinite(v) for v in result["shares"].values())
    assert (tmp_path / "ops_tflite.csv").is_file() and "transposed conv" in (
        tmp_path / "ops_tflite.md").read_text()


def test_ops_profile_from_onnxruntime(tmp_path):
    result = ops(arch="mobileunet", alpha=0.25, size=64, threads=1, runs=3, warmup=1,
                 runtime="onnx", out=str(tmp_path), progress=False)
    assert result["total_ms"] > 0 and all(r["ms"] >= 0 for r in result["segments"])
    assert {"TRANSPOSE_CONV", "DEPTHWISE_CONV_2D", "CONV_2D 1x1"} <= set(result["per_op_ms"])
    assert 0 < result["shares"]["depthwise_conv"] < 1
    assert (tmp_path / "ops_onnx.csv").is_file() and (tmp_path / "ops_onnx.md").is_file()


def test_bad_arguments_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown runtime"):
        grid(**{**SMALL, "runtimes": "tflite,tensorrt"}, out=str(tmp_path))
    with pytest.raises(ConfigError, match="no arch matches"):
        grid(**{**SMALL, "archs": "nope"}, out=str(tmp_path))
    assert not (tmp_path / "grid.csv").exists()


def test_as_list_and_interleaved_timing():
    assert as_list("1.0,0.5", float) == [1.0, 0.5]
    assert as_list((224, 160), int) == [224, 160]
    assert as_list(0.5, float) == [0.5]
    calls = []
    samples = time_interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")},
                               runs=4, warmup=1)
    assert calls == ["a", "b", "a", "b", "b", "a", "a", "b", "b", "a"]  # order rotates
    stats = summarize(samples["a"])
    assert stats["runs"] == 4 and stats["p90_ms"] >= stats["median_ms"] >= 0
    calls.clear()
    samples = time_interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")},
                               runs=5, warmup=0, block=3, settle=1, pause=0.001)
    # Blocks of 3 timed calls after 1 untimed, order rotating; the last block is cut to size.
    assert "".join(calls) == "aaaabbbb" + "bbbaaa"
    assert [len(v) for v in samples.values()] == [5, 5]


def test_trained_runs_give_iou_for_the_pareto_plot(tmp_path):
    from zoo.bench.report import pareto, trained_ious

    run = tmp_path / "checkpoints" / "mobileunet-a0.25-64x64-x"
    run.mkdir(parents=True)
    (run / "metrics.json").write_text(json.dumps({"best_val_miou": 0.61, "config": {
        "model": {"arch": "mobileunet", "alpha": 0.25, "input_size": [64, 64]}}}))
    (tmp_path / "checkpoints" / "broken").mkdir()
    (tmp_path / "checkpoints" / "broken" / "metrics.json").write_text("{")
    ious = trained_ious(tmp_path / "checkpoints")
    assert ious == {("mobileunet", "0.25", "64"): 0.61}
    row = {"arch": "mobileunet", "options": "", "alpha": "0.25", "size": "64",
           "runtime": "tflite", "threads": "1", "median_ms": "1.5", "macs": "8000000"}
    assert pareto([row], ious, tmp_path).stat().st_size > 0
