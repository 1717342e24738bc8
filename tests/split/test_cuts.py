"""Candidate cuts of built models: the two halves recombine to the model, what crosses a cut in a
U-Net (the skip taps), the bytes each precision sends, and the halves compute what the cut says
they do (`zoo.graph`, `zoo.split.cuts`)."""

import keras
import numpy as np
import pytest

from zoo.errors import ConfigError
from zoo.graph import crossing, prefix_model, units_of
from zoo.models import build_model
from zoo.split.cuts import (
    ALL_DEVICE,
    ALL_SERVER,
    candidate_cuts,
    device_model,
    find_cut,
    server_model,
)
from zoo.stats import count_macs, layer_macs

# arch: step. mobileunet is MobileNet v1 + U-Net (skip taps); the other MobileNetV3-Small +
# LR-ASPP (SE blocks, a gated head). The server half runs on every `step`-th cut (an eager pass
# costs 0.1-0.4 s here) and on the cuts just before a MUL (an SE gate); the halves of every cut
# are built.
ARCHS = {"mobileunet": 1, "mobilenet_v3_small_lraspp": 4}
ENCODER_CUT = "conv_pw_7_relu"  # inside the U-Net encoder: taps P1..P3 are still pending
TAPS = ["conv_pw_1_relu", "conv_pw_3_relu", "conv_pw_5_relu"]


@pytest.fixture(scope="module")
def models():
    keras.backend.clear_session(free_memory=False)  # auto names (re_lu_N) count from 0
    keras.utils.set_random_seed(0)
    return {arch: build_model(arch, alpha=0.25, input_size=64, num_classes=3) for arch in ARCHS}


@pytest.fixture(scope="module")
def image():
    return np.random.default_rng(0).integers(0, 256, (1, 64, 64, 3)).astype(np.float32)


def run_halves(model, cut, image):
    front, back = device_model(model, cut), server_model(model, cut)
    sent = image if front is None else front(image, training=False)
    return np.asarray(sent if back is None else back(sent, training=False))


def macs_of(half) -> int:
    return 0 if half is None else sum(layer_macs(layer) for layer in half.layers)


