"""Real link emulation on this machine: a network namespace whose loopback is rate-shaped, a
delay proxy for the round-trip time, and a CPU quota that slows a process to a phone's speed.

Example::

    link = parse_link("lte")
    with ShapedNamespace(link, port=9000) as ns:      # ip netns + tc htb (needs root)
        server = ns.popen([sys.executable, "-m", "my.server", "--port", "8000"])
        wait_for_port("127.0.0.1", 8000, timeout=30, ns=ns)
        with ProxyProcess(target_port=8000, rtt_ms=link.rtt_ms, listen_port=9000,
                          ns=ns) as proxy:
            ns.run([sys.executable, "client.py", "--port", "9000"])   # the phone
            ns.set_rate(1.1)                          # the link drops to 3G rates, both ways
            ns.shaping().up_bytes                     # bytes the phone has sent
            proxy.set_rtt(150)
    with DeviceSpeed(0.25) as device:                        # cgroup CPU quota (needs root)
        phone = subprocess.Popen([...])
        device.add(phone.pid)

**Rate** (`ShapedNamespace`): a fresh namespace has only a loopback interface, and everything
its processes send to 127.0.0.1 goes through that interface's root qdisc, here a hierarchical
token bucket (tc-htb(8)) with three classes: the uplink (1:10, `Link.uplink_mbps`), the
downlink (1:20, `Link.downlink_mbps`) and everything else (1:30, unshaped). With ``port``
(the delay proxy's, which the phone connects to), u32 filters put what is sent **to** that
port in the uplink class and what is sent **from** it in the downlink class, so each byte the
phone exchanges is shaped exactly once, at its direction's rate, while the proxy's own leg to
the server and anything else in the namespace (a load client talking to the server directly)
run unshaped. Without ``port``, everything is shaped by the uplink class, both ways together
(one loopback, one rate: what a transfer test without a proxy needs). The loopback's MTU is
set to 1500 so packets have Ethernet sizes, not 64 KiB, and it sends one TCP segment per
packet (``gso_max_segs 1``): a 64 KiB GSO packet queued when a lower rate is set could
otherwise hold the link far beyond its time (with a token bucket filter it stalled the qdisc
for good). Each class's queue is the loopback's 1000 packets (1.5 MB): drops, whose
retransmission timeouts (200 ms minimum on Linux) would distort every timing, do not happen
at these sizes. The rates count TCP/IP headers (about 4 % at 1500-byte packets), as a real
link's do. An earlier version shaped everything with one tbf at twice the rate for the two
crossings through the proxy; the first crossing then ran at twice the link's rate while the
proxy held the bytes, and requests came out up to 20 % faster than the link.

**Delay** (`DelayProxy`, run in its own process by `ProxyProcess`): a TCP forwarder that holds
every chunk it reads for rtt/2 before writing it on, in each direction. Each direction is a
queue of (due time, chunk): the reader keeps reading while the writer waits, so the delay adds
latency without cutting throughput (a sleep per chunk would serialise it), and the order is
kept. A new RTT (`ProxyProcess.set_rtt`) applies to chunks read after it. netem would do both
in the kernel, but this machine has no sch_netem module.

**Device speed** (`DeviceSpeed`): the CFS bandwidth controller caps a cgroup at `quota` of CPU
time per `period` (cgroup v1 ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``, or v2 ``cpu.max``;
kernel docs, "CFS Bandwidth Control"). ``DeviceSpeed(fraction)`` allows `fraction` of **one**
CPU of this machine to all threads of the processes added, together. State the device/server
ratio as measured: if the phone runs the device half k times slower than one core here (its
single-thread latency over the latency here), use ``DeviceSpeed(1 / k)`` for a one-thread run
and ``DeviceSpeed(t / k)`` for t threads; the server runs unthrottled, so server/device speed
is k (per thread). The period is 10 ms (longer only when the quota would drop below the
kernel's 1 ms minimum), so a throttled process runs in 10 ms slices, not 100 ms ones. Other
work on the machine can slow it further: the quota is a cap, not a guarantee.

Everything here needs root (namespaces, qdiscs and cgroups); where the machine cannot do it,
`EmulationUnavailable` says why in one line (tests turn it into a skip).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import os
import re
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from zoo.errors import ZooError
from zoo.split.link import Link

CHUNK = 65536  # bytes the proxy reads at a time
REPO = Path(__file__).resolve().parents[2]


class EmulationUnavailable(ZooError):
    """This machine cannot emulate the link or the device (not root, no iproute2, no writable
    cgroup): one line saying which."""


def _first_line(text: str) -> str:
    return (text.strip().splitlines() or ["no message"])[0]


def _last_line(text: str) -> str:
    return (text.strip().splitlines() or ["no message"])[-1]


def _require(*tools: str) -> None:
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        raise EmulationUnavailable(f"link emulation needs {' and '.join(missing)} (iproute2), "
                                   "not found on PATH")
    if os.geteuid() != 0:
        raise EmulationUnavailable(f"link emulation needs root (ip netns, tc), running as uid "
                                   f"{os.geteuid()}")


def _check(cmd: Sequence[str]) -> None:
    """Run a setup command; a failure is `EmulationUnavailable` with its first error line."""
    result = subprocess.run(list(cmd), capture_output=True, text=True)
    if result.returncode:
        raise EmulationUnavailable(f"{' '.join(cmd)} failed: {_first_line(result.stderr)}")


def _env() -> dict[str, str]:
    """This environment with the repository on PYTHONPATH, so ``-m zoo...`` imports anywhere."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    return env


