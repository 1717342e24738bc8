"""The per-layer int8 error report finds the layer that loses the accuracy."""

import numpy as np

from zoo.config import load_config
from zoo.data import load_split_arrays, spec_from_dict
from zoo.export.context import ExportContext
from zoo.export.exporter import load_checkpoint
from zoo.export.int8_report import layer_errors, layer_name, report_lines
from zoo.export.tflite_convert import int8_converter


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
    conv, _ = int8_converter(model, context, calibration_images=4, output="logits",
                             transpose_conv="depth-to-space")
    rows = layer_errors(conv, images, [layer.name for layer in model.layers])
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
