"""Every registered backbone: taps, strides, channels, parameter parity, bad input."""

import keras
import numpy as np
import pytest

from zoo.backbones import BACKBONES, TAP_NAMES, build_backbone, parse_input_size
from zoo.errors import ConfigError


def small_alpha(name: str) -> float:
    return 0.25 if name == "mobilenet_v1" else 0.35


VARIANTS = [(name, {}) for name in BACKBONES.list()] + [
    (name, {"minimalistic": True}) for name in BACKBONES.list("mobilenet_v3*")
]


@pytest.mark.parametrize(("name", "options"), VARIANTS)
def test_taps_have_declared_strides_and_channels(name, options):
    size = (96, 128)  # not square: a height and width swapped anywhere changes the shape
    spec = BACKBONES.get(name)
    alpha = small_alpha(name)
    backbone = build_backbone(name, size, alpha, **options)
    outputs = backbone(np.random.uniform(0, 255, (1, *size, 3)).astype("float32"))
    assert list(backbone.output) == list(TAP_NAMES)
    for info in spec.feature_info(alpha, **options):
        tap = outputs[info.name]
        assert tap.shape == (1, size[0] // info.stride, size[1] // info.stride, info.channels)
        assert np.isfinite(np.asarray(tap)).all()


KERAS_APPS = {
    "mobilenet_v1": lambda a, **o: keras.applications.MobileNet(
        input_shape=(224, 224, 3), alpha=a, include_top=False, weights=None),
    "mobilenet_v2": lambda a, **o: keras.applications.MobileNetV2(
        input_shape=(224, 224, 3), alpha=a, include_top=False, weights=None),
    "mobilenet_v3_large": lambda a, **o: keras.applications.MobileNetV3Large(
        input_shape=(224, 224, 3), alpha=a, include_top=False, weights=None, **o),
    "mobilenet_v3_small": lambda a, **o: keras.applications.MobileNetV3Small(
        input_shape=(224, 224, 3), alpha=a, include_top=False, weights=None, **o),
}


@pytest.mark.parametrize("alpha", [0.5, 1.0])
@pytest.mark.parametrize(("name", "options"), [v for v in VARIANTS if v[0] in KERAS_APPS])
def test_parameter_count_equals_keras_applications(name, options, alpha):
    ours = build_backbone(name, 224, alpha, **options)
    theirs = KERAS_APPS[name](alpha, **options)
    assert ours.count_params() == theirs.count_params()


def test_backbones_scale_input_inside_the_graph():
    """Exported models take raw RGB 0..255: scaling to [-1, 1] is a layer of the graph."""
    for name in BACKBONES.list():
        backbone = build_backbone(name, 64, small_alpha(name))
        rescale = [lyr for lyr in backbone.layers if isinstance(lyr, keras.layers.Rescaling)]
        assert len(rescale) == 1, name
        assert rescale[0].scale == pytest.approx(1 / 127.5) and rescale[0].offset == -1.0


@pytest.mark.parametrize(
    ("name", "alpha", "allowed"),
    [("mobilenet_v1", 0.3, "0.25, 0.5, 0.75, 1.0"), ("mobilenet_v2", 2.0, "0.35..1.4"),
     ("mobilenet_v3_large", 0.1, "0.25..1.5")],
)
def test_unsupported_alpha_names_allowed_values(name, alpha, allowed):
    with pytest.raises(ConfigError, match=f"alpha {alpha} is not supported by backbone "
                                          f"'{name}'; allowed: {allowed}"):
        build_backbone(name, 96, alpha)


@pytest.mark.parametrize("bad", [100, 16, 0, "96x100", "abc", (96, 96, 96), 96.0, True])
def test_bad_input_size(bad):
    with pytest.raises(ConfigError, match="input_size"):
        parse_input_size(bad)


def test_input_size_forms():
    assert parse_input_size(96) == (96, 96)
    assert parse_input_size("224x288") == (224, 288)
    assert parse_input_size([64, 96]) == (64, 96)


def test_unknown_backbone_option_is_an_error():
    with pytest.raises(ConfigError, match="unknown option.*minimalistic"):
        build_backbone("mobilenet_v2", 96, 0.35, minimalistic=True)


def test_missing_local_weights_file_is_an_error(tmp_path):
    """(weights="imagenet", the published files: tests/test_weights.py.)"""
    with pytest.raises(ConfigError, match="weights file not found"):
        build_backbone("mobilenet_v2", 96, 0.35, weights=str(tmp_path / "nope.weights.h5"))


def test_weights_round_trip_through_a_local_file(tmp_path):
    app = keras.applications.MobileNetV2(input_shape=(96, 96, 3), alpha=0.35,
                                         include_top=False, weights=None)
    path = tmp_path / "v2.weights.h5"
    app.save_weights(path)
    ours = build_backbone("mobilenet_v2", 96, 0.35, weights=str(path))
    expected = app.get_layer("Conv1").kernel.numpy()
    np.testing.assert_array_equal(ours.get_layer("Conv1").kernel.numpy(), expected)


def test_mismatched_weights_file_is_a_one_line_error(tmp_path):
    app = keras.applications.MobileNetV2(input_shape=(96, 96, 3), alpha=0.5,
                                         include_top=False, weights=None)
    path = tmp_path / "v2.weights.h5"
    app.save_weights(path)
    with pytest.raises(ConfigError, match="does not fit"):
        build_backbone("mobilenet_v2", 96, 0.35, weights=str(path))
