"""Mixed precision for full-integer TFLite: a few layers kept in float32, by hand or by search.

Example::

    plan = MixedPrecision(calibration, rows)    # an Int8Calibration and its per-layer report
    data = plan.quantized(plan.nodes_matching("conv_pw_13"), io="uint8")   # --keep-float
    data, record = plan.search(evaluate, target_pt=0.5, io="uint8")        # --search-precision

Kept layers stay float32 between a DEQUANTIZE and a QUANTIZE, inside the same XNNPACK
partition (XNNPACK runs float and int8 ops and the conversions between them), and their
weights stay float32. int16 activations with int8 weights (TFLite's 16x8 mode) would lose
less speed, but XNNPACK has no 16x8 kernels (its quantized operators are QS8/QU8 only), so on
the CPUs this zoo targets a 16x8 layer runs in the reference kernels outside the delegate;
float is the faster way to keep precision here.

The calibration is done once (`zoo.export.int8_calibration`, which also gives the per-layer
error report); each candidate is then only re-quantized from the calibrated model with its
float nodes denylisted (the debugger's own selective quantization,
https://ai.google.dev/edge/litert/models/quantization_debugger#selective_quantization). The
search is greedy, as the "dynamic fixed-point" per-layer precision search of Gysel et al.
2016 (Ristretto) is: at each step, try each of the worst layers of the report in float, measure
the mIoU drop on the validation images with the exporter's own figure, keep the layer that
helps most, and continue until the drop meets the target. (Walking down the report alone,
keeping each next layer, was tried first: on MobileNetV3-Large LR-ASPP the drop went from
0.16 to 0.58 pt with the worst layers in float before falling again, and took 100 float
layers to reach 0.1 pt: a layer's own error does not predict its cost in mIoU.)
"""

from __future__ import annotations

import re
from collections.abc import Callable

from zoo.errors import ConfigError
from zoo.export.int8_calibration import Int8Calibration

CANDIDATES = 8   # layers of the report tried at each step of the search
MAX_LAYERS = 8   # float layers the search keeps at most
MAX_TRIALS = 64  # candidate models the search evaluates at most


class MixedPrecision:
    """The float layers of an int8 model: chosen by regex or by search, among the tensors of
    the per-layer error report `rows` (worst first), quantized from one `calibration`."""

    def __init__(self, calibration: Int8Calibration, rows: list[dict]):
        self.calibration = calibration
        self.rows = rows

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
        return self.calibration.quantized(float_nodes, io)

    def search(self, evaluate: Callable[[bytes], float], target_pt: float, io: str,
               candidates: int = CANDIDATES, max_layers: int = MAX_LAYERS
               ) -> tuple[bytes, dict]:
        """The int8 model with few float layers whose mIoU drop `evaluate(data)` is at most
        `target_pt`, and the search's record. Greedy forward selection: at each step the
        `candidates` worst layers of the report not yet kept are each tried in float with
        those kept so far, and the one with the lowest drop is kept; up to `max_layers`.
        A layer is kept only if it lowers the drop; when none of the candidates does, the
        next `candidates` of the report are tried. The report's order alone is not enough: a
        layer's own error does not say what it costs in mIoU, and a float island adds its
        own QUANTIZE/DEQUANTIZE. A target not met
        even with every layer in float is a ConfigError; one not met within `max_layers`
        returns the best model found, which then fails the exporter's gate."""
        everything = [r["tensor"] for r in self.rows]
        kept: list[str] = []
        data = self.quantized(kept, io)
        drop = before = evaluate(data)
        ceiling = None  # the drop with every layer in float: only needed when int8 misses
        if drop > target_pt:
            ceiling = evaluate(self.quantized(everything, io))
            if not ceiling <= target_pt:
                raise ConfigError(f"--search-precision: even with every layer in float the mIoU "
                                  f"drop is {ceiling:.2f} pt > --max-miou-drop {target_pt:g} pt")
        layers = {r["tensor"]: r["layer"] for r in self.rows}
        steps = [{"float_layers": 0, "miou_drop_pt": round(drop, 3)}]
        useless: set[str] = set()  # tried with the current set and did not lower the drop
        trials = 0
        while drop > target_pt and len(kept) < max_layers and trials < MAX_TRIALS:
            pool = [t for t in everything if t not in kept and t not in useless][:candidates]
            if not pool:
                break
            tried = []
            trials += len(pool)
            for tensor in pool:
                trial = self.quantized([*kept, tensor], io)
                tried.append((evaluate(trial), tensor, trial))
            best, tensor, trial = min(tried, key=lambda x: x[0])
            record = {"tried": {layers[t]: round(d, 3) for d, t, _ in tried}}
            if not best < drop:  # none helps: try the next layers of the report
                useless.update(t for _, t, _ in tried)
                steps.append({"float_layers": len(kept), "miou_drop_pt": round(drop, 3),
                              **record})
                continue
            drop, data = best, trial
            kept.append(tensor)
            useless.clear()  # with another layer in float, the others may help again
            steps.append({"float_layers": len(kept), "layer": layers[tensor],
                          "miou_drop_pt": round(drop, 3), **record})
            print(f"search precision: {layers[tensor]} in float -> mIoU drop {drop:.2f} pt "
                  f"(best of {len(tried)})", flush=True)
        return data, {"target_pt": target_pt, "drop_before_pt": round(before, 3),
                      "drop_after_pt": round(drop, 3),
                      "all_float_drop_pt": None if ceiling is None else round(ceiling, 3),
                      "float_layers": [layers[t] for t in kept], "float_tensors": kept,
                      "steps": steps}
