"""`python -m zoo.bench study`: a 2 x 2 study of tiny models killed after its first cell and
resumed; the Pareto front and the picks on hand-made tables; bad input."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from zoo.bench.report import pareto_front
from zoo.bench.study import Cell, cell_runs, cell_status, picks, study
from zoo.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
# The cells, largest first (the study's order): 0.5/64, 0.5/32, 0.25/64, 0.25/32.
TINY = ["--arch", "mobileunet", "--alphas", "0.5,0.25", "--sizes", "64,32", "--epochs", "2",
        "--batch-size", "4", "--steps-per-epoch", "2", "--precise-bn-images", "4",
        "--warmup-epochs", "0", "--val-images", "4", "--formats", "tflite",
        "--threads", "1", "--runs", "3", "--warmup", "1"]


def test_pareto_front_of_a_hand_made_table():
    # (ms, mIoU): b is beaten by a (slower, less accurate); d ties c in speed with less
    # accuracy; f equals e (the first of equal points stays); g is the fastest.
    points = [(10.0, 0.70), (12.0, 0.65), (20.0, 0.80), (20.0, 0.75), (40.0, 0.85),
              (40.0, 0.85), (5.0, 0.50), (50.0, 0.84)]
    front = pareto_front(points)
    assert front == [6, 0, 2, 4]
    assert pareto_front([]) == []
    assert pareto_front([(1.0, 0.1)]) == [0]


def test_picks_are_the_fastest_cells_within_the_tolerances():
    table = [{"alpha": 1.0, "size": 224, "median_ms": 100.0, "miou": 0.600},
             {"alpha": 0.75, "size": 224, "median_ms": 70.0, "miou": 0.595},
             {"alpha": 0.5, "size": 192, "median_ms": 40.0, "miou": 0.588},
             {"alpha": 0.5, "size": 128, "median_ms": 20.0, "miou": 0.560},
             {"alpha": 0.25, "size": 128, "median_ms": 8.0, "miou": 0.450},
             {"alpha": 0.25, "size": 224, "median_ms": 30.0, "miou": 0.440}]
    chosen = picks(table, (5.0, 1.0))
    assert chosen["best"] is table[0]
    assert chosen["accuracy"] is table[1]  # within 1 pt of 0.600; 0.588 is 1.2 pt below
    assert chosen["speed"] is table[3]  # within 5 pt; 0.450 is 15 pt below
    assert [p["median_ms"] for p in chosen["front"]] == [8.0, 20.0, 40.0, 70.0, 100.0]
    assert picks([], (5.0, 1.0))["best"] is None


def _study(out: Path, data: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-m", "zoo.bench", "study", "--data", str(data), *TINY, "--out",
         str(out)], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, start_new_session=True)


def test_a_study_killed_after_its_first_cell_resumes_to_four_trained_cells(tmp_path,
                                                                           tiny_data):
    out = tmp_path / "study"
    first = Cell(0.5, 64)
    process = _study(out, tiny_data)
    try:
        deadline = time.time() + 600
        while time.time() < deadline and process.poll() is None:
            trained = [run for runs in cell_runs(out / "runs").values() for run in runs
                       if (run / "metrics.json").is_file()]
            if trained:
                break
            time.sleep(0.5)
        assert process.poll() is None, process.stdout.read()[-3000:]
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    found = cell_runs(out / "runs")
    assert cell_status(found[first])[0] == "trained"
    assert not any(cell_status(found.get(c, []))[0] == "trained"
                   for c in (Cell(0.5, 32), Cell(0.25, 64), Cell(0.25, 32)))
    first_run = cell_status(found[first])[1]
    stamp = (first_run / "metrics.json").stat().st_mtime_ns

    process = _study(out, tiny_data)
    log, _ = process.communicate(timeout=900)
    assert process.returncode == 0, log[-3000:]
    assert f"[cell 1/4 {first.name}] trained: {first_run.name}" in log  # never retrained
    assert "epoch 1/2" in log and "ETA" in log
    found = cell_runs(out / "runs")
    assert sorted(found) == sorted([Cell(0.5, 64), Cell(0.5, 32), Cell(0.25, 64),
                                    Cell(0.25, 32)])
    trained = {c: cell_status(runs) for c, runs in found.items()}
    assert all(status == "trained" for status, _ in trained.values())
    assert trained[first][1] == first_run
    assert (first_run / "metrics.json").stat().st_mtime_ns == stamp
    for _, run in trained.values():
        assert json.loads((run / "metrics.json").read_text())["epochs"] == 2
        assert (run / "artifacts" / "manifest.json").is_file()

    with (out / "cells.csv").open() as f:
        cells = list(csv.DictReader(f))
    assert len(cells) == 4 and all(c["trained"] == "True" for c in cells)
    assert all(0.0 <= float(c["tflite_miou"]) <= 1.0 for c in cells)
    with (out / "latency.csv").open() as f:
        latency = list(csv.DictReader(f))
    assert len(latency) == 4  # cells x formats x thread counts
    for row in latency:
        assert row["status"] in ("ok", "failed"), row
        if row["status"] == "ok":
            full, encoder = float(row["median_ms"]), float(row["encoder_ms"])
            assert full > 0 and encoder > 0
            assert float(row["decoder_ms"]) == pytest.approx(full - encoder, abs=1e-4)
    figures = ["latency_tflite_t1.png", "miou.png", "scatter_tflite_t1.png",
               "encoder_decoder.png"]
    for name in figures:
        assert (out / name).stat().st_size > 10_000, name
    payload = json.loads((out / "study.json").read_text())
    chosen = payload["picks"]["tflite t1"]
    assert chosen["speed"]["median_ms"] <= chosen["accuracy"]["median_ms"]
    assert len(payload["invocations"]) == 2 and payload["invocations"][0]["seconds"] is None
    summary = (out / "summary.md").read_text()
    assert "speed pick" in summary and "accuracy pick" in summary
    assert summary.count("\n| 0.") == 4

    # The same folder with another recipe: one line, nothing written.
    before = {p: p.read_bytes() for p in out.glob("*.*")}
    with pytest.raises(ConfigError, match=r"a study of a different configuration "
                                          r"\(recipe\.train\.epochs differ\)"):
        study(data=str(tiny_data), arch="mobileunet", alphas="0.5,0.25", sizes="64,32",
              epochs=3, batch_size=4, steps_per_epoch=2, precise_bn_images=4,
              warmup_epochs=0, out=str(out))
    assert {p: p.read_bytes() for p in out.glob("*.*")} == before


@pytest.mark.parametrize(("args", "message"), [
    (["--alphas", "0.35"], r"--alphas 0.35 is not supported by backbone 'mobilenet_v1'"),
    (["--sizes", "64,100"], r"--sizes must be a positive multiple of 32, got '?100'?"),
    (["--formats", "tflite,jpeg"], r"unknown export format"),
    (["--epochs", "0"], r"--epochs must be an integer >= 1"),
])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, tiny_data, args, message):
    import re

    out = tmp_path / "study"
    result = subprocess.run(
        [sys.executable, "-m", "zoo.bench", "study", "--data", str(tiny_data), "--out",
         str(out), *args], cwd=REPO, capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and re.search(message, errors[0]), result.stderr[-2000:]
    assert not out.exists()


def test_a_folder_of_other_files_is_not_taken_for_a_study(tmp_path, tiny_data):
    out = tmp_path / "study"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="a folder with files but no study.json"):
        study(data=str(tiny_data), arch="mobileunet", alphas="0.5", sizes="64", out=str(out))
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
