"""Quantization-aware training: the rewritten graph, the fine-tuning run, and the int8 file that
keeps the learned ranges."""

import json

import keras
import numpy as np
import pytest

from zoo.compress import METHODS
from zoo.compress.qat import quantization_aware
from zoo.compress.run import compress
from zoo.config import load_config
from zoo.errors import ConfigError
from zoo.export.exporter import export, load_checkpoint
from zoo.quantize import ActivationQuantizer, is_quantization_aware, quantization_ranges


def _random_batchnorm(model, rng):
    """Non-trivial BN statistics, so that folding has something to fold."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            weights = layer.get_weights()
            n = weights[-1].shape[0]
            weights[-2] = rng.normal(0, 0.2, n).astype("float32")    # moving mean
            weights[-1] = rng.uniform(0.5, 2.0, n).astype("float32")  # moving variance
            layer.set_weights(weights)


@pytest.mark.parametrize("arch", ["mobileunet", "mobilenet_v3_small_lraspp",
                                  "mobilenet_v2_deeplabv3plus"])
def test_qat_graph_folds_every_batchnorm_and_computes_the_float_function(arch, tmp_path):
    import zoo

    rng = np.random.default_rng(0)
    model = zoo.build_model(arch, alpha=0.35 if "v2" in arch else 0.25, input_size=64,
                            num_classes=3)
    _random_batchnorm(model, rng)
    # Loaded from a checkpoint, as compress.py does: its layer names ("multiply", "add") are
    # not known to the session's name counter, and the rewrite must not reuse them.
    model.save(tmp_path / "model.keras")
    keras.backend.clear_session()
    model = load_checkpoint(tmp_path / "model.keras")
    images = rng.uniform(0, 255, (8, 64, 64, 3)).astype("float32")
    qat, rewrite = quantization_aware(model, images)
    assert not rewrite.unfolded
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in qat.layers)
    assert is_quantization_aware(qat) and not is_quantization_aware(model)
    # Calibrated ranges hold each activation; int8 simulation stays close to the float model.
    ranges = quantization_ranges(qat)
    assert len(ranges) == len(rewrite.quantizers) + 1  # + the fixed 0..255 input
    assert all(low <= 0.0 <= high and high > low for low, high in ranges.values())
    want, got = model.predict(images, verbose=0), qat.predict(images, verbose=0)
    assert np.abs(want - got).max() <= 0.05 * np.ptp(want)
    assert (want.argmax(-1) == got.argmax(-1)).mean() >= 0.95


def test_activation_ranges_follow_training_and_freeze_in_inference():
    quantizer = ActivationQuantizer(decay=0.5)
    x = np.linspace(-1.0, 3.0, 64, dtype="float32").reshape(1, 8, 8, 1)
    quantizer(x)  # build
    quantizer.set_range(-6.0, 6.0)
    quantizer(x, training=False)
    assert (float(quantizer.min.numpy()), float(quantizer.max.numpy())) == (-6.0, 6.0)
    quantizer(x, training=True)
    assert float(quantizer.min.numpy()) == pytest.approx(-3.5)
    assert float(quantizer.max.numpy()) == pytest.approx(4.5)


@pytest.fixture(scope="module")
def qat_run(trained_run, tmp_path_factory):
    """(parent run, QAT run) fine-tuned for one epoch."""
    _, parent = trained_run
    checkpoints = tmp_path_factory.mktemp("qat") / "checkpoints"
    return parent, compress(parent, "qat", epochs=1, checkpoints_dir=checkpoints, verbose=0)


def test_compress_writes_a_new_run_and_leaves_the_parent_alone(qat_run):
    parent, run_dir = qat_run
    assert run_dir.name.startswith("mobileunet-a0.25-64x64-qat-")
    cfg = load_config(run_dir / "config.yaml")
    assert cfg.compress.parent == parent.name and cfg.compress.methods == ["qat"]
    assert cfg.train.epochs == 1 and cfg.train.lr == pytest.approx(
        load_config(parent / "config.yaml").train.lr * METHODS.get("qat").lr_scale)
    assert {"init.keras", "best.keras", "last.keras", "log.csv", "metrics.json"} <= {
        p.name for p in run_dir.iterdir()}
    assert is_quantization_aware(load_checkpoint(run_dir / "best.keras"))
    assert not is_quantization_aware(load_checkpoint(parent / "best.keras"))
    # Fine-tuning moved the ranges away from their calibrated start.
    start = quantization_ranges(load_checkpoint(run_dir / "init.keras"))
    trained = quantization_ranges(load_checkpoint(run_dir / "best.keras"))
    assert start.keys() == trained.keys() and start != trained


def test_int8_export_keeps_every_learned_range(qat_run):
    from ai_edge_litert.interpreter import Interpreter

    _, run_dir = qat_run
    result = export(run=str(run_dir), format="tflite-int8,onnx-int8", val_images=8,
                    layer_report=4)
    assert result.ok
    entries = {e["format"]: e for e in result.manifest["artifacts"]}
    # onnx-int8: tf2onnx's QDQ pairs become onnxruntime's TensorQuantOverrides; only the
    # bilinear resize of the logits and what follows it (the quantizer's range is before the
    # resize, which keeps the scale in TFLite but not in onnxruntime) are calibrated.
    ranges = entries["onnx-int8"]["details"]["ranges"]
    assert ranges["learned"] >= len(quantization_ranges(load_checkpoint(run_dir / "best.keras")))
    assert all("Resize" in t or "logits" in t for t in ranges["calibrated"]), ranges
    entry = entries["tflite-int8"]
    details = entry["details"]
    assert details["float_tensors"] == []
    assert details["ranges"]["calibrated"] == [] and details["ranges"]["learned"] > 0
    assert result.manifest["run"]["compress"]["methods"] == ["qat"]
    # Each learned range is a tensor's int8 scale in the file.
    interpreter = Interpreter(model_path=str(result.out_dir / entry["file"]))
    scales = np.array([t["quantization_parameters"]["scales"][0]
                       for t in interpreter.get_tensor_details()
                       if len(t["quantization_parameters"]["scales"]) == 1])
    for name, (low, high) in quantization_ranges(load_checkpoint(run_dir / "best.keras")
                                                 ).items():
        assert np.min(np.abs(scales - (high - low) / 255.0)) <= 1e-4 * (high - low) / 255.0, name
    # The per-layer report compares the int8 file with the QAT model's own activations.
    assert details["layer_error_kind"] == "qat" and details["layer_errors"]
    snr = [row["snr_db"] for row in details["layer_errors"]]
    assert snr == sorted(snr)
    assert "per-layer int8 error" in (result.out_dir / "report.md").read_text()


def test_quantization_aware_run_refuses_float_formats(qat_run):
    _, run_dir = qat_run
    with pytest.raises(ConfigError, match="learned ranges to edgetpu, onnx-int8, tflite-int8 "
                                          "only"):
        export(run=str(run_dir), format="tflite", val_images=2,
               out=str(run_dir / "float-artifacts"))
    assert not (run_dir / "float-artifacts").exists()


def test_interrupted_qat_run_resumes(qat_run, tmp_path):
    import shutil

    from zoo.train.loop import resume

    _, run_dir = qat_run
    copy = tmp_path / run_dir.name
    shutil.copytree(run_dir, copy)
    state = json.loads((copy / "state.json").read_text())
    (copy / "state.json").write_text(json.dumps({**state, "epoch": 0}))
    resume(copy, tmp_path, verbose=0)
    log = (copy / "log.csv").read_text().splitlines()
    assert len(log) == 2  # header + the one epoch, trained again from the QAT checkpoint
    assert is_quantization_aware(load_checkpoint(copy / "best.keras"))


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"method": "qta"}, "unknown compression method 'qta'"),
    ({"method": "qat", "epochs": 0}, "--epochs must be an integer >= 1"),
    ({"method": "qat:8"}, "qat takes no argument"),
    ({"method": ""}, "--method: expected one or more of"),
])
def test_bad_compress_arguments_write_nothing(trained_run, tmp_path, kwargs, message):
    _, parent = trained_run
    before = sorted(p.name for p in parent.iterdir())
    with pytest.raises(ConfigError, match=message):
        compress(parent, checkpoints_dir=tmp_path / "out", verbose=0, **kwargs)
    assert not (tmp_path / "out").exists()
    assert sorted(p.name for p in parent.iterdir()) == before


def test_compress_needs_a_loadable_checkpoint(trained_run, tmp_path):
    import shutil

    _, parent = trained_run
    broken = tmp_path / "broken-run"
    shutil.copytree(parent, broken, ignore=shutil.ignore_patterns("*.keras", "artifacts"))
    with pytest.raises(ConfigError, match=r"--run: .*best.keras: checkpoint not found"):
        compress(broken, "qat", checkpoints_dir=tmp_path / "out", verbose=0)
    assert not (tmp_path / "out").exists()
