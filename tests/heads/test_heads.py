"""Every backbone x head pairing builds and produces logits at input resolution."""

import keras
import numpy as np
import pytest

from zoo.backbones import BACKBONES
from zoo.errors import ConfigError
from zoo.heads import HEADS
from zoo.models import build_model

PAIRS = [(b, h) for b in BACKBONES.list() for h in HEADS.list()]


def small_alpha(name: str) -> float:
    return 0.25 if name == "mobilenet_v1" else 0.35


@pytest.mark.parametrize(("backbone", "head"), PAIRS)
def test_every_pairing_builds_with_logits_at_input_resolution(backbone, head):
    size = (96, 128)  # not square: a height and width swapped anywhere changes the shape
    model = build_model(backbone=backbone, head=head, alpha=small_alpha(backbone),
                        input_size=size, num_classes=3)
    logits = model(np.random.uniform(0, 255, (1, *size, 3)).astype("float32"))
    assert logits.shape == (1, *size, 3)
    assert logits.dtype == "float32"
    assert np.isfinite(np.asarray(logits)).all()


def test_heads_see_only_taps():
    """A head runs on any dict of taps with the right strides: no backbone behind it."""
    taps = {f"P{i}": keras.Input((128 // 2**i, 128 // 2**i, 8 * i)) for i in range(1, 6)}
    for name in HEADS.list():
        out = HEADS.get(name).fn(taps, 4)
        assert out.shape[-1] == 4 and 128 % out.shape[1] == 0, name


def test_unet_resize_has_no_transposed_conv():
    model = build_model("mobileunet", alpha=0.25, input_size=64, upsample="resize")
    kinds = {type(layer).__name__ for layer in model.layers}
    assert "Conv2DTranspose" not in kinds and "UpSampling2D" in kinds
    transposed = build_model("mobileunet", alpha=0.25, input_size=64)
    n = sum(isinstance(lyr, keras.layers.Conv2DTranspose) for lyr in transposed.layers)
    assert n == 4


def test_unet_decoder_widths_follow_the_skips():
    model = build_model("mobileunet", alpha=0.5, input_size=64)
    widths = [model.get_layer(f"unet_up{i}_transpose").filters for i in range(1, 5)]
    assert widths == [256, 128, 64, 32]  # MobileUNet: 512, 256, 128, 64 x alpha


def test_deeplab_rates_scale_with_the_aspp_tap_stride():
    deep = build_model("mobilenet_v2_deeplabv3plus", alpha=0.35, input_size=64)
    p4 = build_model("mobilenet_v2_deeplabv3plus", alpha=0.35, input_size=64, aspp_tap="P4")
    rates = [deep.get_layer(f"aspp_b{i}_dw").dilation_rate[0] for i in (1, 2, 3)]
    assert rates == [3, 6, 9]
    assert [p4.get_layer(f"aspp_b{i}_dw").dilation_rate[0] for i in (1, 2, 3)] == [6, 12, 18]


@pytest.mark.parametrize(
    ("options", "message"),
    [({"upsample": "deconv"}, "upsample must be one of transpose, resize"),
     ({"decoder_filters": (8, 8)}, "decoder_filters needs 4 widths")],
)
def test_unet_bad_options(options, message):
    with pytest.raises(ConfigError, match=message):
        build_model("mobileunet", alpha=0.25, input_size=64, **options)


def test_bad_tap_options():
    with pytest.raises(ConfigError, match="aspp_tap must be one of P1, P2, P3, P4, P5"):
        build_model("mobilenet_v2_deeplabv3plus", alpha=0.35, input_size=64, aspp_tap="P6")
    with pytest.raises(ConfigError, match="low_tap P5 must be shallower"):
        build_model("mobilenet_v3_small_lraspp", alpha=0.35, input_size=64, low_tap="P5")


def test_deeplab_projection_equals_tile_concat_conv():
    """The ASPP projection adds the pooled branch's share with broadcasting: the same numbers
    as tiling the pooled vector, concatenating it and applying one 1x1 conv."""
    model = build_model("mobilenet_v2_deeplabv3plus", alpha=0.35, input_size=64)
    for name in ("aspp_project_conv", "aspp_project_pool_conv"):
        layer = model.get_layer(name)
        layer.set_weights([np.random.default_rng(0).standard_normal(
            w.shape).astype("float32") for w in layer.get_weights()])
    probe = keras.Model(model.input, [model.get_layer(n).output for n in (
        "aspp_project_concat", "aspp_pool_relu", "aspp_project_add")])
    x = np.random.default_rng(1).uniform(0, 255, (2, 64, 64, 3)).astype("float32")
    spatial, pooled, added = (np.asarray(t) for t in probe(x))
    tiled = np.broadcast_to(pooled, (*spatial.shape[:3], pooled.shape[-1]))
    kernel = np.concatenate([model.get_layer("aspp_project_conv").get_weights()[0],
                             model.get_layer("aspp_project_pool_conv").get_weights()[0]], axis=2)
    ref = np.einsum("nhwc,cf->nhwf", np.concatenate([spatial, tiled], -1), kernel[0, 0])
    np.testing.assert_allclose(added, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())


def test_lraspp_classifies_before_upsampling_with_the_same_result():
    model = build_model("mobilenet_v3_small_lraspp", alpha=0.35, input_size=64, num_classes=4)
    classifier_layer = model.get_layer("lraspp_high_classifier")
    rng = np.random.default_rng(0)
    classifier_layer.set_weights([rng.standard_normal(w.shape).astype("float32")
                                  for w in classifier_layer.get_weights()])
    probe = keras.Model(model.input, [model.get_layer("lraspp_mul").output,
                                      model.get_layer("lraspp_upsample").output])
    x = rng.uniform(0, 255, (1, 64, 64, 3)).astype("float32")
    gated, ours = (np.asarray(t) for t in probe(x))
    factor = ours.shape[1] // gated.shape[1]
    upsampled = keras.layers.UpSampling2D(factor, interpolation="bilinear")(gated)
    textbook = np.asarray(classifier_layer(upsampled))
    np.testing.assert_allclose(ours, textbook, atol=1e-4 * np.abs(ours).max())
