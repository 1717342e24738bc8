"""The training loop end to end on tiny generated data: run folder, resume, bad input."""

import hashlib
import json
import shutil

import keras
import numpy as np
import pytest

from zoo.batchnorm import recompute_batchnorm
from zoo.cli import run
from zoo.config import DataConfig, ModelConfig, RunConfig, TrainConfig, load_config
from zoo.errors import ConfigError, DataError
from zoo.train import loop
from zoo.train.callbacks import RunCheckpoint
from zoo.train.cli import train_command


def tiny_config(data, epochs=2) -> RunConfig:
    return RunConfig(
        model=ModelConfig(arch="mobileunet", alpha=0.25, input_size=(64, 64)),
        data=DataConfig(data=str(data)),
        train=TrainConfig(epochs=epochs, batch_size=4, precise_bn_images=8, warmup_epochs=0),
    )


def tree_digest(path):
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(path)).encode() + file.read_bytes())
    return digest.hexdigest()


def test_two_epochs_write_a_complete_run_folder(trained_run, tiny_data):
    # The session's run (tests/conftest.py) is trained from this very config: the same
    # arch, alpha, size, epochs, batch, precise-BN images and warm-up on the same tiny data.
    _, run_dir = trained_run
    ran, wanted = load_config(run_dir / "config.yaml"), tiny_config(tiny_data)
    assert ran.train == wanted.train and ran.model.alpha == wanted.model.alpha
    assert ran.model.arch == wanted.model.arch and ran.model.input_size == (64, 64)
    assert run_dir.name.startswith("mobileunet-a0.25-64x64-")
    for name in ("config.yaml", "best.keras", "last.keras", "log.csv", "metrics.json",
                 "curves.png", "samples.png", "state.json", "tensorboard"):
        assert (run_dir / name).exists(), name
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["epochs"] == 2 and 1 <= metrics["best_epoch"] <= 2
    assert 0.0 <= metrics["best_val_miou"] <= 1.0
    assert set(metrics["per_class_iou"]) == {"0", "1"} or len(metrics["per_class_iou"]) == 2
    assert len((run_dir / "log.csv").read_text().strip().splitlines()) == 3  # header + 2

    # config.yaml alone rebuilds the model the checkpoint holds.
    cfg = load_config(run_dir / "config.yaml")
    assert cfg.model.num_classes == 2 and cfg.data.spec["layout"] == "folder"
    best = keras.saving.load_model(run_dir / "best.keras", compile=False)
    rebuilt = loop._build(cfg)
    assert rebuilt.count_params() == best.count_params()
    # The saved best checkpoint carries the val mIoU that metrics.json reports.
    assert metrics["best_val_miou"] == pytest.approx(
        max(r["val_miou"] for r in _log(run_dir)), abs=1e-4)


def _log(run_dir):
    from zoo.train.report import read_log

    return read_log(run_dir / "log.csv")


class _Killed(Exception):
    pass


@pytest.fixture(scope="module")
def resumed_run(module_tiny_data, tmp_path_factory):
    """A 3-epoch run with precise_bn_images=0, killed after its first epoch's checkpoint and
    resumed to the end, trained once for the two tests below, which only read it. BatchNorm
    re-estimation is refused throughout: 0 must hold in the new run and in the resumed one
    (which reads it back from config.yaml). Returns (run folder, optimizer step and state.json
    after the kill)."""

    class DieAfterFirstEpoch(RunCheckpoint):
        def on_epoch_end(self, epoch, logs=None):
            super().on_epoch_end(epoch, logs)
            raise _Killed  # as if killed after the epoch's checkpoint

    def refuse(*args, **kwargs):
        raise AssertionError("BatchNorm statistics re-estimated with precise_bn_images=0")

    checkpoints = tmp_path_factory.mktemp("resume") / "ck"
    cfg = tiny_config(module_tiny_data, epochs=3)
    cfg.train.precise_bn_images = 0
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(loop, "PreciseBatchNorm", refuse)
        with pytest.MonkeyPatch.context() as kill:
            kill.setattr(loop, "RunCheckpoint", DieAfterFirstEpoch)
            with pytest.raises(_Killed):
                loop.train(cfg, checkpoints, verbose=0)
        (run_dir,) = checkpoints.iterdir()
        interrupted = keras.saving.load_model(run_dir / "last.keras")
        killed = (int(interrupted.optimizer.iterations),
                  json.loads((run_dir / "state.json").read_text()))
        assert load_config(run_dir / "config.yaml").train.precise_bn_images == 0
        loop.resume(run_dir, checkpoints, verbose=0)
    return run_dir, killed


def test_resume_continues_at_the_next_epoch_with_the_same_optimizer_step(resumed_run):
    run_dir, (interrupted_step, interrupted_state) = resumed_run
    steps = 16 // 4
    assert interrupted_step == steps
    assert interrupted_state["epoch"] == 1

    final = keras.saving.load_model(run_dir / "last.keras")
    assert int(final.optimizer.iterations) == 3 * steps
    assert [int(r["epoch"]) for r in _log(run_dir)] == [0, 1, 2]
    assert json.loads((run_dir / "metrics.json").read_text())["epochs"] == 3


