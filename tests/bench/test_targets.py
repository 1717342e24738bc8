"""zoo.bench.targets: figures and verdicts from synthetic rows, and from the smallest real grid.

No assertion on speed itself: verdicts are checked on made-up figures only.
"""

import csv
import re

import pytest

from zoo.bench.__main__ import main
from zoo.bench.results import GRID_FIELDS
from zoo.bench.targets import (
    INT8_OVER_FP32_MAX,
    NA,
    NO,
    PEAK_PCT_MIN,
    SPEEDUP_MIN,
    SPEEDUP_SIZE,
    YES,
    render_markdown,
    target_figures,
    targets,
)
from zoo.errors import ConfigError

# A model that meets every target: int8 0.4x fp32, fp32 0.8x onnx, 2 threads 1.8x faster.
PASSING = {("tflite", 1): 10.0, ("tflite", 2): 10 / 1.8, ("tflite-int8", 1): 4.0,
           ("tflite-int8", 2): 4 / 1.8, ("onnx", 1): 12.5, ("onnx", 2): 12.5 / 1.8}


def make_row(runtime, threads, ms, size=224, peak_pct=70.0, partitions=None, status="ok"):
    """A grid row as the CSV gives it back (strings)."""
    row = dict.fromkeys(GRID_FIELDS, "")
    row.update(arch="mobileunet", alpha="1", size=str(size), runtime=runtime,
               threads=str(threads), status=status, median_ms=f"{ms:.6g}",
               peak_pct=f"{peak_pct:.6g}",
               xnnpack_partitions="" if partitions is None else str(partitions))
    return row


def make_rows(ms=None, size=224, **kwargs):
    return [make_row(r, t, v, size=size, **kwargs) for (r, t), v in (ms or PASSING).items()]


def only_model(rows):
    (model,) = target_figures(rows)["models"]
    return model


def test_ratios_speedups_and_peak_are_computed_from_the_rows():
    rows = make_rows(size=SPEEDUP_SIZE, partitions=3)
    rows[-1]["peak_pct"] = "72.5"  # onnx at 2 threads: not the 1-thread figure
    rows[4]["peak_pct"] = "65"  # onnx at 1 thread
    model = only_model(rows)
    assert model["ms"]["tflite"][1] == 10.0 and model["ms"]["onnx"][2] == pytest.approx(12.5 / 1.8)
    close = lambda value: pytest.approx(value, rel=1e-5)  # noqa: E731 (the CSV keeps 6 digits)
    assert model["int8_over_fp32"] == {1: close(0.4), 2: close(0.4)}
    assert model["fp32_over_onnx"] == {1: close(0.8), 2: close(0.8)}
    assert model["speedup_2t"] == {r: close(1.8) for r in ("tflite", "tflite-int8", "onnx")}
    assert model["best_peak_runtime"] == "tflite" and model["best_peak_pct_1t"] == 70.0
    assert model["partitions"] == {"tflite": "3", "tflite-int8": "3"}
    assert model["verdicts"] == dict.fromkeys(
        ("int8_vs_fp32", "fp32_vs_onnx", "peak_1t", "speedup_2t"), YES)


def test_int8_is_left_out_of_the_best_runtime_for_the_peak():
    rows = make_rows(peak_pct=40.0)
    for row in rows:
        if row["runtime"] == "tflite-int8":
            row["peak_pct"] = "99"  # int8 against the fp32 sgemm peak: not a fair figure
    model = only_model(rows)
    assert model["best_peak_pct_1t"] == 40.0 and model["verdicts"]["peak_1t"] == NO


def test_a_missing_cell_gives_na_unless_the_cells_present_miss_already():
    rows = [r for r in make_rows(size=SPEEDUP_SIZE)
            if (r["runtime"], r["threads"]) != ("tflite-int8", "2")]
    rows[0]["status"] = "error"  # fp32 at 1 thread: an error row is a missing cell too
    model = only_model(rows)
    assert model["ms"]["tflite"][1] is None and model["int8_over_fp32"] == {1: None, 2: None}
    assert model["speedup_2t"]["tflite"] is None and model["speedup_2t"]["tflite-int8"] is None
    assert model["verdicts"] == {"int8_vs_fp32": NA, "fp32_vs_onnx": NA, "peak_1t": YES,
                                 "speedup_2t": NA}
    slow_onnx_scaling = make_rows(size=SPEEDUP_SIZE, ms={**PASSING, ("onnx", 2): 12.5})
    slow_onnx_scaling = [r for r in slow_onnx_scaling if r["runtime"] != "tflite-int8"]
    assert only_model(slow_onnx_scaling)["verdicts"]["speedup_2t"] == NO


def test_speedup_target_applies_at_its_size_only():
    model = only_model(make_rows(size=224))
    assert model["speedup_2t"]["tflite"] == pytest.approx(1.8, rel=1e-5)
    assert model["verdicts"]["speedup_2t"] is None
    assert render_markdown(target_figures(make_rows(size=224))).splitlines()[-3].endswith(
        "| yes | yes | yes | - |")


