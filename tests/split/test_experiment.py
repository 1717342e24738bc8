"""Split computing end to end over a real emulated link (`zoo.split.experiment`): the server,
the delay proxy and `split.py run` inside a shaped namespace; a rate change and a load client
while the client runs; experiment.json and adapt.png; nothing left behind.

Times are only bounded from below (a request cannot beat the RTT, nor the shaped rate), never
from above, so a busy machine cannot fail them. Where this machine cannot make a namespace (or
a CPU quota), the test skips with the one-line reason.
"""

import contextlib
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from zoo.errors import ConfigError
from zoo.split.emulate import EmulationUnavailable, ShapedNamespace
from zoo.split.experiment import parse_schedule, run_emulated
from zoo.split.link import Link, parse_link

MID = "conv_pw_7_relu"  # in mobileunet's encoder: three skips and its own output cross
LINK = parse_link("2,40")
IMAGES, REPEAT = 6, 2  # the tiny run has 8 validation images
CHANGE_S, FAST_MBPS = 2.0, 20.0
REPO = Path(__file__).resolve().parents[2]

# Inside a namespace: sends n bytes to a sink of its own, says "go" once sending, "done" at the end.
TRANSFER = """
import socket, sys, threading
n = int(sys.argv[1])
server = socket.socket()
server.bind(("127.0.0.1", 0))
server.listen(1)
received = []
def sink():
    connection, _ = server.accept()
    total = 0
    while chunk := connection.recv(65536):
        total += len(chunk)
    received.append(total)
reader = threading.Thread(target=sink)
reader.start()
sender = socket.create_connection(server.getsockname())
print("go", flush=True)
sender.sendall(b"x" * n)
sender.shutdown(socket.SHUT_WR)
reader.join()
print("done", received[0], flush=True)
"""


@pytest.fixture(scope="module")
def folders(split_pairs):
    """The tiny run exported at a mid cut (int8 transfer) and at the input (all on the
    server); every folder carries full.tflite, the client's all-device choice (shared, read
    only: tests/split/conftest.py)."""
    _, pairs = split_pairs
    return [pairs[cut]["folder"] for cut in (MID, "input")]


def netns_names():
    listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return {line.split()[0] for line in listing.splitlines() if line.strip()}


def emulated(*args, **kwargs):
    """`run_emulated`, or a skip saying why this machine cannot emulate."""
    try:
        return run_emulated(*args, **kwargs)
    except EmulationUnavailable as exc:
        pytest.skip(str(exc))