def _positive_mbps(mbps: float) -> float:
    mbps = float(mbps)
    if not (math.isfinite(mbps) and mbps > 0):
        raise ValueError(f"rate must be a finite number of Mbit/s > 0, got {mbps}")
    return mbps


@dataclasses.dataclass(frozen=True)
class Shaping:
    """The shaping as read back from the kernel (``tc -s class show``): each direction's rate
    in Mbit/s and the bytes its class has sent (headers included)."""

    up_mbps: float | None
    down_mbps: float | None
    up_bytes: int | None
    down_bytes: int | None
    text: str  # the classes' lines, rates only


UP, DOWN, FREE = "1:10", "1:20", "1:30"  # the htb classes
_CLASS = re.compile(r"^class htb (\d+:\d+) .*?\brate (\d+(?:\.\d+)?)([KMG]?)bit\b.*?$"
                    r"(?:\n\s+Sent (\d+) bytes)?", re.M)


class ShapedNamespace:
    """A network namespace whose loopback is shaped to `link` (see the module docstring),
    deleted on exit with the processes it started. With `port`, only what goes to that port
    (uplink) and comes from it (downlink) is shaped; without, everything at the uplink rate."""

    def __init__(self, link: Link, name: str | None = None, port: int | None = None) -> None:
        if port is not None and not 1 <= int(port) <= 65535:
            raise ValueError(f"port must be between 1 and 65535, got {port}")
        self.link = link
        self.name = name or f"zoo-split-{secrets.token_hex(4)}"
        self.port = None if port is None else int(port)
        self.up_mbps = _positive_mbps(link.uplink_mbps)
        self.down_mbps = _positive_mbps(link.downlink_mbps) if port is not None else self.up_mbps
        self._processes: list[subprocess.Popen] = []
        self._created = False

    @property
    def emulated(self) -> Link:
        """The link as emulated: the current rates (the uplink's both ways without a port) and
        the link's RTT (which a `DelayProxy` adds)."""
        return Link(f"{self.link.name}-emulated", self.up_mbps, self.down_mbps,
                    self.link.rtt_ms)

    @staticmethod
    def _htb(classid: str, mbps: float) -> list[str]:
        bits = round(mbps * 1e6)
        # 1 ms of the rate (two packets at least): a burst of 10 ms let the first 10 ms of every
        # transfer through at once, and requests came out shorter than the rate allows.
        burst = max(int(bits / 8 / 1000), 2 * 1514)
        return ["classid", classid, "htb", "rate", f"{bits}bit", "ceil", f"{bits}bit",
                "burst", str(burst), "cburst", str(burst), "quantum", "1514"]

    def __enter__(self) -> ShapedNamespace:
        _require("ip", "tc")
        _check(["ip", "netns", "add", self.name])
        self._created = True
        tc = ["ip", "netns", "exec", self.name, "tc"]
        try:
            _check(["ip", "-n", self.name, "link", "set", "lo", "mtu", "1500", "up"])
            _check(["ip", "-n", self.name, "link", "set", "lo", "gso_max_segs", "1"])
            default = FREE if self.port is not None else UP
            _check([*tc, "qdisc", "add", "dev", "lo", "root", "handle", "1:", "htb",
                    "default", default.split(":")[1]])
            _check([*tc, "class", "add", "dev", "lo", "parent", "1:", *self._htb(UP, self.up_mbps)])
            _check([*tc, "class", "add", "dev", "lo", "parent", "1:",
                    *self._htb(DOWN, self.down_mbps)])
            _check([*tc, "class", "add", "dev", "lo", "parent", "1:", *self._htb(FREE, 10_000)])
            if self.port is not None:
                for field, classid in (("dport", UP), ("sport", DOWN)):
                    _check([*tc, "filter", "add", "dev", "lo", "parent", "1:", "protocol", "ip",
                            "prio", "1", "u32", "match", "ip", field, str(self.port), "0xffff",
                            "flowid", classid])
        except BaseException:
            self._delete()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        for process in self._processes:
            _stop(process)
        self._delete()

    def _pids(self) -> list[int]:
        listing = subprocess.run(["ip", "netns", "pids", self.name], capture_output=True,
                                 text=True).stdout
        return [int(pid) for pid in listing.split()]

    def _delete(self) -> None:
        """Stop what still runs inside (children of the processes it started: all ours), then
        delete the namespace; a namespace lives on, unnamed, while any process is inside."""
        if not self._created:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in self._pids():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + 2
            while self._pids() and time.monotonic() < deadline:
                time.sleep(0.02)
        subprocess.run(["ip", "netns", "delete", self.name], capture_output=True)
        self._created = False

    def _command(self, cmd: Sequence[Any]) -> list[str]:
        if not self._created:
            raise RuntimeError(f"namespace {self.name} is not set up: use it in a with block")
        return ["ip", "netns", "exec", self.name, *map(str, cmd)]

    def set_rate(self, up_mbps: float, down_mbps: float | None = None) -> None:
        """Change the shaped rates now (``tc class change``; the downlink's to `up_mbps` too
        unless given; without a port there is only the uplink's); connections stay open."""
        up = _positive_mbps(up_mbps)
        down = up if down_mbps is None or self.port is None else _positive_mbps(down_mbps)
        for classid, mbps in ((UP, up), (DOWN, down)):
            cmd = self._command(["tc", "class", "change", "dev", "lo", "parent", "1:",
                                 *self._htb(classid, mbps)])
            result = subprocess.run(cmd, capture_output=True, text=True)
            if result.returncode:
                raise RuntimeError(f"tc class change failed: {_first_line(result.stderr)}")
        self.up_mbps, self.down_mbps = up, down

    def shaping(self) -> Shaping:
        """The rates and byte counts as the kernel has them now."""
        text = self.run(["tc", "-s", "class", "show", "dev", "lo"], capture_output=True,
                        text=True).stdout
        found = {m[1]: (float(m[2]) * {"": 1, "K": 1e3, "M": 1e6, "G": 1e9}[m[3]] / 1e6,
                        int(m[4]) if m[4] else None, m[0].splitlines()[0].strip())
                 for m in _CLASS.finditer(text)}
        up, down = found.get(UP, (None, None, "")), found.get(DOWN, (None, None, ""))
        return Shaping(up[0], down[0], up[1], down[1], f"{up[2]}; {down[2]}")

    def popen(self, cmd: Sequence[Any], **kwargs: Any) -> subprocess.Popen:
        """`subprocess.Popen` of `cmd` inside the namespace (``ip netns exec``); stopped on exit
        if still running."""
        kwargs.setdefault("env", _env())
        process = subprocess.Popen(self._command(cmd), **kwargs)
        self._processes.append(process)
        return process

    def run(self, cmd: Sequence[Any], **kwargs: Any) -> subprocess.CompletedProcess:
        """`subprocess.run` of `cmd` inside the namespace."""
        kwargs.setdefault("env", _env())
        return subprocess.run(self._command(cmd), **kwargs)


