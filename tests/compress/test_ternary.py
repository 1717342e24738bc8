"""Trained ternary quantization: three values per ternary kernel in Keras, after fine-tuning and
in the TFLite and ONNX files; the first conv, the classifier and the depthwise convs stay float;
the paper's gradients; bad thresholds."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from zoo.compress.run import compress
from zoo.compress.ternary import (
    TernaryConv2D,
    TernaryDepthwiseConv2D,
    ternarize,
    ternary_convs,
)
from zoo.config import load_config
from zoo.errors import ConfigError
from zoo.export.exporter import export, load_checkpoint


def _values(layer) -> tuple[float, ...]:
    """The distinct values of a ternary conv's kernel, as the model computes it."""
    return tuple(np.unique(keras.ops.convert_to_numpy(layer.ternary_kernel(False))))


def _assert_ternary(model) -> dict[str, tuple[float, ...]]:
    """Every ternary conv of `model` has at most the three values {-Wn, 0, +Wp}, also in
    training (the straight-through term adds exactly 0); returns them by layer."""
    values = {}
    for name, layer in ternary_convs(model).items():
        low, high = layer.ternary_values()
        got = _values(layer)
        assert set(got) <= {np.float32(low), np.float32(0.0), np.float32(high)}, name
        assert low < 0.0 < high, name
        training = keras.ops.convert_to_numpy(layer.ternary_kernel(True))
        np.testing.assert_array_equal(training, keras.ops.convert_to_numpy(
            layer.ternary_kernel(False)))
        values[name] = got
    return values


@pytest.mark.parametrize("arch, kept", [
    ("mobileunet", {"conv1": "first conv", "unet_classifier": "classifier"}),
    ("mobilenet_v3_small_lraspp", {"conv": "first conv", "lraspp_low_classifier": "classifier",
                                   "lraspp_high_classifier": "classifier"}),
])
def test_every_conv_but_the_first_the_classifiers_and_depthwise_is_ternary(arch, kept):
    import zoo

    model = zoo.build_model(arch, alpha=0.25, input_size=64, num_classes=3)
    ternary, result = ternarize(model, 0.05)
    assert not result.unfolded
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in ternary.layers)
    depthwise = {layer.name for layer in ternary.layers
                 if type(layer) is keras.layers.DepthwiseConv2D}
    assert depthwise and result.kept == {**kept, **dict.fromkeys(depthwise, "depthwise")}
    plain = {layer.name for layer in ternary.layers
             if type(layer) in (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)}
    assert plain == set(result.kept)
    assert len(_assert_ternary(ternary)) == len(result.ternary) == len(ternary_convs(ternary))


