"""The per-layer int8 error report finds the layer that loses the accuracy."""

import numpy as np
import pytest

from zoo.config import load_config
from zoo.data import load_split_arrays, spec_from_dict
from zoo.export.context import ExportContext
from zoo.export.exporter import load_checkpoint
from zoo.export.int8_report import layer_name, report_lines
from zoo.export.tflite_convert import int8_calibration


def _kill_channel(model, producer_bn: str) -> None:
    """Channel 0 after `producer_bn` always 0: the BN shifts it far below ReLU's zero."""
    bn = model.get_layer(producer_bn)
    weights = {w.path.split("/")[-1]: v for w, v in zip(bn.weights, bn.get_weights(),
                                                         strict=True)}
    weights["beta"][0] = -1e4
    bn.set_weights([weights[w.path.split("/")[-1]] for w in bn.weights])


def _outlier_weight(model, consumer: str) -> None:
    """A huge weight on the dead input channel 0 of `consumer`: the float function is
    unchanged, but every output channel's int8 weight scale is set by the outlier, so its
    other weights round to zero."""
    conv = model.get_layer(consumer)
    kernel, *bias = conv.get_weights()
    kernel[:, :, 0, :] = 1e3 * np.abs(kernel).max()
    conv.set_weights([kernel, *bias])


def test_report_ranks_a_broken_layer_first(trained_run, tmp_path):
    _, run_dir = trained_run
    cfg = load_config(run_dir / "config.yaml")
    spec = spec_from_dict(cfg.data.spec)
    images = load_split_arrays(spec, "val", (64, 64), limit=4, check=False)[0]
    model = load_checkpoint(run_dir / "best.keras")
    _kill_channel(model, "conv_dw_5_bn")
    before = model.predict(images.astype("float32"), verbose=0)
    _outlier_weight(model, "conv_pw_5")
    after = model.predict(images.astype("float32"), verbose=0)
    np.testing.assert_allclose(after, before, atol=1e-4)  # same float function
    context = ExportContext(run_id="r", arch="mobileunet", alpha=0.25, input_size=(64, 64),
                            class_names=spec.classes, load_calibration=lambda n: images,
                            scratch=tmp_path)
    calibration, _ = int8_calibration(model, context, calibration_images=4, output="logits",
                                      transpose_conv="depth-to-space")
    rows = calibration.layer_errors(images, [layer.name for layer in model.layers])
    assert rows[0]["layer"] == "conv_pw_5_relu", rows[:3]
    assert rows[0]["snr_db"] < rows[1]["snr_db"] - 10.0  # far worse than any other
    assert all(-1.0 <= r["cosine"] <= 1.0 and r["relative_rmse"] >= 0 for r in rows)
    table = report_lines("tflite-int8", rows, top=3)
    assert "| conv_pw_5_relu |" in table[6] and len(table) == 10


def test_layer_name_maps_tensor_names_to_keras_layers():
    names = ["conv_pw_1", "conv_pw_1_relu", "conv_pw_13_relu"]
    assert layer_name("m_1/conv_pw_1_relu_1/Relu6;m_1/conv_pw_1_1/convolution", names) == \
        "conv_pw_1_relu"
    assert layer_name("m_1/conv_pw_13_relu_1/Relu6", names) == "conv_pw_13_relu"
    assert layer_name("m_1/unknown_op/add", names) == "unknown_op"


@pytest.fixture(scope="module")
def broken_run(trained_run, tmp_path_factory):
    """A copy of the session's run whose conv_pw_5 has the outlier weight of `_break`."""
    import shutil

    _, run_dir = trained_run
    copy = tmp_path_factory.mktemp("broken") / run_dir.name
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("artifacts"))
    model = load_checkpoint(copy / "best.keras")
    _kill_channel(model, "conv_dw_5_bn")
    _outlier_weight(model, "conv_pw_5")
    model.save(copy / "best.keras")
    return copy


def test_search_keeps_the_broken_layer_in_float_and_meets_the_target(broken_run, tmp_path):
    from zoo.export.exporter import export

    result = export(run=str(broken_run), format="tflite-int8", val_images=8, layer_report=4,
                    search_precision=True, max_miou_drop=1.0, out=str(tmp_path / "search"))
    assert result.ok, result.failed
    record = result.manifest["artifacts"][0]["details"]["mixed_precision"]
    assert record["drop_before_pt"] > 1.0  # the broken layer costs more than the target
    assert record["float_layers"][0] == "conv_pw_5_relu"
    assert record["drop_after_pt"] <= 1.0 and record["drop_after_pt"] == pytest.approx(
        result.manifest["artifacts"][0]["validation"]["miou_drop_pt"], abs=1e-3)
    assert record["cost"]["mixed"]["xnnpack_partitions"] >= 1
    assert "DEQUANTIZE" in result.manifest["artifacts"][0]["ops"]


