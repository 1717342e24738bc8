"""The shared training loop: one `keras.Model.fit` for every arch and dataset.

Example::

    run_dir = train(RunConfig(model=ModelConfig(arch="mobileunet", alpha=0.5,
                                                input_size=(128, 128)),
                              train=TrainConfig(epochs=10)))
    resume(run_dir)   # continues after the last completed epoch

A run folder ``checkpoints/<arch>-a<alpha>-<H>x<W>-<timestamp>/`` receives config.yaml,
best.keras (best val mIoU), last.keras (with optimizer state), state.json, log.csv,
tensorboard/, metrics.json, curves.png and samples.png. It is never overwritten.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

import zoo.quantize  # noqa: F401 - registers the QAT layers: QAT checkpoints load
from zoo.checks import folder
from zoo.config import (
    RunConfig,
    check_config,
    check_values,
    config_diff,
    config_to_dict,
    load_config,
    save_config,
)
from zoo.data import load_split_arrays, make_dataset, resolve_dataset, scan, spec_from_dict
from zoo.errors import ConfigError
from zoo.files import save_model_atomic, write_text_atomic
from zoo.metrics import confusion_matrix, iou_per_class, mean_iou
from zoo.models import build_model, resolve_arch
from zoo.runs import CHECKPOINTS_DIR, resolve_run
from zoo.train.callbacks import PreciseBatchNorm, RunCheckpoint
from zoo.train.distributed import (
    is_chief,
    make_strategy,
    share_path,
    wait_for,
    weights_digest,
    worker_role,
)
from zoo.train.losses import SegmentationLoss, median_frequency_weights
from zoo.train.metrics import MeanIoU
from zoo.train.report import write_curves, write_samples
from zoo.train.schedules import WarmupDecay


def new_run_dir(cfg: RunConfig, checkpoints_dir: Path) -> Path:
    """A fresh run folder; an existing one is never reused. A compressed run's name carries
    its methods (``...-224x288-qat-<timestamp>``)."""
    name = cfg.model.arch or resolve_arch(None, cfg.model.backbone, cfg.model.head).name
    h, w = cfg.model.input_size
    methods = "".join(f"-{m.split(':')[0]}" for m in cfg.compress.methods)
    stem = f"{name}-a{cfg.model.alpha:g}-{h}x{w}{methods}-{datetime.now():%Y%m%d-%H%M%S}"
    checkpoints_dir.mkdir(parents=True, exist_ok=True)
    for i in range(1, 1000):
        path = checkpoints_dir / (stem if i == 1 else f"{stem}-{i}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise ConfigError(f"could not create a new run folder under {checkpoints_dir}")


def _class_weights(cfg: RunConfig, class_pixels) -> list[float] | None:
    weights = cfg.train.class_weights
    if weights is None:
        return None
    if weights == "median_freq":
        return median_frequency_weights(class_pixels)
    if isinstance(weights, list | tuple):
        return [float(w) for w in weights]
    raise ConfigError(f"class_weights must be null, 'median_freq' or a list, got {weights!r}")


def _compile(model: keras.Model, cfg: RunConfig, spec, class_weights, steps: int) -> None:
    schedule = WarmupDecay(cfg.train.lr, cfg.train.epochs * steps,
                           cfg.train.warmup_epochs * steps, cfg.train.schedule)
    optimizer = keras.optimizers.AdamW(schedule, weight_decay=cfg.train.weight_decay)
    model.compile(
        optimizer=optimizer,
        loss=SegmentationLoss(cfg.train.loss, spec.num_classes, spec.ignore_index,
                              class_weights),
        metrics=[MeanIoU(spec.num_classes, spec.ignore_index)],
    )
    # Its variables now, not in the first traced train step: under the default strategy Keras
    # builds the optimizer inside that trace, and TensorFlow traces a function that creates
    # variables twice (half a short run's start-up time). Same variables, same values.
    model.optimizer.build(model.trainable_variables)


def train(cfg: RunConfig, checkpoints_dir: Path = CHECKPOINTS_DIR, verbose: int | None = None,
          callbacks: list | None = None) -> Path:
    """Train a new run from `cfg`; returns its run folder. Every value is checked
    (`check_config`) before anything is read or written; errors name the config key.
    `callbacks` are Keras callbacks added to the run's own (e.g. a study's progress line)."""
    cfg = check_config(cfg)
    strategy = make_strategy(cfg.train.strategy)  # before TensorFlow runs anything
    checkpoints_dir = folder("checkpoints_dir", checkpoints_dir)
    spec = resolve_dataset(cfg.data.data)
    cfg = replace(cfg, data=replace(cfg.data, spec=spec.to_dict()),
                  model=replace(cfg.model, num_classes=spec.num_classes,
                                input_size=tuple(cfg.model.input_size)))
    scans = _scan(cfg, spec)
    class_weights = _class_weights(cfg, scans[0].class_pixels)
    # Build the model and the loss once outside the strategy, to fail on a bad arch, alpha,
    # size, loss or class weights before making a folder.
    keras.backend.clear_session()
    _build(cfg)
    SegmentationLoss(cfg.train.loss, spec.num_classes, spec.ignore_index, class_weights)
    # One folder for a cluster: the chief makes it, the other workers learn its path.
    run_dir = share_path(strategy, new_run_dir(cfg, checkpoints_dir) if is_chief() else None)
    cfg = replace(cfg, run_id=run_dir.name)
    if is_chief():
        save_config(cfg, run_dir / "config.yaml")
    return _fit(cfg, spec, scans, class_weights, run_dir, resume_from=None, verbose=verbose,
                callbacks=callbacks)


def finetune(cfg: RunConfig, model: keras.Model, checkpoints_dir: Path = CHECKPOINTS_DIR,
             verbose: int | None = None, files: dict | None = None) -> Path:
    """Train `model` (a run's model rewritten by `zoo.compress`) as a new run of `cfg`, whose
    `compress` section names the parent run and the methods. The run folder keeps the model
    fine-tuning starts from as init.keras, so the run resumes like any other; `files` maps
    extra file names to writers of them (a method's scan, its plot, compress.json)."""
    cfg = check_config(cfg)
    if cfg.train.strategy == "multiworker":
        raise ConfigError("compress.py fine-tunes on one machine: --strategy multiworker is "
                          "for train.py")
    checkpoints_dir = folder("checkpoints_dir", checkpoints_dir)
    spec = spec_from_dict(cfg.data.spec)
    scans = _scan(cfg, spec)
    class_weights = _class_weights(cfg, scans[0].class_pixels)
    run_dir = new_run_dir(cfg, checkpoints_dir)
    cfg = replace(cfg, run_id=run_dir.name)
    save_model_atomic(model, run_dir / "init.keras")
    save_config(cfg, run_dir / "config.yaml")
    for name, write in (files or {}).items():
        write(run_dir / name)
    return _fit(cfg, spec, scans, class_weights, run_dir, resume_from=None, verbose=verbose)


def resume(run: str | Path, checkpoints_dir: Path = CHECKPOINTS_DIR,
           requested: dict[str, Any] | None = None, verbose: int | None = None,
           callbacks: list | None = None) -> Path:
    """Continue a run after its last completed epoch. `requested` holds the dotted config keys
    a user asked for explicitly; any that differ from the run's config are an error."""
    run_dir = resolve_run(run, checkpoints_dir)
    cfg = load_config(run_dir / "config.yaml")
    make_strategy(cfg.train.strategy)  # before TensorFlow runs anything
    if requested:
        flat = check_values({k: v for k, v in requested.items() if v is not None})
        wanted = _apply(cfg, flat)
        differ = config_diff(cfg, wanted)
        if differ:
            raise ConfigError(f"resume {run_dir.name}: the run was trained with different "
                              f"{', '.join(differ)}; start a new run to change them")
    state_path = run_dir / "state.json"
    if not (run_dir / "last.keras").is_file() or not state_path.is_file():
        raise ConfigError(f"resume {run_dir.name}: no completed epoch to resume from "
                          "(last.keras / state.json missing)")
    spec = spec_from_dict(cfg.data.spec)
    scans = _scan(cfg, spec)
    class_weights = _class_weights(cfg, scans[0].class_pixels)
    return _fit(cfg, spec, scans, class_weights, run_dir,
                resume_from=json.loads(state_path.read_text()), verbose=verbose,
                callbacks=callbacks)


def _apply(cfg: RunConfig, flat: dict[str, Any]) -> RunConfig:
    sections = {"model": cfg.model, "data": cfg.data, "train": cfg.train}
    for key, value in flat.items():
        section, _, name = key.partition(".")
        if section not in sections or not hasattr(sections[section], name):
            raise ConfigError(f"unknown config key {key!r}")
        if name == "input_size":
            value = tuple(value)
        sections[section] = replace(sections[section], **{name: value})
    return replace(cfg, **sections)


def _scan(cfg: RunConfig, spec):
    return (scan(spec, cfg.data.train_split, skip_bad=cfg.data.skip_bad),
            scan(spec, cfg.data.val_split, skip_bad=cfg.data.skip_bad))


def _build(cfg: RunConfig) -> keras.Model:
    m = cfg.model
    return build_model(m.arch, m.backbone, m.head, alpha=m.alpha, input_size=m.input_size,
                       num_classes=m.num_classes, weights=m.weights, **m.options)


def _fit(cfg: RunConfig, spec, scans, class_weights, run_dir: Path, resume_from: dict | None,
         verbose: int | None, callbacks: list | None = None) -> Path:
    from zoo.compress.keep import first_final_epoch, keep_constraints

    t0 = time.time()
    policy = keras.mixed_precision.global_policy().name
    # clear_session() resets the global dtype policy too: set it afterwards.
    keras.backend.clear_session()
    keras.utils.set_random_seed(cfg.train.seed)
    if cfg.train.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
    chief = is_chief()
    # A worker other than the chief writes its checkpoints and logs to a temporary folder,
    # deleted at the end; it reads the chief's run folder (shared storage) to resume.
    out_dir = run_dir if chief else Path(tempfile.mkdtemp(
        prefix=f"zoo-{run_dir.name}-worker{worker_role().index}-"))
    try:
        strategy = make_strategy(cfg.train.strategy)
        train_scan, val_scan = scans
        size, batch = tuple(cfg.model.input_size), cfg.train.batch_size
        n_train = len(train_scan.pairs[: cfg.data.limit or None])
        steps = cfg.train.steps_per_epoch or max(1, n_train // batch)
        initial_epoch = int(resume_from["epoch"]) if resume_from else 0
        replicas = strategy.num_replicas_in_sync
        if cfg.train.strategy != "default" and chief:
            print(f"strategy {cfg.train.strategy}: {replicas} replicas, global batch {batch}",
                  flush=True)
        if batch % replicas:
            raise ConfigError(f"--batch-size {batch} must be a multiple of the {replicas} "
                              "replicas: the global batch is split between them")
        if resume_from and not chief:
            wait_for([run_dir / "last.keras"])
        with strategy.scope():
            if resume_from:
                model = keras.saving.load_model(run_dir / "last.keras")
            else:
                model = (keras.saving.load_model(run_dir / "init.keras", compile=False)
                         if cfg.compress.methods else _build(cfg))
                _compile(model, cfg, spec, class_weights, steps)
            if cfg.train.sync_bn:
                for layer in model.layers:
                    if isinstance(layer, keras.layers.BatchNormalization):
                        layer.synchronized = True  # read at call time (keras ops.moments)
            kept = keep_constraints(model, cfg.compress.methods, run_dir)
            if cfg.train.strategy == "multiworker":
                from zoo.train.workarounds import for_multiworker

                for_multiworker(model)
        train_ds = make_dataset(spec, cfg.data.train_split, size, batch,
                                augment=cfg.data.augment, shuffle=True,
                                seed=cfg.train.seed + initial_epoch, repeat=True,
                                drop_remainder=True, limit=cfg.data.limit,
                                scan_result=train_scan)
        val_ds = make_dataset(spec, cfg.data.val_split, size, batch, augment=None,
                              scan_result=val_scan)
        bn_count = cfg.train.precise_bn_images
        bn_images = load_split_arrays(spec, cfg.data.train_split, size, limit=bn_count,
                                      check=False)[0] if bn_count else None
        if cfg.train.strategy == "multiworker":
            train_ds, val_ds = shard_by_data(train_ds), shard_by_data(val_ds)
        checkpoint = RunCheckpoint(out_dir, final_from=lambda: first_final_epoch(kept))
        if resume_from:
            checkpoint.best = float(resume_from["best"])
            checkpoint.best_epoch = int(resume_from["best_epoch"])
        if resume_from and chief:
            _truncate_log(run_dir / "log.csv", initial_epoch)
        callbacks = [  # the log row is written before the checkpoint that makes it final
            *kept,
            *([PreciseBatchNorm(bn_images)] if bn_count else []),
            keras.callbacks.CSVLogger(str(out_dir / "log.csv"), append=True),
            checkpoint,
            keras.callbacks.TensorBoard(str(out_dir / "tensorboard"), write_graph=False),
            *(callbacks or []),  # after the checkpoint: they see each epoch as saved
        ]
        if cfg.train.early_stopping:
            callbacks.append(keras.callbacks.EarlyStopping(
                "val_miou", patience=cfg.train.early_stopping, mode="max"))
        if initial_epoch < cfg.train.epochs:
            model.fit(train_ds, validation_data=val_ds, epochs=cfg.train.epochs, shuffle=False,
                      initial_epoch=initial_epoch, steps_per_epoch=steps, callbacks=callbacks,
                      verbose=0 if not chief else (1 if sys.stdout.isatty() else 2)
                      if verbose is None else verbose)
        if cfg.train.strategy == "multiworker":  # every worker: the same model, or not
            role = worker_role()
            print(f"{role.task} {role.index}: weights: trainable "
                  f"{weights_digest(model.trainable_weights)}, all "
                  f"{weights_digest(model.weights)}", flush=True)
        if chief:
            _finish(cfg, spec, run_dir, seconds=time.time() - t0, resume_from=resume_from)
    finally:
        keras.mixed_precision.set_global_policy(policy)
        if out_dir != run_dir:
            shutil.rmtree(out_dir, ignore_errors=True)
    return run_dir


def shard_by_data(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """`dataset` split between the workers by element (each takes every n-th batch's share),
    not by file: the pipeline reads from one list of pairs, which file sharding cannot split."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def _truncate_log(path: Path, epochs: int) -> None:
    """Keep the header and the rows of the first `epochs` epochs (a killed run may have logged
    an epoch whose checkpoint it never wrote)."""
    if not path.is_file():
        return
    lines = path.read_text().splitlines(keepends=True)
    kept = lines[:1] + [line for line in lines[1:] if int(float(line.split(",")[0])) < epochs]
    write_text_atomic(path, "".join(kept))


def _finish(cfg: RunConfig, spec, run_dir: Path, *, seconds: float, resume_from: dict | None
            ) -> None:
    """metrics.json from the best checkpoint on the whole validation split, plus the plots."""
    best = keras.saving.load_model(run_dir / "best.keras", compile=False)
    images, masks = load_split_arrays(spec, cfg.data.val_split, tuple(cfg.model.input_size),
                                      check=False)
    pred = np.concatenate([np.argmax(best.predict_on_batch(images[i:i + 8].astype("float32")),
                                     -1) for i in range(0, len(images), 8)])
    cm = confusion_matrix(masks, pred, spec.num_classes, spec.ignore_index)
    previous = json.loads((run_dir / "metrics.json").read_text()) if resume_from and (
        run_dir / "metrics.json").is_file() else {}
    state = json.loads((run_dir / "state.json").read_text())
    per_class = iou_per_class(cm)
    metrics = {
        "run_id": run_dir.name,
        "best_val_miou": mean_iou(cm),
        "best_epoch": state["best_epoch"],
        "epochs": state["epoch"],
        "per_class_iou": {name: (None if math.isnan(v) else float(v))
                          for name, v in zip(spec.classes, per_class, strict=True)},
        "val_images": len(images),
        "wall_time_s": round(previous.get("wall_time_s", 0.0) + seconds, 1),
        "config": config_to_dict(cfg),
    }
    write_text_atomic(run_dir / "metrics.json", json.dumps(metrics, indent=2))
    write_curves(run_dir / "log.csv", run_dir / "curves.png")
    n = min(4, len(images))
    write_samples(images[:n], masks[:n], pred[:n], num_classes=spec.num_classes,
                  ignore_index=spec.ignore_index, out=run_dir / "samples.png")
    print(f"run {run_dir}: best val mIoU {metrics['best_val_miou']:.4f} at epoch "
          f"{metrics['best_epoch']} of {metrics['epochs']} ({metrics['wall_time_s']:.0f} s)")
