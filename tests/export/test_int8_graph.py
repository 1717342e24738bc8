"""The int8 graph: hard-swish rewritten so XNNPACK takes every op; the delegate report."""

import numpy as np
import pytest

import zoo
from zoo.batchnorm import recompute_batchnorm
from zoo.bench.runtimes import bench_context
from zoo.export import FORMATS, parse_options
from zoo.export.int8_graph import DecomposedHardSwish, hard_swish_layers, int8_friendly
from zoo.export.runtimes.litert import (
    LiteRTRunner,
    delegate_line,
    ops_outside_delegate,
    tflite_ops,
)

SIZE = (64, 64)


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).integers(0, 256, (8, *SIZE, 3), dtype=np.uint8)


def calibrated(arch, images, alpha=0.35):
    """BatchNorm statistics re-estimated so activations are O(1), as in a trained model: with
    raw random weights they shrink to ~1e-8 and XNNPACK refuses the int8 ADDs whose input to
    output scale ratio falls below 1/1024, which a trained model never shows."""
    model = zoo.build_model(arch, alpha=alpha, input_size=SIZE, num_classes=3)
    recompute_batchnorm(model, images)
    return model


def test_rewrite_keeps_weights_and_outputs(images):
    model = calibrated("mobilenet_v3_small_lraspp", images)
    assert len(hard_swish_layers(model)) > 10
    graph = int8_friendly(model)
    assert hard_swish_layers(graph) == []
    assert any(isinstance(layer, DecomposedHardSwish) for layer in graph.layers)
    assert graph.count_params() == model.count_params()
    x = images.astype(np.float32)
    ref = np.asarray(model(x))
    assert np.abs(ref).max() > 0.1  # calibrated: the comparison below is not of zeros
    np.testing.assert_allclose(np.asarray(graph(x)), ref, atol=1e-5 * np.abs(ref).max())


def test_rewrite_is_identity_without_hard_swish():
    model = zoo.build_model("mobileunet", alpha=0.25, input_size=SIZE, num_classes=3)
    assert int8_friendly(model) is model


# The per-layer int8 error report (a second, debug-mode quantization) is not what these tests
# look at: it is tested in test_int8_report.py and by the format contract.
INT8_OPTIONS = {"io": "uint8", "calibration_images": 8, "layer_report": 0}


def small_alpha(arch):
    return 0.25 if arch == "mobileunet" else 0.35


@pytest.fixture(scope="module")
def converted(images, tmp_path_factory):
    """``converted(arch) -> (model, {"tflite": Artifact, "tflite-int8": Artifact})``: each arch
    calibrated and converted to float32 and int8 TFLite once for the module (both in the test
    that first asks, as a test of its own did); the tests below only read the artifacts."""
    cache = {}

    def get(arch):
        if arch not in cache:
            model = calibrated(arch, images, alpha=small_alpha(arch))
            folder = tmp_path_factory.mktemp(arch)
            context = bench_context(arch, small_alpha(arch), SIZE, 3, folder / "scratch")
            artifacts = {}
            for name, options in (("tflite", {}), ("tflite-int8", INT8_OPTIONS)):
                fmt = FORMATS.get(name)
                artifacts[name] = fmt.convert(model, folder / f"m{fmt.suffix}",
                                              parse_options(fmt, options), context)
            cache[arch] = model, artifacts
        return cache[arch]

    return get


@pytest.mark.parametrize("arch", ["mobilenet_v3_large_lraspp", "mobilenet_v3_small_lraspp"])
def test_int8_mobilenet_v3_runs_in_one_xnnpack_partition(arch, images, converted):
    model, artifacts = converted(arch)
    art = artifacts["tflite-int8"]
    ops = tflite_ops(art.path)
    assert "HARD_SWISH" not in ops
    assert art.details["xnnpack_partitions"] == 1, art.details
    # Only the uint8 <-> int8 conversions at the graph's edges stay outside.
    assert set(art.details["outside_delegate"]) <= {"QUANTIZE", "DEQUANTIZE"}, art.details
    assert "1 partition;" in delegate_line(art.details)
    # The float model keeps the fused op, which XNNPACK runs in float.
    float_art = artifacts["tflite"]
    assert "HARD_SWISH" in tflite_ops(float_art.path)
    assert float_art.details["xnnpack_partitions"] == 1
    # The int8 model still computes the same thing.
    x = images[:2]
    ref = np.asarray(model(x.astype(np.float32)))
    out = np.concatenate([art.runner().run(x[i:i + 1]) for i in range(len(x))])
    err = np.abs(out - ref).max() / (np.abs(ref).max() + 1e-6)
    assert err < 0.25, err


def test_ops_outside_delegate_walks_back_to_partition_inputs():
    def op(index, name, inputs, outputs):
        return {"index": index, "op_name": name, "inputs": np.array(inputs),
                "outputs": np.array(outputs)}

    # t0 -> QUANTIZE -> t1 -> CONV (w=t9) -> t2 -> HARD_SWISH -> t3 -> CONV (w=t8) -> t4
    details = [op(0, "QUANTIZE", [0], [1]), op(1, "CONV_2D", [1, 9], [2]),
               op(2, "HARD_SWISH", [2], [3]), op(3, "CONV_2D", [3, 8], [4]),
               op(4, "DELEGATE", [1, 9], [2]), op(5, "DELEGATE", [3, 8], [4])]
    outside = [d["op_name"] for d in ops_outside_delegate(details)]
    assert outside == ["QUANTIZE", "HARD_SWISH"]


@pytest.mark.parametrize("arch", ["mobileunet", "mobilenet_v2_deeplabv3plus"])
def test_float_models_run_whole_in_xnnpack(arch, converted):
    """No op outside the delegate in fp32 (DeepLabV3+'s image pooling once left two TILEs)."""
    _, artifacts = converted(arch)
    report = LiteRTRunner(artifacts["tflite"].path).delegate_report()
    assert report == {"xnnpack_partitions": 1, "outside_delegate": {}}
    assert delegate_line(report) == "XNNPACK 1 partition; ops outside: none"


@pytest.mark.parametrize("arch", zoo.list_archs())
def test_every_arch_runs_whole_in_xnnpack_in_fp32_and_int8(arch, converted):
    """The issue's bar: no op of any named arch falls back to LiteRT's reference kernels (only
    the uint8 <-> int8 conversions at the graph's edges stay outside in int8)."""
    _, artifacts = converted(arch)
    for name, allowed in (("tflite", set()), ("tflite-int8", {"QUANTIZE"})):
        art = artifacts[name]
        assert art.details["xnnpack_partitions"] == 1, (name, art.details)
        assert set(art.details["outside_delegate"]) <= allowed, (name, art.details)
