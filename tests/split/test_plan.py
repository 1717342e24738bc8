"""Latency models and the choice of a cut: fitted on hand-made profiles of known cost, the cut
chosen for links and devices whose answer is known, the plan's files; one `make_plan` on the
trained run, whose profile is measured once and then reused."""

import csv
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from zoo.errors import ConfigError
from zoo.split.energy import phone_energy
from zoo.split.latency_model import LatencyModel, errors, fit
from zoo.split.link import Link
from zoo.split.plan import choose, estimate, write_plan
from zoo.split.profile import Profile, UnitFacts, measured_cuts

FRAME = 64 * 64 * 3
LABELS = 64 * 64
OPS = ("CONV_2D 1x1", "DEPTHWISE_CONV_2D")
# ms per million MACs by op type, ms per MB read and written, ms per unit
DEVICE = ({"CONV_2D 1x1": 0.8, "DEPTHWISE_CONV_2D": 3.0}, 0.05, 0.02)
SERVER = ({"CONV_2D 1x1": 0.2, "DEPTHWISE_CONV_2D": 0.5}, 0.01, 0.005)


def unit_cost(unit, coef):
    per_mmac, per_mb, per_op = coef
    return (per_mmac[unit.op] * unit.macs / 1e6 + per_mb * (unit.in_bytes + unit.out_bytes) / 1e6
            + per_op)


def synthetic_profile(count=24, every=1, seed=0):
    """`count` units of random size whose halves cost exactly `DEVICE` and `SERVER`; the cuts
    not in `measured_cuts(count + 1, every)` left unmeasured (None), as `measure` leaves them."""
    rng = np.random.default_rng(seed)
    units = [UnitFacts(OPS[i % 2], f"layer_{i}", int(rng.integers(100_000, 5_000_000)),
                       int(rng.integers(10_000, 1_000_000)), int(rng.integers(10_000, 1_000_000)),
                       int(rng.integers(100, 10_000))) for i in range(count)]
    device = np.concatenate([[0.0], np.cumsum([unit_cost(u, DEVICE) for u in units])])
    server = np.concatenate([np.cumsum([unit_cost(u, SERVER) for u in units][::-1])[::-1], [0.0]])
    kept = set(measured_cuts(count + 1, every))
    profile = make_profile([FRAME, *rng.integers(1_000, 50_000, count - 1).tolist(), 0],
                           [float(t) if k in kept else None for k, t in enumerate(device)],
                           [float(t) if k in kept else None for k, t in enumerate(server)],
                           units)
    return profile, list(device), list(server)


def make_profile(values, device_ms, server_ms, units=None):
    n = len(values)
    names = ["input", *[f"cut{k}" for k in range(1, n - 1)], "output"]
    units = units or [UnitFacts("CONV_2D 1x1", names[k + 1], 1000, 4000, 4000, 10)
                      for k in range(n - 1)]
    return Profile(cuts=names, ops=["", *[u.op for u in units[:-1]], ""], values=list(values),
                   image_shape=[1, 64, 64, 3], output_shape=[1, 64, 64], units=units,
                   device_ms=list(device_ms), server_ms=list(server_ms), threads_device=1,
                   threads_server=2, runs=20, cpu="test cpu", extra={})


def cumulative(per_unit):
    return [0.0, *np.cumsum(per_unit).tolist()]


def remaining(per_unit):
    return [*np.cumsum(per_unit[::-1])[::-1].tolist(), 0.0]


def test_fit_recovers_the_costs_of_each_op_type():
    profile, device, server = synthetic_profile()
    for side, coef, truth in (("device", DEVICE, device), ("server", SERVER, server)):
        model = fit(profile, side, fitted_on="synthetic")
        assert model.side == side and model.fitted_on == "synthetic" and model.cpu == "test cpu"
        assert model.threads == (1 if side == "device" else 2)
        assert model.per_mmac == pytest.approx(coef[0], rel=1e-3)
        assert (model.per_mb, model.per_op) == pytest.approx(coef[1:], rel=1e-3)
        predicted = model.cumulative(profile.units)
        assert len(predicted) == len(profile.cuts)
        np.testing.assert_allclose(predicted, truth, rtol=0.01, atol=1e-9)
        err = errors(model, profile, side)
        assert err["cuts"] == len(profile.cuts)
        assert err["total_ms"] == pytest.approx(max(truth))
        assert err["median_pct"] < 0.01 and err["max_pct"] < 0.01
        assert err["loo_median_pct"] < 0.01 and err["loo_max_pct"] < 0.01
        again = LatencyModel.from_dict(json.loads(json.dumps(model.to_dict())))
        assert again.cumulative(profile.units) == pytest.approx(predicted)


