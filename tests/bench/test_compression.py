"""The compression table: a run's compressed descendants, sizes against the parent's fp32 TFLite,
drops against the parent."""

import json

import pytest

from zoo.bench import compression as table
from zoo.config import CompressConfig, RunConfig, save_config
from zoo.errors import ConfigError


def _run(checkpoints, name, parent=None, methods=(), artifacts=()):
    run = checkpoints / name
    run.mkdir(parents=True)
    save_config(RunConfig(compress=CompressConfig(parent=parent, methods=list(methods))),
                run / "config.yaml")
    if artifacts:
        (run / "artifacts").mkdir()
        entries = [{"format": fmt, "file": f"m.{fmt}", "runtime": "none", "passed": True,
                    "bytes": size, "download_bytes": download, "huffman_bytes": None,
                    "validation": {"miou": miou, "miou_drop_pt": 0.1}, "options": {}}
                   for fmt, size, download, miou in artifacts]
        (run / "artifacts" / "manifest.json").write_text(json.dumps(
            {"run": {"keras_miou": artifacts[0][3]}, "artifacts": entries}))
    return run


def test_table_follows_chains_and_compares_with_the_parents_fp32_tflite(tmp_path, monkeypatch):
    monkeypatch.setattr(table, "weight_counts", lambda run: {"parameters": 100, "nonzero": 25})
    parent = _run(tmp_path, "a-parent", artifacts=[("tflite", 4000, 3700, 0.50)])
    _run(tmp_path, "b-prune", parent.name, ["prune:0.75"])
    _run(tmp_path, "c-cluster", "b-prune", ["prune:0.75", "cluster:16"],
         artifacts=[("tflite", 4000, 400, 0.495)])
    _run(tmp_path, "d-other", None, artifacts=[("tflite", 10, 10, 0.9)])
    assert [p.name for p in table.descendants(parent, tmp_path)] == [
        "a-parent", "b-prune", "c-cluster"]
    rows = table.collect(parent, tmp_path)
    assert [r["methods"] for r in rows] == ["none (parent)", "prune:0.75,cluster:16"]
    assert rows[1]["ratio_vs_fp32_tflite"] == pytest.approx(10.0)
    assert rows[1]["drop_vs_parent_pt"] == pytest.approx(0.5)
    lines = table.markdown(rows)
    assert len(lines) == 4 and "| 10.0x |" in lines[3]


def test_a_parent_without_exports_is_a_one_line_error(tmp_path):
    parent = _run(tmp_path, "a-parent")
    with pytest.raises(ConfigError, match="no artifacts.*export the parent first"):
        table.collect(parent, tmp_path)
