"""The TFLite graph: 2x2 stride-2 transposed convs as 1x1 conv + depth-to-space, same outputs."""

import keras
import numpy as np
import pytest

import zoo
from zoo.batchnorm import recompute_batchnorm
from zoo.errors import ConfigError
from zoo.export.int8_graph import hard_swish_layers
from zoo.export.tflite_graph import (
    DepthToSpaceUpsample,
    depth_to_space_transposes,
    tflite_graph,
)

SIZE = (64, 96)


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).integers(0, 256, (4, *SIZE, 3), dtype=np.uint8)


def test_transposed_convs_become_depth_to_space_with_the_same_outputs(images):
    model = zoo.build_model("mobileunet", alpha=0.25, input_size=SIZE, num_classes=3)
    recompute_batchnorm(model, images)
    graph = depth_to_space_transposes(model)
    replaced = [layer for layer in graph.layers if isinstance(layer, DepthToSpaceUpsample)]
    assert len(replaced) == 4
    assert not any(isinstance(layer, keras.layers.Conv2DTranspose) for layer in graph.layers)
    # Same kernel weights; the bias is repeated for the 4 output positions.
    assert graph.count_params() == model.count_params() + 3 * sum(r.filters for r in replaced)
    x = images.astype(np.float32)
    ref = np.asarray(model(x))
    assert np.abs(ref).max() > 0.1
    np.testing.assert_allclose(np.asarray(graph(x)), ref, atol=2e-5 * np.abs(ref).max())
    # Asked again: the same graph (one SavedModel for float and int8), until a transpose's
    # weights change, then a new graph with the new weights.
    assert depth_to_space_transposes(model) is graph
    transpose = next(layer for layer in model.layers
                     if isinstance(layer, keras.layers.Conv2DTranspose))
    transpose.set_weights([2 * w for w in transpose.get_weights()])
    changed = depth_to_space_transposes(model)
    assert changed is not graph and depth_to_space_transposes(model) is changed
    ref = np.asarray(model(x))
    np.testing.assert_allclose(np.asarray(changed(x)), ref, atol=2e-5 * np.abs(ref).max())


def test_bias_free_and_activated_transposes_are_rewritten_exactly():
    keras.utils.set_random_seed(1)
    inputs = keras.Input((5, 7, 6))
    x = keras.layers.Conv2DTranspose(4, 2, strides=2, padding="same", use_bias=False)(inputs)
    x = keras.layers.Conv2DTranspose(3, 2, strides=2, padding="same", activation="relu")(x)
    model = keras.Model(inputs, x)
    for layer in model.layers[1:]:
        layer.set_weights([np.random.randn(*w.shape).astype("float32")
                           for w in layer.get_weights()])
    graph = depth_to_space_transposes(model)
    x = np.random.default_rng(2).standard_normal((2, 5, 7, 6)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(graph(x)), np.asarray(model(x)), atol=1e-4)


def test_other_transposes_and_models_without_them_are_left_alone():
    inputs = keras.Input((8, 8, 4))
    model = keras.Model(inputs, keras.layers.Conv2DTranspose(4, 3, strides=2,
                                                             padding="same")(inputs))
    assert depth_to_space_transposes(model) is model
    resize_unet = zoo.build_model("mobilenet_edgetpu_unet", alpha=0.5, input_size=64)
    assert tflite_graph(resize_unet) is resize_unet


def test_modes_and_int8():
    model = zoo.build_model("mobilenet_v3_small_lraspp", alpha=0.35, input_size=64)
    assert tflite_graph(model) is model
    assert hard_swish_layers(tflite_graph(model, int8=True)) == []
    unet = zoo.build_model("mobileunet", alpha=0.25, input_size=64)
    assert tflite_graph(unet, transpose_conv="native") is unet
    with pytest.raises(ConfigError, match="transpose_conv must be one of depth-to-space, native"):
        tflite_graph(unet, transpose_conv="shuffle")


def test_tflite_formats_take_the_mode_and_native_keeps_transpose_conv(images, tmp_path):
    from zoo.bench.runtimes import bench_context
    from zoo.export import FORMATS, parse_options
    from zoo.export.runtimes.litert import tflite_ops

    # The decoder's upsampling between two convs: what each mode does to it, not a whole unet
    # (test_exporter and the edgetpu contract convert mobileunet in each mode).
    inputs = keras.Input((*SIZE, 3))
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(inputs)
    x = keras.layers.Conv2DTranspose(6, 2, strides=2, padding="same", activation="relu")(x)
    model = keras.Model(inputs, keras.layers.Conv2D(3, 1)(x))
    rng = np.random.default_rng(1)
    model.set_weights([rng.normal(0, 0.1, w.shape).astype("float32")
                       for w in model.get_weights()])  # the biases too, not zeros
    context = bench_context("conv_transpose_conv", 1.0, SIZE, 3, tmp_path / "scratch")
    fmt = FORMATS.get("tflite")
    outputs = {}
    for mode in ("native", "depth-to-space"):
        art = fmt.convert(model, tmp_path / f"{mode}.tflite",
                          parse_options(fmt, {"transpose_conv": mode}), context)
        ops = tflite_ops(art.path)
        assert ("TRANSPOSE_CONV" in ops) == (mode == "native")
        assert ("DEPTH_TO_SPACE" in ops) == (mode == "depth-to-space")
        assert art.details["transpose_conv"] == mode
        outputs[mode] = art.runner().run(images[:1])
    np.testing.assert_allclose(outputs["native"], outputs["depth-to-space"],
                               atol=1e-4 * np.abs(outputs["native"]).max())
    for name in ("tflite", "tflite-int8"):
        with pytest.raises(ConfigError, match="--transpose-conv must be one of"):
            parse_options(FORMATS.get(name), {"transpose_conv": "shuffle"})