def test_fit_with_gaps_predicts_the_cuts_not_measured():
    profile, device, server = synthetic_profile(every=4)
    measured = [k for k, t in enumerate(profile.device_ms) if t is not None]
    assert measured == [0, 4, 8, 12, 16, 20, 24]
    assert [k for k, t in enumerate(profile.server_ms) if t is not None] == measured
    for side, truth in (("device", device), ("server", server)):
        model = fit(profile, side)
        predicted = model.cumulative(profile.units)
        np.testing.assert_allclose(predicted, truth, rtol=0.01, atol=1e-9)
        err = errors(model, profile, side)
        assert err["cuts"] == len(measured) and err["max_pct"] < 0.01


def test_errors_report_a_model_that_does_not_fit():
    profile, device, _ = synthetic_profile()
    slow = LatencyModel("device", {op: 2 * c for op, c in DEVICE[0].items()}, 2 * DEVICE[1],
                        2 * DEVICE[2])
    err = errors(slow, profile, "device")
    assert err["max_pct"] == pytest.approx(100.0, rel=1e-6)  # twice the time at the last cut
    assert 0 < err["median_pct"] < 100
    assert "loo_median_pct" in err  # refits on the profile itself


def test_an_op_type_never_fitted_costs_the_mean_slope():
    model = LatencyModel("device", {"CONV_2D 1x1": 1.0, "DEPTHWISE_CONV_2D": 3.0}, 0.0, 0.5)
    unit = UnitFacts("TRANSPOSE_CONV", "up", 2_000_000, 0, 0, 0)
    assert model.unit_ms(unit) == pytest.approx(2.0 * 2 + 0.5)


# A middle cut (cut3) sends 10 values; the device is cheap up to it and slow after it.
VALUES = [FRAME, 40_000, 30_000, 10, 20_000, 0]
TIMES = {"device": cumulative([1, 1, 1, 50, 50]), "server": remaining([0.1] * 5)}
LINK = Link("8/8mbps-10ms", 8.0, 8.0, 10.0)


def test_a_middle_cut_with_a_tiny_transfer_is_chosen():
    profile = make_profile(VALUES, TIMES["device"], TIMES["server"])
    rows = estimate(profile, TIMES, LINK, transfer="int8", radio="wifi")
    assert [r.cut for r in rows] == ["input", "cut1", "cut2", "cut3", "cut4", "output"]
    best = choose(rows, "latency")
    assert best.cut == "cut3" and best.index == 3
    # cut3 by hand: 3 ms device, 10 B up at 8 Mbit/s, RTT 10, 0.2 ms server, 4096 B down
    assert (best.up_bytes, best.down_bytes) == (10, LABELS)
    assert best.upload_ms == pytest.approx(0.01) and best.download_ms == pytest.approx(4.096)
    assert best.total_ms == pytest.approx(3 + 0.01 + 10 + 0.2 + 4.096)
    assert rows[0].up_bytes == FRAME and rows[0].device_ms == 0  # the uint8 frame, all-server
    assert (rows[-1].up_bytes, rows[-1].down_bytes, rows[-1].rtt_ms, rows[-1].server_ms) == (
        0, 0, 0, 0)
    assert rows[-1].total_ms == pytest.approx(103)
    float32 = estimate(profile, TIMES, LINK, transfer="float32", radio="wifi")
    assert [r.up_bytes for r in float32] == [FRAME, 160_000, 120_000, 40, 80_000, 0]
    for r in rows:
        assert r.total_ms == pytest.approx(r.device_ms + r.upload_ms + r.rtt_ms + r.server_ms
                                           + r.download_ms)
        energy = phone_energy(LINK, r.device_ms, r.up_bytes, r.down_bytes,
                              r.server_ms + r.rtt_ms, radio="wifi")
        assert r.energy_mj == pytest.approx(energy.total_mj) and r.energy["estimated"]


