"""The training loop, its losses, metrics, schedules and callbacks."""

from zoo.train.loop import latest_run, resolve_run, resume, train

__all__ = ["latest_run", "resolve_run", "resume", "train"]
