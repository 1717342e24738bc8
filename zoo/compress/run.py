"""A compression run: read a trained run, rewrite its model with each method in turn, and
fine-tune the result as a new run folder (the parent is never modified).

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
from zoo.compress import METHODS
from zoo.config import CompressConfig, load_config
from zoo.errors import ConfigError
from zoo.registry import UnknownNameError
from zoo.runs import CHECKPOINTS_DIR, resolve_run

CALIBRATION_IMAGES = 64  # training images that set the starting ranges (QAT) or statistics


def parse_methods(method) -> list[tuple[str, str | None]]:
    """``"prune:0.75,cluster:16"`` -> [("prune", "0.75"), ("cluster", "16")], every name
    registered."""
    text = ",".join(method) if isinstance(method, list | tuple) else str(method or "")
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts:
        raise ConfigError(f"--method: expected one or more of {', '.join(METHODS.list())} "
                          f"(comma-separated), got {method!r}")
    parsed = []
    for part in parts:
        name, _, argument = part.partition(":")
        try:
            METHODS.get(name)
        except UnknownNameError as exc:
            raise ConfigError(f"--method: {exc}") from None
        parsed.append((name, argument or None))
    return parsed


def parent_epochs(run_dir: Path) -> int:
    """Epochs the run completed (state.json), else its configured epochs."""
    state = run_dir / "state.json"
    if state.is_file():
        return int(json.loads(state.read_text())["epoch"])
    return int(load_config(run_dir / "config.yaml").train.epochs)


def compress(run, method, epochs=None, lr=None, checkpoints_dir=CHECKPOINTS_DIR,
             verbose: int | None = None) -> Path:
    """Compress run `run` with `method` (see `parse_methods`) and fine-tune for `epochs`
    (default: a fifth of the parent's, at least 1); returns the new run folder. Every
    argument is checked, and the parent's checkpoint loaded, before anything is written."""
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
    try:
        model = load_checkpoint(run_dir / "best.keras")
    except ConfigError as exc:
        raise ConfigError(f"--run: {exc}") from None
    epochs = epochs or max(1, parent_epochs(run_dir) // 5)
    spec = spec_from_dict(cfg.data.spec)
    images = load_split_arrays(spec, cfg.data.train_split, tuple(cfg.model.input_size),
                               limit=CALIBRATION_IMAGES, check=False)[0]
    records, scale = [], 1.0
    for name, argument in methods:
        spec_ = METHODS.get(name)
        model, record = spec_.apply(model, images, argument)
        records.append({"method": name if argument is None else f"{name}:{argument}",
                        **record})
        scale = min(scale, spec_.lr_scale)
    names = [r["method"] for r in records]
    for record in records:
        print(f"{record['method']}: " + ", ".join(f"{k} {v}" for k, v in record.items()
                                                   if k != "method"))
    new = replace(
        cfg, run_id="",
        train=replace(cfg.train, epochs=epochs, lr=lr or cfg.train.lr * scale, warmup_epochs=0,
                      schedule="cosine", early_stopping=None),
        compress=CompressConfig(parent=run_dir.name,
                                methods=[*cfg.compress.methods, *names]))
    return finetune(new, model, Path(checkpoints_dir), verbose=verbose)
