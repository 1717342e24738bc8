"""Choose the cut: end-to-end latency and phone energy of every cut for a link (`split.py plan`).

Example::

    rows = estimate(profile, times, parse_link("lte"), transfer="int8")
    best = choose(rows, "latency")            # the all-device and all-server ends included
    write_plan(out, rows, best, facts)        # plan.json, plan.csv, plan.md, plan.png

For cut k (k units on the device):

    latency = device_ms[k] * device_slowdown                       (phone)
            + RTT + upload(bytes crossing k) + download(label map)  (link; none at ``output``)
            + server_ms[k] * server_load                            (server)

with the link model of `zoo.split.link` (one request, serialisation at the link's rate plus
one RTT) and `device_slowdown` how much slower the phone runs the device half than this
machine's measured thread(s) (1: this CPU itself). `server_load` scales the server's time (1:
idle; the client re-plans with the load the server reports, Neurosurgeon's section 5.3). Phone
energy is `zoo.split.energy.phone_energy`: an estimate from published powers, labelled so.

`times` is {"device": [...], "server": [...]} per cut, measured or predicted: `plan` chooses on
the prediction of the per-layer-type models (the paper's way) and reports the measured best
beside it, and how far the chosen cut is from it.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from zoo.errors import ConfigError
from zoo.files import write_bytes_atomic, write_text_atomic
from zoo.split.cuts import ALL_DEVICE, ALL_SERVER, PRECISIONS, bytes_per_value
from zoo.split.energy import phone_energy
from zoo.split.link import Link, transfer_ms
from zoo.split.profile import Profile

OBJECTIVES = ("latency", "energy")


@dataclass
class Estimate:
    """One cut's figures for one link."""

    index: int
    cut: str
    op: str
    up_bytes: int
    down_bytes: int
    device_ms: float
    upload_ms: float
    rtt_ms: float
    server_ms: float
    download_ms: float
    total_ms: float
    energy_mj: float  # estimated
    energy: dict[str, Any]
    sizes: dict[str, int] | None = None  # bytes up in each transfer precision

    def to_dict(self) -> dict:
        return asdict(self)


def transfer_bytes(profile: Profile, k: int, transfer: str) -> tuple[int, int]:
    """(bytes up, bytes down) of cut k: the crossing tensors in `transfer` (the uint8 frame at
    ``input``), the uint8 label map back; nothing at ``output``."""
    name = profile.cuts[k]
    if name == ALL_DEVICE:
        return 0, 0
    down = math.prod(profile.output_shape)
    if name == ALL_SERVER:
        return profile.values[k], down
    return profile.values[k] * bytes_per_value(transfer), down


def estimate(profile: Profile, times: dict[str, list[float]], link: Link, *, transfer: str,
             device_slowdown: float = 1.0, server_load: float = 1.0, radio: str | None = None
             ) -> list[Estimate]:
    """The figures of every cut (see the module docstring)."""
    rows = []
    for k, name in enumerate(profile.cuts):
        up, down = transfer_bytes(profile, k, transfer)
        device = times["device"][k] * device_slowdown
        remote = name != ALL_DEVICE
        server = times["server"][k] * server_load if remote else 0.0
        upload, download = transfer_ms(link, up, "up"), transfer_ms(link, down, "down")
        rtt = link.rtt_ms if remote else 0.0
        energy = phone_energy(link, device, up, down, server + rtt, radio=radio)
        rows.append(Estimate(
            index=k, cut=name, op=profile.ops[k], up_bytes=up, down_bytes=down,
            device_ms=device, upload_ms=upload, rtt_ms=rtt, server_ms=server,
            download_ms=download, total_ms=device + upload + rtt + server + download,
            energy_mj=energy.total_mj, energy=energy.as_dict(),
            sizes={p: transfer_bytes(profile, k, p)[0] for p in PRECISIONS}))
    return rows


def choose(rows: list[Estimate], objective: str = "latency") -> Estimate:
    if objective not in OBJECTIVES:
        raise ConfigError(f"--objective must be one of {', '.join(OBJECTIVES)}, got "
                          f"{objective!r}")
    key = (lambda r: r.total_ms) if objective == "latency" else (lambda r: r.energy_mj)
    return min(rows, key=key)


def write_plan(out: Path, rows: list[Estimate], chosen: Estimate, facts: dict[str, Any],
               measured: list[Estimate | None] | None = None) -> dict[str, Any]:
    """plan.json (facts, chosen cut, every row), plan.csv, plan.md and plan.png in `out`;
    `measured` holds the rows of measured times, None for a cut not measured."""
    out.mkdir(parents=True, exist_ok=True)
    result = {**facts, "chosen": chosen.to_dict(), "rows": [r.to_dict() for r in rows],
              "measured_rows": [r and r.to_dict() for r in measured] if measured else None}
    write_text_atomic(out / "plan.json", json.dumps(result, indent=2) + "\n")
    fields = ["index", "cut", "op", "up_bytes", "down_bytes", "device_ms", "upload_ms",
              "rtt_ms", "server_ms", "download_ms", "total_ms", "energy_mj"]
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow([*fields, "measured_total_ms"])
    for i, r in enumerate(rows):
        row = r.to_dict()
        writer.writerow([row[f] for f in fields] + [_measured_ms(measured, i)])
    write_text_atomic(out / "plan.csv", buf.getvalue())
    write_text_atomic(out / "plan.md", plan_markdown(rows, chosen, facts, measured))
    write_bytes_atomic(out / "plan.png", plan_figure(rows, chosen, facts, measured))
    return result