def test_gradients_follow_the_paper():
    """d/dWp = sum of the kernel's gradient over the positive set, d/dWn minus that over the
    negative set (the chain rule of -Wn), latent: scaled straight-through (Wp | 1 | Wn)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 8, 8, 4)).astype("float32")
    for layer, shape, out in [(TernaryConv2D(6, 3, padding="same"), (3, 3, 4, 6), 6),
                              (TernaryDepthwiseConv2D(3, padding="same"), (3, 3, 4, 1), 4)]:
        layer.build(x.shape)
        layer.set_ternary(rng.normal(size=shape).astype("float32") * 0.3,
                          np.zeros(out, "float32"))
        g = rng.normal(size=(2, 8, 8, out)).astype("float32")
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(layer(x, training=True) * g)
        d_latent, d_wp, d_wn = tape.gradient(loss, [layer.kernel, layer.wp, layer.wn])
        kernel = tf.Variable(layer.ternary_kernel(False))
        with tf.GradientTape() as tape:
            conv = keras.ops.conv if isinstance(layer, TernaryConv2D) else keras.ops.depthwise_conv
            loss = tf.reduce_sum(conv(x, kernel, padding="same") * g)
        d_kernel = tape.gradient(loss, kernel).numpy()
        latent, scale = layer.kernel.numpy(), float(layer.scale.numpy())
        delta = layer.threshold * np.abs(latent).max()
        positive, negative = latent > delta, latent < -delta
        np.testing.assert_allclose(d_wp, scale * d_kernel[positive].sum(), rtol=1e-4)
        np.testing.assert_allclose(d_wn, -scale * d_kernel[negative].sum(), rtol=1e-4)
        step = np.where(positive, layer.wp.numpy(), np.where(negative, layer.wn.numpy(), 1.0))
        np.testing.assert_allclose(d_latent, scale * step * d_kernel, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("method", ["ternary:0", "ternary:2", "ternary:x"])
def test_bad_threshold_is_one_line_and_writes_nothing(trained_run, tmp_path, method):
    _, parent = trained_run
    before = sorted(p.name for p in parent.iterdir())
    with pytest.raises(ConfigError, match=r"threshold t .* must be a number in \(0, 1\)") as err:
        compress(parent, method, epochs=1, checkpoints_dir=tmp_path / "checkpoints", verbose=0)
    assert "\n" not in str(err.value) and method in str(err.value)
    assert not (tmp_path / "checkpoints").exists()
    assert sorted(p.name for p in parent.iterdir()) == before


@pytest.fixture(scope="module")
def ternary_run(trained_run, tmp_path_factory):
    """(parent run, ternary run) fine-tuned for one epoch."""
    _, parent = trained_run
    checkpoints = tmp_path_factory.mktemp("ternary") / "checkpoints"
    return parent, compress(parent, "ternary", epochs=1, checkpoints_dir=checkpoints, verbose=0)


def test_fine_tuned_run_records_the_method_and_stays_ternary(ternary_run):
    parent, run_dir = ternary_run
    assert run_dir.name.startswith("mobileunet-a0.25-64x64-ternary-")
    cfg = load_config(run_dir / "config.yaml")
    assert cfg.compress.parent == parent.name and cfg.compress.methods == ["ternary"]
    (record,) = json.loads((run_dir / "compress.json").read_text())
    assert record["method"] == "ternary" and record["threshold"] == 0.05
    assert {name: why for name, why in record["float_layers"].items() if why != "depthwise"
            } == {"conv1": "first conv", "unet_classifier": "classifier"}
    start, tuned = load_checkpoint(run_dir / "init.keras"), load_checkpoint(
        run_dir / "last.keras")
    assert sorted(_assert_ternary(start)) == sorted(record["ternary_layers"])
    _assert_ternary(tuned)
    # The scales learned: every Wp and Wn moved in the one epoch.
    before, after = ternary_convs(start), ternary_convs(tuned)
    for name, layer in before.items():
        assert layer.ternary_values() != after[name].ternary_values(), name
    for name in record["float_layers"]:
        assert type(tuned.get_layer(name)) in (keras.layers.Conv2D,
                                               keras.layers.DepthwiseConv2D)


def test_exported_kernels_are_the_ternary_kernels(ternary_run):
    """TFLite and ONNX hold each ternary kernel as one constant of its three values (the
    converters fold the ternary expression), the float convs as they were, and pass
    validation."""
    import onnx
    from ai_edge_litert.interpreter import Interpreter
    from onnx import numpy_helper

    _, run_dir = ternary_run
    result = export(run=str(run_dir), format="tflite,onnx", val_images=8)
    assert result.ok, result.failed
    assert result.manifest["run"]["compress"]["methods"] == ["ternary"]
    model = load_checkpoint(run_dir / "best.keras")
    want = sorted(_assert_ternary(model).values())
    floats = [layer for layer in model.layers
              if type(layer) in (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)]
    entries = {e["format"]: e for e in result.manifest["artifacts"]}

    interpreter = Interpreter(model_path=str(result.out_dir / entries["tflite"]["file"]))
    interpreter.allocate_tensors()
    tflite = [interpreter.get_tensor(op["inputs"][1]) for op in interpreter._get_ops_details()
              if op["op_name"] in ("CONV_2D", "DEPTHWISE_CONV_2D")]
    proto = onnx.load(str(result.out_dir / entries["onnx"]["file"]))
    initializers = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
    onnx_kernels = [initializers[node.input[1]] for node in proto.graph.node
                    if node.op_type == "Conv"]
    for kernels in (tflite, onnx_kernels):
        values = [tuple(np.unique(k)) for k in kernels]
        assert sorted(v for v in values if len(v) <= 3) == want
        assert len([v for v in values if len(v) > 3]) == len(floats)
