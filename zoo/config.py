"""One run config: ModelConfig + DataConfig + TrainConfig, saved as YAML beside the checkpoint.

Config flows one way: CLI -> `RunConfig` -> builders. `config.yaml` in a run folder is complete:
the model and the data can be rebuilt from it alone.

Example::

    cfg = RunConfig(model=ModelConfig(arch="mobileunet", alpha=0.5, input_size=(128, 128)))
    cfg = check_config(cfg)    # every value in its range, or a one-line ConfigError
    save_config(cfg, run_dir / "config.yaml")
    assert load_config(run_dir / "config.yaml") == cfg
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from zoo import checks
from zoo.errors import ConfigError
from zoo.files import write_text_atomic

SCHEDULES = ("cosine", "poly", "constant")
STRATEGIES = ("default", "mirrored", "multiworker")
SEED_MAX = 2**32 - 1  # numpy's seeds are 32-bit


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
    schedule: str = "cosine"  # SCHEDULES
    warmup_epochs: int = 1
    weight_decay: float = 1e-4
    loss: str = "ce"  # ce | dice | focal | weighted sums like "ce+dice" or "ce:1,dice:0.5"
    class_weights: Any = None  # None | "median_freq" | list of floats
    early_stopping: int | None = None  # patience in epochs on val mIoU
    precise_bn_images: int = 64  # 0: off
    mixed_precision: bool = False
    strategy: str = "default"  # STRATEGIES
    sync_bn: bool = False  # BatchNorm statistics over the global batch (mirrored, multiworker)
    seed: int = 0
    steps_per_epoch: int | None = None


@dataclass
class CompressConfig:
    """A compressed run's origin: the run it was made from and the methods, in order (empty
    for a run trained from scratch). Its model starts from the run folder's init.keras."""

    parent: str | None = None
    methods: list[str] = field(default_factory=list)


@dataclass
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    run_id: str = ""
    compress: CompressConfig = field(default_factory=CompressConfig)


def _checks() -> dict[str, Callable[[str, Any], Any]]:
    """Dotted config key -> ``check(name, value)`` of that value alone."""
    positive, count = checks.int_range(1), checks.int_range(0)
    return {
        "model.alpha": lambda n, v: checks.number(n, v, 0, low_open=True),
        "model.input_size": checks.input_size,
        "model.num_classes": positive,
        "model.weights": checks.optional(_weights),
        "data.limit": checks.optional(positive),
        "train.epochs": positive,
        "train.batch_size": positive,
        "train.lr": lambda n, v: checks.number(n, v, 0, low_open=True),
        "train.schedule": checks.one_of(*SCHEDULES),
        "train.warmup_epochs": count,
        "train.weight_decay": lambda n, v: checks.number(n, v, 0),
        "train.class_weights": checks.optional(_class_weights),
        "train.early_stopping": checks.optional(positive),
        "train.precise_bn_images": count,
        "train.strategy": checks.one_of(*STRATEGIES),
        "train.sync_bn": checks.boolean,
        "train.seed": checks.int_range(0, SEED_MAX),
        "train.steps_per_epoch": checks.optional(positive),
    }


def _weights(name: str, value: Any) -> str:
    """``imagenet`` or an existing local weights file."""
    if value != "imagenet" and not Path(os.path.expanduser(str(value))).is_file():
        raise ConfigError(f"{name} must be imagenet or an existing weights file, got {value!r}")
    return value


def _class_weights(name: str, value: Any) -> Any:
    """``median_freq`` or one finite weight >= 0 per class (a list; ``1,2`` on the CLI)."""
    if value == "median_freq":
        return value
    if not isinstance(value, list | tuple) or not value:
        raise ConfigError(f"{name} must be median_freq or a list of weights >= 0 (e.g. 1,2.5), "
                          f"got {value!r}")
    return [checks.number(name, w, 0) for w in value]


def check_values(values: Mapping[str, Any], names: Mapping[str, str] | None = None
                 ) -> dict[str, Any]:
    """Each ``{dotted key: value}`` checked on its own and converted (``"8"`` -> 8); errors name
    the key as `names` spells it (e.g. ``{"train.epochs": "--epochs"}``), else the dotted key.
    Keys without a range (names, booleans, the loss) pass unchanged."""
    names = names or {}
    table = _checks()
    return {key: table[key](names.get(key, key), value) if key in table else value
            for key, value in values.items()}


def check_config(cfg: RunConfig, names: Mapping[str, str] | None = None) -> RunConfig:
    """`cfg` with every numeric value checked (`check_values`) and the pairings too: alpha in
    the backbone's allowed set, warm-up no longer than training. Returns the converted config;
    a `ConfigError` names the first bad value."""
    names = names or {}
    sections = {}
    for section in ("model", "data", "train"):
        part = getattr(cfg, section)
        flat = {f"{section}.{f.name}": getattr(part, f.name) for f in dataclasses.fields(part)}
        checked = check_values(flat, names)
        sections[section] = replace(part, **{k.partition(".")[2]: v for k, v in checked.items()})
    cfg = replace(cfg, **sections)
    m, t = cfg.model, cfg.train
    if t.warmup_epochs > t.epochs:
        label = names.get("train.epochs", "train.epochs")
        raise ConfigError(f"{names.get('train.warmup_epochs', 'train.warmup_epochs')} must be an "
                          f"integer between 0 and {t.epochs} ({label}), got {t.warmup_epochs!r}")
    from zoo.backbones import BACKBONES  # the registries import Keras: only when checking
    from zoo.models import resolve_arch

    backbone = BACKBONES.get(resolve_arch(m.arch, m.backbone, m.head).backbone)
    backbone.check_alpha(m.alpha, names.get("model.alpha", "model.alpha"))
    return cfg


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
    for name, cls in (("model", ModelConfig), ("data", DataConfig), ("train", TrainConfig),
                      ("compress", CompressConfig)):
        section = raw.get(name) or {}
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(section) - known)
        if unknown:
            raise ConfigError(f"{source}: unknown key(s) {', '.join(unknown)} in {name}")
        parts[name] = cls(**section)
    extra = sorted(set(raw) - {"model", "data", "train", "compress", "run_id"})
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
