"""Compression: a run in, a new fine-tuned run out; one module per method.

Example::

    from zoo.compress import METHODS, compress
    METHODS.list()                      # ['cluster', 'lowrank', 'prune', 'qat', 'ternary']
    run_dir = compress("checkpoints/mobileunet-...", method="prune:0.75,cluster:16")

Each method module registers itself with `register_method` and is imported here, so adding a
method is adding one file; `run.py` (the fine-tuning runs), `cli.py` (compress.py) and
`keep.py` (the constraints every later fine-tuning keeps) and `fold.py` (BatchNorm folding)
are the only modules of this folder that are not methods.

A method declares:

- `apply(model, data, value) -> (model, record)`: the rewritten model before fine-tuning
  (`data` is a `CompressData`, `value` what `check` returned); `record` goes into the run's
  `compress.json`, and `data.files` may receive writers of extra run files (a scan, a plot).
- `check(argument) -> value`: the parsed ``name:argument``, or a one-line `ConfigError`; run on
  the whole chain before anything is read or written.
- `stage`: chains run in increasing stage order and a stage appears once (pruning before
  weight sharing: Han et al. 2016 cluster the weights pruning kept).
- `constrain(model, value, current, run_dir) -> callbacks`: called on the loaded model before
  every fine-tuning of a run whose chain holds the method (also on resume and in later stages):
  it sets `variable.constraint` on the weights it governs, which Keras 3 re-applies after each
  optimizer step, so pruned zeros and shared values survive every later stage; `current` is
  True in the method's own run (its schedules run then only).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from zoo.registry import Registry

METHODS = Registry("compression method")
NOT_METHODS = ("cli", "run", "keep", "fold")


def _no_argument(name: str) -> Callable[[str | None], None]:
    def check(argument: str | None) -> None:
        from zoo.errors import ConfigError

        if argument is not None:
            raise ConfigError(f"--method {name} takes no argument, got {name}:{argument}")

    return check


@dataclass(frozen=True)
class Method:
    """A compression method (see the module docstring); `lr_scale` scales the parent run's
    learning rate for the fine-tuning."""

    name: str
    apply: Callable
    lr_scale: float = 0.1
    summary: str = ""
    check: Callable[[str | None], object] | None = None
    stage: int = 0
    constrain: Callable | None = None

    def parse(self, argument: str | None):
        return (self.check or _no_argument(self.name))(argument)


@dataclass
class CompressData:
    """What a method may read: training images (a few, for calibration and layer-response
    fitting), validation images and masks (sensitivity scans), and where the new run's extra
    files go (`files[name] = writer(path)`, written into the run folder)."""

    train_images: np.ndarray
    val_images: np.ndarray
    val_masks: np.ndarray
    num_classes: int
    ignore_index: int | None
    batch_size: int = 8
    files: dict[str, Callable[[Path], None]] = field(default_factory=dict)


def register_method(name: str, *, lr_scale: float = 0.1, check: Callable | None = None,
                    stage: int = 0, constrain: Callable | None = None) -> Callable:
    def decorator(fn: Callable) -> Callable:
        METHODS.register(name, Method(name, fn, lr_scale=lr_scale,
                                      summary=(fn.__doc__ or "").split("\n")[0], check=check,
                                      stage=stage, constrain=constrain))
        return fn

    return decorator


def __getattr__(name: str):
    if name == "compress":
        from zoo.compress.run import compress

        return compress
    raise AttributeError(f"module 'zoo.compress' has no attribute {name!r}")


for _info in pkgutil.iter_modules(__path__):
    if _info.name not in NOT_METHODS:
        importlib.import_module(f"{__name__}.{_info.name}")
