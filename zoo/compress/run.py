"""A compression run: read a trained run, rewrite its model with each method in turn, and
fine-tune the result as a new run folder (the parent is never modified); a chain of methods
fine-tunes after each one, each stage a run folder whose parent is the stage before.

Example::

    run_dir = compress("checkpoints/mobileunet-a0.5-224x288-...", method="qat", epochs=4)
    # -> checkpoints/mobileunet-a0.5-224x288-qat-<timestamp>/, config.yaml: compress.parent

Fine-tuning reuses the training loop with the parent's data, loss and batch size; the
learning rate is the parent's times the method's `lr_scale` (0.1 for QAT, as QAT recipes
fine-tune: tensorflow/models official/projects/qat/vision), cosine to zero with no warm-up,
and the default epochs are a fifth of what the parent trained.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from zoo import checks
from zoo.compress import METHODS, CompressData
from zoo.config import CompressConfig, load_config
from zoo.errors import ConfigError
from zoo.files import write_text_atomic
from zoo.registry import UnknownNameError
from zoo.runs import CHECKPOINTS_DIR, resolve_run

CALIBRATION_IMAGES = 64  # training images that set the starting ranges (QAT) or statistics
VALIDATION_IMAGES = 32  # validation images of a sensitivity scan (pruning)


def parse_methods(method) -> list[tuple[str, str | None, object]]:
    """``"prune:0.75,cluster:16"`` -> [("prune", "0.75", 0.75), ("cluster", "16", 16)]: every
    name registered, every argument valid, stages in increasing order."""
    text = ",".join(method) if isinstance(method, list | tuple) else str(method or "")
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts:
        raise ConfigError(f"--method: expected one or more of {', '.join(METHODS.list())} "
                          f"(comma-separated), got {method!r}")
    parsed, previous = [], None
    for part in parts:
        name, colon, argument = part.partition(":")
        try:
            spec = METHODS.get(name)
        except UnknownNameError as exc:
            raise ConfigError(f"--method: {exc}") from None
        argument = argument if colon else None
        value = spec.parse(argument)
        if previous is not None and spec.stage <= METHODS.get(previous).stage:
            raise ConfigError(f"--method: {name} cannot follow {previous}; chain them in the "
                              f"order {', '.join(order())}, each at most once")
        parsed.append((name, argument, value))
        previous = name
    return parsed


def order() -> list[str]:
    """Method names in the order a chain applies them."""
    return sorted(METHODS.list(), key=lambda n: (METHODS.get(n).stage, n))


def parent_epochs(run_dir: Path) -> int:
    """Epochs the run completed (state.json), else its configured epochs."""
    state = run_dir / "state.json"
    if state.is_file():
        return int(json.loads(state.read_text())["epoch"])
    return int(load_config(run_dir / "config.yaml").train.epochs)


def compress(run, method, epochs=None, lr=None, checkpoints_dir=CHECKPOINTS_DIR,
             verbose: int | None = None) -> Path:
    """Compress run `run` with `method` (see `parse_methods`), each method in turn fine-tuned
    for `epochs` (default: a fifth of the first parent's, at least 1) as its own run folder
    whose parent is the previous one (Deep Compression retrains after pruning and again after
    weight sharing); returns the last run folder. Every argument is checked, and the parent's
    checkpoint loaded, before anything is written."""
    from zoo.data import load_split_arrays, spec_from_dict
    from zoo.export.exporter import load_checkpoint
    from zoo.train.loop import finetune

    methods = parse_methods(method)
    epochs = checks.optional(checks.integer)("--epochs", epochs, 1)
    lr = checks.optional(checks.number)("--lr", lr, 0, low_open=True)
    checkpoints_dir = checks.folder("--checkpoints", checkpoints_dir)
    try:
        run_dir = resolve_run(run, Path(checkpoints_dir))
    except ConfigError as exc:
        raise ConfigError(f"--run: {exc}") from None
    cfg = load_config(run_dir / "config.yaml")
    _check_chain(cfg.compress.methods, methods)
    try:
        model = load_checkpoint(run_dir / "best.keras")
    except ConfigError as exc:
        raise ConfigError(f"--run: {exc}") from None
    epochs = epochs or max(1, parent_epochs(run_dir) // 5)
    base_lr = cfg.train.lr  # each stage scales the first parent's rate, not the stage before's
    spec = spec_from_dict(cfg.data.spec)
    size = tuple(cfg.model.input_size)
    train_images = load_split_arrays(spec, cfg.data.train_split, size,
                                     limit=CALIBRATION_IMAGES, check=False)[0]
    val_images, val_masks = load_split_arrays(spec, cfg.data.val_split, size,
                                              limit=VALIDATION_IMAGES, check=False)
    for i, (name, argument, value) in enumerate(methods):
        data = CompressData(train_images, val_images, val_masks, spec.num_classes,
                            spec.ignore_index, batch_size=cfg.train.batch_size)
        spec_ = METHODS.get(name)
        model, record = spec_.apply(model, data, value)
        label = name if argument is None else f"{name}:{argument}"
        record = {"method": label, **record}
        print(f"{label}: " + ", ".join(f"{k} {v}" for k, v in record.items()
                                       if k != "method" and not isinstance(v, list | dict)))
        history = _history(run_dir)
        data.files["compress.json"] = _writer(json.dumps([*history, record], indent=2))
        new = replace(
            cfg, run_id="",
            train=replace(cfg.train, epochs=epochs, lr=lr or base_lr * spec_.lr_scale,
                          warmup_epochs=0, schedule="cosine", early_stopping=None),
            compress=CompressConfig(parent=run_dir.name,
                                    methods=[*cfg.compress.methods, label]))
        run_dir = finetune(new, model, Path(checkpoints_dir), verbose=verbose,
                           files=data.files)
        cfg = load_config(run_dir / "config.yaml")
        if i < len(methods) - 1:
            model = load_checkpoint(run_dir / "best.keras")
    return run_dir


def _check_chain(done: list[str], methods) -> None:
    """The run's own methods and the new ones make one valid chain."""
    if done:
        parse_methods([*done, *(n if a is None else f"{n}:{a}" for n, a, _ in methods)])


def _history(run_dir: Path) -> list[dict]:
    path = run_dir / "compress.json"
    return json.loads(path.read_text()) if path.is_file() else []


def _writer(text: str):
    def write(path: Path) -> None:
        write_text_atomic(path, text)

    return write
