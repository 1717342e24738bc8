"""Run folders under checkpoints/: find one by path or name, or the newest.

Example::

    run_dir = resolve_run("mobileunet-a0.5-224x224-20261123-120000")   # or a path
    run_dir = resolve_run(None)                                          # the newest run
"""

from __future__ import annotations

from pathlib import Path

from zoo.errors import ConfigError

CHECKPOINTS_DIR = Path("checkpoints")


def latest_run(checkpoints_dir: Path = CHECKPOINTS_DIR) -> Path:
    """The newest run folder (by config.yaml modification time) under `checkpoints_dir`."""
    runs = list(Path(checkpoints_dir).glob("*/config.yaml"))
    if not runs:
        raise ConfigError(f"no runs in {checkpoints_dir}: train one first (python train.py)")
    return max(runs, key=lambda p: p.stat().st_mtime).parent


def resolve_run(run: str | Path | None, checkpoints_dir: Path = CHECKPOINTS_DIR) -> Path:
    """A run folder from a path or a run name under `checkpoints_dir`; the newest when None."""
    if run is None:
        return latest_run(checkpoints_dir)
    for candidate in (Path(str(run)), Path(checkpoints_dir) / str(run)):
        if (candidate / "config.yaml").is_file():
            return candidate
    raise ConfigError(f"run {run}: no run folder with a config.yaml (looked in {run} and "
                      f"{Path(checkpoints_dir) / str(run)})")