def check_outputs(result, out):
    """What every experiment must leave: experiment.json as returned, every image in it, a
    PNG figure, and its namespace gone."""
    assert json.loads((out / "experiment.json").read_text()) == result
    assert result["client"]["summary"]["images"] == IMAGES * REPEAT
    assert [row["image"] for row in result["timeline"]] == list(range(1, IMAGES * REPEAT + 1))
    png = (out / "adapt.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000
    assert result["emulated"]["namespace"] not in netns_names()
    assert result["clock"]["t0"].startswith("the client's first byte")  # seen on the qdisc


def test_a_fixed_cut_over_a_slow_link_that_gets_faster(folders, tmp_path):
    out = tmp_path / "fixed"
    result = emulated(folders, LINK, images=IMAGES, repeat=REPEAT, cut=MID,
                      schedule=[(CHANGE_S, FAST_MBPS)], out=out)
    check_outputs(result, out)
    shaping = result["emulated"]["shaping"]
    assert (shaping["up_mbps"], shaping["down_mbps"]) == (LINK.uplink_mbps, LINK.downlink_mbps)
    [change] = result["events"]
    assert change["applied"] and change["qdisc_up_mbps"] == change["qdisc_down_mbps"] == FAST_MBPS
    assert f"rate {FAST_MBPS:g}Mbit" in change["qdisc"]  # tc's own words
    assert change["t_s"] >= CHANGE_S
    assert result["fallbacks"] == {}
    rows = result["timeline"]
    assert {row["cut"] for row in rows} == {MID}
    assert all(row["request_ms"] >= LINK.rtt_ms for row in rows)
    assert result["client"]["warm_up"]["rtt_ms"] >= LINK.rtt_ms
    # Requests wholly before the change were shaped at 2 Mbit/s: every byte up, then every
    # byte down, at the rate, less at most each way's burst (10 ms of the rate).
    up, down = rows[0]["up_bytes"], 64 * 64
    slow = [row for row in rows if row["t_s"] + row["total_ms"] / 1e3 < change["t_s"]]
    for row in slow:
        assert row["request_ms"] >= (up * 8 / (LINK.uplink_mbps * 1e3)
                                     + down * 8 / (LINK.downlink_mbps * 1e3) - 20)
    assert result["per_cut"][MID]["min_request_ms"] >= LINK.rtt_ms


def test_adaptive_client_on_a_slow_device_with_a_load_client(folders, tmp_path):
    out = tmp_path / "adaptive"
    result = emulated(folders, LINK, images=IMAGES, repeat=REPEAT, device_fraction=0.5,
                      load_client_at=0.0, out=out)
    check_outputs(result, out)
    assert set(result["per_cut"]) <= {MID, "input", "all-device"}
    assert result["fallbacks"] == {}
    [load] = result["events"]
    assert load["kind"] == "load" and load["applied"] and load["model"].startswith(
        "mobileunet-input-")
    assert load["answered"] is not None and load["refused"] == 0 and load["failed"] == 0
    device = result["device"]
    assert device["fraction"] == 0.5 and not Path(device["cgroup"]).exists()
    assert device["quota_ms"] == pytest.approx(0.5 * device["period_ms"])
    assert device["device_full_ms"] > 0 and device["server_full_ms"] > 0
    assert device["device_over_server"] == pytest.approx(
        device["device_full_ms"] / device["server_full_ms"])
    assert all(row["request_ms"] >= LINK.rtt_ms for row in result["timeline"]
               if row["request_ms"] > 0)


def test_lowering_the_rate_mid_transfer_does_not_stall_the_link():
    """Without one TCP segment per packet (`ShapedNamespace` sets it), a GSO packet of up to
    62.5 KB queued at 50 Mbit/s (the burst: 10 ms of the rate) never fits the 5 Mbit/s burst
    (6.25 KB) and the qdisc stops for good (seen here: two tries of two). The transfer takes
    about 4 s once cut to 5 Mbit/s; the generous timeout only tells a stall from slowness."""
    with contextlib.ExitStack() as stack:
        try:
            namespace = stack.enter_context(ShapedNamespace(Link("drop", 50.0, 50.0, 0.0)))
        except EmulationUnavailable as exc:
            pytest.skip(str(exc))
        assert "gso_max_segs 1" in namespace.run(["ip", "-d", "link", "show", "lo"],
                                                 capture_output=True, text=True).stdout
        sender = namespace.popen([sys.executable, "-c", TRANSFER, 3_000_000],
                                 stdout=subprocess.PIPE, text=True)
        assert sender.stdout.readline() == "go\n"
        time.sleep(0.1)  # sending at 50 Mbit/s by now
        namespace.set_rate(5.0)
        out, _ = sender.communicate(timeout=120)
        assert out == "done 3000000\n"
    assert namespace.name not in netns_names()


@pytest.mark.parametrize(("value", "expected"), [
    (None, []), ("", []),
    ("10:2,20:20", [(10.0, 2.0), (20.0, 20.0)]),
    ("20:20, 0:1.5", [(0.0, 1.5), (20.0, 20.0)]),
    (("10:2", "20:20"), [(10.0, 2.0), (20.0, 20.0)]),  # Fire's tuple
    ([[10, 2]], [(10.0, 2.0)]),
])
def test_schedule_forms(value, expected):
    assert parse_schedule(value) == expected


@pytest.mark.parametrize("value", ["10", "10:2,x", "10:0", "-1:2", "10:2:3", "a:b", "10:inf",
                                   10, [[10]]])
def test_a_schedule_that_does_not_parse_is_one_line(value):
    with pytest.raises(ConfigError, match=r"^--schedule must be SECONDS:MBITS") as info:
        parse_schedule(value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"link": "5g"}, "--link must be"),
    ({"images": 0}, "--images must be an integer >= 1"),
    ({"repeat": 1.5}, "--repeat must be an integer"),
    ({"rtt_ms": -1}, "--rtt-ms must be a finite number >= 0"),
    ({"device_fraction": 0}, "--device-fraction must be a finite number > 0"),
    ({"load_client_at": "soon"}, "--load-at must be a finite number >= 0"),
    ({"schedule": "10;2"}, "--schedule must be"),
    ({"cut": "conv_pw_1_relu"}, "--cut must be one of conv_pw_7_relu, input, all-device, every"),
    ({"folders": "/nonexistent/a"}, "--artifacts: /nonexistent/a/split.json: not found"),
    ({"folders": None}, "--artifacts is required"),
    ({"out": None}, "--out is required"),
])
def test_bad_input_is_refused_before_anything_is_made(folders, tmp_path, kwargs, message):
    arguments = {"folders": folders, "link": LINK, "out": tmp_path / "out", **kwargs}
    before = netns_names()
    with pytest.raises(ConfigError, match=f"^{message}") as info:
        run_emulated(arguments.pop("folders"), arguments.pop("link"), **arguments)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "out").exists() and netns_names() <= before


def test_the_command_line_says_what_is_wrong_in_one_line(folders, tmp_path):
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "zoo.split.experiment", "--artifacts", ",".join(folders),
         "--link", "lte", "--schedule", "10:fast", "--out", str(out)],
        capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: --schedule must be SECONDS:MBITS[,SECONDS:MBITS...] (e.g. 10:2,20:20: 2 Mbit/s "
        "from 10 s after the client's first request, 20 Mbit/s from 20 s; seconds >= 0, "
        "Mbit/s > 0), got '10:fast'"]
    assert not out.exists()
