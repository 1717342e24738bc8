"""`python split.py plan|export|serve|run`: split computing from the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from zoo import checks
from zoo.errors import ConfigError

PROFILE_VERSION = 1


def plan_command(run: str | None = None, link: Any = "wifi", objective: str = "latency",
                 transfer: str = "int8", device_slowdown: float = 1.0,
                 server_load: float = 1.0, radio: str | None = None, threads_device: int = 1,
                 threads_server: int = 1, every: int = 1, runs: int = 20,
                 latency_model: str | None = None, out: str | None = None,
                 reprofile: bool = False, checkpoints: str = "checkpoints") -> None:
    """Profile a run's cuts, fit per-layer-type latency models and choose where to cut.

    Example: python split.py plan --run checkpoints/mobileunet-a0.5-224x288-... --link lte

    Args:
        run: the run folder (default: the newest run).
        link: wifi, lte, 3g (published medians), BW,RTT or UP/DOWN,RTT (Mbit/s, ms).
        objective: latency or energy (the phone's, estimated).
        transfer: precision of the tensors sent: float32, float16 or int8.
        device_slowdown: how many times slower the phone runs the device half than this
            machine's measured thread(s) (1: this CPU as the device).
        server_load: factor on the server's time (1: idle).
        radio: the radio power model for a BW,RTT link: wifi, lte or 3g.
        threads_device: LiteRT threads of the device half.
        threads_server: onnxruntime threads of the server half.
        every: measure every N-th cut (the latency models predict the others).
        runs: timed runs per half.
        latency_model: a latency_model.json fitted on another run: plan on its predictions
            (a network the models never ran) and compare them with this run's measurements.
        out: output folder (default <run>/split/plan-<link>-<transfer>).
        reprofile: measure again even when a profile of the same checkpoint and settings
            exists.
        checkpoints: folder of run folders.
    """
    make_plan(**locals())


def make_plan(run: str | None = None, link: Any = "wifi", objective: str = "latency",
              transfer: str = "int8", device_slowdown: float = 1.0, server_load: float = 1.0,
              radio: str | None = None, threads_device: int = 1, threads_server: int = 1,
              every: int = 1, runs: int = 20, latency_model: str | None = None,
              out: str | None = None, reprofile: bool = False,
              checkpoints: str = "checkpoints") -> dict:
    """`plan_command` returning plan.json's content."""
    from zoo.runs import resolve_run
    from zoo.split.latency_model import errors, fit
    from zoo.split.link import parse_link
    from zoo.split.plan import OBJECTIVES, choose, estimate, write_plan

    link = parse_link(link)
    if objective not in OBJECTIVES:
        raise ConfigError(f"--objective must be one of {', '.join(OBJECTIVES)}, got "
                          f"{objective!r}")
    from zoo.split.cuts import bytes_per_value

    bytes_per_value(transfer)
    device_slowdown = checks.number("--device-slowdown", device_slowdown, 0, low_open=True)
    server_load = checks.number("--server-load", server_load, 0, low_open=True)
    every, runs = checks.integer("--every", every, 1), checks.integer("--runs", runs, 1)
    threads_device = checks.integer("--threads-device", threads_device, 1, 1024)
    threads_server = checks.integer("--threads-server", threads_server, 1, 1024)
    given = _read_latency_models(latency_model) if latency_model else None
    run_dir = resolve_run(run, Path(checkpoints))
    profile = cached_profile(run_dir, threads_device=threads_device,
                             threads_server=threads_server, every=every, runs=runs,
                             reprofile=reprofile)
    own = {side: fit(profile, side, fitted_on=run_dir.name) for side in ("device", "server")}
    models = given or own
    predicted = {side: models[side].cumulative(profile.units) for side in models}
    # Measured rows only where both halves were measured (`--every` leaves gaps): the
    # measured best is a measured cut, and the chosen cut's measured figure may be unknown.
    known = [d is not None and s is not None
             for d, s in zip(profile.device_ms, profile.server_ms, strict=True)]
    filled = {side: [m if m is not None else 0.0 for m in getattr(profile, f"{side}_ms")]
              for side in models}
    options = {"transfer": transfer, "device_slowdown": device_slowdown,
               "server_load": server_load, "radio": radio}
    rows = estimate(profile, predicted, link, **options)
    measured_rows = [r if ok else None for r, ok in zip(
        estimate(profile, filled, link, **options), known, strict=True)]
    chosen = choose(rows, objective)
    best = choose([r for r in measured_rows if r is not None], objective)
    figure = "total_ms" if objective == "latency" else "energy_mj"
    mine = measured_rows[chosen.index]
    within = getattr(mine, figure) / getattr(best, figure) if mine is not None else None
    facts = {
        "run": str(run_dir), "run_id": run_dir.name, "link": link.__dict__,
        "objective": objective, "times": "predicted", "cpu": profile.cpu,
        "threads_device": threads_device, "threads_server": threads_server,
        "measured_cuts": sum(t is not None for t in profile.device_ms),
        "cuts": len(profile.cuts), **options,
        "latency_models": {side: m.to_dict() for side, m in models.items()},
        "prediction_error": {side: errors(models[side], profile, side) for side in models},
        "measured_best": best.to_dict(), "chosen_vs_measured_best": within,
        "energy_note": "phone energy is estimated from published powers (zoo.split.energy)"}
    out_dir = Path(out) if out else run_dir / "split" / f"plan-{link.name}-{transfer}"
    result = write_plan(out_dir, rows, chosen, facts, measured_rows)
    from zoo.files import write_text_atomic

    write_text_atomic(out_dir / "latency_model.json", json.dumps(
        {side: m.to_dict() for side, m in own.items()}, indent=2) + "\n")
    err = facts["prediction_error"]
    share = f"{within * 100:.1f} %" if within is not None else "not measured,"
    print(f"cut {chosen.cut} (#{chosen.index} of {len(rows)}): predicted {chosen.total_ms:.1f} "
          f"ms, estimated {chosen.energy_mj:.0f} mJ on {link.name}; measured best "
          f"{best.cut} {best.total_ms:.1f} ms, chosen {share} of it; prediction "
          f"error device {err['device']['median_pct']:.1f} % (max {err['device']['max_pct']:.1f}"
          f" %), server {err['server']['median_pct']:.1f} % (max "
          f"{err['server']['max_pct']:.1f} %) of the whole side")
    print(f"plan: {out_dir / 'plan.md'}")
    return result


def _read_latency_models(path: str) -> dict:
    from zoo.split.latency_model import LatencyModel

    file = Path(path)
    if file.is_dir():
        file = file / "latency_model.json"
    try:
        data = json.loads(file.read_text())
        return {side: LatencyModel.from_dict(data[side]) for side in ("device", "server")}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"--latency-model {path}: expected a latency_model.json written by "
                          f"`split.py plan` ({type(exc).__name__}: {exc})") from None


