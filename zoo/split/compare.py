"""The plan against the truth: every candidate cut that could be the best, measured end to end
over the emulated link, with all-device, all-server and the planned cut beside it.

Example::

    python -m zoo.split.compare --run checkpoints/<run> --links wifi,lte,3g \\
        --device-fraction 0.1 --out split-compare

Per link (`zoo.split.experiment` for the emulation, `zoo.split.cli.make_plan` for the plan):

1. **The phone's speed.** With ``device_fraction`` the phone runs under that CPU quota
   (`DeviceSpeed`); the whole model's LiteRT time under the quota over its time unthrottled
   is the device slowdown k, measured first, and the plan is made for a device k times slower
   than the profile (``device_slowdown``). Without it, this CPU is the phone (k = 1).
2. **The plan**: `make_plan` chooses the cut from the per-layer-type latency models
   (predicted times, as Neurosurgeon plans a network it has not run) and also totals each
   cut from its measured halves (the profile) and the link model: its **parts**.
3. **Which cuts to measure.** All-device, all-server, the planned cut, and every cut whose
   parts come within `SHORTLIST` of the best parts. A cut's parts are a lower bound of its
   end-to-end time, up to the noise of the measurements: a request cannot beat its bytes at
   the link's rate (the emulated rates count headers too) plus the RTT, nor its halves their
   compute. A cut the profile did not time (``--every``) is bounded by its neighbours
   (device time grows with the cut, server time shrinks).
4. **Measure end to end**: the shortlisted pairs (exported once per run, int8 transfer, into
   ``<run>/split/compare-halves/``) are served and run through the emulated link by
   ``split.py run --cut every``: each cut in turn, image by image, so every cut sees the same
   conditions. The server runs one onnxruntime thread per request and the phone one LiteRT
   thread, as the profile timed them. The best cut is the one with the lowest median.
5. **Check the bound**: every cut left out must have ``BOUND_MARGIN`` x its bound above the
   best measured median; any that does not is exported and everything is measured again
   (up to `MAX_ROUNDS`), so the best cut found is the best of all candidates. A cut whose int8
   pair fails the export gate (more than 0.5 pt mIoU lost) cannot be used: it is left out and
   listed (``refused``).

The figures: all-device, all-server, planned and best (measured medians), the planned cut's
time as a share of the best's (the target is within 5 %), and the phone's energy, estimated
(`zoo.split.energy`) from the measured device time, the bytes each way at the link's rates and
the rest of the request as idle wait. Writes compare.json, compare.md and compare.png in
`out`, the plans in ``plan-<link>/`` and each emulation's files in ``<link>-<round>/``.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from zoo import checks
from zoo.errors import ConfigError

SHORTLIST = 1.25  # cuts whose parts are within this factor of the best parts are measured
BOUND_MARGIN = 0.8  # a cut left out must have 0.8 x its bound above the best measured median
MAX_ROUNDS = 3
ALL_DEVICE, ALL_SERVER = "output", "input"
TARGET = 1.05  # the planned cut within 5 % of the best

_TIME_FULL = """
import sys, time
import numpy as np
from ai_edge_litert.interpreter import Interpreter
runner = Interpreter(model_path=sys.argv[1], num_threads=1).get_signature_runner()
name, detail = next(iter(runner.get_input_details().items()))
x = np.zeros(detail["shape"], detail["dtype"])
print("ready", flush=True)
sys.stdin.readline()
times = []
for i in range(int(sys.argv[2]) + 2):
    start = time.perf_counter()
    runner(**{name: x})
    times.append((time.perf_counter() - start) * 1e3)
