"""The Edge TPU op report: HARD_SWISH flagged with everything after it; the exported int8
MobileNetV3 (hard-swish as ADD + MUL) and MobileNet-EdgeTPU + U-Net map completely."""

import shutil

import keras
import numpy as np

import zoo
from zoo.export import FORMATS, ExportContext, parse_options
from zoo.export.formats.edgetpu import op_report


def convert(arch, alpha, tmp_path, model=None, **options):
    """The edgetpu artifact of `model`, by default `arch` built at `alpha` and 64 px."""
    if model is None:
        model = zoo.build_model(arch, alpha=alpha, input_size=64)
    images = np.random.default_rng(0).integers(0, 256, (4, 64, 64, 3), dtype=np.uint8)
    context = ExportContext("test", arch, alpha, (64, 64), ["a", "b"], lambda n: images[:n],
                            scratch=tmp_path / "scratch")
    context.scratch.mkdir()
    fmt = FORMATS.get("edgetpu")
    # layer_report 0: the per-layer int8 error report is not what these tests look at (it is
    # tested in test_int8_report.py and by the format contract below).
    return fmt.convert(model, tmp_path / "m.tflite", parse_options(fmt, {
        "calibration_images": 4, "layer_report": 0, **options}), context)


def test_hard_swish_falls_back_with_everything_after(tmp_path, monkeypatch):
    import zoo.export.tflite_convert

    # An int8 graph with the fused HARD_SWISH op, as other converters' output has it: a conv,
    # MobileNetV3's hard-swish activation layer and a conv after it, not rewritten as ADD + MUL.
    monkeypatch.setattr(zoo.export.tflite_convert, "tflite_graph", lambda model, *args: model)
    inputs = keras.Input((64, 64, 3))
    x = keras.layers.Conv2D(8, 3, padding="same")(inputs)
    x = keras.layers.Activation("hard_swish")(x)
    model = keras.Model(inputs, keras.layers.Conv2D(2, 1)(x))
    report = convert("conv_hard_swish_conv", 1.0, tmp_path, model=model).details["report"]
    first = report["ops"][report["first_unmapped"]]
    assert first["op"] == "HARD_SWISH" and "#353" in first["reason"]
    assert all(o["where"] == "edgetpu" for o in report["ops"][:report["first_unmapped"]])
    assert all(o["where"] == "cpu" for o in report["ops"][report["first_unmapped"]:])
    assert "HARD_SWISH" in report["summary"] and report["cpu"] > 1


def test_exported_mobilenet_v3_maps_completely(tmp_path):
    artifact = convert("mobilenet_v3_small_lraspp", 0.35, tmp_path)
    report = artifact.details["report"]
    assert "HARD_SWISH" not in artifact.ops
    assert report["first_unmapped"] is None and report["cpu"] == 0, report["summary"]


def test_mobilenet_edgetpu_unet_with_resize_maps_completely(tmp_path):
    artifact = convert("mobilenet_edgetpu_unet", 0.5, tmp_path)
    report = artifact.details["report"]
    assert report["first_unmapped"] is None and report["cpu"] == 0
    assert "TRANSPOSE_CONV" not in artifact.ops and "RESIZE_BILINEAR" in artifact.ops
    assert artifact.input.dtype == "uint8"
    assert op_report(artifact.path)["mapped"] == report["mapped"]
    compiler = artifact.details["compiler"]
    if shutil.which("edgetpu_compiler") is None:  # not installable here: the report says so
        assert not compiler["compiled"] and "not on PATH" in compiler["message"]
    else:
        assert compiler["compiled"], compiler["message"]


def test_label_output_leaves_only_the_label_tail_on_the_cpu(tmp_path):
    # The label tail is the same for any unet head (stride 2); mobileunet's TRANSPOSE_CONV maps.
    report = convert("mobileunet", 0.25, tmp_path,
                     output="labels-nearest").details["report"]
    first = report["ops"][report["first_unmapped"]]
    assert first["op"] == "ARG_MAX" and "not in the Edge TPU op table" in first["reason"]
    cpu = [o["op"] for o in report["ops"] if o["where"] == "cpu"]
    assert set(cpu) <= {"ARG_MAX", "CAST", "RESHAPE", "TILE"}, cpu


def test_contract(format_contract):
    artifact = format_contract("edgetpu", calibration_images=8).artifact
    # The Edge TPU has no DEPTH_TO_SPACE: the transposed convs stay native, and map.
    assert "TRANSPOSE_CONV" in artifact.ops and "DEPTH_TO_SPACE" not in artifact.ops
    assert artifact.details["report"]["first_unmapped"] is None
    assert artifact.input.dtype == "uint8"
