"""`python train.py`: command-line arguments -> one RunConfig -> the training loop.

Every argument is checked before anything is read or written (`zoo.config.check_values`,
`check_config`): ``python train.py --epochs 0`` is ``error: --epochs must be an integer >= 1,
got 0`` and exit 2, with no run folder.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

# CLI argument -> dotted config key. Arguments left None keep the config's defaults (or, on
# --resume, the run's own values).
ARG_KEYS = {
    "arch": "model.arch", "backbone": "model.backbone", "head": "model.head",
    "alpha": "model.alpha", "input_size": "model.input_size", "weights": "model.weights",
    "data": "data.data", "augment": "data.augment", "skip_bad": "data.skip_bad",
    "limit": "data.limit",
    "epochs": "train.epochs", "batch_size": "train.batch_size", "lr": "train.lr",
    "schedule": "train.schedule", "warmup_epochs": "train.warmup_epochs",
    "weight_decay": "train.weight_decay", "loss": "train.loss",
    "class_weights": "train.class_weights", "early_stopping": "train.early_stopping",
    "precise_bn_images": "train.precise_bn_images",
    "mixed_precision": "train.mixed_precision", "strategy": "train.strategy",
    "sync_bn": "train.sync_bn",
    "seed": "train.seed", "steps_per_epoch": "train.steps_per_epoch",
}


def train_command(
    arch: str | None = None, backbone: str | None = None, head: str | None = None,
    alpha: float | None = None, input_size: Any = None, weights: str | None = None,
    data: str | None = None, augment: Any = None, skip_bad: bool | None = None,
    limit: int | None = None, epochs: int | None = None, batch_size: int | None = None,
    lr: float | None = None, schedule: str | None = None, warmup_epochs: int | None = None,
    weight_decay: float | None = None, loss: str | None = None, class_weights: Any = None,
    early_stopping: int | None = None, precise_bn_images: int | None = None,
    mixed_precision: bool | None = None, strategy: str | None = None,
    sync_bn: bool | None = None, seed: int | None = None, steps_per_epoch: int | None = None,
    resume: str | None = None,
    checkpoints: str = "checkpoints", download_weights: bool = False, **options: Any,
) -> None:
    """Train a segmentation model and write a run folder under checkpoints/.

    Example: python train.py --arch mobileunet --alpha 0.5 --input-size 224x288 --data camvid

    Args:
        arch: named arch (python -m zoo list); default mobileunet.
        backbone: backbone name, with --head for any pairing, or swapped into --arch.
        head: head name (unet, deeplabv3plus, lraspp).
        alpha: width multiplier; default 0.5.
        input_size: N or HxW, multiples of 32; default 224.
        weights: imagenet (the ImageNet weights Keras publishes for the mobilenet_v1/v2/v3
            backbones, from Keras' cache $KERAS_HOME/models or ~/.keras/models), or a local
            backbone weights file.
        data: dataset yaml name (shapes, camvid, voc2012, oxford_pets), yaml path or a folder
            with images/ and masks/; default shapes (generated on first use).
        augment: augmentation preset or dict (default), or none.
        skip_bad: skip and list bad image/mask pairs instead of stopping at the first.
        limit: use only the first N training pairs.
        epochs: epochs to train; default 30.
        batch_size: default 8.
        lr: peak learning rate (AdamW); default 1e-3.
        schedule: cosine (default), poly or constant, after a linear warm-up.
        warmup_epochs: default 1.
        weight_decay: AdamW weight decay; default 1e-4.
        loss: ce (default), dice, focal, or weighted sums: ce+dice, ce:1,dice:0.5.
        class_weights: median_freq or a list of per-class weights for ce/focal.
        early_stopping: stop after N epochs without a better val mIoU.
        precise_bn_images: training images used to re-estimate BatchNorm statistics before
            each validation; default 64, 0 for none.
        mixed_precision: train in mixed_float16.
        strategy: default, mirrored or multiworker (tf.distribute; multiworker reads
            TF_CONFIG, and python -m zoo.train.launch starts a loopback cluster to try it).
        sync_bn: BatchNorm statistics over the global batch, not each replica's share
            (mirrored, multiworker).
        seed: random seed; default 0.
        steps_per_epoch: default: training pairs // batch size.
        resume: run folder or name to continue from its last completed epoch.
        checkpoints: folder of run folders; default checkpoints.
        download_weights: with --weights imagenet, download the file into Keras' cache when it
            is not there (checked against Keras' hash where Keras has one); nothing else in
            train.py uses the network.
        **options: backbone/head options, e.g. --minimalistic --upsample resize.
    """
    from zoo.checks import flag, folder
    from zoo.config import RunConfig, check_config, check_values
    from zoo.errors import ConfigError
    from zoo.models import backbone_weights
    from zoo.runs import resolve_run
    from zoo.train.loop import _apply, train
    from zoo.train.loop import resume as resume_run
    from zoo.train.losses import parse_loss

    # Every value is checked before anything is read or written; errors name the flag.
    names = {key: flag(arg) for arg, key in ARG_KEYS.items()}
    given = {key: value for key, value in locals().items() if key in ARG_KEYS}
    requested = check_values({ARG_KEYS[k]: v for k, v in given.items() if v is not None}, names)
    if loss is not None:
        parse_loss(loss)
    checkpoints_dir = folder("--checkpoints", checkpoints)
    if options:
        requested["model.options"] = dict(options)
    if download_weights and (weights != "imagenet" or resume is not None):
        raise ConfigError("--download-weights fetches the ImageNet weights a new run starts from: "
                          "it needs --weights imagenet, and no --resume")
    if resume is not None:
        try:
            run_dir = resolve_run(resume, checkpoints_dir)
        except ConfigError as exc:
            raise ConfigError(f"--resume: {exc}") from None
        resume_run(run_dir, checkpoints_dir, requested=requested)
        return
    cfg = RunConfig()
    if (backbone or head) and arch is None:
        cfg = replace(cfg, model=replace(cfg.model, arch=None))
    cfg = check_config(_apply(cfg, requested), names)
    if download_weights:  # before any run folder exists; the build then finds it in the cache
        m = cfg.model
        backbone_weights(m.arch, m.backbone, m.head, alpha=m.alpha, input_size=m.input_size,
                         weights=m.weights, download_weights=True, **m.options)
    train(cfg, checkpoints_dir)
