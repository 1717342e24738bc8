"""The phone side of split computing (`split.py run`): run the device half, send what crosses
the cut, get the label map back, and re-plan the cut as the link and the server change.

Example::

    client = SplitClient(["split/conv_pw_11_relu-int8-tflite", "split/input-int8-tflite"],
                         "http://127.0.0.1:8000")
    labels, record = client.infer(image)      # record: cut, device/request/server ms, ...
    client.close()

Every folder is one exported pair (`split.py export`); the server serves their server halves
(`split.py serve --artifacts A,B,...`), and a folder at the ``output`` cut (or any folder's
``full.tflite``) is the all-device choice. Before the first image the client measures each
device half here, asks the server for each model once (its compute time, from the answer's
load figures) and the round-trip time (the health endpoint). Then, per image, it estimates
every candidate's end-to-end time

    device_ms[c] + RTT + (bytes up[c] + bytes down) * 8 / bandwidth + server_ms[c] * load

with the bandwidth measured on the last transfers (bytes over the request's time minus the
server's reported queue and compute time and the RTT; a moving average) and the load the ratio
of the server's recent compute time to what it was when measured idle, and takes the cheapest
(Neurosurgeon's runtime re-planning, Kang et al. ASPLOS 2017, section 5.3). A cut not taken
for a while is tried again (`PROBE_EVERY`), so its estimate does not go stale.

``fixed`` keeps one cut instead; ``fixed="every"`` takes every folder's cut and all-device in
turn, image by image, so each is measured end to end under the same conditions, interleaved
(what `zoo.split.compare` does to find the best cut).

A server that is down, times out, answers 503 or serves other files (the model name carries
the pair's checksum: a device half and a server half of two different exports are refused) is
not used: the image runs all on the device, the client says so once, and tries the server
again after `RETRY_S`.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

from zoo.errors import ConfigError
from zoo.split.cuts import ALL_DEVICE
from zoo.split.halves import FULL_FILE, DeviceHalf, read_spec

EMA = 0.3  # weight of the newest measurement in the moving averages
PROBE_EVERY = 20  # images after which an untried remote cut is measured again
RETRY_S = 5.0  # seconds before a failed server is tried again
DEVICE = "all-device"
EVERY = "every"  # `fixed`: each cut in turn, image by image (measuring every candidate)


@dataclass
class Candidate:
    """One exported pair as the client sees it."""

    folder: Path
    cut: str
    model_name: str
    up_bytes: int
    down_bytes: int
    device: DeviceHalf
    device_ms: float = 0.0
    server_ms: float = 0.0  # idle, as measured at start
    last_used: int = 0

    @property
    def remote(self) -> bool:
        return self.cut != ALL_DEVICE


@dataclass
class Record:
    """One image: what was chosen and what it cost."""

    image: int
    cut: str
    total_ms: float
    device_ms: float
    request_ms: float = 0.0
    server_ms: float = 0.0
    queue_ms: float = 0.0
    up_bytes: int = 0
    bandwidth_mbps: float | None = None
    load: float = 1.0
    fallback: str = ""
    estimates: dict[str, float] = field(default_factory=dict)
    t: float = 0.0  # wall-clock time the image was taken (time.time())

    def to_dict(self) -> dict:
        return asdict(self)


class SplitClient:
    """See the module docstring."""

    def __init__(self, folders: list[str | Path], url: str, *, timeout: float = 5.0,
                 threads: int = 1, adapt: bool = True, fixed: str | None = None,
                 log=print) -> None:
        import tritonclient.http as httpclient

        parsed = urlparse(url if "://" in url else f"http://{url}")
        if parsed.scheme != "http" or not parsed.hostname:
            raise ConfigError(f"--url must be http://HOST:PORT, got {url!r}")
        self.url = f"{parsed.hostname}:{parsed.port or 80}"
        self.http = httpclient.InferenceServerClient(self.url, connection_timeout=timeout,
                                                     network_timeout=timeout)
        self.log, self.adapt, self.timeout = log, adapt, timeout
        self.candidates = [self._candidate(Path(f), threads) for f in folders]
        if not self.candidates:
            raise ConfigError("--artifacts: no folder given")
        runs = {c.device.spec.get("run_id") for c in self.candidates}
        if len(runs) > 1:
            raise ConfigError("--artifacts: folders of different runs "
                              f"({', '.join(map(str, runs))})")
        self.full = self._full_model(threads)
        self.fixed = fixed
        if fixed is not None and fixed not in {c.cut for c in self.candidates} | {DEVICE, EVERY}:
            raise ConfigError(f"--cut {fixed!r} is not among the exported folders' cuts "
                              f"({', '.join(c.cut for c in self.candidates)}), {DEVICE} or "
                              f"{EVERY}")
        # EVERY's turn: each folder's cut, then the whole model here unless a folder is it.
        self.turns: list[Candidate | None] = [*self.candidates] + (
            [] if any(not c.remote for c in self.candidates) else [None])
        self.rtt_ms, self.bandwidth, self.load = 0.0, None, 1.0
        self.server_down_until, self.said_down = 0.0, False
        self.images = 0

    # ------------------------------------------------------------------ set-up
    def _candidate(self, folder: Path, threads: int) -> Candidate:
        spec = read_spec(folder)
        up = int(spec.get("transfer_bytes", 0))
        return Candidate(folder, spec["cut"], spec["model_name"], up_bytes=up,
                         down_bytes=int(spec.get("result_bytes", 0)),
                         device=DeviceHalf(folder, threads))

    def _full_model(self, threads: int):
        """The all-device runner: an ``output`` folder's device half, else a full.tflite."""
        from ai_edge_litert.interpreter import Interpreter

        for c in self.candidates:
            if c.cut == ALL_DEVICE:
                return lambda image, c=c: c.device.outputs(image)[0]
        for c in self.candidates:
            path = c.folder / FULL_FILE
            if path.is_file():
                interpreter = Interpreter(model_path=str(path), num_threads=threads)
                runner = interpreter.get_signature_runner()
                name = next(iter(runner.get_input_details()))
                return lambda image, runner=runner, name=name: next(iter(runner(**{
                    name: np.asarray(image, np.float32).reshape(1, *np.shape(image)[-3:])
                }).values()))
        raise ConfigError("--artifacts: no all-device model (an `output` export or a "
                          f"{FULL_FILE}) to fall back on")

    def warm_up(self, image: np.ndarray, runs: int = 5) -> dict[str, Any]:
        """Measure every device half here, every server half idle and the RTT (see the module
        docstring); the figures the first plan uses."""
        for c in self.candidates:
            times = []
            for _ in range(runs):
                start = time.perf_counter()
                c.device.run(image)
                times.append((time.perf_counter() - start) * 1e3)
            c.device_ms = float(np.median(times))
        start = time.perf_counter()
        for _ in range(runs):
            self.full(image)
        self.full_ms = (time.perf_counter() - start) * 1e3 / runs
        self.rtt_ms = self._rtt(runs)
        for c in self.candidates:
            if not c.remote or self.rtt_ms is None:
                continue
            self._check_model(c)
            server = []
            for _ in range(runs):
                _, load, _ = self._request(c, c.device.run(image))
                server.append(load.compute_ms or 0.0)
            c.server_ms = float(np.median(server))
        return {"rtt_ms": self.rtt_ms, "full_ms": self.full_ms,
                "device_ms": {c.cut: c.device_ms for c in self.candidates},
                "server_ms": {c.cut: c.server_ms for c in self.candidates
                              if c.remote and self.rtt_ms is not None}}  # measured ones

    def _rtt(self, runs: int) -> float | None:
        times = []
        try:
            for _ in range(runs):
                start = time.perf_counter()
                self.http.is_server_ready()
                times.append((time.perf_counter() - start) * 1e3)
        except Exception as exc:  # noqa: BLE001 - any failure to reach it is "down"
            self._down(exc)
            return None
        return float(np.median(times))

    def _check_model(self, c: Candidate) -> None:
        """The server must serve this pair's model (its name carries the pair's checksum)."""
        from tritonclient.utils import InferenceServerException

        try:
            self.http.get_model_metadata(c.model_name)
        except InferenceServerException as exc:
            raise ConfigError(f"{c.folder}: the server at {self.url} does not serve "
                              f"{c.model_name} (a server half of another export?): "
                              f"{str(exc).splitlines()[0]}") from None

    # ------------------------------------------------------------------ per image
    def estimate(self, c: Candidate) -> float:
        if not c.remote:
            return c.device_ms
        bandwidth = self.bandwidth or 1e9
        return (c.device_ms + (self.rtt_ms or 0.0) + (c.up_bytes + c.down_bytes) * 8 / (
            bandwidth * 1e3) + c.server_ms * self.load)

    def choose(self) -> Candidate | None:
        """The candidate to use now; None for all-device."""
        server_ok = time.monotonic() >= self.server_down_until and self.rtt_ms is not None
        usable = [c for c in self.candidates if server_ok or not c.remote]
        if self.fixed == EVERY:
            turn = self.turns[(self.images - 1) % len(self.turns)]
            return turn if turn is None or turn in usable else None
        if self.fixed is not None:
            chosen = [c for c in usable if c.cut == self.fixed]
            return chosen[0] if chosen else None
        if not usable:
            return None
        stale = [c for c in usable if c.remote and self.adapt
                 and self.images - c.last_used >= PROBE_EVERY]
        if stale:
            return min(stale, key=lambda c: c.last_used)
        best = min(usable, key=self.estimate)
        if best.remote and self.estimate(best) >= getattr(self, "full_ms", float("inf")):
            return None  # the whole model here beats every remote cut
        return best

    def infer(self, image: np.ndarray) -> tuple[np.ndarray, Record]:
        """Labels (1, H, W) of `image` and what it cost."""
        self.images += 1
        taken = time.time()
        if self.rtt_ms is None and time.monotonic() >= self.server_down_until:
            self.rtt_ms = self._rtt(1)
        c = self.choose()
        estimates = {x.cut: self.estimate(x) for x in self.candidates}
        start = time.perf_counter()
        if c is None or not c.remote:
            labels = self.full(image) if c is None else c.device.outputs(image)[0]
            ms = (time.perf_counter() - start) * 1e3
            return np.asarray(labels), Record(self.images, DEVICE if c is None else c.cut, ms,
                                              ms, bandwidth_mbps=self.bandwidth, load=self.load,
                                              estimates=estimates, t=taken)
        sent = c.device.run(image)
        device_ms = (time.perf_counter() - start) * 1e3
        try:
            labels, load, request_ms = self._request(c, sent)
        except Exception as exc:  # noqa: BLE001 - down, timeout, 503: all on the device
            self._down(exc)
            labels = self.full(image)
            ms = (time.perf_counter() - start) * 1e3
            return np.asarray(labels), Record(self.images, DEVICE, ms, ms,
                                              bandwidth_mbps=self.bandwidth, load=self.load,
                                              fallback=_one_line(exc), estimates=estimates,
                                              t=taken)
        total = (time.perf_counter() - start) * 1e3
        self.said_down = False
        c.device_ms = (1 - EMA) * c.device_ms + EMA * device_ms
        c.last_used = self.images
        self._learn(c, load, request_ms)
        return labels, Record(self.images, c.cut, total, device_ms, request_ms=request_ms,
                              server_ms=load.compute_ms or 0.0, queue_ms=load.queue_ms or 0.0,
                              up_bytes=c.up_bytes, bandwidth_mbps=self.bandwidth,
                              load=self.load, estimates=estimates, t=taken)

    def _request(self, c: Candidate, sent: dict[str, np.ndarray]):
        import tritonclient.http as httpclient

        from zoo.split.halves import OIP_TYPES
        from zoo.split.server import read_load

        inputs = []
        for name, array in sent.items():
            tensor = httpclient.InferInput(name, list(array.shape), OIP_TYPES[str(array.dtype)])
            tensor.set_data_from_numpy(array, binary_data=True)
            inputs.append(tensor)
        outputs = [httpclient.InferRequestedOutput("labels", binary_data=True)]
        start = time.perf_counter()
        result = self.http.infer(c.model_name, inputs, outputs=outputs)
        request_ms = (time.perf_counter() - start) * 1e3
        load = read_load(result.get_response().get("parameters", {}))
        return result.as_numpy("labels"), load, request_ms

    def _learn(self, c: Candidate, load, request_ms: float) -> None:
        """Bandwidth from this transfer, load from the server's figures."""
        wire_ms = request_ms - (load.compute_ms or 0.0) - (load.queue_ms or 0.0) - (
            self.rtt_ms or 0.0)
        # A request that is mostly RTT says little of the bandwidth (its wire time is the
        # difference of two noisy figures): only samples whose wire time is a good part of it.
        if wire_ms > max(0.5, 0.25 * (self.rtt_ms or 0.0)):
            mbps = (c.up_bytes + c.down_bytes) * 8 / (wire_ms * 1e3)
            self.bandwidth = mbps if self.bandwidth is None else (
                (1 - EMA) * self.bandwidth + EMA * mbps)
        if c.server_ms > 0:
            busy = ((load.compute_ms or 0.0) + (load.queue_ms or 0.0)) / c.server_ms
            self.load = (1 - EMA) * self.load + EMA * max(busy, 1.0)

    def _down(self, exc: Exception) -> None:
        self.server_down_until = time.monotonic() + RETRY_S
        if not self.said_down:
            self.log(f"server {self.url} unusable ({_one_line(exc)}): running all on the "
                     f"device, trying it again in {RETRY_S:g} s")
            self.said_down = True

    def close(self) -> None:
        self.http.close()


def _one_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"