def _measured_ms(measured: list[Estimate | None] | None, i: int) -> float | str:
    return measured[i].total_ms if measured and measured[i] is not None else ""


def plan_markdown(rows: list[Estimate], chosen: Estimate, facts: dict[str, Any],
                  measured: list[Estimate | None] | None = None) -> str:
    link = facts["link"]
    lines = [f"# Split plan: {facts.get('run_id', '')}", "",
             f"Link {link['name']}: up {link['uplink_mbps']:g} Mbit/s, down "
             f"{link['downlink_mbps']:g} Mbit/s, RTT {link['rtt_ms']:g} ms; transfer "
             f"{facts['transfer']}; objective {facts['objective']}; device slowdown "
             f"{facts['device_slowdown']:g}, server load {facts['server_load']:g}; times "
             f"{facts['times']} on {facts.get('cpu', '')}. Energy is an estimate (published "
             "powers x these times).", "",
             f"**Chosen cut: `{chosen.cut}`** (#{chosen.index}): {chosen.total_ms:.1f} ms, "
             f"estimated {chosen.energy_mj:.0f} mJ.", ""]
    if measured:
        best = min((r for r in measured if r is not None), key=lambda r: r.total_ms)
        mine = measured[chosen.index]
        got = (f"measures {mine.total_ms:.1f} ms ({mine.total_ms / best.total_ms * 100:.1f} % "
               "of the best's time)" if mine is not None else "was not measured (--every)")
        count = sum(r is not None for r in measured)
        lines += [f"Measured ({count} of {len(rows)} cuts): best `{best.cut}` "
                  f"{best.total_ms:.1f} ms; the chosen cut {got}.", ""]
    lines += ["| # | cut | op | up KB fp32 / fp16 / int8 | device ms | upload ms | RTT ms | "
              "server ms | download ms | total ms | energy mJ (est.) |"
              + (" measured ms |" if measured else ""),
              "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|" + (
                  "---:|" if measured else "")]
    for i, r in enumerate(rows):
        mark = " **<-**" if r.index == chosen.index else ""
        sizes = " / ".join(f"{r.sizes[p] / 1e3:.1f}" for p in PRECISIONS) if r.sizes else \
            f"{r.up_bytes / 1e3:.1f}"
        lines.append(f"| {r.index} | {r.cut}{mark} | {r.op} | {sizes} | "
                     f"{r.device_ms:.2f} | {r.upload_ms:.1f} | {r.rtt_ms:.0f} | "
                     f"{r.server_ms:.2f} | {r.download_ms:.1f} | {r.total_ms:.1f} | "
                     f"{r.energy_mj:.0f} |" + (f" {_measured_ms(measured, i):.1f} |"
                                               if measured and measured[i] is not None
                                               else " |" if measured else ""))
    return "\n".join(lines) + "\n"


def plan_figure(rows: list[Estimate], chosen: Estimate, facts: dict[str, Any],
                measured: list[Estimate | None] | None = None) -> bytes:
    """Stacked predicted latency per cut (device, link, server), the measured total, the
    transfer size and the estimated energy; the chosen cut marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    x = np.arange(len(rows))
    device = np.array([r.device_ms for r in rows])
    link = np.array([r.upload_ms + r.rtt_ms + r.download_ms for r in rows])
    server = np.array([r.server_ms for r in rows])
    fig, axes = plt.subplots(3, 1, figsize=(12, 9), sharex=True,
                             gridspec_kw={"height_ratios": [3, 1.3, 1.3]})
    ax = axes[0]
    ax.bar(x, device, color="#4c72b0", label="device (phone)")
    ax.bar(x, link, bottom=device, color="#dd8452", label="link: upload + RTT + download")
    ax.bar(x, server, bottom=device + link, color="#55a868", label="server")
    if measured:
        ax.plot([i for i, r in enumerate(measured) if r is not None],
                [r.total_ms for r in measured if r is not None], "k.-", lw=1, ms=4,
                label="measured total")
    ax.axvline(chosen.index, color="crimson", ls="--", lw=1.2,
               label=f"chosen: {chosen.cut} ({chosen.total_ms:.0f} ms)")
    ax.set_ylabel("end-to-end latency (ms)")
    link_facts = facts["link"]
    ax.set_title(f"{facts.get('run_id', '')}: {link_facts['name']} "
                 f"({link_facts['uplink_mbps']:g} Mbit/s up, RTT {link_facts['rtt_ms']:g} ms), "
                 f"{facts['transfer']} transfer, {facts['times']} times", fontsize=10)
    ax.legend(fontsize=8, loc="upper left")
    axes[1].bar(x, [max(r.up_bytes, 1) / 1e3 for r in rows], color="#8172b2")
    axes[1].set_yscale("log")
    axes[1].set_ylabel("upload (KB)")
    axes[2].bar(x, [r.energy_mj for r in rows], color="#937860")
    axes[2].axvline(chosen.index, color="crimson", ls="--", lw=1.2)
    axes[2].set_ylabel("phone energy\n(mJ, estimated)")
    step = max(1, len(rows) // 40)
    axes[2].set_xticks(x[::step])
    axes[2].set_xticklabels([rows[i].cut for i in x[::step]], rotation=75, fontsize=7)
    axes[2].set_xlabel("cut (after layer; input = all on the server, output = all on the "
                       "device)")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()
