"""The training loop, its losses, metrics, schedules and callbacks."""

from zoo.runs import latest_run, resolve_run
from zoo.train.loop import resume, train

__all__ = ["latest_run", "resolve_run", "resume", "train"]
