"""The wireless link between phone and server: its rates and round-trip time, and what one
request costs on it.

Example::

    link = parse_link("lte")                  # a preset, or "8,40", or "5.85/13,70"
    transfer_ms(link, 150_528)                # serialisation only: 150528 * 8 / 5.85 Mbit/s
    request_ms(link, up_bytes=150_528, down_bytes=50_176)   # RTT + up + down

The model of one request (the one Neurosurgeon, Kang et al. ASPLOS 2017, plans with, plus the
RTT): the phone sends ``up_bytes`` and receives ``down_bytes`` over an already open connection,
one request and one response. Time = RTT + up_bytes * 8 / uplink + down_bytes * 8 / downlink.
Left out on purpose: TCP's handshake and slow start (a real first request on a fresh connection
pays extra round trips while the window grows), TCP/IP headers (about 3-4 % more bytes at an MTU
of 1500), queueing behind other traffic, loss and retransmission, and rate variation. The
emulation (`zoo.split.emulate`) runs real TCP over a shaped loopback, so it has the TCP ones.

Presets (uplink Mbit/s, downlink Mbit/s, RTT ms) and where each number comes from. "Assumed"
means no published measurement was verified for it here: pass ``BW,RTT`` or ``UP/DOWN,RTT``
with your own measurement when it matters.

- ``wifi`` 18.88 / 18.88 / 50: uplink the Wi-Fi rate of Neurosurgeon's evaluation (Kang et al.
  2017 use 3G 1.1, LTE 5.85 and Wi-Fi 18.88 Mbit/s uplinks; read here as quoted by later
  split-computing work, not in the paper itself); downlink assumed equal to the uplink; RTT
  assumed.
- ``lte`` 5.85 / 13 / 70: uplink Neurosurgeon's LTE rate, which agrees with the **median** of
  6 Mbit/s Huang et al. measured over the users of their 4GTest app ("A Close Examination of
  Performance and Power Characteristics of 4G LTE Networks", MobiSys 2012); downlink their
  **median**, 13 Mbit/s (both medians as their abstract gives them); RTT assumed, of the order
  Huang et al. report for LTE (their median RTT was not verified here).
- ``3g`` 1.1 / 1.1 / 150: uplink Neurosurgeon's 3G rate; downlink assumed equal to the uplink
  (3G downlinks are faster, so this is pessimistic for the response); RTT assumed.

These are 2012-2017 US networks: read them as representative, not current. The downlink carries
only the label map (1 byte per pixel), so an assumed downlink moves a split's latency little;
the RTT is paid once per request, so it shifts every split that uses the server alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from zoo.errors import ConfigError

FORMS = "wifi, lte, 3g, BW,RTT or UP/DOWN,RTT (Mbit/s and ms, each > 0)"


@dataclass(frozen=True)
class Link:
    """A link's rates in Mbit/s (10^6 bit/s) each way and its round-trip time in ms."""

    name: str
    uplink_mbps: float
    downlink_mbps: float
    rtt_ms: float


PRESETS = {
    "wifi": Link("wifi", 18.88, 18.88, 50.0),
    "lte": Link("lte", 5.85, 13.0, 70.0),
    "3g": Link("3g", 1.1, 1.1, 150.0),
}


def parse_link(spec: Any, flag: str = "--link") -> Link:
    """A `Link` from a preset name, ``BW,RTT`` (symmetric) or ``UP/DOWN,RTT``; a `Link` passes
    through. Fire hands ``8,40`` over as the tuple ``(8, 40)``, which is accepted too."""
    if isinstance(spec, Link):
        return spec
    if isinstance(spec, list | tuple) and len(spec) == 2:
        spec = f"{spec[0]},{spec[1]}"
    text = str(spec).strip().lower() if isinstance(spec, str | int | float) else None
    if text in PRESETS:
        return PRESETS[text]
    parts = text.split(",") if text else []
    if len(parts) == 2:
        rates = parts[0].split("/")  # "BW" or "UP/DOWN"
        values = [_positive(p) for p in (*rates, parts[1])]
        if len(rates) in (1, 2) and None not in values:
            up, down, rtt = values[0], values[-2], values[-1]
            return Link(f"{up:g}/{down:g}mbps-{rtt:g}ms", up, down, rtt)
    raise ConfigError(f"{flag} must be {FORMS}, got {spec!r}")


def _positive(text: str) -> float | None:
    """`text` as a finite number > 0, else None."""
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) and value > 0 else None


def transfer_ms(link: Link, nbytes: int, direction: str = "up") -> float:
    """Serialisation time of `nbytes` on the link, in ms: ``nbytes * 8 / rate``. No RTT, no
    headers, no slow start (see the module docstring)."""
    if direction not in ("up", "down"):
        raise ValueError(f"direction must be 'up' or 'down', got {direction!r}")
    if nbytes < 0:
        raise ValueError(f"nbytes must be >= 0, got {nbytes}")
    mbps = link.uplink_mbps if direction == "up" else link.downlink_mbps
    return nbytes * 8 / (mbps * 1e3)  # bits / (Mbit/s * 1e6) s = ms * 1e-3


def request_ms(link: Link, up_bytes: int, down_bytes: int) -> float:
    """One request and its response, in ms: RTT + uplink transfer + downlink transfer."""
    return (link.rtt_ms + transfer_ms(link, up_bytes, "up")
            + transfer_ms(link, down_bytes, "down"))
