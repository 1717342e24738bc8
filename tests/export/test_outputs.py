"""Label outputs: argmax label maps (full resolution, or at the head's stride with a nearest
upsample) in every format, checked against Keras and NumPy; the manifest; bad values."""

import json
from dataclasses import asdict

import keras
import numpy as np
import pytest

import zoo
from zoo.batchnorm import recompute_batchnorm
from zoo.errors import ConfigError
from zoo.export import FORMATS, ExportContext, parse_options
from zoo.export.exporter import export
from zoo.export.int8_graph import int8_friendly
from zoo.export.outputs import OUTPUTS, LabelMap, head_logits, with_output
from zoo.export.runtimes.litert import LiteRTRunner
from zoo.export.validate import tolerance_for

SIZE = (64, 96)
# One arch per head, each with its stride: unet 2, deeplabv3plus 4, lraspp 8.
ARCHS = {"mobileunet": (0.25, 2), "mobilenet_v2_deeplabv3plus": (0.35, 4),
         "mobilenet_v3_small_lraspp": (0.35, 8)}


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).integers(0, 256, (6, *SIZE, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def models(images):
    """The three archs with BatchNorm statistics re-estimated, so logits are O(1) and argmax is
    not decided by ties (as in a trained checkpoint)."""
    built = {}
    for arch, (alpha, _) in ARCHS.items():
        keras.utils.set_random_seed(0)
        model = zoo.build_model(arch, alpha=alpha, input_size=SIZE, num_classes=3)
        recompute_batchnorm(model, np.concatenate([images] * 3))
        built[arch] = model
    return built


@pytest.fixture(scope="module")
def expected(models, images):
    """Per arch: Keras' full-resolution argmax and the NumPy nearest upsample of the argmax of
    the head's logits."""
    x = images.astype(np.float32)
    result = {}
    for arch, model in models.items():
        head, (fh, fw) = head_logits(model)
        assert (fh, fw) == (ARCHS[arch][1],) * 2
        low = np.asarray(keras.Model(model.input, head)(x)).argmax(-1)
        result[arch] = {"labels": np.asarray(model(x)).argmax(-1),
                        "labels-nearest": np.repeat(np.repeat(low, fh, 1), fw, 2)}
    return result


@pytest.fixture(scope="module")
def context(images, tmp_path_factory):
    scratch = tmp_path_factory.mktemp("scratch")
    return ExportContext("test-run", "test", 0.35, SIZE, ["a", "b", "c"],
                         lambda n: images[:n], scratch=scratch)


# The per-layer int8 error report is not what these tests look at (test_int8_report.py and the
# format contract test it; the export of a run below keeps it).
INT8 = {"calibration_images": 6, "layer_report": 0}
# (format, arch, options): every format, every head; int8 and Core ML on the cheaper archs.
CASES = [("tflite", "mobilenet_v3_small_lraspp", {}),
         ("tflite-int8", "mobileunet", INT8),
         ("onnx", "mobilenet_v2_deeplabv3plus", {}),
         ("coreml", "mobileunet", {"precision": "fp32"})]


@pytest.fixture(scope="module")
def artifacts(models, context, tmp_path_factory):
    """Each case converted with both label outputs, once for the module."""
    out = tmp_path_factory.mktemp("artifacts")
    converted = {}
    for fmt, arch, options in CASES:
        spec = FORMATS.get(fmt)
        for output in ("labels", "labels-nearest"):
            opts = parse_options(spec, {**options, "output": output})
            path = out / f"{arch}-{output}{spec.suffix}"
            converted[fmt, output] = spec.convert(models[arch], path, opts, context)
    return converted


@pytest.fixture(scope="module")
def int8_reference(models, context, images, tmp_path_factory):
    """What the int8 label maps must be: the argmax of int8 logits with the same calibration,
    from the int8 logits model (labels) and from an int8 model of the head's logits, upsampled
    in NumPy (labels-nearest). The fused argmax reads the same quantized tensor, so they are
    equal, ties included."""
    model = models["mobileunet"]
    head, (fh, fw) = head_logits(model)
    spec = FORMATS.get("tflite-int8")
    options = parse_options(spec, INT8)
    out = tmp_path_factory.mktemp("int8")
    full = spec.convert(model, out / "full.int8.tflite", options, context)
    low = spec.convert(keras.Model(model.input, head), out / "head.int8.tflite", options,
                       context)
    low_labels = run_all(low, images).argmax(-1)
    return {"labels": run_all(full, images).argmax(-1),
            "labels-nearest": np.repeat(np.repeat(low_labels, fh, 1), fw, 2)}


def run_all(artifact, images):
    runner = artifact.runner()
    return np.concatenate([runner.run(images[i:i + 1]) for i in range(len(images))])


@pytest.mark.parametrize(("fmt", "arch", "options"), CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("output", ["labels", "labels-nearest"])
def test_label_map_shape_dtype_and_values(fmt, arch, options, output, artifacts, expected,
                                          int8_reference, images):
    art = artifacts[fmt, output]
    dtype = "int32" if fmt == "coreml" else "uint8"
    assert art.output.dtype == dtype and art.output.shape == [1, *SIZE]
    if fmt in ("onnx", "coreml"):  # (TFLite records it too: see the last test)
        assert art.output_kind == output
    out = run_all(art, images)  # each run (1, H, W), the runtime's integer type as it is
    assert out.shape == (len(images), *SIZE) and out.dtype == np.dtype(dtype)
    assert out.min() >= 0 and out.max() <= 2
    want = expected[arch][output]
    agreement = float((out == want).mean())
    if fmt == "tflite-int8":
        # int8 moves boundaries of a random net (here ~88 % agreement with Keras); the exact
        # reference is the int8 model's own logits (see int8_reference).
        assert agreement >= 0.8, agreement
        assert (out == int8_reference[output]).mean() >= 0.999
        if output == "labels-nearest":  # constant on each stride block
            s = ARCHS[arch][1]
            assert np.array_equal(out, np.repeat(np.repeat(out[:, ::s, ::s], s, 1), s, 2))
    else:
        assert agreement >= 0.999, (fmt, output, agreement)


def test_tflite_delegate_keeps_the_graph_before_the_argmax(artifacts):
    """XNNPACK has no argmax: one partition, and only the label ops (plus the uint8 -> int8
    input QUANTIZE of the int8 model) run outside it."""
    label_ops = {"ARG_MAX", "CAST", "RESHAPE", "TILE"}
    for fmt in ("tflite", "tflite-int8"):
        for output in ("labels", "labels-nearest"):
            report = LiteRTRunner(artifacts[fmt, output].path).delegate_report()
            assert report["xnnpack_partitions"] == 1, (fmt, output, report)
            outside = set(report["outside_delegate"])
            assert {"ARG_MAX", "CAST"} <= outside <= label_ops | {"QUANTIZE"}, report
    ops = artifacts["tflite", "labels-nearest"].ops
    assert "RESIZE_BILINEAR" not in ops[-6:] and ops[-5:] == [
        "ARG_MAX", "CAST", "RESHAPE", "TILE", "RESHAPE"]


def test_coreml_label_outputs_are_named_labels(artifacts):
    import coremltools as ct

    for output in ("labels", "labels-nearest"):
        art = artifacts["coreml", output]
        ml = ct.models.MLModel(str(art.path), skip_model_load=True)
        assert ml.get_spec().description.output[0].name == "labels" == art.output.name
        assert ml.user_defined_metadata["output"] == output
    assert "upsample_bilinear" not in artifacts["coreml", "labels-nearest"].ops[-4:]
    assert "tile" in artifacts["coreml", "labels-nearest"].ops


def test_with_output_shares_layers_caches_and_survives_int8_rewrite(models, images):
    model = models["mobilenet_v3_small_lraspp"]
    assert with_output(model, "logits") is model
    cache = {}
    nearest = with_output(model, "labels-nearest", cache=cache)
    assert with_output(model, "labels-nearest", cache=cache) is nearest
    assert with_output(model, "labels", cache=cache) is not nearest
    assert "logits_upsample" not in [layer.name for layer in nearest.layers]
    assert nearest.get_layer("labels").factor == (8, 8)
    # The int8 hard-swish rewrite clones the wrapped graph and computes the same labels.
    x = images[:2].astype(np.float32)
    rewritten = int8_friendly(nearest)
    assert rewritten is not nearest
    assert np.array_equal(np.asarray(rewritten(x)), np.asarray(nearest(x)))


def test_label_map_layer_upsamples_by_repetition():
    logits = np.random.default_rng(0).normal(size=(2, 3, 5, 4)).astype(np.float32)
    out = np.asarray(LabelMap((2, 3), "int32")(logits))
    want = np.repeat(np.repeat(logits.argmax(-1), 2, 1), 3, 2)
    assert out.dtype == np.int32 and np.array_equal(out, want)
    assert np.asarray(LabelMap()(logits)).dtype == np.uint8


def test_too_many_classes_for_uint8():
    model = zoo.build_model("mobileunet", alpha=0.25, input_size=64, num_classes=300)
    with pytest.raises(ConfigError, match="300 classes do not fit a uint8 label map"):
        with_output(model, "labels")
    assert with_output(model, "labels", label_dtype="int32").output.dtype == "int32"


@pytest.mark.parametrize("fmt", FORMATS.list())
def test_bad_output_is_a_one_line_error_naming_the_allowed_values(fmt):
    with pytest.raises(ConfigError) as info:
        parse_options(FORMATS.get(fmt), {"output": "foo"})
    message = str(info.value)
    assert "\n" not in message and "'foo'" in message
    assert "must be one of logits, labels, labels-nearest" in message
    assert OUTPUTS == ("logits", "labels", "labels-nearest")


def test_export_of_a_run_labels_pass_and_labels_nearest_keeps_the_gate(trained_run, tmp_path):
    checkpoints, run_dir = trained_run
    # labels: Keras' own argmax, so the float32 gate (99.9 % agreement) holds as for logits.
    result = export(run=str(run_dir), format="onnx", out=str(tmp_path / "labels"),
                    output="labels", val_images=4)
    entry = result.manifest["artifacts"][0]
    assert result.ok and entry["passed"] and entry["details"]["output"] == "labels"
    assert entry["output"]["dtype"] == "uint8" and entry["output"]["shape"] == [1, 64, 64]
    assert entry["validation"]["agreement_pct"] == 100.0
    assert entry["validation"]["max_abs_logit_diff"] is None

    # labels-nearest: judged by the same gates, not loosened. A stride-2 nearest map differs
    # from Keras on boundary pixels, so ONNX fails its 99.9 % agreement and says how to accept
    # the cost; int8 passes or fails by its own 2 pt mIoU drop.
    out = tmp_path / "nearest"
    result = export(run=str(run_dir), format="tflite-int8,onnx", out=str(out),
                    output="labels-nearest", calibration_images=8, val_images=4)
    entries = {e["format"]: e for e in result.manifest["artifacts"]}
    for entry in entries.values():
        assert entry["details"]["output"] == "labels-nearest"
        assert entry["output"]["dtype"] == "uint8" and entry["output"]["shape"] == [1, 64, 64]
        assert entry["output"]["scale"] is None  # an integer label map, not quantized logits
        assert entry["validation"]["tolerance"] == asdict(tolerance_for(entry["format"]))
    onnx = entries["onnx"]
    assert not onnx["passed"] and onnx["file"] == "model.FAILED.onnx"
    assert onnx["reason"].startswith("onnx (labels-nearest): pixel agreement with Keras")
    assert "--min-agreement / --max-miou-drop accept the nearest" in onnx["reason"]
    int8 = entries["tflite-int8"]
    assert int8["passed"] == (int8["validation"]["miou_drop_pt"] <= 2.0)
    assert int8["details"]["xnnpack_partitions"] == 1
    assert result.failed == (["onnx"] if int8["passed"] else ["tflite-int8", "onnx"])
    report = (out / "report.md").read_text()
    assert "| onnx (labels-nearest) | model.FAILED.onnx |" in report
    assert "- tflite-int8 (labels-nearest): input uint8 [1, 64, 64, 3]" in report
    manifest = json.loads((out / "manifest.json").read_text())
    assert {e["details"]["output"] for e in manifest["artifacts"]} == {"labels-nearest"}
