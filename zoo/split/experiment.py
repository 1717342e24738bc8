"""Split computing end to end over a real emulated link, and the client adapting to it.

Example::

    result = run_emulated(["S/conv_pw_13_relu", "S/input"], parse_link("lte"), images=100,
                          schedule=[(10, 1.1), (25, 13)], load_client_at=40, out="exp")
    result["client"]["summary"]             # median and p90 ms, images per cut, fallbacks
    result["device"]["device_over_server"]  # the whole model's time on the device / server

    python -m zoo.split.experiment --artifacts S/conv_pw_13_relu,S/input --link lte \\
        --images 100 --schedule 10:1.1,25:13 --load-at 40 --device-fraction 0.25 --out exp

(S: ``<run>/split``, folders of `split.py export`.) Everything runs in one `ShapedNamespace`
whose link is the delay proxy's port (`PROXY_PORT`): what the phone sends to it is shaped at
the uplink rate, what it receives from it at the downlink rate, each byte once:

- the server, ``python -m zoo.split.server --artifacts A,B,...`` (every folder's server half);
- a `DelayProxy` in front of it (`ProxyProcess`) adding the link's round-trip time;
- the phone, ``python split.py run --artifacts A,B,... --url http://127.0.0.1:<proxy>``,
  unchanged: it runs the device halves, sends through the proxy and re-plans the cut per image
  from the bandwidth and the server load it observes (`zoo.split.client`). With
  ``device_fraction`` the whole process runs under a `DeviceSpeed` CPU quota (its start-up
  too, which is slower by as much), so the device halves run at a phone-like share of one
  core. The ratio is stated as measured (``device``: the whole model's time on the device and
  on the server at warm-up): a quota slows only work longer than itself (CFS runs a cgroup at
  full speed until its quota for the period is used), so a device half of a millisecond or two
  is not slowed at all, and experiment.json says so (``device.warning``);
- with ``load_client_at``, a load client: `LOAD_THREADS` threads sending the server half that
  does the most (the lowest cut index, ``input`` when given) zeros as inputs, straight to the
  server (no proxy, so not over the phone's link: other phones' traffic reaches the server
  over their own links), each as soon as its previous answer arrives.

**Clock.** t = 0 is the phone's first byte on the link, seen as the uplink class's byte
counter rising (`ShapedNamespace.shaping`): the start of its warm-up (round-trip time and each
server half timed idle, about 15 requests; `SplitClient.warm_up`), a second or so before its
first image. The schedule (``[(seconds, Mbit/s), ...]``: `ShapedNamespace.set_rate` at each,
both directions to that rate) and the load start count from there, so a slow start-up
(imports, a CPU quota) does not use them up. An event not yet due when the phone finishes is
recorded as not applied. Every applied rate is read back from the kernel (``tc class show``)
and recorded.

**Time of each image.** Each record's ``t`` (`Record.t`, time.time() when the client took the
image) on the same clock. Records without it (``t`` 0, from a client before it had the field)
get a derived start: run.json is written right after the last image, so the last image ends at
its modification time and each earlier one ends the later ones' ``total_ms`` before it (the
gaps between images, microseconds, are left out).

**Caveats of the emulation.** The link's rates count TCP/IP headers, as a real link's do, and
`zoo.split.link.request_ms` (RTT + bytes / rate each way, plus the server's compute and queue
time: ``model_request_ms`` beside each remote image's ``request_ms``) does not: expect
requests a few per cent slower than that model, and a little faster where the upload and the
answer overlap. The server runs unthrottled on this machine's cores, shared with the phone's
process and whatever else runs: a loaded server slows the phone too, unless a CPU quota keeps
the phone on less than a core. Times are measured, not modelled: expect noise on a busy
machine.

Writes, in `out`: ``experiment.json`` (the link as set and as read back from the qdisc, the
events, the device/server ratio, the client's summary and warm-up, each image's time, cut and
latencies, medians per cut), ``adapt.png`` (latency, chosen cut, set rate and the client's
estimates over time, the bandwidth changes and the load start marked), ``client/`` (split.py
run's run.json, run.csv, run.png) and the processes' logs (``server.log``, ``client.log``,
``load.log``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from zoo import checks
from zoo.errors import ConfigError
from zoo.split.emulate import REPO, DeviceSpeed, ProxyProcess, ShapedNamespace
from zoo.split.link import Link, parse_link

PROXY_PORT = 9000  # the phone's end of the link; below the ephemeral ports the server gets
LOAD_THREADS = 4  # the load client's requests in flight (the server queues 8 by default)
POLL_S = 0.05  # how often the phone's state and the qdisc are looked at
START_TIMEOUT_S = 300.0  # a server loading its models on a busy machine
ALL_DEVICE, ALL_SERVER = "output", "input"  # zoo.split.cuts' names (it imports TensorFlow)
SCHEDULE_FORM = ("SECONDS:MBITS[,SECONDS:MBITS...] (e.g. 10:2,20:20: 2 Mbit/s from 10 s "
                 "after the client's first request, 20 Mbit/s from 20 s; seconds >= 0, "
                 "Mbit/s > 0)")
_SERVING = re.compile(r"^serving .* on http://[^\s:]+:(\d+)\s*$", re.M)


def parse_schedule(value: Any, flag: str = "--schedule") -> list[tuple[float, float]]:
    """[(seconds, Mbit/s), ...] sorted by time, from ``"10:2,20:20"``, a list of such items
    (what Fire makes of ``10:2,20:20`` in some forms), or a list of pairs; None or "" is no
    change. Anything else is a one-line `ConfigError`."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return []
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise ConfigError(f"{flag} must be {SCHEDULE_FORM}, got {value!r}")
    schedule = []
    for item in items:
        pair = item.split(":") if isinstance(item, str) else item
        try:
            seconds, mbps = (float(str(x).strip()) for x in pair)
        except (TypeError, ValueError):
            raise ConfigError(f"{flag} must be {SCHEDULE_FORM}, got {value!r}") from None
        if not (math.isfinite(seconds) and seconds >= 0 and math.isfinite(mbps) and mbps > 0):
            raise ConfigError(f"{flag} must be {SCHEDULE_FORM}, got {value!r}")
        schedule.append((seconds, mbps))
    return sorted(schedule, key=lambda change: change[0])


