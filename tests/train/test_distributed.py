"""Multi-worker training for real: TF_CONFIG roles, the loopback launcher, two worker
processes training one tiny model into one run folder with equal weights, a worker killed
mid-epoch and the run resumed, a worker whose peers never come, and MirroredStrategy on two
logical CPUs against the default strategy.

Every worker runs one intra-op thread (the launcher's default), so two workers share this
machine's two cores."""

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from zoo.errors import ConfigError
from zoo.train.distributed import worker_role
from zoo.train.launch import _strategy_args, free_ports, tf_config

REPO = Path(__file__).resolve().parents[2]
TINY = ["--arch", "mobileunet", "--alpha", "0.25", "--input-size", "64", "--batch-size", "4",
        "--warmup-epochs", "0", "--precise-bn-images", "8"]
DIGEST = re.compile(r"^\[worker (\d)\] .*weights: trainable ([0-9a-f]+), all ([0-9a-f]+)", re.M)


def test_roles_from_tf_config():
    addresses = ["127.0.0.1:1000", "127.0.0.1:1001"]
    zero = worker_role({"TF_CONFIG": tf_config(addresses, 0)})
    one = worker_role({"TF_CONFIG": tf_config(addresses, 1)})
    assert zero.chief and not one.chief
    assert (one.index, one.address, one.peers) == (1, addresses[1], [addresses[0]])
    with_chief = worker_role({"TF_CONFIG": json.dumps({
        "cluster": {"chief": ["h:1"], "worker": ["h:2", "h:3"]},
        "task": {"type": "worker", "index": 0}})})
    assert not with_chief.chief and with_chief.addresses == ("h:1", "h:2", "h:3")
    assert worker_role({}) is None and worker_role({"TF_CONFIG": " "}) is None


@pytest.mark.parametrize("text", ["{", '{"cluster": {}}', '{"cluster": {"worker": ["h:1"]}, '
                                  '"task": {"type": "worker", "index": 3}}'])
def test_a_tf_config_that_does_not_parse_is_one_line(text):
    with pytest.raises(ConfigError, match=r"^TF_CONFIG must be JSON of the form") as info:
        worker_role({"TF_CONFIG": text})
    assert "\n" not in str(info.value)


def test_the_launcher_adds_the_strategy_and_refuses_another():
    assert _strategy_args(["--epochs", "2"]) == ["--epochs", "2", "--strategy", "multiworker"]
    assert _strategy_args(["--strategy=multiworker"]) == ["--strategy=multiworker"]
    assert _strategy_args(["--resume", "r"]) == ["--resume", "r"]
    with pytest.raises(ConfigError, match=r"^--strategy mirrored: the launcher starts"):
        _strategy_args(["--strategy", "mirrored"])
    ports = free_ports(3)
    assert len(set(ports)) == 3


def launch(tmp_path, *args, workers=2, timeout=600, env=None):
    return subprocess.run([sys.executable, "-m", "zoo.train.launch", "--workers", str(workers),
                           "--", *args], capture_output=True, text=True, timeout=timeout,
                          cwd=REPO, env={**os.environ, **(env or {})})


def runs_in(checkpoints):
    return sorted(p for p in Path(checkpoints).iterdir() if p.is_dir())


def log_epochs(run_dir):
    with open(run_dir / "log.csv") as f:
        return [int(row["epoch"]) for row in csv.DictReader(f)]


def test_two_workers_train_one_model_into_one_run_folder(tiny_data, tmp_path):
    checkpoints = tmp_path / "ck"
    result = launch(tmp_path, *TINY, "--data", tiny_data, "--epochs", "1",
                    "--steps-per-epoch", "2", "--checkpoints", checkpoints)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "worker 0 exited 0, worker 1 exited 0" in result.stdout
    [run_dir] = runs_in(checkpoints)  # one folder, the chief's
    for name in ("config.yaml", "best.keras", "last.keras", "state.json", "log.csv",
                 "metrics.json", "curves.png", "samples.png", "tensorboard"):
        assert (run_dir / name).exists(), name
    assert log_epochs(run_dir) == [0]
    digests = {int(w): (t, a) for w, t, a in DIGEST.findall(result.stdout)}
    assert set(digests) == {0, 1}
    assert digests[0] == digests[1]  # the same model on both workers, BatchNorm too
    assert not list(Path(tempfile_root()).glob(f"zoo-{run_dir.name}-worker*"))  # cleaned up


def tempfile_root():
    import tempfile

    return tempfile.gettempdir()