def _stop(process: subprocess.Popen, grace: float = 3.0) -> None:
    """Terminate `process` (ours) if it still runs; kill it after `grace` seconds."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class DelayProxy:
    """A TCP forwarder from `listen_port` to `target_port` on `host` that delays every chunk by
    rtt/2 in each direction, keeping order and throughput (see the module docstring).
    ``listen_port=0`` picks a free port; `port` is the one bound once `serve` calls `ready`."""

    def __init__(self, listen_port: int, target_port: int, rtt_ms: float,
                 host: str = "127.0.0.1") -> None:
        self.listen_port, self.target_port, self.host = listen_port, target_port, host
        self.rtt_ms = float(rtt_ms)
        self.port: int | None = None

    def set_rtt(self, rtt_ms: float) -> None:
        """A new RTT for every chunk read from now on."""
        self.rtt_ms = float(rtt_ms)

    async def serve(self, ready: Callable[[int], None] | None = None) -> None:
        """Accept and forward until cancelled; `ready(port)` once listening."""
        server = await asyncio.start_server(self._handle, self.host, self.listen_port)
        self.port = server.sockets[0].getsockname()[1]
        if ready is not None:
            ready(self.port)
        async with server:
            await server.serve_forever()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(self.host, self.target_port)
        except OSError:
            writer.close()
            return
        for end in (writer, up_writer):  # no Nagle: a held-back chunk must leave when due
            end.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer),
                             return_exceptions=True)
        for end in (writer, up_writer):
            end.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Copy `reader` to `writer`, each chunk written rtt/2 after it was read; EOF too."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def pump() -> None:
            try:
                while data := await reader.read(CHUNK):
                    queue.put_nowait((loop.time() + self.rtt_ms / 2e3, data))
            finally:  # EOF, or the peer went away: either way the other end gets an EOF
                queue.put_nowait((loop.time() + self.rtt_ms / 2e3, b""))

        pumping = asyncio.create_task(pump())
        try:
            while True:
                due, data = await queue.get()
                while (left := due - loop.time()) > 0:
                    await asyncio.sleep(left)
                if not data:
                    break
                writer.write(data)
                await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()
        finally:
            pumping.cancel()


class ProxyProcess:
    """A `DelayProxy` in its own process (``python -m zoo.split.emulate proxy``), inside `ns`
    when given; `port` is where it listens. `set_rtt` changes the delay at run time; the proxy
    exits when closed (its stdin closes)."""

    def __init__(self, target_port: int, rtt_ms: float, listen_port: int = 0,
                 ns: ShapedNamespace | None = None, host: str = "127.0.0.1",
                 timeout: float = 15.0) -> None:
        cmd = [sys.executable, "-m", "zoo.split.emulate", "proxy", "--listen", str(listen_port),
               "--target", str(target_port), "--rtt-ms", repr(float(rtt_ms)), "--host", host]
        start = ns.popen if ns is not None else subprocess.Popen
        pipes = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE,
                 "stderr": subprocess.PIPE, "text": True, "env": _env()}
        self.process = start(cmd, **pipes)
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(self.process.stdout.readline()),
                                  daemon=True)
        reader.start()
        reader.join(timeout)
        if not line or not line[0].startswith("listening "):
            exited = self.process.poll() is not None
            _stop(self.process)
            why = (_last_line(self.process.stderr.read()) if exited
                   else f"not listening after {timeout:g} s")
            raise RuntimeError(f"the delay proxy did not start: {why}")
        self.port = int(line[0].rsplit(":", 1)[1])

    def set_rtt(self, rtt_ms: float) -> None:
        self.process.stdin.write(f"{float(rtt_ms)!r}\n")
        self.process.stdin.flush()

    def close(self) -> None:
        """Close the proxy's stdin (it exits); terminate it if it has not within 2 s."""
        if self.process.stdin and not self.process.stdin.closed:
            self.process.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(2)
        _stop(self.process)

    def __enter__(self) -> ProxyProcess:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _cpu_cgroup() -> tuple[Path, int]:
    """(the cgroup directory of this process in the hierarchy with the cpu controller, the
    cgroup version 1 or 2), or `EmulationUnavailable`."""
    mounts = [line.split() for line in Path("/proc/mounts").read_text().splitlines()]
    own = [line.split(":", 2) for line in Path("/proc/self/cgroup").read_text().splitlines()]
    for _, mount, fstype, options, *_ in mounts:  # v1: a cgroup mount with the cpu option
        if fstype == "cgroup" and "cpu" in options.split(","):
            relative = next((p for _, ctl, p in own if "cpu" in ctl.split(",")), "/")
            return Path(mount) / relative.lstrip("/"), 1
    for _, mount, fstype, *_ in mounts:
        if fstype == "cgroup2":
            relative = next((p for hid, _, p in own if hid == "0"), "/")
            path = Path(mount) / relative.lstrip("/")
            if "cpu" in (path / "cgroup.controllers").read_text().split():
                return path, 2
    raise EmulationUnavailable("no cgroup hierarchy with the cpu controller is mounted")