def test_resume_with_a_different_config_names_the_keys_and_changes_nothing(
        trained_run, tmp_path):
    # A copy of the session's 2-epoch run: any write the refusal made would show in it.
    run_dir = tmp_path / "ck" / trained_run[1].name
    shutil.copytree(trained_run[1], run_dir)
    before = tree_digest(run_dir)
    # train.epochs is asked for with the run's own value: not named.
    with pytest.raises(ConfigError, match="different model.alpha, train.lr; start a new run"):
        loop.resume(run_dir, tmp_path / "ck",
                    requested={"model.alpha": 0.5, "train.lr": 0.1, "train.epochs": 2})
    assert tree_digest(run_dir) == before


def test_bad_data_stops_before_a_run_folder_exists(tiny_data, tmp_path):
    (tiny_data / "masks" / "train" / "train003.png").unlink()
    before = tree_digest(tiny_data)
    with pytest.raises(DataError, match="train003"):
        loop.train(tiny_config(tiny_data), tmp_path / "ck", verbose=0)
    assert not (tmp_path / "ck").exists() or not any((tmp_path / "ck").iterdir())
    assert tree_digest(tiny_data) == before


def test_run_folders_are_never_reused(tmp_path):
    cfg = tiny_config("unused")
    first = loop.new_run_dir(cfg, tmp_path)
    (first / "marker").write_text("keep")
    second = loop.new_run_dir(cfg, tmp_path)
    assert second != first and (first / "marker").read_text() == "keep"


def test_precise_batchnorm_sets_the_average_batch_statistics():
    inputs = keras.Input((4, 4, 2))
    model = keras.Model(inputs, keras.layers.BatchNormalization(momentum=0.999)(inputs))
    images = np.random.default_rng(0).normal(3.0, 2.0, (32, 4, 4, 2)).astype("float32")
    recompute_batchnorm(model, images, batch_size=16)
    bn = model.layers[-1]
    expected = np.mean([images[:16].mean((0, 1, 2)), images[16:].mean((0, 1, 2))], 0)
    np.testing.assert_allclose(bn.moving_mean.numpy(), expected, rtol=1e-5)
    assert bn.momentum == 0.999


def test_cli_bad_argument_is_one_line_and_exit_2(tiny_data, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("sys.argv", ["train.py", "--alpha", "0.3", "--data", str(tiny_data),
                                     "--checkpoints", str(tmp_path / "ck")])
    with pytest.raises(SystemExit) as exit_info:
        run(train_command, name="train.py")
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == ("error: --alpha 0.3 is not supported by backbone 'mobilenet_v1'; "
                       "allowed: 0.25, 0.5, 0.75, 1.0")
    assert not (tmp_path / "ck").exists() or not any((tmp_path / "ck").iterdir())


def test_precise_bn_images_0_leaves_the_batchnorm_statistics_to_training(resumed_run):
    # The resumed run of the fixture: trained with precise_bn_images=0 and PreciseBatchNorm
    # refused (an AssertionError had it been used), in the new run and after the resume.
    run_dir, _ = resumed_run
    assert load_config(run_dir / "config.yaml").train.precise_bn_images == 0
    assert json.loads((run_dir / "metrics.json").read_text())["epochs"] == 3


def test_bad_values_stop_before_a_run_folder_exists(tiny_data, tmp_path):
    """`train` checks its config itself (library callers): errors name the config key."""
    cfg = tiny_config(tiny_data)
    cfg.train.batch_size = 0
    with pytest.raises(ConfigError, match=r"^train.batch_size must be an integer >= 1, got 0$"):
        loop.train(cfg, tmp_path / "ck", verbose=0)
    cfg = tiny_config(tiny_data)
    cfg.train.class_weights = [1.0, 2.0, 3.0]  # the tiny data has 2 classes
    with pytest.raises(ConfigError, match="class_weights has 3 values, expected 2"):
        loop.train(cfg, tmp_path / "ck", verbose=0)
    assert not (tmp_path / "ck").exists()


def test_strategies_by_name():
    """mirrored and multiworker must be made before TensorFlow starts: their tests run
    train.py in fresh processes (tests/train/test_distributed.py)."""
    import tensorflow as tf

    assert loop.make_strategy("default") is tf.distribute.get_strategy()
    with pytest.raises(ConfigError, match="strategy must be one of default, mirrored"):
        loop.make_strategy("tpu")


def test_mixed_precision_run_keeps_float32_logits_and_restores_the_policy(tiny_data, tmp_path):
    cfg = tiny_config(tiny_data, epochs=1)
    cfg.train.mixed_precision = True
    run_dir = loop.train(cfg, tmp_path / "ck", verbose=0)
    assert keras.mixed_precision.global_policy().name == "float32"
    best = keras.saving.load_model(run_dir / "best.keras", compile=False)
    assert best.get_layer("logits").dtype_policy.name == "float32"
    assert best.get_layer("unet_classifier").dtype_policy.name == "mixed_float16"
