"""Low-rank factorisation: the SVD pair, the asymmetric refinement, the ranks and their MACs,
the arguments, and a compress run that exports."""

import json

import keras
import numpy as np
import pytest

from zoo.compress import METHODS, CompressData
from zoo.compress.lowrank import (
    Target,
    candidates,
    check_argument,
    choose_ranks,
    factorize,
)
from zoo.compress.run import compress, parse_methods
from zoo.config import load_config
from zoo.errors import ConfigError
from zoo.export.exporter import export, load_checkpoint
from zoo.stats import count_macs


def _random_batchnorm(model, rng):
    """Non-trivial BN statistics and affine, so that the BN-scaled kernel differs from the raw."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            weights = layer.get_weights()
            n = weights[-1].shape[0]
            weights[0] = rng.uniform(0.5, 2.0, n).astype("float32")  # gamma
            weights[-2] = rng.normal(0, 0.2, n).astype("float32")    # moving mean
            weights[-1] = rng.uniform(0.1, 4.0, n).astype("float32")  # moving variance
            layer.set_weights(weights)


def _small_model(rng):
    """A strided 3x3 conv with bias and ReLU, a 1x1 conv followed by BatchNorm, a classifier."""
    inputs = keras.Input((16, 16, 8))
    x = keras.layers.Conv2D(32, 3, strides=2, padding="same", activation="relu", name="k3")(inputs)
    x = keras.layers.Conv2D(48, 1, use_bias=False, name="k1")(x)
    x = keras.layers.BatchNormalization(name="bn")(x)
    outputs = keras.layers.Conv2D(5, 1, name="head")(keras.layers.ReLU()(x))
    model = keras.Model(inputs, outputs)
    model.get_layer("k3").set_weights([rng.normal(0, 0.1, (3, 3, 8, 32)).astype("float32"),
                                       rng.normal(0, 0.1, 32).astype("float32")])
    _random_batchnorm(model, rng)
    return model


def _matrix(kernel):
    """A Keras conv kernel (kh, kw, c, n) as the n x kkc matrix."""
    return kernel.reshape(-1, kernel.shape[-1]).T


def _truncated_svd(matrix, rank):
    u, s, vt = np.linalg.svd(matrix.astype(np.float64), full_matrices=False)
    return (u[:, :rank] * s[:rank]) @ vt[:rank]


def _bn_scale(bn):
    gamma, _, _, variance = bn.get_weights()
    return gamma / np.sqrt(variance + bn.epsilon)


def test_pair_composes_to_the_truncated_svd_of_the_shipped_kernel():
    model = _small_model(np.random.default_rng(0))
    factorised, layers = factorize(model, {"k3": 6, "k1": 10})
    assert [r["layer"] for r in layers] == ["k3", "k1"]
    names = [layer.name for layer in factorised.layers]
    assert "k3" not in names and "k1" not in names
    assert names.index("k3_lowrank_a") < names.index("k3_lowrank_b") < names.index("k1_lowrank_a")
    for name, rank, scale in [("k3", 6, np.ones(32)), ("k1", 10, _bn_scale(model.get_layer("bn")))]:
        original = model.get_layer(name)
        a = factorised.get_layer(f"{name}_lowrank_a")
        b = factorised.get_layer(f"{name}_lowrank_b")
        assert a.kernel.shape[-1] == rank and a.strides == original.strides and not a.use_bias
        assert b.kernel_size == (1, 1) and b.activation is original.activation
        composed = _matrix(b.kernel.numpy()) @ _matrix(a.kernel.numpy())
        # The kernel as shipped: the BatchNorm after k1 folded in.
        want = _truncated_svd(_matrix(original.kernel.numpy()) * scale[:, None], rank)
        np.testing.assert_allclose(composed * scale[:, None], want, atol=1e-5)
        bias = original.bias.numpy() if original.use_bias else np.zeros(original.filters)
        np.testing.assert_allclose(b.bias.numpy(), bias, atol=1e-6)
        # Balanced factors: both carry the square root of the singular values.
        np.testing.assert_allclose(np.linalg.norm(a.kernel.numpy()),
                                   np.linalg.norm(_matrix(b.kernel.numpy()) * scale[:, None]),
                                   rtol=1e-4)


def test_full_rank_reproduces_the_model_and_energy_one_keeps_it_whole():
    import zoo

    rng = np.random.default_rng(1)
    model = zoo.build_model("mobileunet", alpha=0.25, input_size=64, num_classes=3)
    _random_batchnorm(model, rng)
    images = rng.uniform(0, 255, (2, 64, 64, 3)).astype("float32")
    convs, skipped = candidates(model)
    assert convs and {"conv1", "unet_classifier"} <= skipped.keys()  # too small
    full, _ = factorize(model, {c.name: c.full_rank for c in convs}, convs=convs)
    want, got = model.predict(images, verbose=0), full.predict(images, verbose=0)
    assert np.abs(want - got).max() <= 1e-4 * np.ptp(want)
    # At R = 1 a layer keeps its full rank, which never saves MACs: nothing is factorised.
    assert not any(choose_ranks(convs, Target(energy=1.0), count_macs(model)).values())
    data = CompressData(images, images[:1], np.zeros((1, 64, 64), np.uint8), 3, None)
    same, record = METHODS.get("lowrank").apply(model, data, Target(energy=1.0))
    assert record["factorised"] == f"0 of {len(convs) + len(skipped)} Conv2D"
    assert record["macs_after"] == record["macs_before"] and not record["layers"]
    np.testing.assert_allclose(same.predict(images, verbose=0), want, rtol=1e-6, atol=1e-6)


@pytest.fixture(scope="module")
def trained(trained_run):
    """The session's trained tiny model and its training images, as compress.py reads them."""
    from zoo.compress.run import CALIBRATION_IMAGES
    from zoo.data import load_split_arrays, spec_from_dict

    _, run_dir = trained_run
    cfg = load_config(run_dir / "config.yaml")
    images = load_split_arrays(spec_from_dict(cfg.data.spec), cfg.data.train_split,
                               tuple(cfg.model.input_size), limit=CALIBRATION_IMAGES,
                               check=False)[0]
    return load_checkpoint(run_dir / "best.keras"), images