class DeviceSpeed:
    """A cgroup capping the processes added to `fraction` of one CPU of this machine (see the
    module docstring), removed on exit; added processes still running go back to the parent
    cgroup. The kernel throttles only once a period's quota is used up, so work shorter than
    the quota (a 1-2 ms device half) runs at full speed: the slowdown holds for device halves
    of many milliseconds; measure the device half's time under the cap and state that."""

    def __init__(self, fraction: float, name: str | None = None) -> None:
        fraction = float(fraction)
        if not (math.isfinite(fraction) and fraction > 0):
            raise ValueError(f"fraction must be a finite number > 0, got {fraction}")
        self.fraction = fraction
        self.period_us = max(10_000, math.ceil(1000 / fraction))  # the quota stays >= 1 ms
        self.quota_us = round(fraction * self.period_us)
        self.name = name or f"zoo-split-{secrets.token_hex(4)}"
        self.path: Path | None = None

    def __enter__(self) -> DeviceSpeed:
        if os.geteuid() != 0:
            raise EmulationUnavailable(f"a CPU quota needs root (cgroups), running as uid "
                                       f"{os.geteuid()}")
        parent, version = _cpu_cgroup()
        self.parent, self.version = parent, version
        try:
            if version == 2:
                (parent / "cgroup.subtree_control").write_text("+cpu")
            path = parent / self.name
            path.mkdir()
        except OSError as exc:
            raise EmulationUnavailable(f"cannot create a cpu cgroup under {parent}: "
                                       f"{exc.strerror}") from exc
        self.path = path
        try:
            if version == 1:
                (path / "cpu.cfs_period_us").write_text(str(self.period_us))
                (path / "cpu.cfs_quota_us").write_text(str(self.quota_us))
            else:
                (path / "cpu.max").write_text(f"{self.quota_us} {self.period_us}")
        except OSError as exc:
            self._remove()
            raise EmulationUnavailable(f"cannot set a CPU quota in {path}: {exc.strerror}") \
                from exc
        return self

    def add(self, pid: int) -> None:
        """Move process `pid` (all its threads, and the children it starts later) under the
        quota."""
        if self.path is None:
            raise RuntimeError("DeviceSpeed is not set up: use it in a with block")
        (self.path / "cgroup.procs").write_text(str(pid))

    def __exit__(self, *exc: Any) -> None:
        self._remove()

    def _remove(self) -> None:
        if self.path is None:
            return
        for _ in range(50):
            for pid in (self.path / "cgroup.procs").read_text().split():
                with contextlib.suppress(OSError):  # it may have exited meanwhile
                    (self.parent / "cgroup.procs").write_text(pid)
            try:
                self.path.rmdir()
                break
            except OSError:
                time.sleep(0.02)
        self.path = None


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on now (in this process's namespace; in a fresh namespace
    every port is free)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