def test_a_very_slow_link_keeps_everything_on_the_device():
    profile = make_profile(VALUES, TIMES["device"], TIMES["server"])
    slow = Link("slow", 0.01, 0.01, 2000.0)
    assert choose(estimate(profile, TIMES, slow, transfer="int8", radio="3g")).cut == "output"


def test_a_fast_link_and_a_slow_device_send_the_frame():
    profile = make_profile(VALUES, TIMES["device"], TIMES["server"])
    fast = Link("fast", 10_000.0, 10_000.0, 0.1)
    rows = estimate(profile, TIMES, fast, transfer="int8", device_slowdown=100, radio="wifi")
    assert choose(rows).cut == "input"
    assert rows[-1].device_ms == pytest.approx(103 * 100)
    # a loaded server brings it back to the device
    loaded = estimate(profile, TIMES, fast, transfer="int8", server_load=10_000, radio="wifi")
    assert choose(loaded).cut == "output"


def test_energy_can_choose_another_cut_than_latency():
    # All-device: 100 ms of compute (750 mW). All-server: 110 ms RTT + 5 ms server, waiting
    # at the Wi-Fi radio's base power (133 mW): slower, but cheaper for the phone.
    times = {"device": [0.0, 90.0, 100.0], "server": [5.0, 4.0, 0.0]}
    profile = make_profile([FRAME, 1_000_000, 0], times["device"], times["server"])
    link = Link("100/100mbps-110ms", 100.0, 100.0, 110.0)
    rows = estimate(profile, times, link, transfer="int8", radio="wifi")
    assert choose(rows, "latency").cut == "output"
    assert choose(rows, "energy").cut == "input"
    assert rows[0].total_ms > rows[-1].total_ms and rows[0].energy_mj < rows[-1].energy_mj
    assert rows[-1].energy_mj == pytest.approx(75.0)  # 750 mW x 100 ms
    with pytest.raises(ConfigError, match=r"^--objective must be one of latency, energy, got "
                                          r"'speed'$"):
        choose(rows, "speed")


def test_write_plan_writes_the_four_files(tmp_path):
    profile = make_profile(VALUES, TIMES["device"], TIMES["server"])
    rows = estimate(profile, TIMES, LINK, transfer="int8", radio="wifi")
    measured = estimate(profile, {"device": cumulative([1, 1, 1, 40, 40]),
                                  "server": TIMES["server"]}, LINK, transfer="int8",
                        radio="wifi")
    chosen = choose(rows)
    facts = {"run_id": "tiny-run", "link": LINK.__dict__, "transfer": "int8",
             "objective": "latency", "device_slowdown": 1.0, "server_load": 1.0,
             "times": "predicted", "cpu": "test cpu"}
    out = tmp_path / "plan"
    result = write_plan(out, rows, chosen, facts, measured)
    assert sorted(p.name for p in out.iterdir()) == ["plan.csv", "plan.json", "plan.md",
                                                     "plan.png"]
    saved = json.loads((out / "plan.json").read_text())
    assert saved == json.loads(json.dumps(result))
    assert saved["chosen"]["cut"] == "cut3" and saved["run_id"] == "tiny-run"
    assert [r["cut"] for r in saved["rows"]] == profile.cuts
    assert len(saved["measured_rows"]) == len(rows)
    table = list(csv.DictReader((out / "plan.csv").read_text().splitlines()))
    assert [r["cut"] for r in table] == profile.cuts
    assert float(table[3]["total_ms"]) == pytest.approx(chosen.total_ms)
    assert float(table[4]["measured_total_ms"]) == pytest.approx(measured[4].total_ms)
    md = (out / "plan.md").read_text()
    assert "**Chosen cut: `cut3`** (#3)" in md
    assert "| 3 | cut3 **<-** |" in md and md.count("**<-**") == 1
    assert f"Measured ({len(rows)} of {len(rows)} cuts): best `cut3`" in md
    with Image.open(out / "plan.png") as png:
        assert png.format == "PNG" and png.size[0] > 0 and png.size[1] > 0
        png.verify()