@pytest.fixture(scope="module")
def factorised(trained):
    """The trained model at R = 0.6 (most layers factorised): plain SVD, and refined on the
    training images."""
    model, images = trained
    convs, _ = candidates(model)
    ranks = choose_ranks(convs, Target(energy=0.6), count_macs(model))
    svd, _ = factorize(model, ranks, convs=convs)
    refined, layers = factorize(model, ranks, images, convs=convs)
    return convs, ranks, svd, refined, layers


def test_asymmetric_refinement_beats_plain_svd_on_the_training_images(trained, factorised):
    model, images = trained
    _, ranks, svd, refined, layers = factorised
    assert len(layers) == sum(r > 0 for r in ranks.values()) >= 5
    for record in layers:
        assert record["response_error_refined"] <= record["response_error_svd"] + 1e-6, record
    assert np.mean([r["response_error_refined"] for r in layers]) < 0.8 * np.mean(
        [r["response_error_svd"] for r in layers])
    # Errors do not accumulate: the whole network's output is closer to the original's.
    want = model.predict(images, verbose=0)
    error = {name: np.sqrt(np.mean((m.predict(images, verbose=0) - want) ** 2))
             for name, m in [("svd", svd), ("refined", refined)]}
    assert error["refined"] < error["svd"]


def test_macs_drop_by_what_each_layer_records_and_the_budget_is_met(trained, factorised):
    model, _ = trained
    convs, _, svd, _, layers = factorised
    total = count_macs(model)
    assert all(r["macs_after"] < r["macs_before"] for r in layers)
    assert count_macs(svd) == total - sum(r["macs_before"] - r["macs_after"] for r in layers)
    budgeted, _ = factorize(model, choose_ranks(convs, Target(macs=0.7), total), convs=convs)
    assert 0.65 * total <= count_macs(budgeted) <= 0.7 * total
    with pytest.raises(ConfigError, match=r"lowrank:macs=0.01: factorising every .* leaves"):
        choose_ranks(convs, Target(macs=0.01), total)


