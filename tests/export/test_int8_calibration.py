"""One calibration serves the plain int8 model (the converter's own), the per-layer report
and the mixed-precision candidates."""

import keras
import numpy as np
import pytest

import zoo
from zoo.batchnorm import recompute_batchnorm
from zoo.export import FORMATS, ExportContext, parse_options
from zoo.export.int8_calibration import Int8Calibration
from zoo.export.tflite_convert import int8_converter, pixels_as_input

SIZE = (64, 96)


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).integers(0, 256, (6, *SIZE, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def model(images):
    keras.utils.set_random_seed(0)
    model = zoo.build_model("mobileunet", alpha=0.25, input_size=SIZE, num_classes=3)
    recompute_batchnorm(model, images)
    return model


def _context(images, scratch):
    return ExportContext("r", "mobileunet", 0.25, SIZE, ["a", "b", "c"],
                         lambda n: images[:n], scratch=scratch)


def _graph(data: bytes):
    """Every tensor (name, type, shape, quantization) and every weight buffer of a .tflite
    file; the metadata buffers (conversion options, their order) left out."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(data))
    metadata = {m.buffer for m in model.metadata or []}
    tensors = []
    for t in model.subgraphs[0].tensors:
        q = t.quantization
        tensors.append((t.name, t.type, tuple(t.shape), t.buffer, None if q is None else (
            tuple(np.ravel(q.scale if q.scale is not None else [])),
            tuple(np.ravel(q.zeroPoint if q.zeroPoint is not None else [])))))
    buffers = [bytes(np.asarray(b.data if b.data is not None else [], np.uint8))
               for i, b in enumerate(model.buffers) if i not in metadata]
    return tensors, buffers


@pytest.mark.parametrize(("io", "output"), [("uint8", "logits"), ("float", "labels")])
def test_plain_model_is_the_converters_own(model, images, tmp_path, io, output):
    import tensorflow as tf

    context = _context(images, tmp_path)
    conv, _ = int8_converter(model, context, calibration_images=6, output=output,
                             transpose_conv="depth-to-space")
    if io == "uint8":
        conv.inference_input_type = conv.inference_output_type = tf.uint8
    want = conv.convert()
    if io == "uint8":
        want = pixels_as_input(want)
    conv, _ = int8_converter(model, context, calibration_images=6, output=output,
                             transpose_conv="depth-to-space")
    calibration = Int8Calibration(conv)
    got = calibration.quantized([], io, integer_output=output == "logits")
    assert _graph(got) == _graph(want)
    assert calibration.quantized([], io, integer_output=output == "logits") is got  # memoized


def test_an_int8_export_calibrates_once(model, images, tmp_path, monkeypatch):
    calls = []
    init = Int8Calibration.__init__

    def counting(self, converter):
        calls.append(1)
        init(self, converter)

    monkeypatch.setattr(Int8Calibration, "__init__", counting)
    context = _context(images, tmp_path)
    spec = FORMATS.get("tflite-int8")
    options = parse_options(spec, {"calibration_images": 6, "layer_report": 4})
    artifact = spec.convert(model, tmp_path / "model.int8.tflite", options, context)
    rows = artifact.details["layer_errors"]
    assert rows and rows[0]["snr_db"] <= rows[-1]["snr_db"]
    assert calls == [1]
    # A second int8 format with the same options (Edge TPU's input) calibrates no more.
    FORMATS.get("tflite-int8").convert(model, tmp_path / "again.int8.tflite", options, context)
    assert calls == [1]