@pytest.fixture
def fake_run(tmp_path, monkeypatch):
    """A run folder whose profile is a hand-made one: `make_plan` without any conversion."""
    import zoo.split.cli

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("")
    asked = {}

    def use(profile):
        def cached_profile(run_dir, **settings):
            asked.update(settings, run_dir=run_dir)
            return profile
        monkeypatch.setattr(zoo.split.cli, "cached_profile", cached_profile)
        return asked

    return run, use


def test_make_plan_chooses_on_the_fitted_models(fake_run, tmp_path, capsys):
    from zoo.split.cli import make_plan

    run, use = fake_run
    profile, device, server = synthetic_profile(every=4)
    asked = use(profile)
    out = tmp_path / "plan"
    plan = make_plan(run=str(run), link="lte", transfer="float16", every=4, runs=5,
                     threads_server=2, out=str(out))
    assert asked == {"threads_device": 1, "threads_server": 2, "every": 4, "runs": 5,
                     "reprofile": False, "run_dir": run}
    expected = choose(estimate(profile, {"device": device, "server": server},
                               Link("lte", 5.85, 13.0, 70.0), transfer="float16"))
    assert plan["chosen"]["cut"] == expected.cut
    assert plan["chosen"]["total_ms"] == pytest.approx(expected.total_ms, rel=0.01)
    assert (plan["cuts"], plan["measured_cuts"], plan["times"]) == (25, 7, "predicted")
    assert plan["prediction_error"]["device"]["max_pct"] < 0.01
    assert plan["latency_models"]["device"]["per_mmac"] == pytest.approx(DEVICE[0], rel=1e-3)
    assert (out / "plan.md").is_file() and f"plan: {out / 'plan.md'}" in capsys.readouterr().out
    # The models fitted here plan another run: its own figures are what they predict.
    other, _, _ = synthetic_profile(seed=1)
    use(other)
    again = make_plan(run=str(run), link="lte", transfer="float16", latency_model=str(out),
                      out=str(tmp_path / "again"))
    assert again["latency_models"] == plan["latency_models"]
    assert again["prediction_error"]["device"]["max_pct"] < 0.01  # the same costs


@pytest.mark.parametrize("kwargs, message", [
    ({"objective": "speed"}, r"^--objective must be one of latency, energy, got 'speed'$"),
    ({"transfer": "int4"}, r"^--transfer must be one of float32, float16, int8, got 'int4'$"),
    ({"link": "5g"}, r"^--link must be wifi, lte, 3g, BW,RTT or UP/DOWN,RTT"),
    ({"every": 0}, r"^--every must be an integer"),
    ({"device_slowdown": 0}, r"^--device-slowdown must be a finite number"),
    ({"latency_model": "missing.json"}, r"^--latency-model missing.json: expected a "
                                        r"latency_model.json written by `split.py plan`"),
], ids=["objective", "transfer", "link", "every", "slowdown", "latency-model"])
def test_make_plan_refuses_bad_arguments_before_anything(fake_run, tmp_path, kwargs, message):
    from zoo.split.cli import make_plan

    run, use = fake_run
    asked = use(make_profile(VALUES, TIMES["device"], TIMES["server"]))
    with pytest.raises(ConfigError, match=message) as info:
        make_plan(run=str(run), out=str(tmp_path / "plan"), **kwargs)
    assert "\n" not in str(info.value)
    assert asked == {} and not (tmp_path / "plan").exists()