@pytest.mark.parametrize("arch", ARCHS)
def test_server_of_device_is_the_model_at_every_cut(models, image, arch):
    model = models[arch]
    cuts = candidate_cuts(model)
    reference = np.asarray(model(image, training=False))
    # Every layer's output recorded in one pass; each server half then runs on what its device
    # half outputs (the very tensors, checked below), and a few pairs run literally.
    layers = [layer for unit in units_of(model) for layer in unit.layers]
    recorded = keras.Model(model.input, {layer.name: layer.output for layer in layers})(
        image, training=False)
    gates = {c.index for c in cuts[1:-2] if cuts[c.index + 1].op == "MUL"}  # SE gates
    assert bool(gates) == (arch != "mobileunet")
    checked = {c.index for c in cuts[1:-1] if c.index % ARCHS[arch] == 0} | gates
    assert len(checked) >= 10
    for cut in cuts[1:-1]:
        front, back = device_model(model, cut), server_model(model, cut)
        assert all(out is sent for out, sent in zip(front.outputs, cut.tensors, strict=True))
        assert [tuple(t.shape) for t in front.outputs] == [(None, *s[1:]) for s in cut.shapes]
        assert len(back.inputs) == len(cut.tensors), cut.name
        if cut.index in checked:
            got = back([recorded[name] for name in cut.layers], training=False)
            np.testing.assert_allclose(np.asarray(got), reference, atol=1e-5,
                                       err_msg=f"{arch} cut {cut.index} {cut.name}")
    for cut in [cuts[0], cuts[1], cuts[len(cuts) // 2], cuts[-2], cuts[-1]]:
        np.testing.assert_allclose(run_halves(model, cut, image), reference, atol=1e-5,
                                   err_msg=f"{arch} cut {cut.index} {cut.name}")


@pytest.mark.parametrize("arch", ARCHS)
def test_the_ends_and_the_order_of_cuts(models, arch):
    model = models[arch]
    cuts = candidate_cuts(model)
    total = count_macs(model)
    first, last = cuts[0], cuts[-1]
    assert [c.index for c in cuts] == list(range(len(cuts)))
    assert len(cuts) == len(units_of(model)) + 1
    assert (first.name, first.layers, first.shapes) == (ALL_SERVER, ["image"], [(1, 64, 64, 3)])
    assert (first.device_macs, first.server_macs) == (0, total)
    assert device_model(model, first) is None and server_model(model, first) is model
    assert (last.name, last.tensors, last.device_macs, last.server_macs) == (
        ALL_DEVICE, [], total, 0)
    assert device_model(model, last) is model and server_model(model, last) is None
    device = [c.device_macs for c in cuts]
    assert device == sorted(device) and device[-1] > device[len(cuts) // 2] > 0
    assert all(c.device_macs + c.server_macs == total for c in cuts)
    assert len({c.name for c in cuts}) == len(cuts), "cut names must be unique"
    for cut in cuts[1:-1]:
        assert cut.op and len(cut.layers) == len(cut.tensors) == len(cut.shapes) >= 1


def test_a_cut_in_the_unet_encoder_sends_the_skip_taps(models):
    model = models["mobileunet"]
    cuts = candidate_cuts(model)
    cut = find_cut(cuts, ENCODER_CUT)
    assert cut.op == "CONV_2D 1x1"
    assert cut.layers == [*TAPS, ENCODER_CUT]
    assert cut.shapes == [(1, 32, 32, 16), (1, 16, 16, 32), (1, 8, 8, 64), (1, 4, 4, 128)]
    assert cut.values == 16384 + 8192 + 4096 + 2048
    # Once the decoder has concatenated a tap, it no longer crosses.
    after = find_cut(cuts, "unet_up3_concat")
    assert after.layers == ["conv_pw_1_relu", "unet_up3_concat"]
    assert find_cut(cuts, "unet_up4_concat").layers == ["unet_up4_concat"]


def test_transfer_bytes_by_precision(models):
    cuts = candidate_cuts(models["mobileunet"])
    first, middle, last = cuts[0], find_cut(cuts, ENCODER_CUT), cuts[-1]
    for precision in ("float32", "float16", "int8"):
        assert first.transfer_bytes(precision) == 64 * 64 * 3  # the uint8 frame
        assert last.transfer_bytes(precision) == 0
    assert middle.transfer_bytes("int8") == middle.values == 30720
    assert middle.transfer_bytes("float16") == 2 * middle.values
    assert middle.transfer_bytes("float32") == 4 * middle.values
    assert (first.result_bytes((1, 64, 64, 3)), middle.result_bytes((1, 64, 64, 3)),
            last.result_bytes((1, 64, 64, 3))) == (64 * 64, 64 * 64, 0)
    with pytest.raises(ConfigError, match=r"^--transfer must be one of float32, float16, int8, "
                                          r"got 'int4'$"):
        middle.transfer_bytes("int4")


def test_find_cut(models):
    cuts = candidate_cuts(models["mobileunet"])
    assert find_cut(cuts, "input") is cuts[0] and find_cut(cuts, "output") is cuts[-1]
    with pytest.raises(ConfigError, match=r"did you mean conv_pw_7_relu") as info:
        find_cut(cuts, "conv_pw_7_rel")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"--cut 'conv_pw_7_rel' is not a cut of this model "
                              f"({len(cuts)} cuts")
    with pytest.raises(ConfigError, match=r"is not a cut") as info:
        find_cut(cuts, "zzz")
    assert "did you mean" not in str(info.value)


@pytest.mark.parametrize("arch", [
    "mobileunet",
    "mobilenet_v3_small_lraspp",  # the SE gate's x + 3, x / 6 are Keras ops, not layers
])
def test_the_halves_compute_what_the_cut_says(models, arch):
    """A half's MACs are the cut's: the device computes units[:k] and the server the rest,
    nothing twice (else the profile times a different split than the one planned)."""
    model = models[arch]
    cuts = candidate_cuts(model)
    wrong = [(c.name, macs_of(device_model(model, c)) - c.device_macs,
              macs_of(server_model(model, c)) - c.server_macs)
             for c in cuts
             if (macs_of(device_model(model, c)), macs_of(server_model(model, c)))
             != (c.device_macs, c.server_macs)]
    # the output of the last device unit is read later, so it always crosses
    unsent = [c.name for c in cuts[1:-1] if c.layers[-1] != c.name]
    assert (wrong, unsent) == ([], [])


def test_no_cut_sends_a_padded_copy_of_a_tensor_it_sends(models):
    cuts = candidate_cuts(models["mobileunet"])
    padded = [(c.name, c.layers) for c in cuts
              if any(name.startswith("conv_pad_") for name in c.layers)]
    assert padded == []
    # the cut the docstrings of zoo/split/cuts.py and zoo/split/halves.py use as their example
    assert find_cut(cuts, "conv_pw_5_relu").layers == TAPS[:2] + ["conv_pw_5_relu"]


def test_units_fuse_batchnorm_and_activation(models):
    model = models["mobileunet"]
    units = units_of(model)
    layers = [layer for unit in units for layer in unit.layers]
    assert [layer.name for layer in layers] == [
        layer.name for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    stem = next(u for u in units if u.layers[0].name == "conv1")
    assert stem.op == "CONV_2D 3x3"
    assert [layer.name for layer in stem.layers] == ["conv1", "conv1_bn", "conv1_relu"]
    assert stem.macs == 32 * 32 * 8 * 3 * 3 * 3
    assert sum(u.macs for u in units) == count_macs(model)
    ops = {u.op for u in units}
    assert {"CONV_2D 1x1", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV", "CONCATENATION"} <= ops


def test_prefix_model_hands_on_every_pending_tensor(models, image):
    model = models["mobileunet"]
    layers = [layer for unit in units_of(model) for layer in unit.layers]
    done = [layer.name for layer in layers].index(ENCODER_CUT) + 1
    assert [layer.name for layer in crossing(layers, done)] == [*TAPS, ENCODER_CUT]
    front = prefix_model(model, layers, done)
    assert [t.shape[1:] for t in front.outputs] == [(32, 32, 16), (16, 16, 32), (8, 8, 64),
                                                    (4, 4, 128)]
    # A prefix whose last layer is read by nothing later still outputs it.
    whole = prefix_model(model, layers, len(layers))
    assert len(whole.outputs) == 1
    np.testing.assert_allclose(np.asarray(whole(image, training=False)),
                               np.asarray(model(image, training=False)), atol=1e-6)
