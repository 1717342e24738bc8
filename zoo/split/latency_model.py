"""Per-layer-type latency models: predict each half's time at every cut from the layers alone.

Example::

    device = fit(profile, "device")            # fitted on the measured cuts of one model
    device.cumulative(profile.units, "device") # predicted device ms at every cut
    errors(device, profile, "device")          # in-sample and leave-one-out, % of the total
    LatencyModel.from_dict(json.load(f))       # a model fitted on another network

Neurosurgeon (Kang et al. ASPLOS 2017) predicts a layer's latency on each processor with a
regression per layer type on its configuration, fitted once per device, so it can plan a
network it has never run. Here a unit (`zoo.graph.units_of`: an op with its fused BatchNorm
and activation) costs

    ms = a[op type] * MMACs + b * MB read and written (float32) + c

with a slope per op type (a 1x1 conv, a depthwise conv and a transposed conv reach very
different MACs per second), one memory-traffic slope and one per-op overhead. What is measured
is the time of each device half (image -> cut) and each server half (cut -> labels), so a
measured difference spans the units between two measured cuts; each such segment is one
equation (the sum of its units' costs), and the coefficients are the non-negative least
squares solution (`scipy.optimize.nnls`; a negative cost per MAC would be meaningless).

Errors are stated against the whole network's measured time on that side, per cut: a 0.05 ms
miss on a 0.1 ms prefix is noise, not a 50 % error. Leave-one-out refits without each segment
and predicts it, which is how well the model predicts what it was not fitted on.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from zoo.split.profile import Profile, UnitFacts

SIDES = ("device", "server")


@dataclass
class LatencyModel:
    side: str
    per_mmac: dict[str, float]  # ms per million MACs, by op type
    per_mb: float  # ms per MB read and written
    per_op: float  # ms per unit
    fitted_on: str = ""  # the run or network it was fitted on
    cpu: str = ""
    threads: int = 1

    def unit_ms(self, unit: UnitFacts) -> float:
        slope = self.per_mmac.get(unit.op)
        if slope is None:  # an op type the fit never saw: the mean slope of those it did
            slope = float(np.mean(list(self.per_mmac.values()))) if self.per_mmac else 0.0
        return (slope * unit.macs / 1e6 + self.per_mb * (unit.in_bytes + unit.out_bytes) / 1e6
                + self.per_op)

    def cumulative(self, units: list[UnitFacts]) -> list[float]:
        """Predicted ms of this side at every cut (cut k: k units on the device)."""
        ms = np.array([self.unit_ms(u) for u in units])
        done = np.concatenate([[0.0], np.cumsum(ms)])
        return list(done if self.side == "device" else done[-1] - done)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> LatencyModel:
        return cls(**data)


def _measured(profile: Profile, side: str) -> list[tuple[int, float]]:
    times = profile.device_ms if side == "device" else profile.server_ms
    return [(k, float(t)) for k, t in enumerate(times) if t is not None]


def _segments(profile: Profile, side: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(rows of summed unit features, measured segment ms, op types) of consecutive measured
    cuts."""
    ops = sorted({u.op for u in profile.units})
    points = _measured(profile, side)
    rows, times = [], []
    for (i, ti), (j, tj) in zip(points, points[1:], strict=False):
        row = np.zeros(len(ops) + 2)
        for unit in profile.units[i:j]:  # cut k has units[:k] on the device
            row[ops.index(unit.op)] += unit.macs / 1e6
            row[-2] += (unit.in_bytes + unit.out_bytes) / 1e6
            row[-1] += 1
        rows.append(row)
        times.append(tj - ti if side == "device" else ti - tj)
    return np.array(rows), np.array(times), ops


def _solve(rows: np.ndarray, times: np.ndarray) -> np.ndarray:
    from scipy.optimize import nnls

    # Columns scaled to unit norm, so that nnls weighs MACs, bytes and counts alike.
    norms = np.linalg.norm(rows, axis=0)
    norms[norms == 0] = 1.0
    coef, _ = nnls(rows / norms, np.maximum(times, 0.0))
    return coef / norms


def fit(profile: Profile, side: str, fitted_on: str = "") -> LatencyModel:
    """The model of `side` ("device" or "server") fitted on `profile`'s measured cuts."""
    rows, times, ops = _segments(profile, side)
    coef = _solve(rows, times) if len(rows) else np.zeros(len(ops) + 2)
    threads = profile.threads_device if side == "device" else profile.threads_server
    return LatencyModel(side, {op: float(c) for op, c in zip(ops, coef, strict=False)},
                        per_mb=float(coef[-2]), per_op=float(coef[-1]), fitted_on=fitted_on,
                        cpu=profile.cpu, threads=threads)


def errors(model: LatencyModel, profile: Profile, side: str) -> dict[str, float]:
    """Prediction errors of `model` at `profile`'s measured cuts, in % of the measured whole
    side: ``median_pct`` and ``max_pct``; with ``loo_*`` the leave-one-segment-out errors of
    refits on `profile` itself (only when `model` was fitted on it)."""
    points = _measured(profile, side)
    total = max(t for _, t in points) or 1.0
    predicted = model.cumulative(profile.units)
    miss = [abs(predicted[k] - t) / total * 100 for k, t in points]
    result = {"median_pct": float(np.median(miss)), "max_pct": float(np.max(miss)),
              "total_ms": float(total), "cuts": len(points)}
    rows, times, _ = _segments(profile, side)
    if len(rows) >= 3:
        loo = []
        for s in range(len(rows)):
            keep = np.arange(len(rows)) != s
            coef = _solve(rows[keep], times[keep])
            loo.append(abs(float(rows[s] @ coef) - times[s]) / total * 100)
        result.update(loo_median_pct=float(np.median(loo)), loo_max_pct=float(np.max(loo)))
    return result
