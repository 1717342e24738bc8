"""The plan against the truth (`zoo.split.compare`): which cuts must be measured end to end
(hand-made plans), and a whole comparison on the tiny run over an emulated link, whose best
cut is the fastest measured and beats every cut left out by their bounds."""

import json
import shutil

import pytest

from zoo.errors import ConfigError
from zoo.split.compare import (
    BOUND_MARGIN,
    SHORTLIST,
    bounds,
    compare,
    left_out,
    parse_links,
    shortlist,
)
from zoo.split.emulate import EmulationUnavailable
from zoo.split.link import PRESETS, Link


def row(cut, device, server, transfer, rtt=10.0):
    return {"cut": cut, "device_ms": device, "server_ms": server, "upload_ms": transfer,
            "rtt_ms": rtt, "download_ms": 0.0, "total_ms": device + server + transfer + rtt}


def plan_of(rows, measured_at, chosen):
    """A plan as `make_plan` returns it: predicted rows, measured rows where timed."""
    return {"rows": rows, "measured_rows": [r if i in measured_at else None
                                            for i, r in enumerate(rows)],
            "chosen": next(r for r in rows if r["cut"] == chosen)}


ROWS = [row("input", 0, 50, 40), row("a", 5, 45, 80), row("b", 10, 30, 10),
        row("c", 20, 20, 12), row("d", 40, 5, 100), row("output", 60, 0, 0, rtt=0.0)]


def test_bounds_use_the_measured_parts_or_the_neighbours():
    plan = plan_of(ROWS, measured_at={0, 1, 3, 5}, chosen="b")
    got = bounds(plan)
    assert got[0] == ROWS[0]["total_ms"] and got[3] == ROWS[3]["total_ms"]
    # b: a's device time (before it), c's server time (after it), its own transfer and RTT.
    assert got[2] == 5 + 20 + 10 + 10
    # d: c's device time, output's server time (0), its own transfer and RTT.
    assert got[4] == 20 + 0 + 100 + 10
    assert bounds(plan_of(ROWS, measured_at={1, 2}, chosen="b"))[0] is None  # nothing before


def test_the_shortlist_holds_the_ends_the_plan_and_the_near_best():
    plan = plan_of(ROWS, measured_at=set(range(6)), chosen="d")
    totals = [r["total_ms"] for r in ROWS]  # 100, 140, 60, 62, 155, 60
    cuts = shortlist(plan, totals)
    near = {r["cut"] for r, t in zip(ROWS, totals, strict=True) if t <= SHORTLIST * 60}
    assert near == {"b", "c", "output"}
    assert cuts == ["input", "b", "c", "d", "output"]  # in cut order, "a" left out


def test_a_cut_left_out_must_be_slower_than_the_best_by_its_bound():
    plan = plan_of(ROWS, measured_at=set(range(6)), chosen="b")
    totals = [r["total_ms"] for r in ROWS]
    measured = {"input", "b", "output"}
    # c's bound is 62: it could beat a best of 60 / 0.8 = 75 but not one of 62 * 0.8 or less.
    assert left_out(plan, totals, measured, best_ms=62 / BOUND_MARGIN + 1) == ["c"]
    assert left_out(plan, totals, measured, best_ms=62 * BOUND_MARGIN) == []
    unknown = [None if r["cut"] == "a" else t for r, t in zip(ROWS, totals, strict=True)]
    assert left_out(plan, unknown, measured | {"c"}, best_ms=1.0) == ["a"]  # no bound: measure


def test_links_parse_presets_and_pairs():
    assert parse_links("wifi,lte") == [PRESETS["wifi"], PRESETS["lte"]]
    assert parse_links("3g,8,40,lte") == [PRESETS["3g"], Link("8/8mbps-40ms", 8, 8, 40),
                                         PRESETS["lte"]]
    assert parse_links(["wifi", "2/4", "100"]) == [PRESETS["wifi"],
                                                  Link("2/4mbps-100ms", 2, 4, 100)]
    with pytest.raises(ConfigError, match=r"^--links must be wifi, lte, 3g"):
        parse_links("wifi,fast")
    with pytest.raises(ConfigError, match=r"^--links must name at least one link"):
        parse_links([])


def test_compare_on_the_tiny_run(trained_run, tmp_path):
    _, run_dir = trained_run
    # A copy: compare caches its pairs and the profile in <run>/split/, and the session's run
    # is only read.
    run_copy = shutil.copytree(run_dir, tmp_path / run_dir.name,
                               ignore=shutil.ignore_patterns("split", "tensorboard", "last.keras"))
    out = tmp_path / "compare"
    try:
        # every=23 of 47 cuts: input, one in the encoder's middle, output are profiled; the
        # others are bounded by their neighbours
        result = compare(str(run_copy), "20,20", images_per_cut=2, runs=3, every=23,
                         out=str(out), radio="wifi")
    except EmulationUnavailable as exc:
        pytest.skip(str(exc))
    assert json.loads((out / "compare.json").read_text()) == result
    assert (out / "compare.png").read_bytes().startswith(b"\x89PNG")
    assert "| 20/20mbps-20ms |" in (out / "compare.md").read_text()
    assert result["device"]["slowdown"] == 1.0 and result["device_fraction"] is None
    [line] = result["links"].values()
    measured = line["measured"]
    assert {"input", "output", line["planned"]} <= set(measured)
    assert all(m["images"] >= 1 and m["median_ms"] > 0 for m in measured.values())
    assert line["best"] == min(measured, key=lambda c: measured[c]["median_ms"])
    assert line["planned_over_best"] == pytest.approx(
        measured[line["planned"]]["median_ms"] / measured[line["best"]]["median_ms"])
    assert line["planned_over_best"] >= 1.0
    best_ms = measured[line["best"]]["median_ms"]
    if line["complete"]:
        for cut, bound in line["bounds"].items():
            if cut not in measured and cut not in line["refused"]:
                assert bound is not None and BOUND_MARGIN * bound >= best_ms, cut
    assert measured["input"]["request_ms"] >= 20.0  # the RTT
    assert measured["output"]["request_ms"] == 0.0
    assert all(m["energy_mj"] > 0 for m in measured.values())
    cached = {p.name for p in (run_copy / "split" / "compare-halves").iterdir()}
    assert cached >= {"input", "output"}  # exported once, into the run