def cached_profile(run_dir: Path, *, threads_device: int, threads_server: int, every: int,
                   runs: int, reprofile: bool = False):
    """The run's profile (`zoo.split.profile.measure`), measured once per checkpoint and
    settings and kept in <run>/split/."""
    import hashlib

    from zoo.config import load_config
    from zoo.export.exporter import export_context, load_checkpoint, validation_data
    from zoo.files import write_text_atomic
    from zoo.split.profile import Profile, measure

    checkpoint = run_dir / "best.keras"
    if not checkpoint.is_file():
        raise ConfigError(f"{checkpoint}: checkpoint not found")
    digest = hashlib.sha256(checkpoint.read_bytes()).hexdigest()[:16]
    key = f"d{threads_device}-s{threads_server}-e{every}-r{runs}"
    path = run_dir / "split" / f"profile-{key}.json"
    if path.is_file() and not reprofile:
        data = json.loads(path.read_text())
        if data.get("checkpoint") == digest and data.get("version") == PROFILE_VERSION:
            return Profile.from_dict(data["profile"])
    cfg = load_config(run_dir / "config.yaml")
    spec, _, _ = validation_data(cfg, 1)
    context = export_context(cfg, run_dir, spec, threads_device)
    model = load_checkpoint(checkpoint)
    profile = measure(model, context, threads_device=threads_device,
                      threads_server=threads_server, runs=runs, every=every)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps({"version": PROFILE_VERSION, "checkpoint": digest,
                                        "profile": profile.to_dict()}) + "\n")
    return profile


