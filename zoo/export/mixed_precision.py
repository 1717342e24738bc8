"""Mixed precision for full-integer TFLite: a few layers kept in float32, by hand or by search.

Example::

    plan = MixedPrecision(converter, report_images)       # one calibration + the error report
    data = plan.quantized(plan.nodes_matching("conv_pw_13"), io="uint8")   # --keep-float
    data, record = plan.search(evaluate, target_pt=0.5, io="uint8")        # --search-precision

Kept layers stay float32 between a DEQUANTIZE and a QUANTIZE, inside the same XNNPACK
partition (XNNPACK runs float and int8 ops and the conversions between them), and their
weights stay float32. int16 activations with int8 weights (TFLite's 16x8 mode) would lose
less speed, but XNNPACK has no 16x8 kernels (its quantized operators are QS8/QU8 only), so on
the CPUs this zoo targets a 16x8 layer runs in the reference kernels outside the delegate;
float is the faster way to keep precision here.

The calibration is done once (`tf.lite.experimental.QuantizationDebugger`, which also gives
the per-layer error report); each candidate is then only re-quantized from the calibrated
model with its float nodes denylisted (the debugger's own selective quantization,
https://ai.google.dev/edge/litert/models/quantization_debugger#selective_quantization). The
search is greedy, as the "dynamic fixed-point" per-layer precision search of Gysel et al.
2016 (Ristretto) is: keep the worst layer of the report in float, measure the mIoU drop on the
validation images with the exporter's own figure, and continue down the report until the drop
meets the target.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np

from zoo.errors import ConfigError
from zoo.export.int8_report import metric_options, rows_from_debugger


class MixedPrecision:
    """One calibration of the int8 model of a converter, re-quantizable with float layers."""

    def __init__(self, converter, report_images: np.ndarray, layer_names: list[str]):
        import tensorflow as tf

        def dataset():
            for image in report_images:
                yield [image[None].astype(np.float32)]

        self.debugger = tf.lite.experimental.QuantizationDebugger(
            converter=converter, debug_dataset=dataset, debug_options=metric_options())
        self.debugger.run()
        self.rows = rows_from_debugger(self.debugger, layer_names)

    def nodes_matching(self, pattern: str, what: str = "--keep-float") -> list[str]:
        """Tensor names of the layers whose name matches the regex `pattern` (searched)."""
        try:
            regex = re.compile(pattern)
        except re.error as exc:
            raise ConfigError(f"{what}: not a regular expression ({exc}): {pattern!r}") from None
        nodes = [r["tensor"] for r in self.rows if regex.search(r["layer"])]
        if not nodes:
            layers = sorted({r["layer"] for r in self.rows})
            raise ConfigError(f"{what}: {pattern!r} matches no quantized layer (layers: "
                              f"{', '.join(layers[:12])}{', ...' if len(layers) > 12 else ''})")
        return nodes

    def quantized(self, float_nodes: list[str], io: str) -> bytes:
        """The int8 model with `float_nodes` left in float32, with `io` I/O (logits)."""
        import tensorflow as tf
        from tensorflow.lite.python import convert, util

        from zoo.export.tflite_convert import pixels_as_input

        integer = io != "float"
        data = convert.mlir_quantize(
            self.debugger.calibrated_model, fully_quantize=integer,
            input_data_type=tf.int8 if integer else tf.float32,
            output_data_type=tf.int8 if integer else tf.float32,
            denylisted_nodes=list(float_nodes))
        if io == "uint8":
            data = pixels_as_input(util.modify_model_io_type(data, tf.uint8, tf.uint8))
        return data

    def search(self, evaluate: Callable[[bytes], float], target_pt: float, io: str
               ) -> tuple[bytes, dict]:
        """The int8 model with the fewest float layers (greedy, worst of the report first)
        whose mIoU drop `evaluate(data)` is at most `target_pt`, and the search's record.
        A target not met even with every layer in float is a ConfigError."""
        everything = [r["tensor"] for r in self.rows]
        ceiling = evaluate(self.quantized(everything, io))
        if not ceiling <= target_pt:
            raise ConfigError(f"--search-precision: even with every layer in float the mIoU drop "
                              f"is {ceiling:.2f} pt > --max-miou-drop {target_pt:g} pt")
        kept: list[str] = []
        data = self.quantized(kept, io)
        drop = before = evaluate(data)
        steps = [{"float_layers": 0, "miou_drop_pt": round(drop, 3)}]
        for row in self.rows:
            if drop <= target_pt:
                break
            kept.append(row["tensor"])
            data = self.quantized(kept, io)
            drop = evaluate(data)
            steps.append({"float_layers": len(kept), "layer": row["layer"],
                          "miou_drop_pt": round(drop, 3)})
            print(f"search precision: {row['layer']} in float -> mIoU drop {drop:.2f} pt")
        layers = {r["tensor"]: r["layer"] for r in self.rows}
        return data, {"target_pt": target_pt, "drop_before_pt": round(before, 3),
                      "drop_after_pt": round(drop, 3), "all_float_drop_pt": round(ceiling, 3),
                      "float_layers": [layers[t] for t in kept], "float_tensors": kept,
                      "steps": steps}
