"""Try multi-worker training on one machine: start N `train.py --strategy multiworker` workers
on loopback, each with its own ``TF_CONFIG``, and report how each ended.

Example::

    python -m zoo.train.launch --workers 2 -- --arch mobileunet --alpha 0.25 \\
        --input-size 64 --epochs 2

Everything after ``--`` goes to ``train.py`` unchanged (``--strategy multiworker`` is added
when absent; ``--resume RUN`` resumes a multi-worker run). Each worker gets a free loopback
port and the ``TF_CONFIG`` TensorFlow documents (tensorflow.org/guide/distributed_training)::

    {"cluster": {"worker": ["127.0.0.1:P0", "127.0.0.1:P1"]},
     "task": {"type": "worker", "index": i}}

Worker 0 is the chief: it makes the run folder and writes everything in it. Each worker's
lines are printed with a ``[worker i]`` prefix. When a worker fails, the others are given
`GRACE_S` seconds to fail on their own (they notice a lost peer) and are then stopped; the
exit status is the first failure's (0 when all succeed). On real machines, set ``TF_CONFIG``
on each machine instead (see the README) and run ``train.py --strategy multiworker`` there.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from zoo.errors import ConfigError

GRACE_S = 60.0  # seconds the other workers get to fail on their own after one fails
REPO = Path(__file__).resolve().parents[2]
USAGE = "python -m zoo.train.launch --workers N [--threads T] -- <train.py arguments>"


def free_ports(n: int, host: str = "127.0.0.1") -> list[int]:
    """`n` distinct ports free on `host` now (bound together, then released)."""
    import socket

    sockets = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind((host, 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def tf_config(addresses: list[str], index: int) -> str:
    return json.dumps({"cluster": {"worker": addresses},
                       "task": {"type": "worker", "index": index}})


def _strategy_args(args: list[str]) -> list[str]:
    """`args` with ``--strategy multiworker``; another strategy is an error."""
    for i, arg in enumerate(args):
        value = arg.split("=", 1)[1] if arg.startswith("--strategy=") else (
            args[i + 1] if arg == "--strategy" and i + 1 < len(args) else None)
        if value is not None:
            if value != "multiworker":
                raise ConfigError(f"--strategy {value}: the launcher starts multiworker "
                                  "workers (leave --strategy out)")
            return list(args)
    if "--resume" in args or any(a.startswith("--resume=") for a in args):
        return list(args)  # the run's own strategy
    return [*args, "--strategy", "multiworker"]


def _pump(stream, prefix: str, out) -> None:
    for line in iter(stream.readline, ""):
        out.write(f"{prefix} {line}" if line.strip() else line)
        out.flush()


def launch(workers: int, train_args: list[str], threads: int | None = 1,
           grace_s: float = GRACE_S, out=None) -> list[int]:
    """Start `workers` train.py processes as a loopback cluster; wait; return their exit
    codes (see the module docstring). `threads`: TensorFlow's intra-op threads per worker
    (``TF_NUM_INTRAOP_THREADS``; workers on one machine share its cores)."""
    from zoo import checks

    workers = checks.integer("--workers", workers, low=1, high=64)
    threads = checks.optional(checks.integer)("--threads", threads, low=1)
    out = out or sys.stdout
    args = _strategy_args(train_args)
    addresses = [f"127.0.0.1:{port}" for port in free_ports(workers)]
    processes, pumps = [], []
    for i in range(workers):
        env = {**os.environ, "TF_CONFIG": tf_config(addresses, i), "PYTHONUNBUFFERED": "1"}
        if threads is not None:
            env["TF_NUM_INTRAOP_THREADS"] = str(threads)
            env["TF_NUM_INTEROP_THREADS"] = str(threads)
        process = subprocess.Popen([sys.executable, str(REPO / "train.py"), *args], env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   start_new_session=True)
        processes.append(process)
        pump = threading.Thread(target=_pump, args=(process.stdout, f"[worker {i}]", out),
                                daemon=True)
        pump.start()
        pumps.append(pump)
    print(f"launched {workers} workers on {', '.join(addresses)} (worker 0 is the chief; "
          f"pids {', '.join(str(p.pid) for p in processes)})", file=out, flush=True)
    failed_at = None

    def stop_all(signum, frame):  # the launcher stopped: its workers with it
        raise KeyboardInterrupt

    previous = ({sig: signal.signal(sig, stop_all) for sig in (signal.SIGTERM, signal.SIGHUP)}
                if threading.current_thread() is threading.main_thread() else {})
    try:
        while any(p.poll() is None for p in processes):
            if failed_at is None and any(p.returncode for p in processes):
                failed_at = time.monotonic()
            if failed_at is not None and time.monotonic() - failed_at > grace_s:
                for i, p in enumerate(processes):
                    if p.poll() is None:
                        print(f"[launch] worker {i} still running {grace_s:g} s after a peer "
                              "failed: stopping it", file=out, flush=True)
                        _stop(p)
            time.sleep(0.2)
    except KeyboardInterrupt:
        for p in processes:
            _stop(p)
        raise
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    for pump in pumps:
        pump.join(timeout=5)
    codes = [p.returncode for p in processes]
    print("[launch] " + ", ".join(f"worker {i} exited {c}" for i, c in enumerate(codes)),
          file=out, flush=True)
    return codes


def _stop(process: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        if process.poll() is not None:
            return
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if "--" not in argv:
        print(f"error: usage: {USAGE}", file=sys.stderr)
        sys.exit(2)
    split = argv.index("--")
    own, train_args = argv[:split], argv[split + 1:]
    options = {"workers": None, "threads": "1", "grace": str(GRACE_S)}
    i = 0
    while i < len(own):
        key, _, value = own[i].removeprefix("--").partition("=")
        key = key.replace("-", "_")
        if key not in {"workers", "threads", "grace"}:
            print(f"error: unknown option {own[i]} (usage: {USAGE})", file=sys.stderr)
            sys.exit(2)
        if not value:
            i += 1
            value = own[i] if i < len(own) else ""
        options[key] = value
        i += 1
    try:
        if options["workers"] is None:
            raise ConfigError(f"--workers is required (usage: {USAGE})")
        from zoo import checks

        workers = checks.integer("--workers", _number(options["workers"]), low=1, high=64)
        threads = checks.integer("--threads", _number(options["threads"]), low=1)
        grace = checks.number("--grace", _number(options["grace"]), low=0)
        codes = launch(workers, train_args, threads=threads, grace_s=grace)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    sys.exit(next((c for c in codes if c), 0))


def _number(text: str):
    try:
        return float(text) if "." in text or "e" in text.lower() else int(text)
    except ValueError:
        return text


if __name__ == "__main__":
    main()
