"""Real link emulation: the namespace's life, that shaping holds transfers to the rate, that the
delay proxy adds the RTT and keeps the bytes, and that a CPU quota caps a busy process.

Timings are only ever bounded from below (a shaped transfer cannot beat its rate, a delayed
round trip cannot beat its RTT) and CPU use from above, so a slow or busy machine cannot fail
them. Whatever needs root, iproute2 or a cgroup skips with the one-line reason it is missing.
"""

import contextlib
import hashlib
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from zoo.split.emulate import (
    DeviceSpeed,
    EmulationUnavailable,
    ProxyProcess,
    ShapedNamespace,
    free_port,
    wait_for_port,
)
from zoo.split.link import Link

LINK = Link("test", 8.0, 8.0, 100.0)

# Inside a namespace: a sink thread and a sender, timed from the first byte to the last read.
TRANSFER = """
import socket, sys, threading, time
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
start = time.perf_counter()
sender.sendall(b"x" * n)
sender.shutdown(socket.SHUT_WR)
reader.join()
assert received == [n], received
print(time.perf_counter() - start)
"""

# Inside a namespace: a server on port p; "up" sends n bytes to it, "down" has it send n bytes;
# prints the seconds from the connection to the last byte read.
ONE_WAY = """
import socket, sys, threading, time
port, n, way = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", port))
server.listen(1)
def serve():
    connection, _ = server.accept()
    if way == "down":
        connection.sendall(b"x" * n)
    else:
        while connection.recv(65536):
            pass
    connection.close()
threading.Thread(target=serve).start()
start = time.perf_counter()
client = socket.create_connection(("127.0.0.1", port))
if way == "up":
    client.sendall(b"x" * n)
    client.shutdown(socket.SHUT_WR)
    client.recv(1)
else:
    got = 0
    while chunk := client.recv(65536):
        got += len(chunk)
    assert got == n, got
print(time.perf_counter() - start)
"""

ECHO_SERVER = """
import socket, sys, threading
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", int(sys.argv[1])))
server.listen(8)
def echo(connection):
    while chunk := connection.recv(65536):
        connection.sendall(chunk)
    connection.close()
while True:
    threading.Thread(target=echo, args=(server.accept()[0],), daemon=True).start()
"""

# Sends n random bytes to an echo server, reads them back; prints seconds and whether equal.
ECHO_CLIENT = """
import hashlib, os, socket, sys, threading, time
port, n = int(sys.argv[1]), int(sys.argv[2])
data = os.urandom(n)
connection = socket.create_connection(("127.0.0.1", port))
back = bytearray()
def read():
    while chunk := connection.recv(65536):
        back.extend(chunk)
reader = threading.Thread(target=read)
start = time.perf_counter()
reader.start()
connection.sendall(data)
connection.shutdown(socket.SHUT_WR)
reader.join()
print(time.perf_counter() - start, hashlib.sha256(back).digest() == hashlib.sha256(data).digest())
"""


def netns_names():
    listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in listing.splitlines() if line.strip()]


@contextlib.contextmanager
def shaped(link, **kwargs):
    """A `ShapedNamespace`, or a skip saying why this machine cannot make one."""
    namespace = ShapedNamespace(link, **kwargs)
    try:
        namespace.__enter__()
    except EmulationUnavailable as exc:
        pytest.skip(str(exc))
    try:
        yield namespace
    finally:
        namespace.__exit__(None, None, None)