def kill_in_epoch(checkpoints, args, *, victim: int, after: int) -> tuple[Path, str]:
    """Launch two workers with `args`; once the run folder records `after` completed epochs,
    kill -9 worker `victim` 2 s into the next one. Returns (run folder, launcher output), the
    launcher having exited."""
    import threading

    launcher = subprocess.Popen(
        [sys.executable, "-m", "zoo.train.launch", "--workers", "2", "--grace", "10", "--",
         *args, "--checkpoints", str(checkpoints)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO)
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(launcher.stdout), daemon=True)
    reader.start()
    deadline = time.monotonic() + 600
    run_dir = None
    while time.monotonic() < deadline:
        runs = runs_in(checkpoints) if checkpoints.is_dir() else []
        state = runs[0] / "state.json" if runs else None
        if state and state.is_file() and json.loads(state.read_text())["epoch"] >= after:
            [run_dir] = runs
            break
        assert launcher.poll() is None, "".join(lines)[-3000:]
        time.sleep(0.5)
    assert run_dir is not None, "".join(lines)[-3000:]
    [pids] = [re.search(r"pids (\d+), (\d+)", line) for line in lines if "launched" in line]
    time.sleep(2)  # into the next epoch
    os.kill(int(pids[1 + victim]), signal.SIGKILL)
    launcher.wait(timeout=300)
    reader.join(timeout=10)
    output = "".join(lines)
    assert launcher.returncode != 0
    exits = ["-?\\d+", "-?\\d+"]
    exits[victim] = "-9"
    assert re.search(f"worker 0 exited {exits[0]}, worker 1 exited {exits[1]}", output), (
        output[-3000:])
    return run_dir, output


def test_workers_killed_mid_epoch_and_the_run_resumed(tiny_data, tmp_path):
    """kill -9 of the other worker in the second epoch, then (resumed) of the chief in a later
    one: each time the survivor fails (the launcher stops it after --grace at the latest);
    relaunched with --resume, the run ends with every epoch in log.csv exactly once, as an
    uninterrupted run would."""
    checkpoints = tmp_path / "ck"
    run_dir, _ = kill_in_epoch(checkpoints, [*TINY, "--data", str(tiny_data), "--epochs", "4",
                                             "--steps-per-epoch", "16"], victim=1, after=1)
    first = json.loads((run_dir / "state.json").read_text())["epoch"]
    assert 1 <= first < 4
    kill_in_epoch(checkpoints, ["--resume", str(run_dir)], victim=0, after=first + 1)
    second = json.loads((run_dir / "state.json").read_text())["epoch"]
    assert first < second < 4
    result = launch(tmp_path, "--resume", str(run_dir), "--checkpoints", checkpoints)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert runs_in(checkpoints) == [run_dir]
    assert log_epochs(run_dir) == [0, 1, 2, 3]
    assert json.loads((run_dir / "metrics.json").read_text())["epochs"] == 4
    digests = {int(w): (t, a) for w, t, a in DIGEST.findall(result.stdout)}
    assert len(digests) == 2 and digests[0] == digests[1]


def test_a_worker_whose_peers_never_join_fails_in_time(tiny_data, tmp_path):
    silent, mine = free_ports(2)
    addresses = [f"127.0.0.1:{silent}", f"127.0.0.1:{mine}"]
    env = {**os.environ, "TF_CONFIG": tf_config(addresses, 1), "ZOO_PEER_TIMEOUT_S": "5"}
    start = time.monotonic()
    result = subprocess.run([sys.executable, "train.py", *TINY, "--data", str(tiny_data),
                             "--strategy", "multiworker", "--checkpoints", str(tmp_path / "ck")],
                            capture_output=True, text=True, timeout=300, cwd=REPO, env=env)
    assert result.returncode == 2
    assert time.monotonic() - start < 120
    assert re.fullmatch(
        rf"error: worker 1 \(127\.0\.0\.1:{mine}\) could not form the cluster within 5 s: "
        rf"no answer from 127\.0\.0\.1:{silent} \(\w+\)",
        result.stderr.strip().splitlines()[-1]), result.stderr[-2000:]
    assert not (tmp_path / "ck").exists() or not runs_in(tmp_path / "ck")


def train_log(tmp_path, tiny_data, strategy):
    checkpoints = tmp_path / strategy
    result = subprocess.run([sys.executable, "train.py", *TINY, "--data", str(tiny_data),
                             "--epochs", "2", "--strategy", strategy, "--checkpoints",
                             str(checkpoints)], capture_output=True, text=True, timeout=600,
                            cwd=REPO, env={**os.environ, "TF_NUM_INTRAOP_THREADS": "1"})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    [run_dir] = runs_in(checkpoints)
    with open(run_dir / "log.csv") as f:
        return result.stdout, [float(row["loss"]) for row in csv.DictReader(f)]


def test_mirrored_on_two_logical_cpus_follows_the_default_loss_curve(tiny_data, tmp_path):
    out, mirrored = train_log(tmp_path, tiny_data, "mirrored")
    assert "mirrored: 2 replicas" in out
    _, default = train_log(tmp_path, tiny_data, "default")
    # The same global batch and seed; each replica's BatchNorm sees half of it, so the curves
    # agree within noise, not to the bit.
    assert mirrored[-1] < mirrored[0] and default[-1] < default[0]
    for m, d in zip(mirrored, default, strict=True):
        assert abs(m - d) <= 0.15 * d