def test_arguments_parse_and_the_method_comes_first_in_a_chain():
    assert check_argument("0.9") == Target(energy=0.9)
    assert check_argument("1") == Target(energy=1.0)
    assert check_argument("macs=0.7") == Target(macs=0.7)
    assert [name for name, _, _ in parse_methods("lowrank:0.8,qat")] == ["lowrank", "qat"]
    with pytest.raises(ConfigError, match="lowrank cannot follow qat"):
        parse_methods("qat,lowrank:0.8")
    assert METHODS.get("lowrank").stage == 0


@pytest.mark.parametrize(("method", "message"), [
    ("lowrank:0", r"lowrank:0: R must be a finite number > 0 and <= 1, got '0'"),
    ("lowrank:1.5", r"lowrank:1.5: R must be a finite number > 0 and <= 1, got '1.5'"),
    ("lowrank:abc", r"lowrank:abc: R must be a finite number > 0 and <= 1, got 'abc'"),
    ("lowrank", r"--method lowrank needs an argument: lowrank:R"),
    ("lowrank:macs=1", r"lowrank:macs=1: F must be a finite number > 0 and < 1, got '1'"),
    ("lowrank:rank=4", r"lowrank:rank=4: expected lowrank:R .* or lowrank:macs=F"),
])
def test_bad_arguments_give_one_line_and_write_nothing(trained_run, tmp_path, method, message):
    _, parent = trained_run
    before = sorted(p.name for p in parent.iterdir())
    with pytest.raises(ConfigError, match=message) as error:
        compress(parent, method, checkpoints_dir=tmp_path / "out", verbose=0)
    assert "\n" not in str(error.value)
    assert not (tmp_path / "out").exists()
    assert sorted(p.name for p in parent.iterdir()) == before


@pytest.fixture(scope="module")
def lowrank_run(trained_run, tmp_path_factory):
    _, parent = trained_run
    checkpoints = tmp_path_factory.mktemp("lowrank") / "checkpoints"
    return parent, compress(parent, "lowrank:0.9", epochs=1, checkpoints_dir=checkpoints,
                            verbose=0)


def test_compress_run_records_the_method_and_exports(lowrank_run):
    parent, run_dir = lowrank_run
    assert run_dir.name.startswith("mobileunet-a0.25-64x64-lowrank-")
    cfg = load_config(run_dir / "config.yaml")
    assert cfg.compress.parent == parent.name and cfg.compress.methods == ["lowrank:0.9"]
    (record,) = json.loads((run_dir / "compress.json").read_text())
    assert record["method"] == "lowrank:0.9" and record["target"] == "energy 0.9 per layer"
    assert record["layers"], "nothing factorised at R = 0.9"
    assert record["macs_after"] < record["macs_before"]
    assert record["response_error_refined"] < record["response_error_svd"]
    init = load_checkpoint(run_dir / "init.keras")
    assert count_macs(init) == record["macs_after"]
    for layer in record["layers"]:
        assert layer["energy_kept"] >= 0.9 and layer["rank"] < layer["full_rank"]
        assert init.get_layer(f"{layer['layer']}_lowrank_a").filters == layer["rank"]
    # Plain Conv2D layers (a BatchNorm after each second conv): every format converts them.
    result = export(run=str(run_dir), format="tflite,onnx", val_images=8)
    assert result.ok
    assert {e["format"] for e in result.manifest["artifacts"]} == {"tflite", "onnx"}
    assert result.manifest["run"]["compress"]["methods"] == ["lowrank:0.9"]