def seconds_to_send(namespace, nbytes):
    result = namespace.run([sys.executable, "-c", TRANSFER, nbytes], capture_output=True,
                           text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return float(result.stdout)


class Boom(Exception):
    pass


def test_the_namespace_lives_only_inside_the_block():
    namespace = ShapedNamespace(LINK)
    try:
        with namespace:
            assert namespace.name in netns_names()
            assert namespace.name.startswith("zoo-split-")
            lo = namespace.run(["ip", "link", "show", "lo"], capture_output=True, text=True)
            assert "mtu 1500" in lo.stdout and "UP" in lo.stdout
            sleeper = namespace.popen(["sleep", "60"])
    except EmulationUnavailable as exc:
        pytest.skip(str(exc))
    assert namespace.name not in netns_names()
    assert not (Path("/run/netns") / namespace.name).exists()
    assert sleeper.poll() is not None  # the processes it started are stopped


def test_the_namespace_is_deleted_after_an_exception():
    namespace = ShapedNamespace(LINK)
    try:
        with namespace:
            assert namespace.name in netns_names()
            raise Boom
    except EmulationUnavailable as exc:
        pytest.skip(str(exc))
    except Boom:
        pass
    assert namespace.name not in netns_names()


def test_shaping_holds_transfers_to_the_rate():
    with shaped(LINK) as namespace:
        # 2 MB at 8 Mbit/s take 2 s at best (and more with TCP/IP headers).
        assert seconds_to_send(namespace, 2_000_000) >= 0.8 * 2_000_000 * 8 / 8e6
        namespace.set_rate(2.0)
        shaping = namespace.shaping()
        assert shaping.up_mbps == 2.0 and "htb" in shaping.text and "rate 2Mbit" in shaping.text
        assert seconds_to_send(namespace, 500_000) >= 0.8 * 500_000 * 8 / 2e6
        assert namespace.shaping().up_bytes >= 2_500_000  # headers included
        namespace.set_rate(80.0)
        assert namespace.emulated == Link("test-emulated", 80.0, 80.0, 100.0)
        assert "rate 80Mbit" in namespace.run(["tc", "class", "show", "dev", "lo"],
                                              capture_output=True, text=True).stdout


def test_with_a_port_each_direction_has_its_rate_and_other_traffic_is_free():
    port, n = 9100, 500_000
    with shaped(Link("asym", 2.0, 16.0, 0.0), port=port) as namespace:
        def seconds(to_port, way):
            result = namespace.run([sys.executable, "-c", ONE_WAY, to_port, n, way],
                                   capture_output=True, text=True, timeout=60)
            assert result.returncode == 0, result.stderr
            return float(result.stdout)

        up, down = seconds(port, "up"), seconds(port, "down")
        assert up >= 0.8 * n * 8 / 2e6
        assert down >= 0.8 * n * 8 / 16e6
        assert down < up / 2  # 8 times the rate; with room for a busy machine
        assert seconds(port + 1, "up") < up / 2  # not shaped at all
        shaping = namespace.shaping()
        assert (shaping.up_mbps, shaping.down_mbps) == (2.0, 16.0)
        assert n <= shaping.up_bytes <= 1.5 * n  # the upload and the download's acks
        assert n <= shaping.down_bytes <= 1.5 * n
        namespace.set_rate(4.0, 8.0)
        assert namespace.emulated == Link("asym-emulated", 4.0, 8.0, 0.0)
        assert (namespace.shaping().up_mbps, namespace.shaping().down_mbps) == (4.0, 8.0)


@pytest.fixture
def echo_port():
    """An echo server on this machine's loopback, in a thread."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)

    def echo(connection):
        while chunk := connection.recv(65536):
            connection.sendall(chunk)
        connection.close()

    def accept():
        while True:
            try:
                connection, _ = server.accept()
            except OSError:  # closed at teardown
                return
            threading.Thread(target=echo, args=(connection,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield server.getsockname()[1]
    server.close()


def round_trip(port, message):
    """Seconds to send `message` through `port` and read as many bytes back, and the bytes."""
    connection = socket.create_connection(("127.0.0.1", port))
    back = bytearray()

    def read():
        while chunk := connection.recv(65536):
            back.extend(chunk)

    reader = threading.Thread(target=read)
    start = time.perf_counter()
    reader.start()
    connection.sendall(message)
    connection.shutdown(socket.SHUT_WR)
    reader.join(30)
    seconds = time.perf_counter() - start
    connection.close()
    return seconds, bytes(back)


def test_the_delay_proxy_adds_the_rtt_and_keeps_the_bytes(echo_port):
    # On this machine's loopback (no namespace, no root needed).
    with ProxyProcess(target_port=echo_port, rtt_ms=200) as proxy:
        data = os.urandom(1_000_000)
        seconds, back = round_trip(proxy.port, data)
        assert hashlib.sha256(back).digest() == hashlib.sha256(data).digest()
        assert seconds >= 0.200 - 0.001
        seconds, back = round_trip(proxy.port, b"?")
        assert back == b"?" and seconds >= 0.200 - 0.001
        proxy.set_rtt(50)
        time.sleep(0.2)  # the new RTT travels through the proxy's stdin
        seconds, _ = round_trip(proxy.port, b"?")
        assert seconds >= 0.050 - 0.001
    assert proxy.process.returncode == 0  # it left when its stdin closed


def test_the_proxy_command_checks_its_arguments():
    result = subprocess.run([sys.executable, "-m", "zoo.split.emulate", "proxy", "--target", "0",
                             "--rtt-ms", "10"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "error: --target must be an integer between 1 and 65535, got 0")


def test_shaping_and_delay_together_in_a_namespace():
    proxy_port = 9100
    with shaped(LINK, port=proxy_port) as namespace:  # only the phone's leg is shaped
        server_port = 9000  # every port is free in a fresh namespace
        namespace.popen([sys.executable, "-c", ECHO_SERVER, server_port])
        wait_for_port("127.0.0.1", server_port, timeout=30, ns=namespace)
        with ProxyProcess(server_port, LINK.rtt_ms, listen_port=proxy_port,
                          ns=namespace) as proxy:
            assert proxy.port == proxy_port
            nbytes = 250_000
            result = namespace.run([sys.executable, "-c", ECHO_CLIENT, proxy.port, nbytes],
                                   capture_output=True, text=True, timeout=60)
            assert result.returncode == 0, result.stderr
            seconds, same = result.stdout.split()
            assert same == "True"
            # The echo overlaps up and back, each at 8 Mbit/s, and no byte returns sooner
            # than one RTT.
            assert float(seconds) >= max(LINK.rtt_ms / 1e3, 0.8 * nbytes * 8 / 8e6)


def test_wait_for_port():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        wait_for_port("127.0.0.1", listener.getsockname()[1], timeout=5)
    port = free_port()
    with pytest.raises(TimeoutError, match=rf"^nothing listens on 127.0.0.1:{port} after 0.2 s$"):
        wait_for_port("127.0.0.1", port, timeout=0.2)


BUSY = """
import sys, time
sys.stdin.readline()
wall, cpu = time.perf_counter(), time.process_time()
while time.perf_counter() - wall < 1.0:
    pass
print(time.process_time() - cpu, time.perf_counter() - wall)
"""


def test_a_cpu_quota_caps_a_busy_process():
    device = DeviceSpeed(0.25)
    try:
        device.__enter__()
    except EmulationUnavailable as exc:
        pytest.skip(str(exc))
    path = device.path
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        busy = subprocess.Popen([sys.executable, "-c", BUSY], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True)
        device.add(busy.pid)
        device.add(sleeper.pid)
        out, _ = busy.communicate("go\n", timeout=60)
        cpu, wall = map(float, out.split())
        assert cpu <= 0.40 * wall  # 25 % of one CPU, with room for the slice granularity
    finally:
        device.__exit__(None, None, None)
        assert not path.exists()  # removed, though `sleeper` was still in it
        assert sleeper.poll() is None
        sleeper.kill()
        sleeper.wait()


@pytest.mark.parametrize("fraction", [0, -1, float("nan")])
def test_a_quota_must_be_positive(fraction):
    with pytest.raises(ValueError, match="fraction must be a finite number > 0"):
        DeviceSpeed(fraction)
