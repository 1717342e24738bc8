"""Compression: a run in, a new fine-tuned run out; one module per method.

Example::

    from zoo.compress import METHODS, compress
    METHODS.list()                                   # ['qat']
    run_dir = compress("checkpoints/mobileunet-...", method="qat", epochs=4)

Each method module registers itself with `register_method` and is imported here, so adding a
method is adding one file; `run.py` (the fine-tuning run) and `cli.py` (compress.py) are the
only modules of this folder that are not methods.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass

from zoo.registry import Registry

METHODS = Registry("compression method")
NOT_METHODS = ("cli", "run")


@dataclass(frozen=True)
class Method:
    """A compression method: `apply(model, images, argument)` returns the rewritten model and
    a dict for the run's record; `lr_scale` scales the parent run's learning rate for the
    fine-tuning."""

    name: str
    apply: Callable
    lr_scale: float = 0.1
    summary: str = ""


def register_method(name: str, *, lr_scale: float = 0.1) -> Callable:
    def decorator(fn: Callable) -> Callable:
        METHODS.register(name, Method(name, fn, lr_scale, (fn.__doc__ or "").split("\n")[0]))
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
