"""One calibration of a full-integer TFLite model, quantized as often as the export needs.

Example::

    calibration = Int8Calibration(converter)          # converter set up for int8 (tflite_convert)
    data = calibration.quantized(io="uint8")           # what converter.convert() makes
    rows = calibration.layer_errors(images, names)     # per-layer report (int8_report)
    mixed = calibration.quantized(["model/conv_pw_5_relu/Relu6"], io="uint8")  # one layer float

The converter's int8 conversion is two steps: calibration (the representative images run
through the float model, recording every tensor's range) and quantization (`mlir_quantize`).
The debugger of the per-layer report and each candidate of the mixed-precision search need the
calibrated model again; calibrating once and quantizing from it serves the plain artifact, the
report and the search from one pass over the calibration images, as LiteRT's
QuantizationDebugger does for its own selective quantization
(https://ai.google.dev/edge/litert/models/quantization_debugger#selective_quantization). The
plain model is the converter's own: the same tensors, quantization parameters and weights (a
test compares them).
"""

from __future__ import annotations

import hashlib

import numpy as np


class Int8Calibration:
    """The calibrated float model of an int8 `converter` (optimizations and representative
    dataset set), with every model quantized from it memoized."""

    def __init__(self, converter):
        converter._experimental_calibrate_only = True  # what QuantizationDebugger sets
        self.calibrated: bytes = converter.convert()
        self._models: dict[tuple, bytes] = {}
        self._rows: dict[tuple, list[dict]] = {}

    def quantized(self, float_nodes: list[str] | tuple[str, ...] = (), io: str = "uint8",
                  integer_output: bool = True) -> bytes:
        """The int8 model with `float_nodes` (tensor names) left in float32 and `io` I/O
        (uint8 input with scale 1 and zero point 0, see `pixels_as_input`); with
        ``integer_output=False`` (label maps, integer already) only the input changes type."""
        import tensorflow as tf
        from tensorflow.lite.python import convert
        from tensorflow.lite.python.lite import _deduplicate_readonly_buffers

        from zoo.export.tflite_convert import pixels_as_input

        key = (tuple(float_nodes), io, integer_output)
        if key not in self._models:
            io_type = {"uint8": tf.uint8, "int8": tf.int8, "float": tf.float32}[io]
            # As TFLiteConverter._quantize and _optimize_tflite_model do after calibration.
            data = convert.mlir_quantize(
                self.calibrated, input_data_type=io_type,
                output_data_type=io_type if integer_output else tf.float32,
                denylisted_nodes=list(float_nodes) or None)
            data = _deduplicate_readonly_buffers(data)
            self._models[key] = pixels_as_input(data) if io == "uint8" else data
        return self._models[key]

    def layer_errors(self, images: np.ndarray, layer_names: list[str]) -> list[dict]:
        """The per-layer error report (`zoo.export.int8_report`) on `images`, worst first:
        LiteRT's QuantizationDebugger on the debug-mode model of this calibration."""
        import tensorflow as tf
        from tensorflow.lite.python import convert

        from zoo.export.int8_report import metric_options, rows_from_debugger

        key = (hashlib.sha256(np.ascontiguousarray(images).tobytes()).hexdigest(),
               tuple(layer_names))
        if key not in self._rows:
            def dataset():
                for image in images:
                    yield [image[None].astype(np.float32)]

            debug_model = convert.mlir_quantize(self.calibrated, enable_numeric_verify=True)
            debugger = tf.lite.experimental.QuantizationDebugger(
                quant_debug_model_content=debug_model, debug_dataset=dataset,
                debug_options=metric_options())
            debugger.run()
            self._rows[key] = rows_from_debugger(debugger, layer_names)
        return self._rows[key]