def _specs(folders: list[str]) -> list[dict]:
    """Each folder's split.json (read here as JSON: zoo.split.halves imports TensorFlow; the
    server and the client check the files' checksums), and one run for all."""
    specs = []
    for folder in folders:
        path = Path(folder) / "split.json"
        try:
            spec = json.loads(path.read_text())
            spec["cut"], spec["model_name"], spec["run"]  # noqa: B018 - required keys
        except (OSError, ValueError, KeyError, TypeError) as exc:
            why = "not found" if isinstance(exc, FileNotFoundError) else (
                f"not a split.json of `split.py export` ({type(exc).__name__}: {exc})")
            raise ConfigError(f"--artifacts: {path}: {why}") from None
        specs.append(spec)
    runs = {str(spec["run"]) for spec in specs}
    if len(runs) > 1:
        raise ConfigError(f"--artifacts: folders of different runs ({', '.join(sorted(runs))})")
    config = Path(specs[0]["run"]) / "config.yaml"
    if not config.is_file():
        raise ConfigError(f"--artifacts: {config} not found (the run the folders were exported "
                          "from; split.py run reads its validation images)")
    return specs


def _last_line_of(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def _last_line(path: Path) -> str:
    return _last_line_of(path.read_text(errors="replace"))


def _wait_serving(process: subprocess.Popen, log: Path, timeout: float) -> int:
    """The port from the server's ``serving ... on http://HOST:PORT`` line in `log`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = _SERVING.search(log.read_text(errors="replace"))
        if found:
            return int(found[1])
        if process.poll() is not None:
            line = _last_line(log)
            if line.startswith("error: "):  # the server's own one-line refusal
                raise ConfigError(line.removeprefix("error: "))
            raise RuntimeError(f"the server exited with status {process.returncode}: {line} "
                               f"(see {log})")
        time.sleep(POLL_S)
    raise RuntimeError(f"the server did not start within {timeout:g} s (see {log})")


def _load_folder(folders: list[str], specs: list[dict]) -> tuple[str, dict] | None:
    """The folder whose server half does the most: the lowest cut index that has one."""
    remote = [(spec.get("cut_index", 0), folder, spec) for folder, spec in zip(
        folders, specs, strict=True) if spec["cut"] != ALL_DEVICE]
    return min(remote, key=lambda r: r[0])[1:] if remote else None


def run_emulated(folders: Any, link: Any, *, images: int = 50, rtt_ms: float | None = None,
                 device_fraction: float | None = None, schedule: Any = None,
                 load_client_at: float | None = None, out: Any = None, repeat: int = 1,
                 adapt: bool = True, cut: str | None = None,
                 server_threads: int | None = None) -> dict:
    """Serve `folders`, run ``split.py run`` on them through the emulated `link` (a `Link` or
    what `parse_link` takes), change the rate on `schedule` and load the server from
    `load_client_at` seconds (see the module docstring); returns experiment.json's content.

    `rtt_ms` replaces the link's round-trip time; `device_fraction` caps the client at that
    share of one CPU core; `cut` keeps one cut (one of the folders', or all-device) instead
    of re-planning (``every``: each in turn, image by image), `adapt=False` keeps the first
    plan. Raises `EmulationUnavailable` where the namespace (or the CPU quota) cannot be
    made, `ConfigError` for bad input (before anything is created). `server_threads`:
    onnxruntime's intra-op threads per request on the server (its default: all cores)."""
    from zoo.split.server import artifact_folders

    if out is None:
        raise ConfigError("--out is required: the folder for experiment.json and adapt.png")
    out_dir = checks.folder("--out", out)
    if folders is None:
        raise ConfigError("--artifacts is required: folders written by `split.py export`, "
                          "comma-separated")
    folders = [str(Path(f).resolve()) for f in artifact_folders(folders)]
    link = parse_link(link)
    rtt_ms = checks.optional(checks.number)("--rtt-ms", rtt_ms, low=0)
    if rtt_ms is not None:
        link = dataclasses.replace(link, rtt_ms=rtt_ms)
    images = checks.integer("--images", images, low=1)
    repeat = checks.integer("--repeat", repeat, low=1)
    device_fraction = checks.optional(checks.number)("--device-fraction", device_fraction,
                                                     low=0, low_open=True)
    schedule = parse_schedule(schedule)
    load_client_at = checks.optional(checks.number)("--load-at", load_client_at, low=0)
    adapt = checks.boolean("--adapt", adapt)
    server_threads = checks.optional(checks.integer)("--server-threads", server_threads, low=1)
    specs = _specs(folders)
    cuts = [spec["cut"] for spec in specs]
    if len(set(cuts)) < len(cuts):
        raise ConfigError(f"--artifacts: two folders of one cut ({', '.join(cuts)})")
    if cut is not None:
        cut = checks.choice("--cut", str(cut), [*cuts, "all-device", "every"])
    load_target = _load_folder(folders, specs)
    if load_target is None:
        raise ConfigError("--artifacts: no folder with a server half (every folder given is "
                          f"the {ALL_DEVICE} cut)")

    speed = DeviceSpeed(device_fraction) if device_fraction is not None else None
    with speed or contextlib.nullcontext(), ShapedNamespace(link, port=PROXY_PORT) as ns:
        facts = _experiment(ns, speed, folders, specs, out_dir, images=images, repeat=repeat,
                            adapt=adapt, cut=cut, schedule=schedule,
                            load_client_at=load_client_at, load_target=load_target,
                            server_threads=server_threads)
    sizes = {spec["cut"]: (int(spec.get("transfer_bytes", 0)), int(spec.get("result_bytes", 0)))
             for spec in specs}
    quota = {"cgroup": str(speed.parent / speed.name), "quota_ms": speed.quota_us / 1e3,
             "period_ms": speed.period_us / 1e3} if speed else {}
    result = _result(facts, link, ns, sizes=sizes, device_fraction=device_fraction,
                     quota=quota, schedule=schedule, load_client_at=load_client_at)
    from zoo.files import write_bytes_atomic, write_text_atomic

    write_text_atomic(out_dir / "experiment.json", json.dumps(result, indent=2) + "\n")
    write_bytes_atomic(out_dir / "adapt.png", adapt_figure(result))
    summary = result["client"]["summary"]
    cuts_ms = ", ".join(f"{c} {v['images']} x {v['median_ms']:.1f} ms"
                        for c, v in result["per_cut"].items())
    applied = sum(e["applied"] for e in result["events"] if e["kind"] == "rate")
    if "warning" in result["device"]:
        print(f"warning: --device-fraction: {result['device']['warning']}", file=sys.stderr)
    print(f"{link.name}: {summary['images']} images, median {summary['median_ms']:.1f} ms "
          f"({cuts_ms}); rate changes applied {applied} of {len(schedule)}; "
          f"{out_dir / 'experiment.json'}, {out_dir / 'adapt.png'}")
    return result


def _experiment(ns: ShapedNamespace, speed: DeviceSpeed | None, folders: list[str],
                specs: list[dict], out_dir: Path, *, images: int, repeat: int, adapt: bool,
                cut: str | None, schedule: list[tuple[float, float]],
                load_client_at: float | None, load_target: tuple[str, dict] | None,
                server_threads: int | None = None) -> dict:
    """The processes of one experiment inside `ns` (see the module docstring); what happened,
    on the wall clock."""
    out_dir.mkdir(parents=True, exist_ok=True)
    logs = {name: out_dir / f"{name}.log" for name in ("server", "client", "load")}
    for log in logs.values():
        log.unlink(missing_ok=True)
    with open(logs["server"], "w") as log:
        served = [f for f, spec in zip(folders, specs, strict=True) if spec["cut"] != ALL_DEVICE]
        server = ns.popen([sys.executable, "-m", "zoo.split.server", "--artifacts",
                           ",".join(served), "--port", "0", "--host", "127.0.0.1",
                           *(["--threads", server_threads] if server_threads else [])],
                          stdout=log, stderr=subprocess.STDOUT)
    port = _wait_serving(server, logs["server"], START_TIMEOUT_S)
    proxy = ProxyProcess(target_port=port, rtt_ms=ns.link.rtt_ms, listen_port=PROXY_PORT,
                         ns=ns)
    shaping = ns.shaping()
    client_dir = out_dir / "client"
    cmd = [sys.executable, str(REPO / "split.py"), "run", "--artifacts", ",".join(folders),
           "--url", f"http://127.0.0.1:{proxy.port}", "--images", images, "--repeat", repeat,
           "--out", client_dir, "--adapt" if adapt else "--noadapt"]
    if cut is not None:
        cmd += ["--cut", cut]
    (client_dir / "run.json").unlink(missing_ok=True)
    launched = time.time()
    with open(logs["client"], "w") as log:
        client = ns.popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    if speed is not None:
        try:
            speed.add(client.pid)
        except OSError:  # it exited at once: its log says why, below
            if client.poll() is None:
                raise
    t0, events, load = _drive(ns, client, shaping.up_bytes or 0, schedule=schedule,
                              load_client_at=load_client_at,
                              start_load=lambda: _start_load(ns, port, load_target, logs["load"]))
    ended = time.time()
    if load is not None:
        load.update(_stop_load(load.pop("process"), logs["load"]),
                    folder=load_target[0], model=load_target[1]["model_name"],
                    threads=LOAD_THREADS)
    proxy.close()
    if client.returncode:
        line = _last_line(logs["client"])
        if client.returncode == 2 and line.startswith("error: "):
            raise ConfigError(f"split.py run: {line.removeprefix('error: ')}")
        raise RuntimeError(f"split.py run exited with status {client.returncode}: {line} "
                           f"(see {logs['client']})")
    run_json = client_dir / "run.json"
    return {"run": json.loads(run_json.read_text()), "run_written": run_json.stat().st_mtime,
            "t0": t0 if t0 is not None else launched, "t0_seen": t0 is not None,
            "launched": launched, "ended": ended, "events": events, "port": port,
            "proxy_port": proxy.port, "shaping": dataclasses.asdict(shaping),
            "logs": {name: str(path) for name, path in logs.items()},
            "client_dir": str(client_dir), "command": [str(c) for c in cmd],
            "images_requested": images * repeat}


def _drive(ns: ShapedNamespace, client: subprocess.Popen, sent_before: int,
           schedule: list[tuple[float, float]], load_client_at: float | None,
           start_load: Callable[[], subprocess.Popen]) -> tuple[float | None, list[dict],
                                                             dict | None]:
    """Watch `client` until it exits: t0 once the qdisc has sent more than `sent_before`
    bytes, then each rate change and the load start when due (see the module docstring).
    Returns t0 (None if no byte was seen), the events with their wall-clock time, and the load
    event (holding its ``process``) if the load started."""
    pending, t0, events, load = list(schedule), None, [], None
    while client.poll() is None:
        now = time.time()
        if t0 is None:
            if (ns.shaping().up_bytes or 0) > sent_before:
                t0 = now
            else:
                time.sleep(POLL_S)
                continue
        while pending and now - t0 >= pending[0][0]:
            seconds, mbps = pending.pop(0)
            changed = time.time()  # the new rate holds from some instant after this one
            ns.set_rate(mbps)
            shaping = ns.shaping()
            events.append({"kind": "rate", "due_s": seconds, "wall": changed, "mbps": mbps,
                           "applied": True, "qdisc": shaping.text,
                           "qdisc_up_mbps": shaping.up_mbps,
                           "qdisc_down_mbps": shaping.down_mbps})
        if load is None and load_client_at is not None and now - t0 >= load_client_at:
            load = {"kind": "load", "due_s": load_client_at, "wall": time.time(),
                    "applied": True, "process": start_load()}
            events.append(load)
        time.sleep(POLL_S)
    late = {"wall": None, "applied": False, "why": "the client had finished"}
    events += [{"kind": "rate", "due_s": seconds, "mbps": mbps, **late}
               for seconds, mbps in pending]
    if load_client_at is not None and load is None:
        events.append({"kind": "load", "due_s": load_client_at, **late})
    return t0, events, load


def _start_load(ns: ShapedNamespace, port: int, target: tuple[str, dict],
                log_path: Path) -> subprocess.Popen:
    folder, spec = target
    script = ("import signal, sys, threading\n"  # the handler first: a stop during the imports
              "stop = threading.Event()\n"
              "signal.signal(signal.SIGTERM, lambda *_: stop.set())\n"
              "from zoo.split.experiment import load_loop\n"
              "load_loop(*sys.argv[1:], stop=stop)\n")
    with open(log_path, "w") as log:
        return ns.popen([sys.executable, "-c", script, f"127.0.0.1:{port}", folder,
                         LOAD_THREADS], stdout=log, stderr=subprocess.STDOUT)


def _stop_load(process: subprocess.Popen, log_path: Path) -> dict:
    """Stop the load client (SIGTERM: it finishes its requests in flight and prints its
    counts); what it did."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    text = log_path.read_text(errors="replace")
    counts = re.search(r"^load: answered (\d+), refused (\d+), failed (\d+)", text, re.M)
    first = re.search(r"^load: first answer at (\S+)", text, re.M)
    return {"answered": int(counts[1]) if counts else None,
            "refused": int(counts[2]) if counts else None,
            "failed": int(counts[3]) if counts else None,
            "first_answer_wall": float(first[1]) if first else None,
            "log": str(log_path)}


def load_loop(url: str, folder: str, threads: Any = LOAD_THREADS,
              stop: threading.Event | None = None) -> None:
    """The load client (run inside the namespace): `threads` threads, each sending zeros as
    `folder`'s server-half inputs to the server at `url` (HOST:PORT) as soon as its previous
    answer arrives, until `stop` is set (by default on SIGTERM); prints ``load: first answer
    at <time.time()>`` and, at the end, ``load: answered N, refused N, failed N`` (refused:
    503, the queue full)."""
    if stop is None:
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
    import numpy as np
    import tritonclient.http as httpclient
    from tritonclient.utils import InferenceServerException

    spec = json.loads((Path(folder) / "split.json").read_text())
    dtypes = {"FP32": np.float32, "FP16": np.float16, "INT8": np.int8, "UINT8": np.uint8}
    arrays = [(t["name"], np.zeros(t["shape"], dtypes[t["datatype"]]), t["datatype"])
              for t in spec["tensors"]]
    lock, counts = threading.Lock(), Counter()

    def send() -> None:
        client = httpclient.InferenceServerClient(url, network_timeout=60)
        inputs = []
        for name, array, datatype in arrays:
            tensor = httpclient.InferInput(name, list(array.shape), datatype)
            tensor.set_data_from_numpy(array, binary_data=True)
            inputs.append(tensor)
        outputs = [httpclient.InferRequestedOutput("labels", binary_data=True)]
        while not stop.is_set():
            try:
                client.infer(spec["model_name"], inputs, outputs=outputs)
                key = "answered"
            except InferenceServerException as exc:
                key = "refused" if "503" in str(exc.status()) else "failed"
            except Exception:  # noqa: BLE001 - a connection lost while stopping, say
                key = "failed"
            with lock:
                counts[key] += 1
                if key == "answered" and counts[key] == 1:
                    print(f"load: first answer at {time.time()!r}", flush=True)
            if key != "answered":
                time.sleep(0.05)
        client.close()

    workers = [threading.Thread(target=send, daemon=True) for _ in range(int(threads))]
    for worker in workers:
        worker.start()
    while not stop.is_set():  # polled: the handler sets the Event this thread would wait on
        time.sleep(0.1)
    for worker in workers:
        worker.join(10)
    print(f"load: answered {counts['answered']}, refused {counts['refused']}, failed "
          f"{counts['failed']}", flush=True)


def _image_times(records: list[dict], written: float) -> tuple[list[float], str]:
    """Wall-clock start of each image (see the module docstring) and where it comes from."""
    if records and all(isinstance(r.get("t"), int | float) and r["t"] > 0 for r in records):
        return [float(r["t"]) for r in records], "the client's (Record.t: time.time() as taken)"
    starts, end = [], written
    for record in reversed(records):
        end -= record["total_ms"] / 1e3
        starts.append(end)
    return starts[::-1], ("derived: run.json's modification time minus the total_ms of the "
                          "image and every later one (the records carry no time)")


def median(values: list[float]) -> float | None:
    """The median of `values`; None for none."""
    values = sorted(values)
    if not values:
        return None
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def _result(facts: dict, link: Link, ns: ShapedNamespace, *, sizes: dict[str, tuple[int, int]],
            device_fraction: float | None, quota: dict, schedule: list,
            load_client_at: float | None) -> dict:
    """experiment.json's content; times in seconds from t0, the phone's first byte on the
    link."""
    from zoo.split.link import request_ms

    run, t0 = facts["run"], facts["t0"]
    records = run["records"]
    events = [{"t_s": e["wall"] - t0 if e.get("wall") is not None else None,
               **{k: v for k, v in e.items() if k not in ("wall", "first_answer_wall")}}
              for e in facts["events"]]
    for event, raw in zip(events, facts["events"], strict=True):
        if raw.get("first_answer_wall") is not None:
            event["first_answer_s"] = raw["first_answer_wall"] - t0
    changes = [(e["t_s"], e["mbps"]) for e in events if e["kind"] == "rate" and e["applied"]]

    def rates_at(t_s: float) -> tuple[float, float]:
        set_to = [mbps for when, mbps in changes if when <= t_s]
        return (set_to[-1], set_to[-1]) if set_to else (link.uplink_mbps, link.downlink_mbps)

    starts, time_source = _image_times(records, facts["run_written"])
    timeline = []
    for r, start in zip(records, starts, strict=True):
        row = {"image": r["image"], "t_s": start - t0, "cut": r["cut"], **{
            k: r[k] for k in ("total_ms", "device_ms", "request_ms", "server_ms", "queue_ms",
                              "up_bytes", "bandwidth_mbps", "load", "fallback")}}
        if r["request_ms"] > 0 and r["cut"] in sizes:
            up, down = rates_at(row["t_s"])
            row["rate_mbps"] = up
            row["model_request_ms"] = request_ms(Link("set", up, down, link.rtt_ms),
                                                 *sizes[r["cut"]]) + r["server_ms"] + r[
                "queue_ms"]
        timeline.append(row)
    first = timeline[0]["t_s"] if timeline else None
    last = timeline[-1]["t_s"] + timeline[-1]["total_ms"] / 1e3 if timeline else None
    for event in events:
        event["during_images"] = bool(event["t_s"] is not None and timeline
                                      and first <= event["t_s"] <= last)
    per_cut = {}
    for cut in dict.fromkeys(row["cut"] for row in timeline):
        rows = [row for row in timeline if row["cut"] == cut]
        remote = [row for row in rows if row["request_ms"] > 0]
        per_cut[cut] = {
            "images": len(rows), "median_ms": median([row["total_ms"] for row in rows]),
            "median_request_ms": median([row["request_ms"] for row in remote]),
            "min_request_ms": min((row["request_ms"] for row in remote), default=None),
            "median_model_request_ms": median([row["model_request_ms"] for row in remote
                                                if "model_request_ms" in row])}
    warm = run.get("warm_up", {})
    full_ms, server_full = warm.get("full_ms"), (warm.get("server_ms") or {}).get(ALL_SERVER)
    if server_full:
        note = ("the whole model at warm-up: LiteRT on the device (full.tflite, "
                + (f"under a quota of {device_fraction:g} of one core" if device_fraction
                   else "unthrottled") + ", mean of 5), onnxruntime on the server (the input "
                "cut's server half, idle, its own compute time, median of 5); two runtimes, "
                "so the ratio is theirs too")
    else:
        note = "no input-cut folder: the whole model was not timed on the server"
    device = {"fraction": device_fraction, **quota, "device_full_ms": full_ms,
              "server_full_ms": server_full,
              "device_over_server": full_ms / server_full if full_ms and server_full else None,
              "device_ms": warm.get("device_ms"), "server_ms": warm.get("server_ms"),
              "note": note}
    if quota and full_ms is not None and full_ms < quota["quota_ms"]:
        # CFS bandwidth control throttles a cgroup only once it has used its quota in a
        # period: work shorter than the quota, between idle waits, runs at full speed.
        device["warning"] = (f"the whole model ran in {full_ms:.1f} ms, less than the quota of "
                             f"{quota['quota_ms']:g} ms per {quota['period_ms']:g} ms: the "
                             "quota cannot slow work this short (it runs at full speed until "
                             "the quota is used, then waits for the next period)")
    return {
        "link": dataclasses.asdict(link),
        "emulated": {"uplink_mbps": link.uplink_mbps, "downlink_mbps": link.downlink_mbps,
                     "rtt_ms": link.rtt_ms, "proxy_port": facts["proxy_port"],
                     "shaping": facts["shaping"], "one_segment_per_packet": True,
                     "namespace": ns.name,
                     "note": "htb classes on the namespace's loopback shape what the phone "
                             "sends to the delay proxy (uplink) and receives from it "
                             "(downlink), headers included (zoo.split.emulate); shaping is "
                             "the rates and byte counts read back before the phone started; "
                             "model_request_ms is zoo.split.link.request_ms at the rates set "
                             "when the image started plus the server's reported compute and "
                             "queue time"},
        "schedule": [list(change) for change in schedule],
        "load_at_s": load_client_at,
        "clock": {"t0": "the client's first byte on the link (its warm-up), seen on the "
                        "qdisc's byte counter" if facts["t0_seen"] else
                        "the client's launch (no byte on the link was seen while it ran)",
                  "t0_wall": t0, "client_launched_s": facts["launched"] - t0,
                  "client_ended_s": facts["ended"] - t0, "first_image_s": first,
                  "last_image_end_s": last, "image_times": time_source},
        "events": events,
        "device": device,
        "client": {"summary": run["summary"], "images_requested": facts["images_requested"],
                   "warm_up": warm, "url": run.get("url"), "adapt": run.get("adapt"),
                   "fixed_cut": run.get("fixed_cut"),
                   "run_json": str(Path(facts["client_dir"]) / "run.json"),
                   "command": facts["command"]},
        "fallbacks": dict(Counter(r["fallback"] for r in records if r["fallback"])),
        "per_cut": per_cut,
        "timeline": timeline,
        "logs": {name: path for name, path in facts["logs"].items() if Path(path).is_file()},
    }


def adapt_figure(result: dict) -> bytes:
    """Latency and chosen cut per image, the link rate (set, and the client's estimate) and
    the server load (the client's estimate) over time; the rate changes and the load start
    marked."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    rows = result["timeline"]
    t = [r["t_s"] for r in rows]
    cuts = list(dict.fromkeys(r["cut"] for r in rows))
    colors = {c: plt.get_cmap("tab10")(i % 10) for i, c in enumerate(cuts)}
    fig, (lat, cut_ax, rate, load) = plt.subplots(
        4, 1, figsize=(11, 9), sharex=True, gridspec_kw={"height_ratios": [3, 1.3, 2, 1.3]})
    for c in cuts:
        mine = [r for r in rows if r["cut"] == c]
        lat.scatter([r["t_s"] for r in mine], [r["total_ms"] for r in mine], s=12,
                    color=colors[c], label=c)
    totals = [r["total_ms"] for r in rows if r["total_ms"] > 0]
    if totals and max(totals) / min(totals) > 30:
        lat.set_yscale("log")
    lat.set_ylabel("end-to-end latency\nper image (ms)")
    lat.legend(fontsize=8, loc="best", title="cut", title_fontsize=8)
    link, device = result["link"], result["device"]
    preset = f"{link['name']}: " if "/" not in link["name"] else ""
    speed = f"; device at {device['fraction']:g} of a core" if device["fraction"] else ""
    ratio = (f", whole model {device['device_over_server']:.1f}x the server's time"
             if device["device_over_server"] else "")
    lat.set_title(f"split.py run over an emulated link ({preset}{link['uplink_mbps']:g} "
                  f"Mbit/s, RTT {link['rtt_ms']:g} ms){speed}{ratio}", fontsize=10)

    cut_ax.scatter(t, [cuts.index(r["cut"]) for r in rows], s=12,
                   c=[colors[r["cut"]] for r in rows])
    cut_ax.set_yticks(range(len(cuts)))
    cut_ax.set_yticklabels(cuts, fontsize=8)
    cut_ax.set_ylim(-0.5, len(cuts) - 0.5)
    cut_ax.set_ylabel("chosen cut")

    changes = [e for e in result["events"] if e["kind"] == "rate" and e["applied"]]
    loads = [e for e in result["events"] if e["kind"] == "load" and e["applied"]]
    end = max([*(ti + r["total_ms"] / 1e3 for ti, r in zip(t, rows, strict=True)),
               *(e["t_s"] for e in changes + loads), 0.0])
    start = min([*t, 0.0])
    pad = 0.02 * (end - start) + 0.05
    steps_t = [start - pad] + [e["t_s"] for e in changes] + [end + pad]
    steps_v = [link["uplink_mbps"]] + [e["mbps"] for e in changes]
    rate.stairs(steps_v, steps_t, color="tab:blue", lw=1.5, label="set (emulated)")
    seen = [(r["t_s"], r["bandwidth_mbps"]) for r in rows if r["bandwidth_mbps"]]
    if seen:
        rate.plot(*zip(*seen, strict=True), "o-", ms=3, lw=0.8, color="tab:orange",
                  label="client's estimate")
    rate.set_yscale("log")
    rate.set_ylabel("link rate (Mbit/s)")
    rate.legend(fontsize=8, loc="best")

    # Only a remote image's record carries the client's load estimate (an all-device record
    # has the default 1.0), as only a remote one carries its bandwidth estimate.
    remote = [r for r in rows if r["request_ms"] > 0]
    load.plot([r["t_s"] for r in remote], [r["load"] for r in remote], "o-", ms=3, lw=0.8,
              color="tab:red")
    load.set_ylabel("server load\n(client's estimate,\nx idle)")
    load.set_ylim(bottom=0, top=max([2.0, *(r["load"] * 1.1 for r in remote)]))
    load.set_xlabel("time since the client's first request (s)")
    load.set_xlim(start - pad, end + pad)

    for ax in (lat, rate):
        if ax.get_yscale() == "log":  # 1, 2, 5, 10, 20, ... rather than powers of ten only
            ax.yaxis.set_major_locator(LogLocator(subs=(1, 2, 5)))
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax.yaxis.set_minor_formatter(NullFormatter())
    first = result["clock"]["first_image_s"]
    for ax in (lat, cut_ax, rate, load):
        ax.grid(alpha=0.3)
        if first is not None and first > 0:
            ax.axvspan(min(0.0, first), first, color="0.92", zorder=0)
        for e in changes:
            ax.axvline(e["t_s"], color="tab:blue", ls="--", lw=1)
        for e in loads:
            ax.axvline(e["t_s"], color="tab:red", ls="-.", lw=1)
    if first is not None and first > 0:
        lat.annotate("client warm-up", (min(0.0, first), 1), xycoords=("data", "axes fraction"),
                     xytext=(2, -12), textcoords="offset points", fontsize=8, color="0.4")
    marks = [(e, f"rate {e['mbps']:g} Mbit/s", "tab:blue", 4) for e in changes] + [
        (e, f"load starts ({e['threads']} senders)", "tab:red", 16) for e in loads]
    for e, text, color, height in marks:
        right = e["t_s"] > start + 0.75 * (end - start)  # near the right edge: text leftwards
        lat.annotate(text, (e["t_s"], 0), xycoords=("data", "axes fraction"),
                     xytext=(-3 if right else 3, height), textcoords="offset points",
                     ha="right" if right else "left", fontsize=8, color=color, zorder=5,
                     bbox={"facecolor": "white", "alpha": 0.85, "edgecolor": "none", "pad": 1})
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def command(artifacts: Any = None, link: Any = "lte", images: int = 50,
            rtt_ms: float | None = None, device_fraction: float | None = None,
            schedule: Any = None, load_at: float | None = None, repeat: int = 1,
            adapt: bool = True, cut: str | None = None, server_threads: int | None = None,
            out: str | None = None) -> None:
    """Serve exported split folders and run `split.py run` on them through a real emulated
    link (a network namespace with a shaped loopback and a delay proxy; needs root); change
    the rate and load the server while it runs; write experiment.json and adapt.png.

    Example: python -m zoo.split.experiment --artifacts S/conv_pw_13_relu,S/input --link lte
    --images 100 --schedule 10:1.1,25:13 --load-at 40 --out exp   (S: <run>/split)

    Args:
        artifacts: folders of `split.py export`, comma-separated (one run).
        link: wifi, lte, 3g (published medians), BW,RTT or UP/DOWN,RTT (Mbit/s, ms); each
            way at its rate.
        images: validation images the client sends.
        rtt_ms: round-trip time in ms instead of the link's.
        device_fraction: run the client at this share of one CPU core (cgroup quota).
        schedule: rate changes, SECONDS:MBITS[,...], seconds after the client's first
            request.
        load_at: seconds after the client's first request at which a load client starts
            sending to the server.
        repeat: passes over the images.
        adapt: re-plan per image (--noadapt: keep the first plan).
        cut: keep this cut (one of the folders', or all-device; every: each in turn).
        server_threads: onnxruntime threads per request on the server (default: all cores).
        out: output folder.
    """
    run_emulated(artifacts, link, images=images, rtt_ms=rtt_ms,
                 device_fraction=device_fraction, schedule=schedule,
                 load_client_at=load_at, out=out, repeat=repeat, adapt=adapt, cut=cut,
                 server_threads=server_threads)


def main() -> None:
    from zoo.cli import run

    run(command, name="python -m zoo.split.experiment")


if __name__ == "__main__":
    main()