@pytest.mark.parametrize("target, at_threshold, beyond", [
    ("int8_vs_fp32", {("tflite-int8", 1): 10 * INT8_OVER_FP32_MAX},
     {("tflite-int8", 1): 10 * INT8_OVER_FP32_MAX + 0.01}),
    ("fp32_vs_onnx", {("onnx", 2): PASSING[("tflite", 2)]},
     {("onnx", 2): PASSING[("tflite", 2)] - 0.01}),
    ("speedup_2t", {("onnx", 2): 12.5 / SPEEDUP_MIN},
     {("onnx", 2): 12.5 / SPEEDUP_MIN + 0.01}),
])
def test_latency_verdicts_flip_at_the_threshold(target, at_threshold, beyond):
    met = only_model(make_rows(size=SPEEDUP_SIZE, ms={**PASSING, **at_threshold}))
    missed = only_model(make_rows(size=SPEEDUP_SIZE, ms={**PASSING, **beyond}))
    assert met["verdicts"][target] == YES
    assert missed["verdicts"][target] == NO
    assert {k for k, v in missed["verdicts"].items() if v == NO} == {target}


def test_peak_verdict_flips_at_the_threshold():
    assert only_model(make_rows(peak_pct=PEAK_PCT_MIN))["verdicts"]["peak_1t"] == YES
    assert only_model(make_rows(peak_pct=PEAK_PCT_MIN - 0.1))["verdicts"]["peak_1t"] == NO


def test_markdown_lists_every_miss_with_its_figures():
    rows = make_rows(ms={**PASSING, ("tflite-int8", 2): 5.0})
    figures = target_figures(rows)
    text = render_markdown(figures)
    assert figures["misses"] == ["mobileunet a1 224 px: LiteRT int8 <= 0.45x fp32 "
                                 "(0.400 at 1t, 0.900 at 2t)"]
    assert text.rstrip().endswith(f"**Misses (1):** {figures['misses'][0]}")
    assert "| mobileunet | 1 | 224 | 10.00 | 5.56 | 4.00 | 5.00 | 12.50 | 6.94 | 0.400 | 0.900 |" \
        in text
    assert "| mobileunet | 1 | 224 | NO | yes | yes | - |" in text
    assert render_markdown(target_figures(make_rows())).rstrip().endswith("(0):** none")


def test_bad_results_are_one_line_errors_and_write_nothing(tmp_path, monkeypatch, capsys):
    missing = tmp_path / "nowhere"
    with pytest.raises(ConfigError, match=re.escape(f"{missing}: results file not found")):
        targets(results=str(missing))
    (tmp_path / "grid.csv").write_text(",".join(GRID_FIELDS) + "\n")
    with pytest.raises(ConfigError, match=re.escape(f"{tmp_path / 'grid.csv'}: no measured rows")):
        targets(results=str(tmp_path))
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ConfigError, match="other.csv: not a grid.csv"):
        targets(results=str(tmp_path / "other.csv"))
    monkeypatch.setattr("sys.argv", ["zoo.bench", "targets", "--results", str(missing)])
    with pytest.raises(SystemExit) as exit_info:
        main()
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and "\n" not in err and str(missing) in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grid.csv", "other.csv"]


def _figure_cells(text):
    """Header -> cell of the first (figures) table's row for mobileunet 0.25 at 64 px."""
    lines = text.splitlines()
    header = next(line for line in lines if line.startswith("| arch |"))
    row = next(line for line in lines if line.startswith("| mobileunet | 0.25 | 64 |"))
    split = lambda line: [c.strip() for c in line.strip("|").split("|")]  # noqa: E731
    return dict(zip(split(header), split(row), strict=True))


def test_grid_writes_targets_md_matching_its_rows(grid_out, monkeypatch, capsys):
    out, result = grid_out
    assert result["targets"] == str(out / "targets.md")
    with open(out / "grid.csv", newline="") as f:
        rows = {(r["runtime"], r["threads"]): r for r in csv.DictReader(f)}
    assert len(rows) == 6 and all(r["status"] == "ok" for r in rows.values())
    ms = {key: float(r["median_ms"]) for key, r in rows.items()}
    cells = _figure_cells((out / "targets.md").read_text())
    for (runtime, threads), value in ms.items():
        short = {"tflite": "fp32", "tflite-int8": "int8", "onnx": "onnx"}[runtime]
        assert cells[f"{short} ms {threads}t"] == f"{value:.2f}"
    for t in ("1", "2"):
        assert cells[f"int8/fp32 {t}t"] == f"{ms[('tflite-int8', t)] / ms[('tflite', t)]:.3f}"
        assert cells[f"fp32/onnx {t}t"] == f"{ms[('tflite', t)] / ms[('onnx', t)]:.3f}"
    assert cells["fp32 2t speed-up"] == f"{ms[('tflite', '1')] / ms[('tflite', '2')]:.2f}"
    best = max(("tflite", "onnx"), key=lambda r: float(rows[(r, "1")]["peak_pct"]))
    assert cells["best % of peak 1t"].startswith(f"{float(rows[(best, '1')]['peak_pct']):.1f} (")
    assert cells["fp32 partitions"] == rows[("tflite", "1")]["xnnpack_partitions"]
    assert cells["int8 partitions"] == rows[("tflite-int8", "1")]["xnnpack_partitions"]

    before = (out / "targets.md").read_text()
    monkeypatch.setattr("sys.argv", ["zoo.bench", "targets", "--results", str(out / "grid.csv")])
    main()
    printed = capsys.readouterr().out
    assert before in printed and f"targets: \"{out / 'targets.md'}\"" in printed
    assert (out / "targets.md").read_text() == before
    assert not [p for p in out.iterdir() if p.name.startswith(".targets.md")]
