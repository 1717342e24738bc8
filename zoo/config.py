"""One run config: ModelConfig + DataConfig + TrainConfig, saved as YAML beside the checkpoint.

Config flows one way: CLI -> `RunConfig` -> builders. `config.yaml` in a run folder is complete:
the model and the data can be rebuilt from it alone.

Example::

    cfg = RunConfig(model=ModelConfig(arch="mobileunet", alpha=0.5, input_size=(128, 128)))
    save_config(cfg, run_dir / "config.yaml")
    assert load_config(run_dir / "config.yaml") == cfg
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from zoo.errors import ConfigError
from zoo.files import write_text_atomic


@dataclass
class ModelConfig:
    """What to build: a named arch or a backbone + head, its width and input size."""

    arch: str | None = "mobileunet"
    backbone: str | None = None
    head: str | None = None
    alpha: float = 0.5
    input_size: tuple[int, int] = (224, 224)
    num_classes: int = 2
    weights: str | None = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class DataConfig:
    """Where the data is and how it is augmented."""

    data: str = "shapes"
    spec: dict[str, Any] | None = None  # the resolved dataset spec, saved for rebuilding
    augment: Any = "default"
    skip_bad: bool = False
    train_split: str = "train"
    val_split: str = "val"
    limit: int | None = None


@dataclass
class TrainConfig:
    """How to train: schedule, loss, checkpoints and the machine switches."""

    epochs: int = 30
    batch_size: int = 8
    lr: float = 1e-3
    schedule: str = "cosine"  # cosine | poly | constant
    warmup_epochs: int = 1
    weight_decay: float = 1e-4
    loss: str = "ce"  # ce | dice | focal | weighted sums like "ce+dice" or "ce:1,dice:0.5"
    class_weights: Any = None  # None | "median_freq" | list of floats
    early_stopping: int | None = None  # patience in epochs on val mIoU
    precise_bn_images: int = 64
    mixed_precision: bool = False
    strategy: str = "default"  # default | mirrored | multiworker
    seed: int = 0
    steps_per_epoch: int | None = None


@dataclass
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    run_id: str = ""


def _plain(value: Any) -> Any:
    """YAML-safe: tuples become lists, recursively."""
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def config_to_dict(cfg: RunConfig) -> dict[str, Any]:
    return _plain(dataclasses.asdict(cfg))


def config_from_dict(raw: dict[str, Any], source: str = "config") -> RunConfig:
    """A `RunConfig` from a dict; unknown keys are errors naming the key."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping with model, data, train")
    parts = {}
    for name, cls in (("model", ModelConfig), ("data", DataConfig), ("train", TrainConfig)):
        section = raw.get(name) or {}
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(section) - known)
        if unknown:
            raise ConfigError(f"{source}: unknown key(s) {', '.join(unknown)} in {name}")
        parts[name] = cls(**section)
    extra = sorted(set(raw) - {"model", "data", "train", "run_id"})
    if extra:
        raise ConfigError(f"{source}: unknown section(s) {', '.join(extra)}")
    cfg = RunConfig(**parts, run_id=raw.get("run_id", ""))
    cfg.model.input_size = tuple(cfg.model.input_size)
    return cfg


def save_config(cfg: RunConfig, path: Path) -> None:
    """Write `cfg` as YAML atomically."""
    write_text_atomic(Path(path), yaml.safe_dump(config_to_dict(cfg), sort_keys=False))


def load_config(path: Path) -> RunConfig:
    """Read a run's `config.yaml`."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: run config not found") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    return config_from_dict(raw, str(path))


def config_diff(a: RunConfig, b: RunConfig) -> list[str]:
    """Dotted keys whose values differ between two configs (run_id excluded)."""
    flat_a, flat_b = _flatten(config_to_dict(a)), _flatten(config_to_dict(b))
    keys = sorted(set(flat_a) | set(flat_b))
    return [k for k in keys if k != "run_id" and flat_a.get(k) != flat_b.get(k)]


def _flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    out = {}
    for key, value in d.items():
        if isinstance(value, dict) and key != "spec":
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out