_PROBE = """
import socket, sys, time
host, port, deadline = sys.argv[1], int(sys.argv[2]), time.monotonic() + float(sys.argv[3])
while True:
    try:
        socket.create_connection((host, port), timeout=1).close()
        sys.exit(0)
    except OSError:
        if time.monotonic() > deadline:
            sys.exit(1)
        time.sleep(0.02)
"""


def wait_for_port(host: str, port: int, timeout: float = 10.0,
                  ns: ShapedNamespace | None = None) -> None:
    """Return once something accepts TCP connections on `host`:`port` (inside `ns` when given,
    through one probe process); `TimeoutError` after `timeout` seconds."""
    if ns is not None:
        done = ns.run([sys.executable, "-c", _PROBE, host, port, timeout],
                      capture_output=True).returncode == 0
    else:
        deadline = time.monotonic() + timeout
        while not (done := _accepts(host, port)) and time.monotonic() < deadline:
            time.sleep(0.02)
    if not done:
        where = f" in namespace {ns.name}" if ns is not None else ""
        raise TimeoutError(f"nothing listens on {host}:{port}{where} after {timeout:g} s")


def _accepts(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=1).close()
        return True
    except OSError:
        return False


def proxy(listen: int = 0, target: int | None = None, rtt_ms: float | None = None,
          host: str = "127.0.0.1") -> None:
    """Run a `DelayProxy` until killed (or, when stdin is a pipe, until it closes). Prints
    ``listening HOST:PORT`` once ready; each line read on stdin is a new RTT in ms."""
    from zoo.checks import integer, number
    from zoo.errors import ConfigError

    listen = integer("--listen", listen, low=0, high=65535)
    target = integer("--target", target, low=1, high=65535)
    rtt_ms = number("--rtt-ms", rtt_ms, low=0)
    delay = DelayProxy(listen, target, rtt_ms, host=str(host))

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = loop.create_future()

        def commands() -> None:  # a thread: stdin blocks
            for line in sys.stdin:
                try:
                    loop.call_soon_threadsafe(delay.set_rtt, float(line))
                except ValueError:
                    print(f"ignored {line.strip()!r}: not an RTT in ms", file=sys.stderr)
            try:
                piped = stat.S_ISFIFO(os.fstat(0).st_mode)
            except OSError:
                piped = False
            if piped:  # our parent closed the pipe (or died): stop too
                loop.call_soon_threadsafe(lambda: stop.done() or stop.set_result(None))

        threading.Thread(target=commands, daemon=True).start()
        serving = asyncio.create_task(delay.serve(
            lambda port: print(f"listening {host}:{port}", flush=True)))
        await asyncio.wait([serving, stop], return_when=asyncio.FIRST_COMPLETED)
        if serving.done():
            try:
                serving.result()
            except OSError as exc:
                raise ConfigError(f"--listen cannot bind {host}:{listen}: {exc.strerror}") \
                    from exc
        serving.cancel()

    asyncio.run(main())


def main() -> None:
    from zoo.cli import run

    run({"proxy": proxy}, name="python -m zoo.split.emulate")


if __name__ == "__main__":
    main()