print(sorted(times[2:])[len(times[2:]) // 2])
"""


def time_full(path: Path, fraction: float | None, runs: int = 10) -> float:
    """Median ms of the whole model (`path`, a full.tflite) on one LiteRT thread, in a fresh
    process, under a `DeviceSpeed` quota of `fraction` of one core (None: unthrottled)."""
    import contextlib

    from zoo.split.emulate import DeviceSpeed

    speed = DeviceSpeed(fraction) if fraction is not None else contextlib.nullcontext()
    with speed:
        process = subprocess.Popen([sys.executable, "-c", _TIME_FULL, str(path), str(runs)],
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        if process.stdout.readline().strip() != "ready":
            process.kill()
            raise RuntimeError(f"timing {path} failed (exit {process.wait()})")
        if fraction is not None:
            speed.add(process.pid)
        out, _ = process.communicate("go\n", timeout=600)
    if process.returncode:
        raise RuntimeError(f"timing {path} failed (exit {process.returncode})")
    return float(out.strip())


def parse_links(value: Any) -> list:
    """`Link`s from ``"wifi,lte,3g"``, presets and ``BW,RTT`` / ``UP/DOWN,RTT`` pairs mixed
    (``"wifi,8,40"``), or a list of them (what Fire makes of the same)."""
    from zoo.split.link import PRESETS, parse_link

    tokens = [str(t).strip() for t in (value.split(",") if isinstance(value, str) else value)]
    links, i = [], 0
    while i < len(tokens):
        if tokens[i].lower() in PRESETS or i + 1 == len(tokens):
            links.append(parse_link(tokens[i], "--links"))
            i += 1
        else:
            links.append(parse_link(f"{tokens[i]},{tokens[i + 1]}", "--links"))
            i += 2
    if not links:
        raise ConfigError("--links must name at least one link: wifi, lte, 3g, BW,RTT or "
                          "UP/DOWN,RTT")
    return links


def bounds(plan: dict) -> list[float | None]:
    """Each cut's lower bound from its measured parts (`make_plan`'s ``measured_rows``): the
    measured total where both halves were timed, else the device time of the nearest timed cut
    before it plus the server time of the nearest after it, plus its own transfer and RTT
    (device time grows with the cut, server time shrinks); None where no neighbour was timed."""
    rows, measured = plan["rows"], plan["measured_rows"]
    out: list[float | None] = []
    for k, row in enumerate(rows):
        if measured[k] is not None:
            out.append(measured[k]["total_ms"])
            continue
        before = next((measured[j]["device_ms"] for j in range(k - 1, -1, -1)
                       if measured[j] is not None), None)
        after = next((measured[j]["server_ms"] for j in range(k + 1, len(rows))
                      if measured[j] is not None), None)
        out.append(None if before is None or after is None else
                   before + after + row["upload_ms"] + row["rtt_ms"] + row["download_ms"])
    return out


def shortlist(plan: dict, bound: list[float | None]) -> list[str]:
    """All-server, all-device, the planned cut and every cut whose bound is within `SHORTLIST`
    of the best bound, in cut order."""
    cuts = [row["cut"] for row in plan["rows"]]
    known = [b for b in bound if b is not None]
    best = min(known) if known else math.inf
    keep = {ALL_SERVER, ALL_DEVICE, plan["chosen"]["cut"]}
    keep |= {cut for cut, b in zip(cuts, bound, strict=True) if b is not None
             and b <= SHORTLIST * best}
    return [cut for cut in cuts if cut in keep]


def left_out(plan: dict, bound: list[float | None], measured: set[str],
             best_ms: float) -> list[str]:
    """Cuts not measured that could still beat `best_ms`: no bound, or ``BOUND_MARGIN`` x
    their bound below it."""
    return [row["cut"] for row, b in zip(plan["rows"], bound, strict=True)
            if row["cut"] not in measured and (b is None or BOUND_MARGIN * b < best_ms)]


def _halves(run_dir: Path, cut: str, root: Path, checkpoints: str) -> str:
    """The cut's int8-transfer pair, exported once into `root`."""
    from zoo.split.halves import export_halves

    folder = root / cut
    if (folder / "split.json").is_file():
        return str(folder)
    return export_halves(str(run_dir), cut, transfer="int8", out=str(folder),
                         checkpoints_dir=checkpoints)["folder"]


def measured_cuts(result: dict, link, down_bytes: dict[str, int],
                  radio: str | None = None) -> dict[str, dict]:
    """Per cut of an emulation (experiment.json's content): images, median and p90 ms, the
    medians of device and request time, and the phone's estimated energy from them
    (`down_bytes`: each cut's answer; `radio`: the power model, default the link's name)."""
    from zoo.split.energy import phone_energy
    from zoo.split.experiment import median
    from zoo.split.link import transfer_ms

    out = {}
    for cut in dict.fromkeys(row["cut"] for row in result["timeline"]):
        rows = [r for r in result["timeline"] if r["cut"] == cut and not r["fallback"]]
        if not rows:
            continue
        totals = sorted(r["total_ms"] for r in rows)
        device = median([r["device_ms"] for r in rows])
        request = median([r["request_ms"] for r in rows])
        up = rows[0]["up_bytes"]
        down = down_bytes.get(cut, 0) if request else 0
        wire = transfer_ms(link, up, "up") + transfer_ms(link, down, "down") if request else 0
        energy = phone_energy(link, device, up, down, max(0.0, request - wire), radio=radio)
        out[ALL_DEVICE if cut == "all-device" else cut] = {
            "images": len(rows), "median_ms": median(totals),
            "p90_ms": totals[min(len(totals) - 1, int(0.9 * len(totals)))],
            "device_ms": device, "request_ms": request, "up_bytes": up,
            "energy_mj": energy.total_mj, "energy": energy.as_dict()}
    return out


def compare(run: Any = None, links: Any = "wifi,lte,3g", device_fraction: float | None = None,
            images_per_cut: int = 8, every: int = 1, runs: int = 15, out: Any = None,
            radio: str | None = None, checkpoints: str = "checkpoints") -> dict:
    """See the module docstring; returns compare.json's content."""
    from zoo.runs import resolve_run
    from zoo.split.cli import make_plan
    from zoo.split.experiment import run_emulated
    if out is None:
        raise ConfigError("--out is required: the folder for compare.json, .md and .png")
    out_dir = checks.folder("--out", out)
    parsed = parse_links(links)
    device_fraction = checks.optional(checks.number)("--device-fraction", device_fraction,
                                                     low=0, low_open=True)
    images_per_cut = checks.integer("--images-per-cut", images_per_cut, low=1)
    run_dir = resolve_run(run, Path(checkpoints))
    halves_root = run_dir / "split" / "compare-halves"
    folder = {cut: _halves(run_dir, cut, halves_root, checkpoints)
              for cut in (ALL_SERVER, ALL_DEVICE)}
    full = Path(folder[ALL_DEVICE]) / "device.tflite"  # at the output cut: the whole model
    unthrottled = time_full(full, None)
    slowed = time_full(full, device_fraction) if device_fraction is not None else unthrottled
    slowdown = slowed / unthrottled
    print(f"device: whole model {unthrottled:.1f} ms unthrottled, {slowed:.1f} ms "
          f"{'under the quota' if device_fraction else ''}: slowdown {slowdown:.2f}")
    result = {"run": str(run_dir), "device_fraction": device_fraction,
              "device": {"full_ms_unthrottled": unthrottled, "full_ms": slowed,
                         "slowdown": slowdown}, "links": {}}
    refused: dict[str, str] = {}  # cuts whose int8 pair failed the export gate
    for link in parsed:
        started = time.time()
        plan = make_plan(str(run_dir), link=link, transfer="int8", device_slowdown=slowdown,
                         radio=radio, every=every, runs=runs,
                         out=str(out_dir / f"plan-{link.name.replace('/', '_')}"),
                         checkpoints=checkpoints)
        bound = bounds(plan)
        cuts = shortlist(plan, bound)
        rounds = []
        for n in range(1, MAX_ROUNDS + 1):
            for cut in cuts:
                if cut not in folder and cut not in refused:
                    try:
                        folder[cut] = _halves(run_dir, cut, halves_root, checkpoints)
                    except ConfigError as exc:  # an int8 pair that fails the gate
                        if "failed validation" not in str(exc):
                            raise
                        refused[cut] = str(exc)
                        print(f"{cut}: left out, its pair failed validation ({exc})")
            cuts = [cut for cut in cuts if cut not in refused]
            turns = len(cuts)
            emulated = run_emulated([folder[c] for c in cuts], link,
                                    images=turns * images_per_cut, cut="every",
                                    device_fraction=device_fraction, server_threads=1,
                                    out=out_dir / f"{link.name.replace('/', '_')}-{n}")
            per_cut = measured_cuts(emulated, link, _result_bytes([folder[c] for c in cuts]),
                                    radio=radio)
            best = min(per_cut, key=lambda c: per_cut[c]["median_ms"])
            more = [c for c in left_out(plan, bound, set(cuts), per_cut[best]["median_ms"])
                    if c not in refused]
            rounds.append({"cuts": cuts, "best": best, "added_after": more})
            if not more:
                break
            cuts = [row["cut"] for row in plan["rows"] if row["cut"] in set(cuts) | set(more)]
        planned = plan["chosen"]["cut"]
        result["links"][link.name] = {
            "link": link.__dict__, "planned": planned,
            "planned_predicted_ms": plan["chosen"]["total_ms"],
            "prediction_error": plan["prediction_error"],
            "measured": per_cut, "best": best,
            "planned_over_best": per_cut[planned]["median_ms"] / per_cut[best]["median_ms"],
            "bounds": dict(zip([r["cut"] for r in plan["rows"]], bound, strict=True)),
            "predicted": {r["cut"]: r["total_ms"] for r in plan["rows"]},
            "rounds": rounds, "complete": not more, "seconds": time.time() - started,
            "refused": dict(refused)}
        line = result["links"][link.name]
        print(f"{link.name}: planned {planned} {per_cut[planned]['median_ms']:.1f} ms, best "
              f"{best} {per_cut[best]['median_ms']:.1f} ms ({line['planned_over_best']:.3f}); "
              f"all-device {per_cut[ALL_DEVICE]['median_ms']:.1f}, all-server "
              f"{per_cut[ALL_SERVER]['median_ms']:.1f} ms; {len(cuts)} cuts measured")
    from zoo.files import write_bytes_atomic, write_text_atomic

    write_text_atomic(out_dir / "compare.json", json.dumps(result, indent=2) + "\n")
    write_text_atomic(out_dir / "compare.md", compare_markdown(result))
    write_bytes_atomic(out_dir / "compare.png", compare_figure(result))
    print(f"{out_dir / 'compare.md'}, {out_dir / 'compare.png'}")
    return result


def _result_bytes(folders: list[str]) -> dict[str, int]:
    specs = [json.loads((Path(f) / "split.json").read_text()) for f in folders]
    return {s["cut"]: int(s.get("result_bytes", 0)) for s in specs}


def compare_markdown(result: dict) -> str:
    device = result["device"]
    speed = (f"the phone is this CPU under a quota of {result['device_fraction']:g} of one "
             f"core: the whole model takes {device['full_ms']:.1f} ms there against "
             f"{device['full_ms_unthrottled']:.1f} ms unthrottled ({device['slowdown']:.1f}x)"
             if result["device_fraction"] else
             f"the phone is this CPU, unthrottled ({device['full_ms']:.1f} ms for the whole "
             "model)")
    lines = [f"# Split computing, planned against measured: {Path(result['run']).name}", "",
             f"Medians of end-to-end ms over the emulated link; {speed}. Energy is estimated "
             "(published powers x these times).", "",
             "| link | all-device ms | all-server ms | planned cut | planned ms | best cut "
             "| best ms | planned / best | cuts measured | energy mJ (est.) all-device / "
             "all-server / planned |",
             "|---|---:|---:|---|---:|---|---:|---:|---:|---|"]
    for name, line in result["links"].items():
        m = line["measured"]
        planned, best = line["planned"], line["best"]
        lines.append(
            f"| {name} | {m[ALL_DEVICE]['median_ms']:.1f} | {m[ALL_SERVER]['median_ms']:.1f} | "
            f"`{planned}` | {m[planned]['median_ms']:.1f} | `{best}` | "
            f"{m[best]['median_ms']:.1f} | {100 * line['planned_over_best']:.1f} % | "
            f"{len(line['rounds'][-1]['cuts'])} | {m[ALL_DEVICE]['energy_mj']:.0f} / "
            f"{m[ALL_SERVER]['energy_mj']:.0f} / {m[planned]['energy_mj']:.0f} |")
    lines.append("")
    return "\n".join(lines)


def compare_figure(result: dict) -> bytes:
    """Per link: every measured cut's median (p90 as a whisker) beside its parts bound, the
    planned and the best cut marked."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    links = result["links"]
    fig, axes = plt.subplots(len(links), 1, figsize=(11, 3.4 * len(links)), squeeze=False)
    for ax, (name, line) in zip(axes[:, 0], links.items(), strict=True):
        cuts = list(line["rounds"][-1]["cuts"])
        medians = [line["measured"][c]["median_ms"] for c in cuts]
        p90 = [line["measured"][c]["p90_ms"] for c in cuts]
        x = range(len(cuts))
        colors = ["tab:green" if c == line["best"] else "tab:orange" if c == line["planned"]
                  else "0.6" for c in cuts]
        ax.bar(x, medians, color=colors, yerr=[[0] * len(cuts),
                                              [p - m for p, m in zip(p90, medians, strict=True)]],
               capsize=2, hatch=["//" if c == line["planned"] else "" for c in cuts],
               edgecolor="k", linewidth=0.5)
        bound = ax.scatter(x, [line["bounds"][c] for c in cuts], marker="_", s=300, color="k",
                           zorder=3)
        predicted = ax.scatter(x, [line["predicted"][c] for c in cuts], marker="x", s=30,
                               color="tab:blue", zorder=3)
        names = {ALL_SERVER: "input\n(all server)", ALL_DEVICE: "output\n(all device)"}
        ax.set_xticks(list(x), [names.get(c, c) for c in cuts], rotation=30, ha="right",
                      fontsize=8)
        ax.set_ylabel("end-to-end ms")
        ax.set_ylim(0, 1.15 * max(max(p90), *(line["predicted"][c] for c in cuts)))
        title = (f"{name}: planned {line['planned']} ({100 * line['planned_over_best']:.1f} % "
                 f"of best), best {line['best']}")
        ax.set_title(title, fontsize=10)
        ax.legend(handles=[plt.Rectangle((0, 0), 1, 1, color="tab:green"),
                           plt.Rectangle((0, 0), 1, 1, facecolor="w", edgecolor="k",
                                         hatch="//"),
                           plt.Rectangle((0, 0), 1, 1, color="0.6"), bound, predicted],
                  labels=["best (measured median, p90 whisker)", "planned", "other cut",
                          "measured parts (bound)", "predicted by the plan"],
                  fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    device = result["device"]
    speed = (f"phone: {result['device_fraction']:g} of a core, {device['slowdown']:.1f}x the "
             "server's time" if result["device_fraction"] else "phone: this CPU, unthrottled")
    fig.suptitle(f"{Path(result['run']).name}: end-to-end time per cut over emulated links "
                 f"({speed})", fontsize=11)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def command(run: str | None = None, links: Any = "wifi,lte,3g",
            device_fraction: float | None = None, images_per_cut: int = 8, every: int = 1,
            runs: int = 15, out: str | None = None, radio: str | None = None,
            checkpoints: str = "checkpoints") -> None:
    """Measure every cut that could be the best end to end over emulated links, beside
    all-device, all-server and the planned cut (needs root for the emulation).

    Example: python -m zoo.split.compare --run checkpoints/<run> --links wifi,lte,3g
    --device-fraction 0.1 --out split-compare

    Args:
        run: the run folder (or its name under --checkpoints).
        links: comma-separated wifi, lte, 3g or BW,RTT (Mbit/s, ms).
        device_fraction: the phone runs at this share of one CPU core (cgroup quota); the
            plan is made for the slowdown measured under it.
        images_per_cut: images each measured cut gets (interleaved).
        every: profile every n-th cut (as `split.py plan --every`).
        runs: timed runs per profiled cut (as `split.py plan --runs`).
        out: output folder.
        radio: the phone's radio power model (wifi, lte, 3g) for a BW,RTT link.
        checkpoints: where run names are looked up.
    """
    compare(run, links, device_fraction=device_fraction, images_per_cut=images_per_cut,
            every=every, runs=runs, out=out, radio=radio, checkpoints=checkpoints)


def main() -> None:
    from zoo.cli import run

    run(command, name="python -m zoo.split.compare")


if __name__ == "__main__":
    main()
