"""tf.distribute for the training loop: the strategy made once, at program start; the worker's
role in a multi-worker cluster; one run folder for the whole cluster.

Example::

    strategy = make_strategy("multiworker")      # before TensorFlow runs any op
    role = worker_role()                         # from TF_CONFIG: index, chief or not
    run_dir = share_path(strategy, run_dir if role.chief else None)   # the chief's folder

**At program start.** MultiWorkerMirroredStrategy configures collective ops, which TensorFlow
allows only before its eager context has run anything ("Collective ops must be configured at
program startup"); MirroredStrategy on a CPU-only machine needs two logical CPU devices, which
can only be declared before that too. `make_strategy` is called first thing by `train.py`
(`zoo.train.cli`) and keeps the strategy for the process, so the loop gets the same object.

**Roles** (`worker_role`): TF_CONFIG as TensorFlow documents it
(tensorflow.org/guide/distributed_training): ``{"cluster": {"worker": [addresses]},
"task": {"type": "worker", "index": i}}``, optionally with a ``chief`` job. The chief is the
``chief`` task, or worker 0 when the cluster has none. Only the chief writes the run folder;
the other workers write their checkpoints and logs into a temporary folder that is deleted at
the end (as TensorFlow's multi-worker guide does: a non-chief may need to save, as saving can
take part in collectives, but its files are thrown away).

**Peers**: the cluster forms at the first collective, which waits for every worker. TensorFlow's
own registration timeout is an hour; `make_strategy` configures its coordination service with
``peer_timeout_s`` instead (``ZOO_PEER_TIMEOUT_S``, default `PEER_TIMEOUT_S`) and turns the
failure into one line naming the addresses that did not answer. A peer that dies later is
found by the service's heartbeat (`HEARTBEAT_TIMEOUT_S`) and the others fail.

**One run folder** (`share_path`): the chief makes the folder (its name has the chief's
timestamp) and the others learn its path through a collective (a sum in which only the chief's
bytes are not zero), so there is one run id for the cluster.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from zoo.config import STRATEGIES
from zoo.errors import ConfigError

PEER_TIMEOUT_S = 120.0  # seconds a worker waits for its peers to join before it gives up
COLLECTIVE_TIMEOUT_S = 300.0  # a collective op (a training step's all-reduce) that takes longer
# than this fails instead of hanging: a peer was lost mid-run
HEARTBEAT_TIMEOUT_S = 30.0  # a peer silent this long is dead: the others fail
PATH_BYTES = 1024  # the longest run folder path `share_path` carries
_STRATEGIES: dict[str, object] = {}


@dataclass(frozen=True)
class Role:
    """This process's place in the cluster."""

    task: str  # "worker" or "chief"
    index: int
    chief: bool
    addresses: tuple[str, ...]  # every task's address, chief first
    address: str  # this task's

    @property
    def peers(self) -> list[str]:
        return [a for a in self.addresses if a != self.address]


def worker_role(environ: dict | None = None) -> Role | None:
    """The role TF_CONFIG gives this process; None without TF_CONFIG (a single process).
    A TF_CONFIG that does not parse is a one-line `ConfigError`."""
    text = (os.environ if environ is None else environ).get("TF_CONFIG", "")
    if not text.strip():
        return None
    form = ('{"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", '
            '"index": i}}')
    try:
        config = json.loads(text)
        cluster, task = config["cluster"], config["task"]
        kind, index = str(task["type"]), int(task["index"])
        jobs = {job: [str(a) for a in cluster[job]] for job in ("chief", "worker")
                if job in cluster}
        address = jobs[kind][index]
    except (ValueError, KeyError, TypeError, IndexError):
        raise ConfigError(f"TF_CONFIG must be JSON of the form {form}, got {text!r}") from None
    addresses = tuple(jobs.get("chief", []) + jobs.get("worker", []))
    chief = kind == "chief" or ("chief" not in jobs and kind == "worker" and index == 0)
    return Role(kind, index, chief, addresses, address)


def is_chief() -> bool:
    role = worker_role()
    return role is None or role.chief


def _exit_now(message: str) -> None:
    """``error: <message>`` as the last line on stderr, exit status 2, at once: TensorFlow's
    coordination agent, in error, would otherwise log its shutdown after it. Written to the
    process's own stderr (zoo.cli may filter file descriptor 2 through a thread that os._exit
    does not wait for)."""
    from zoo.cli import quiet_start

    sys.stdout.flush()
    stderr = getattr(getattr(quiet_start, "filter", None), "original", 2)
    os.write(stderr, f"error: {message}\n".encode())
    os._exit(2)


def _accepts(address: str) -> bool:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=2):
            return True
    except (OSError, ValueError):
        return False