def export_command(run: str | None = None, cut: str | None = None, transfer: str = "int8",
                   device: str = "tflite", out: str | None = None,
                   val_images: int | None = None, threads: int = 1, overwrite: bool = False,
                   checkpoints: str = "checkpoints") -> None:
    """Export the device half (TFLite) and the server half (ONNX) of a cut and validate them as
    a pair: server(device(x)) against the Keras model on the validation images.

    Example: python split.py export --run checkpoints/<run> --cut conv_pw_11_relu --transfer int8

    Args:
        run: the run folder (default: the newest run).
        cut: a cut's name (`split.py plan` lists them), input (all on the server) or output
            (all on the device).
        transfer: precision of the tensors sent: float32, float16 or int8 (at most 0.5 pt
            mIoU lost).
        device: the device half's format: tflite (float32) or tflite-int8.
        out: output folder (default <run>/split/<cut>-<transfer>-<device>).
        val_images: validation images the pair is checked on (default: all).
        threads: runtime threads while validating.
        overwrite: replace an existing folder.
        checkpoints: folder of run folders.
    """
    import sys

    from zoo.split.halves import export_halves

    try:
        facts = export_halves(run, cut, transfer=transfer, device=device, out=out,
                              val_images=val_images, threads=threads, overwrite=overwrite,
                              checkpoints_dir=checkpoints)
    except ConfigError as exc:
        if "failed validation" in str(exc):
            print(f"error: {exc}", file=sys.stderr)
            sys.exit(1)
        raise
    v = facts["validation"]
    print(f"{facts['folder']}: cut {facts['cut']}, {facts['transfer_bytes'] / 1e3:.1f} KB up "
          f"({facts['transfer']}), pair mIoU {v['miou']:.4f} (drop {v['miou_drop_pt']:+.2f} pt, "
          f"agreement {v['agreement_pct']:.2f} %), model {facts['model_name']}")


def serve_command(artifacts: str | None = None, port: int = 8000, host: str = "127.0.0.1",
                  max_queue: int = 8, workers: int = 1, threads: int | None = None) -> None:
    """Serve the server half of an exported split over HTTP (Open Inference Protocol, KServe v2
    / Triton), on 127.0.0.1 unless --host says otherwise.

    Example: python split.py serve --artifacts checkpoints/<run>/split/<cut>-int8-tflite

    Args:
        artifacts: the folder `split.py export` wrote.
        port: TCP port (0: a free one, printed).
        host: address to bind.
        max_queue: requests waiting at most; more are answered 503 at once.
        workers: inference threads.
        threads: onnxruntime intra-op threads per worker.
    """
    from zoo.split.server import serve

    if artifacts is None:
        raise ConfigError("--artifacts is required: a folder written by `split.py export`")
    serve(artifacts, host=host, port=port, max_queue=max_queue, workers=workers,
          threads=threads)


COMMANDS = {"plan": plan_command, "export": export_command, "serve": serve_command}