def test_the_measured_best_is_a_measured_cut(fake_run, tmp_path):
    from zoo.split.cli import make_plan

    run, use = fake_run
    # Two op types of known cost; cut 5 (tiny transfer, cheap device side) is the best and
    # the only one not measured.
    rng = np.random.default_rng(3)
    units = [UnitFacts(OPS[0] if k < 5 else OPS[1], f"layer_{k}",
                       int(rng.integers(500_000, 2_000_000)), 0, 0, 0) for k in range(8)]
    device_cost = {OPS[0]: 1.0, OPS[1]: 50.0}
    server_cost = {OPS[0]: 30.0, OPS[1]: 1.0}
    device = cumulative([device_cost[u.op] * u.macs / 1e6 for u in units])
    server = remaining([server_cost[u.op] * u.macs / 1e6 for u in units])
    profile = make_profile([FRAME, *[10**7] * 4, 10, *[10**7] * 2, 0],
                           [None if k == 5 else t for k, t in enumerate(device)],
                           [None if k == 5 else t for k, t in enumerate(server)], units)
    use(profile)
    plan = make_plan(run=str(run), link="wifi", out=str(tmp_path / "plan"))
    assert plan["chosen"]["cut"] == "cut5"  # predicted: right
    measured = [profile.cuts[k] for k, t in enumerate(profile.device_ms) if t is not None]
    assert plan["measured_best"]["cut"] in measured


EVERY = 23


@pytest.fixture
def run_copy(trained_run, tmp_path):
    """The trained run copied, so that its profile and plans are written into the copy."""
    _, run_dir = trained_run
    return shutil.copytree(run_dir, tmp_path / run_dir.name,
                           ignore=shutil.ignore_patterns("split", "tensorboard", "last.keras"))


def test_make_plan_measures_once_and_reuses_the_profile(run_copy, tmp_path, monkeypatch,
                                                         capsys):
    import zoo.split.profile
    from zoo.split.cli import make_plan

    out = tmp_path / "plan"
    # every=23 of 47 cuts: input, one in the encoder's middle, output (4 conversions)
    plan = make_plan(run=str(run_copy), link="wifi", every=EVERY, runs=3, out=str(out))
    cuts = [r["cut"] for r in plan["rows"]]
    assert cuts[0] == "input" and cuts[-1] == "output" and len(cuts) == plan["cuts"]
    assert plan["chosen"]["cut"] in cuts
    assert plan["measured_best"]["cut"] in cuts
    assert plan["measured_cuts"] == len(measured_cuts(len(cuts), EVERY)) == 3
    assert plan["chosen_vs_measured_best"] >= 1.0
    for side in ("device", "server"):
        err = plan["prediction_error"][side]
        assert err["cuts"] == plan["measured_cuts"] and err["max_pct"] >= err["median_pct"] >= 0
    assert {p.name for p in out.iterdir()} == {"plan.json", "plan.csv", "plan.md", "plan.png",
                                               "latency_model.json"}
    assert json.loads((out / "plan.json").read_text())["chosen"] == plan["chosen"]
    assert f"**Chosen cut: `{plan['chosen']['cut']}`**" in (out / "plan.md").read_text()
    assert set(json.loads((out / "latency_model.json").read_text())) == {"device", "server"}
    [cache] = (run_copy / "split").glob("profile-*.json")
    assert cache.name == f"profile-d1-s1-e{EVERY}-r3.json"
    assert f"cut {plan['chosen']['cut']} " in capsys.readouterr().out

    def no_conversion(*args, **kwargs):
        raise AssertionError("the profile was measured again")

    monkeypatch.setattr(zoo.split.profile, "measure", no_conversion)
    again = make_plan(run=str(run_copy), link="3g", objective="energy", every=EVERY, runs=3,
                      out=str(tmp_path / "again"))
    assert [r["cut"] for r in again["rows"]] == cuts
    assert again["latency_models"] == plan["latency_models"]  # the same measured profile
    assert again["link"]["name"] == "3g" and again["objective"] == "energy"
    # a profile of another checkpoint is not reused (and the patch is what would run)
    data = json.loads(cache.read_text())
    device_ms = data["profile"]["device_ms"]
    assert [k for k, t in enumerate(device_ms) if t is not None] == [0, EVERY, 2 * EVERY]
    assert device_ms[0] == 0 and device_ms[EVERY] > 0 and device_ms[2 * EVERY] > 0
    cache.write_text(json.dumps({**data, "checkpoint": "0" * 16}))
    with pytest.raises(AssertionError, match="measured again"):
        make_plan(run=str(run_copy), every=EVERY, runs=3, out=str(tmp_path / "other"))
    assert not (tmp_path / "other").exists()