def make_strategy(name: str, peer_timeout_s: float | None = None):
    """The process's `tf.distribute` strategy by name, made once (see the module docstring):
    ``default``; ``mirrored`` (every GPU, or two logical CPU devices on a CPU-only machine);
    ``multiworker`` (MultiWorkerMirroredStrategy over TF_CONFIG's cluster; its peers must
    join within `peer_timeout_s`, default ``ZOO_PEER_TIMEOUT_S`` or `PEER_TIMEOUT_S`)."""
    if name not in STRATEGIES:
        raise ConfigError(f"strategy must be one of {', '.join(STRATEGIES)}, got {name!r}")
    if name in _STRATEGIES:
        return _STRATEGIES[name]
    import tensorflow as tf

    if name == "default":
        strategy = tf.distribute.get_strategy()
    elif name == "mirrored":
        strategy = tf.distribute.MirroredStrategy(devices=_mirrored_devices(tf),
                                                  cross_device_ops=_cross_device_ops(tf))
    else:
        role = worker_role()
        if role is None:
            raise ConfigError("--strategy multiworker needs TF_CONFIG naming the cluster and "
                              "this worker's task (python -m zoo.train.launch sets it for a "
                              "loopback cluster)")
        if other := next((n for n in _STRATEGIES if n != "default"), None):
            raise ConfigError(f"--strategy multiworker: this process already made the {other} "
                              "strategy")
        if peer_timeout_s is None:
            from zoo import checks

            peer_timeout_s = checks.number("ZOO_PEER_TIMEOUT_S", os.environ.get(
                "ZOO_PEER_TIMEOUT_S", PEER_TIMEOUT_S), low=0, low_open=True)
        options = tf.distribute.experimental.CommunicationOptions(
            timeout_seconds=COLLECTIVE_TIMEOUT_S)
        _coordination_service(tf, peer_timeout_s)
        try:
            strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
            # The cluster forms at the first collective, not when the strategy is made.
            strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(lambda: tf.constant(1)),
                            axis=None)
        except tf.errors.OpError as exc:
            silent = [a for a in role.peers if not _accepts(a)]
            who = (f"no answer from {', '.join(silent)}" if silent else
                   f"its peers ({', '.join(role.peers)}) did not all join")
            _exit_now(f"{role.task} {role.index} ({role.address}) could not form the cluster "
                      f"within {peer_timeout_s:g} s: {who} ({type(exc).__name__})")
        except RuntimeError as exc:
            if "program startup" in str(exc):
                raise RuntimeError(
                    "MultiWorkerMirroredStrategy must be made before TensorFlow runs any op: "
                    "call zoo.train.distributed.make_strategy first") from exc
            raise
    _STRATEGIES[name] = strategy
    return strategy


def _coordination_service(tf, register_timeout_s: float) -> None:
    """TensorFlow's coordination service as MultiWorkerMirroredStrategy configures it (it
    leaves one already configured alone), with two timeouts of ours: the cluster must form
    within `register_timeout_s` (TensorFlow's default waits an hour) and a peer that stops
    answering is declared dead after `HEARTBEAT_TIMEOUT_S`. The API is TensorFlow's internal
    one (tensorflow.python.eager.context), as the strategy itself calls it."""
    from tensorflow.compiler.xla.tsl.protobuf import coordination_config_pb2
    from tensorflow.python.distribute import multi_worker_util
    from tensorflow.python.eager import context

    spec = tf.distribute.cluster_resolver.TFConfigClusterResolver().cluster_spec()
    jobs = [coordination_config_pb2.CoordinatedJob(name=job, num_tasks=spec.num_tasks(job))
            for job in ("chief", "worker") if job in spec.jobs]
    context.context().configure_coordination_service(
        service_type="standalone", service_leader=multi_worker_util.coordination_leader(spec),
        coordinated_jobs=jobs, cluster_register_timeout_in_ms=int(register_timeout_s * 1000),
        heartbeat_timeout_in_ms=int(HEARTBEAT_TIMEOUT_S * 1000))


def _mirrored_devices(tf) -> list[str]:
    """Every GPU; else two logical CPU devices, declared now (before TensorFlow starts)."""
    if tf.config.list_physical_devices("GPU"):  # physical: listing logical ones starts TF
        return [d.name for d in tf.config.list_logical_devices("GPU")]
    cpu = tf.config.list_physical_devices("CPU")[0]
    with contextlib.suppress(RuntimeError):  # already started: use what there is, if >= 2
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
    if len(cpus) < 2:
        raise RuntimeError("--strategy mirrored on a CPU-only machine needs two logical CPU "
                           "devices, declared before TensorFlow starts: call "
                           "zoo.train.distributed.make_strategy first")
    return cpus[:2]


def _cross_device_ops(tf):
    """NCCL between GPUs (MirroredStrategy's default); on CPUs a reduction on one device."""
    if tf.config.list_physical_devices("GPU"):
        return None
    return tf.distribute.ReductionToOneDevice()


def share_path(strategy, path: Path | None) -> Path:
    """`path` as the chief gave it, on every worker (a collective: every worker must call it at
    the same point). Outside a multi-worker cluster, `path` itself."""
    import numpy as np
    import tensorflow as tf

    role = worker_role()
    if role is None or not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        if path is None:
            raise ValueError("share_path: no path and no chief to take it from")
        return path
    data = np.zeros(PATH_BYTES, np.int32)
    if role.chief:
        raw = str(path).encode()
        if len(raw) > PATH_BYTES:
            raise ConfigError(f"run folder path longer than {PATH_BYTES} bytes: {path}")
        data[:len(raw)] = np.frombuffer(raw, np.uint8)
    value = strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(
        lambda: tf.constant(data)), axis=None)
    raw = bytes(np.asarray(value, np.int64).astype(np.uint8).tolist()).rstrip(b"\0")
    return Path(raw.decode())


def wait_for(paths: list[Path], timeout_s: float = 60.0) -> None:
    """Wait until every path exists (a worker reading what the chief wrote on shared
    storage); a one-line `ConfigError` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not all(p.exists() for p in paths):
        if time.monotonic() > deadline:
            missing = ", ".join(str(p) for p in paths if not p.exists())
            raise ConfigError(f"{missing}: not found after {timeout_s:g} s (the run folder "
                              "must be on storage every worker shares)")
        time.sleep(0.2)


def weights_digest(weights) -> str:
    """A short sha256 of a list of weight arrays: equal on workers that hold the same model."""
    import hashlib

    import numpy as np

    digest = hashlib.sha256()
    for w in weights:
        digest.update(np.ascontiguousarray(np.asarray(w)).tobytes())
    return digest.hexdigest()[:16]