def test_keep_float_by_hand_and_its_bad_regex(broken_run, tmp_path):
    from zoo.errors import ConfigError
    from zoo.export.exporter import export

    result = export(run=str(broken_run), format="tflite-int8", val_images=8, layer_report=4,
                    keep_float=r"conv_pw_(5|13)_relu$", out=str(tmp_path / "by-hand"))
    record = result.manifest["artifacts"][0]["details"]["mixed_precision"]
    assert sorted(record["float_layers"]) == ["conv_pw_13_relu", "conv_pw_5_relu"]
    assert record["drop_after_pt"] < record["drop_before_pt"]
    with pytest.raises(ConfigError, match=r"--keep-float: 'no_such_layer' matches no quantized "
                                          r"layer \(layers: "):
        export(run=str(broken_run), format="tflite-int8", val_images=8, layer_report=4,
               keep_float="no_such_layer", out=str(tmp_path / "bad"))
    assert not (tmp_path / "bad" / "model.int8.tflite").exists()


def test_edgetpu_keep_float_says_which_layers_fall_back_to_the_cpu(broken_run, tmp_path):
    from zoo.export.exporter import export

    out = tmp_path / "edgetpu"
    result = export(run=str(broken_run), format="edgetpu", val_images=8, layer_report=4,
                    keep_float=r"conv_pw_5_relu$", out=str(out))
    entry = result.manifest["artifacts"][0]
    cpu = entry["details"]["mixed_precision"]["edgetpu"]
    assert cpu["float_layers_on_cpu"] == ["conv_pw_5_relu"]
    report = entry["details"]["report"]
    first = report["ops"][cpu["first_cpu_op"]]
    assert first["where"] == "cpu" and cpu["float_ops_on_cpu"] >= 1
    # One mapped segment: everything from the float island on runs on the CPU.
    assert all(o["where"] == "cpu" for o in report["ops"][cpu["first_cpu_op"]:])
    assert "mixed precision: 1 of 1 kept float layer(s) run on the CPU: conv_pw_5_relu" in (
        out / "report.md").read_text()


class _Calibration:
    """Stands in for `Int8Calibration`: each model is the tuple of its float tensors."""

    def quantized(self, float_nodes, io="uint8"):
        return tuple(sorted(float_nodes))


def _rows(n):
    return [{"tensor": f"t{i}", "layer": f"layer_{i}"} for i in range(n)]


def test_search_refuses_a_target_that_even_float_cannot_meet():
    from zoo.errors import ConfigError
    from zoo.export.mixed_precision import MixedPrecision

    plan = MixedPrecision(_Calibration(), _rows(4))
    with pytest.raises(ConfigError, match=r"--search-precision: even with every layer in float "
                                          r"the mIoU drop is 0\.30 pt > --max-miou-drop 0\.1 pt"):
        plan.search(lambda data: 0.3, 0.1, "uint8")


def test_search_keeps_only_layers_that_lower_the_drop():
    from zoo.export.mixed_precision import MixedPrecision

    # Layer 2 alone costs 1 pt and layer 5 (beyond the first candidates) 0.4 pt; the rest 0.
    def drop(data):
        return 0.2 + (0.0 if "t2" in data else 1.0) + (0.0 if "t5" in data else 0.4)

    plan = MixedPrecision(_Calibration(), _rows(12))
    data, record = plan.search(drop, 0.5, "uint8", candidates=4)
    assert record["float_layers"] == ["layer_2", "layer_5"]
    assert record["drop_before_pt"] == pytest.approx(1.6)
    assert record["drop_after_pt"] == pytest.approx(0.2) and data == ("t2", "t5")


def test_search_with_a_target_int8_already_meets_keeps_nothing():
    from zoo.export.mixed_precision import MixedPrecision

    seen = []
    plan = MixedPrecision(_Calibration(), _rows(4))
    data, record = plan.search(lambda data: seen.append(data) or 0.2, 0.5, "uint8")
    assert record["float_layers"] == [] and data == () and seen == [()]