def run_command(artifacts: Any = None, url: str = "http://127.0.0.1:8000", images: int = 50,
                cut: str | None = None, adapt: bool = True, timeout: float = 5.0,
                threads: int = 1, repeat: int = 1, out: str | None = None) -> None:
    """Run the device half here and the server half on a server, image by image, and measure
    the real end-to-end latency; the cut is re-planned as bandwidth and server load change.

    Example: python split.py run --artifacts S/conv_pw_11_relu-int8-tflite,S/input-int8-tflite
    (S: <run>/split; the server serves the same folders)

    Args:
        artifacts: one or more folders of `split.py export` (comma-separated); their server
            halves must be served at --url (`split.py serve --artifacts` the same folders).
        url: the server, http://HOST:PORT.
        images: validation images of the run to send.
        cut: keep this cut (one of the folders', or all-device) instead of re-planning;
            ``every``: each folder's cut and all-device in turn, image by image.
        adapt: re-plan per image (--noadapt: keep the first plan).
        timeout: seconds before a request counts as failed (then all on the device).
        threads: LiteRT threads of the device half.
        repeat: passes over the images.
        out: folder for run.csv, run.json and run.png (default: the first folder's run/).
    """
    from zoo.config import load_config
    from zoo.export.exporter import validation_data
    from zoo.split.client import SplitClient
    from zoo.split.halves import read_spec

    folders = [f for f in (artifacts if isinstance(artifacts, list | tuple)
                           else str(artifacts or "").split(",")) if str(f).strip()]
    if not folders:
        raise ConfigError("--artifacts is required: folders written by `split.py export`")
    images = checks.integer("--images", images, 1)
    repeat = checks.integer("--repeat", repeat, 1)
    spec = read_spec(Path(folders[0]))
    cfg = load_config(Path(spec["run"]) / "config.yaml")
    _, frames, _ = validation_data(cfg, images)
    client = SplitClient(folders, url, timeout=timeout, threads=threads, adapt=adapt,
                         fixed=cut)
    try:
        warm = client.warm_up(frames[0])
        records = [client.infer(frame)[1] for _ in range(repeat) for frame in frames]
    finally:
        client.close()
    out_dir = Path(out) if out else Path(folders[0]) / "run"
    write_run(out_dir, records, {"url": url, "artifacts": folders, "warm_up": warm,
                                 "adapt": adapt, "fixed_cut": cut})


def write_run(out_dir: Path, records: list, facts: dict) -> dict:
    """run.json, run.csv and run.png (the cut and the latency of every image) in `out_dir`."""
    import csv
    import io
    from collections import Counter

    import numpy as np

    from zoo.files import write_bytes_atomic, write_text_atomic

    out_dir.mkdir(parents=True, exist_ok=True)
    rows = [r.to_dict() for r in records]
    totals = np.array([r.total_ms for r in records])
    summary = {"images": len(rows), "median_ms": float(np.median(totals)),
               "p90_ms": float(np.percentile(totals, 90)),
               "cuts": dict(Counter(r.cut for r in records)),
               "fallbacks": sum(bool(r.fallback) for r in records)}
    result = {**facts, "summary": summary, "records": rows}
    write_text_atomic(out_dir / "run.json", json.dumps(result, indent=2) + "\n")
    fields = [k for k in rows[0] if k != "estimates"]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fields, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(out_dir / "run.csv", buf.getvalue())
    write_bytes_atomic(out_dir / "run.png", run_figure(records, facts.get("title", "")))
    print(f"{summary['images']} images: median {summary['median_ms']:.1f} ms, p90 "
          f"{summary['p90_ms']:.1f} ms; cuts {summary['cuts']}; all-device fallbacks "
          f"{summary['fallbacks']}; {out_dir / 'run.json'}")
    return result


def run_figure(records: list, title: str = "") -> bytes:
    """Latency per image and the cut chosen for it."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cuts = list(dict.fromkeys(r.cut for r in records))
    x = [r.image for r in records]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 6), sharex=True,
                                      gridspec_kw={"height_ratios": [2, 1]})
    top.plot(x, [r.total_ms for r in records], "k-", lw=1, label="end to end")
    top.plot(x, [r.device_ms for r in records], color="#4c72b0", lw=1, label="device half")
    top.set_ylabel("latency (ms)")
    top.legend(fontsize=8)
    top.set_title(title or "split.py run: measured latency and chosen cut per image",
                  fontsize=10)
    bottom.plot(x, [cuts.index(r.cut) for r in records], "o", ms=3, color="crimson")
    bottom.set_yticks(range(len(cuts)))
    bottom.set_yticklabels(cuts, fontsize=8)
    bottom.set_xlabel("image (in order sent)")
    bottom.set_ylabel("cut")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


COMMANDS["run"] = run_command
