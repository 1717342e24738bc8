"""The runtime registry, the runner interface and the tensor facts runners share.

Example::

    @register_runtime("litert", describe=delegate_line)
    class LiteRTRunner(Runner): ...

    runner = get_runner("litert", path, threads=2)
    runner.run(uint8_images)        # float32 logits (1, H, W, C) or a label map (1, H, W)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zoo.registry import Registry

RUNTIMES = Registry("runtime")


class NotRunnableError(RuntimeError):
    """The runtime cannot execute this artifact (e.g. an op the reference interpreter lacks):
    the artifact is "not run", never passed."""


@dataclass
class TensorInfo:
    """dtype and shape of a model input or output; scale/zero point when quantized."""

    name: str
    dtype: str
    shape: list[int]
    scale: float | None = None
    zero_point: int | None = None

    @property
    def quantized(self) -> bool:
        return bool(self.scale) and self.dtype in ("uint8", "int8")


class Runner:
    """Runs one artifact: `run(uint8 (1, H, W, 3)) -> float32 logits (1, H, W, C)`, or integer
    class labels (1, H, W) for an artifact whose output is a label map."""

    def __init__(self, path: Path, threads: int | None = None) -> None:  # pragma: no cover
        raise NotImplementedError

    def run(self, images: np.ndarray) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError

    def close(self) -> None:
        """Release what the runtime holds (most need nothing: garbage collection does it)."""


@dataclass(frozen=True)
class RuntimeSpec:
    """A registered runtime: its runner class; `available()` is "" where it runs, else why not;
    `describe(details)` gives the artifact's one-line runtime report for report.md (or "")."""

    name: str
    runner_cls: type[Runner]
    available: Callable[[], str]
    describe: Callable[[dict], str]


def _always() -> str:
    return ""


def _nothing(details: dict) -> str:
    return ""


def register_runtime(name: str, available: Callable[[], str] = _always,
                     describe: Callable[[dict], str] = _nothing) -> Callable:
    """Class decorator registering a `Runner` subclass under `name`."""

    def decorator(cls: type[Runner]) -> type[Runner]:
        RUNTIMES.register(name, RuntimeSpec(name, cls, available, describe))
        return cls

    return decorator


def get_runner(name: str, path: Path, threads: int | None = None) -> Runner:
    """A runner of runtime `name` for the artifact at `path`."""
    return RUNTIMES.get(name).runner_cls(Path(path), threads)


def as_output(y: np.ndarray) -> np.ndarray:
    """Logits as float32; an integer label map as it is."""
    return y if np.issubdtype(y.dtype, np.integer) else y.astype(np.float32)


def quantize(x: np.ndarray, info: TensorInfo) -> np.ndarray:
    """Float values to the integer type of `info` with its scale and zero point."""
    limits = np.iinfo(info.dtype)
    q = np.round(np.asarray(x, np.float32) / info.scale + info.zero_point)
    return np.clip(q, limits.min, limits.max).astype(info.dtype)


def dequantize(q: np.ndarray, info: TensorInfo) -> np.ndarray:
    return ((q.astype(np.float32) - info.zero_point) * info.scale).astype(np.float32)
