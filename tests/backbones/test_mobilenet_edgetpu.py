"""MobileNet-EdgeTPU: taps, Edge-TPU-friendly ops only, fused early stages, size vs published."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from zoo.backbones import BACKBONES, TAP_STRIDES, build_backbone
from zoo.errors import ConfigError
from zoo.stats import count_macs

NAME = "mobilenet_edgetpu"

# tensorflow/models research/slim/nets/mobilenet/README.md, "Edge TPU checkpoints":
# MobilenetEdgeTPU dm=1 (224 px, 1001 classes): 990 M MACs, 4.0 M params.
PUBLISHED_MACS = 990e6
PUBLISHED_PARAMS = 4.0e6
# ... and MobilenetEdgeTPU dm=0.75: 624 M MACs, 2.9 M params (its head keeps 1280 channels).
PUBLISHED_MACS_075 = 624e6
PUBLISHED_PARAMS_075 = 2.9e6
# tensorflow/models official/projects/edgetpu/vision/modeling/mobilenet_edgetpu_v1_model_test.py:
# count_params(MobilenetEdgeTPU()) == 4092713 trainable weights, with a 1001-way 1x1-conv logits
# layer (1280 x 1001 + 1001 bias); our classifier has 1000 classes, i.e. 1281 fewer.
MODEL_GARDEN_TRAINABLE = 4_092_713 - (1280 + 1)

FUSED_BLOCKS = range(1, 9)  # strides 4 and 8: a full 3x3 conv expands
DEPTHWISE_BLOCKS = range(9, 22)  # strides 16 and 32: 1x1 expand + depthwise
RESIDUAL_BLOCKS = {2, 3, 4, 6, 7, 8, 10, 11, 12, 14, 15, 16, 18, 19, 20}  # 13: off in the table


@pytest.fixture(scope="module")
def nets() -> dict:
    return {
        (alpha, size): build_backbone(NAME, input_size=size, alpha=alpha)
        for alpha in (0.5, 1.0)
        for size in ((96, 96), (96, 128))
    }


def _classifier(alpha: float = 1.0) -> keras.Model:
    bb = build_backbone(NAME, input_size=224, alpha=alpha)
    x = keras.layers.GlobalAveragePooling2D()(bb.output["P5"])
    return keras.Model(bb.input, keras.layers.Dense(1000)(x))


@pytest.mark.parametrize("alpha", [0.5, 1.0])
@pytest.mark.parametrize("size", [(96, 96), (96, 128)])
def test_taps_match_declared_strides_and_channels(nets, alpha, size):
    net = nets[(alpha, size)]
    declared = BACKBONES.get(NAME).feature_info(alpha)
    assert [t.name for t in declared] == ["P1", "P2", "P3", "P4", "P5"]
    for tap in declared:
        assert tap.stride == TAP_STRIDES[tap.name]
        expected = (None, size[0] // tap.stride, size[1] // tap.stride, tap.channels)
        assert tuple(net.output[tap.name].shape) == expected, tap.name


def test_declared_channels():
    spec = BACKBONES.get(NAME)
    assert list(spec.channels(1.0)) == [16, 32, 48, 96, 1280]
    assert list(spec.channels(0.5)) == [8, 16, 24, 48, 1280]
    assert list(spec.channels(1.5)) == [24, 48, 72, 144, 1920]


def test_runs_on_raw_rgb(nets):
    net = nets[(0.5, (96, 128))]
    assert net.get_layer("preprocess").scale == pytest.approx(1 / 127.5)
    out = net(np.full((1, 96, 128, 3), 255.0, np.float32))
    assert all(np.isfinite(keras.ops.convert_to_numpy(v)).all() for v in out.values())


@pytest.mark.parametrize("alpha", [0.5, 1.0])
def test_only_relu_no_squeeze_excite_no_hard_swish(nets, alpha):
    net = nets[(alpha, (96, 96))]
    relus = 0
    for layer in net.layers:
        kind = type(layer).__name__.lower()
        assert not any(bad in kind for bad in ("swish", "sigmoid", "silu", "gelu")), layer.name
        assert not isinstance(layer, keras.layers.GlobalAveragePooling2D | keras.layers.Multiply)
        if isinstance(layer, keras.layers.ReLU):
            assert layer.max_value is None and layer.negative_slope == 0 and layer.threshold == 0
            relus += 1
        elif isinstance(layer, keras.layers.Activation):
            assert layer.activation is keras.activations.relu, layer.name
            relus += 1
        act = getattr(layer, "activation", None)
        if act is not None and not isinstance(layer, keras.layers.Activation):
            assert act is keras.activations.linear, layer.name  # convs stay linear before BN
    assert relus == 36  # stem, 8 fused expansions, 13 x (expand + depthwise), head


def test_early_stages_fused_later_depthwise(nets):
    net = nets[(1.0, (96, 96))]
    names = {layer.name for layer in net.layers}
    # Block 0 has expansion 1: no expansion at all, only the 1x1 projection (as TF-slim).
    assert "block_0_expand" not in names and "block_0_depthwise" not in names
    for i in FUSED_BLOCKS:
        expand = net.get_layer(f"block_{i}_expand")
        assert type(expand) is keras.layers.Conv2D and expand.kernel_size == (3, 3)
        assert f"block_{i}_depthwise" not in names
    for i in DEPTHWISE_BLOCKS:
        assert net.get_layer(f"block_{i}_expand").kernel_size == (1, 1)
        depthwise = net.get_layer(f"block_{i}_depthwise")
        assert isinstance(depthwise, keras.layers.DepthwiseConv2D)
        assert depthwise.kernel_size == ((5, 5) if 17 <= i <= 20 else (3, 3))
    depthwise = [la for la in net.layers if isinstance(la, keras.layers.DepthwiseConv2D)]
    assert len(depthwise) == len(DEPTHWISE_BLOCKS)
    for i in range(22):
        assert net.get_layer(f"block_{i}_project").kernel_size == (1, 1)
    adds = {int(la.name.split("_")[1]) for la in net.layers if isinstance(la, keras.layers.Add)}
    assert adds == RESIDUAL_BLOCKS


def test_stride_2_convs_pad_explicitly(nets):
    net = nets[(0.5, (96, 128))]
    strided = [la for la in net.layers if getattr(la, "strides", (1, 1)) == (2, 2)]
    assert len(strided) == 5
    for layer in strided:
        assert layer.padding == "valid", layer.name
        assert isinstance(net.get_layer(f"{layer.name}_pad"), keras.layers.ZeroPadding2D)


def test_batchnorm_settings(nets):
    for layer in nets[(0.5, (96, 96))].layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            assert layer.name.endswith("_bn")
            assert layer.momentum == pytest.approx(0.99) and layer.epsilon == pytest.approx(1e-3)


def test_classifier_size_matches_published():
    model = _classifier(1.0)
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert trainable == MODEL_GARDEN_TRAINABLE
    assert trainable == pytest.approx(PUBLISHED_PARAMS, rel=0.05)
    assert count_macs(model) == pytest.approx(PUBLISHED_MACS, rel=0.03)


def test_classifier_075_matches_published():
    model = _classifier(0.75)
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert trainable == pytest.approx(PUBLISHED_PARAMS_075, rel=0.05)
    assert count_macs(model) == pytest.approx(PUBLISHED_MACS_075, rel=0.03)


@pytest.mark.parametrize("alpha", [0.1, 2.0])
def test_bad_alpha_names_allowed_range(alpha):
    with pytest.raises(ConfigError, match=r"allowed: 0\.25\.\.1\.75"):
        build_backbone(NAME, input_size=96, alpha=alpha)


# Keras' h5 writer trips NumPy 2's `__array__(copy=...)` deprecation once per variable.
@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
def test_local_weights_round_trip(tmp_path):
    src = build_backbone(NAME, input_size=96, alpha=0.5)
    path = tmp_path / "edgetpu.weights.h5"
    src.save_weights(path)
    dst = build_backbone(NAME, input_size=96, alpha=0.5, weights=str(path))
    for a, b in zip(src.weights, dst.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
