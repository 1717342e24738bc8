"""The validator shared by every format: an artifact against the ground truth and the Keras model.

Example::

    ref = reference(keras_model, images, masks, num_classes=2, ignore_index=255)
    result = validate(artifact, ref, tolerance_for("tflite-int8"), threads=2)
    result.passed, result.reason   # False, "tflite-int8: mIoU drop 3.10 pt > 2.00 pt"

Figures: mean IoU against the ground truth (with the dataset's ignore index), pixel agreement
and mean IoU against the Keras model's own predictions, max abs logit difference (dequantized
for int8) and the median single-image latency. A format fails when its agreement is below its
`min_agreement` or its mIoU drop exceeds `max_miou_drop`.

An artifact whose output is a label map ``(1, H, W)`` (`Artifact.output_kind` "labels" or
"labels-nearest", see zoo/export/outputs.py) is judged by the same gate against the same Keras
logits' argmax: for "labels-nearest" the mIoU drop is the real accuracy cost of skipping the
full-resolution upsample, and the tolerance stays the format's (its failure reason says how
to accept that cost: --min-agreement / --max-miou-drop).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from zoo.errors import ConfigError
from zoo.export.format import FORMATS, Tolerance
from zoo.export.runtimes import RUNTIMES, NotRunnableError, get_runner
from zoo.files import error_line
from zoo.metrics import confusion_matrix, iou_per_class, mean_iou


def tolerance_for(fmt: str, min_agreement: float | None = None,
                  max_miou_drop: float | None = None) -> Tolerance:
    """The format's declared tolerance (float32-tight for an unregistered name), overridden."""
    tol = FORMATS.get(fmt).tolerance if fmt in FORMATS else Tolerance()
    if min_agreement is not None:
        tol = replace(tol, min_agreement=float(min_agreement))
    if max_miou_drop is not None:
        tol = replace(tol, max_miou_drop=float(max_miou_drop))
    return tol


def parse_overrides(value, formats: list[str], what: str, low: float = 0.0,
                    high: float | None = None) -> dict[str, float]:
    """Per-format overrides from a number (every format), "fmt=x,fmt=y" or a dict; each a
    finite number within ``[low, high]``."""
    from zoo.checks import number

    return {fmt: number(what, v, low, high)
            for fmt, v in _overrides(value, formats, what).items()}


def _overrides(value, formats: list[str], what: str) -> dict[str, float]:
    if value is None:
        return {}
    if isinstance(value, int | float) and not isinstance(value, bool):
        return {f: float(value) for f in formats}
    if isinstance(value, str):
        try:
            return {f: float(value) for f in formats}
        except ValueError:
            pass
        pairs = [p.split("=", 1) for p in value.split(",") if p.strip()]
        if any(len(p) != 2 for p in pairs):
            raise ConfigError(f"{what}: expected a number or fmt=value[,fmt=value], got {value!r}")
        value = {k.strip(): v for k, v in pairs}
    if not isinstance(value, dict):
        raise ConfigError(f"{what}: expected a number or fmt=value[,fmt=value], got {value!r}")
    unknown = sorted(set(value) - set(formats))
    if unknown:
        raise ConfigError(f"{what}: {', '.join(unknown)} not among the exported formats "
                          f"({', '.join(formats)})")
    try:
        return {k: float(v) for k, v in value.items()}
    except (TypeError, ValueError):
        raise ConfigError(f"{what}: values must be numbers, got {value!r}") from None


@dataclass
class Reference:
    """The validation images, their masks, and the Keras model's logits and figures."""

    images: np.ndarray
    masks: np.ndarray
    logits: np.ndarray
    num_classes: int
    ignore_index: int | None
    miou: float
    latency_ms: float

    @property
    def pred(self) -> np.ndarray:
        return self.logits.argmax(-1)


def reference(model, images: np.ndarray, masks: np.ndarray, num_classes: int,
              ignore_index: int | None) -> Reference:
    """Run the Keras model once on the validation images (batch 1, timed like the artifacts)."""
    from tqdm import tqdm

    logits, times = [], []
    for image in tqdm(images, desc="validate keras", unit="img", leave=False):
        start = time.perf_counter()
        logits.append(np.asarray(model(image[None].astype(np.float32), training=False)))
        times.append(time.perf_counter() - start)
    logits = np.concatenate(logits).astype(np.float32)
    cm = confusion_matrix(masks, logits.argmax(-1), num_classes, ignore_index)
    return Reference(images=images, masks=masks, logits=logits, num_classes=num_classes,
                     ignore_index=ignore_index, miou=mean_iou(cm), latency_ms=_median_ms(times))


@dataclass
class ValidationResult:
    """An artifact's figures on the validation images, and whether it passed."""

    format: str
    passed: bool
    reason: str
    images: int
    miou: float
    keras_miou: float
    miou_drop_pt: float
    agreement_pct: float
    iou_vs_keras: float
    max_abs_logit_diff: float | None  # None for a label-map output
    latency_ms: float
    threads: int | None
    tolerance: dict = field(default_factory=dict)
    per_class_iou: list[float | None] = field(default_factory=list)
    status: str = ""  # "passed" | "failed" | "not run"
    # The same checks in the artifact's further runtimes (`Artifact.also_runs_in`), by name.
    other_runtimes: dict[str, dict] = field(default_factory=dict)

    def __post_init__(self):
        self.status = self.status or ("passed" if self.passed else "failed")

    def to_dict(self) -> dict:
        return asdict(self)


def validate(artifact, ref: Reference, tolerance: Tolerance, threads: int | None = None,
             runner=None) -> ValidationResult:
    """Run `artifact` on every reference image and compare with the tolerance, in its runtime
    and then in each runtime of `artifact.also_runs_in` that is available here; the artifact
    passes only if it passes in all of them.

    An artifact that cannot be loaded or run fails ("could not run"); one whose ops the
    runtime does not implement (the Core ML reference interpreter) is "not run": never passed.
    """
    result = _validate_in(artifact, ref, tolerance, threads, runner)
    defects = getattr(artifact, "defects", [])
    if defects and result.status != "not run":
        result.passed, result.status = False, "failed"
        result.reason = f"{artifact.format}: {'; '.join(defects)}"
    if runner is not None:
        return result
    for name in getattr(artifact, "also_runs_in", ()):
        why = RUNTIMES.get(name).available()
        if why:
            result.other_runtimes[name] = {"status": "not run", "reason": why}
            continue
        other = _validate_in(artifact, ref, tolerance, threads, runtime=name)
        result.other_runtimes[name] = {
            "status": other.status, "agreement_pct": other.agreement_pct, "miou": other.miou,
            "miou_drop_pt": other.miou_drop_pt, "latency_ms": other.latency_ms,
            "reason": other.reason}
        if result.passed and not other.passed:
            result.passed, result.status = False, "failed"
            result.reason = f"in {name}: {other.reason}"
    return result


def _validate_in(artifact, ref, tolerance, threads, runner=None, runtime: str | None = None
                 ) -> ValidationResult:
    """`_validate` with `runner`, a runner of `runtime`, or the artifact's own runtime; a
    failure to load or run becomes the result."""
    try:
        if runtime is None:
            return _validate(artifact, ref, tolerance, threads, runner)
        runner = get_runner(runtime, artifact.path, threads)
        try:
            return _validate(artifact, ref, tolerance, threads, runner)
        finally:
            getattr(runner, "close", lambda: None)()
    except NotRunnableError as exc:
        return _not_passed(artifact.format, ref, tolerance, threads=threads, status="not run",
                           reason=f"{artifact.format}: not run: {exc}")
    except Exception as exc:  # noqa: BLE001 - a broken artifact is a failed validation
        return _not_passed(artifact.format, ref, tolerance, threads=threads, status="failed",
                           reason=f"{artifact.format}: could not run ({error_line(exc)})")


def _not_passed(name, ref, tolerance, *, threads, status, reason) -> ValidationResult:
    nan = float("nan")
    return ValidationResult(format=name, passed=False, reason=reason, images=0, miou=nan,
                            keras_miou=ref.miou, miou_drop_pt=nan, agreement_pct=nan,
                            iou_vs_keras=nan, max_abs_logit_diff=None, latency_ms=nan,
                            threads=threads, tolerance=asdict(tolerance), status=status)


def _validate(artifact, ref, tolerance, threads, runner) -> ValidationResult:
    from tqdm import tqdm

    runner = runner or artifact.runner(threads)
    preds, times, max_diff, finite = [], [], 0.0, True
    for i, image in enumerate(tqdm(ref.images, desc=f"validate {artifact.format}", unit="img",
                                   leave=False)):
        start = time.perf_counter()
        out = runner.run(image[None])
        times.append(time.perf_counter() - start)
        if out.ndim == 3:  # a label-map output: no logits to compare
            max_diff = None
            preds.append(out[0])
            continue
        finite &= bool(np.isfinite(out).all())
        max_diff = max(max_diff, float(np.abs(out[0] - ref.logits[i]).max()))
        preds.append(out[0].argmax(-1))
    pred = np.stack(preds)
    cm = confusion_matrix(ref.masks, pred, ref.num_classes, ref.ignore_index)
    miou = mean_iou(cm)
    agreement = float((pred == ref.pred).mean() * 100.0)
    iou_keras = mean_iou(confusion_matrix(ref.pred, pred, ref.num_classes))
    drop = (ref.miou - miou) * 100.0
    reason = ""
    output = artifact.output_kind
    name = artifact.format if output == "logits" else f"{artifact.format} ({output})"
    if not finite:
        reason = f"{name}: non-finite logits"
    elif tolerance.min_agreement is not None and agreement < tolerance.min_agreement:
        reason = (f"{name}: pixel agreement with Keras {agreement:.3f}% < "
                  f"{tolerance.min_agreement:g}%")
    elif not drop <= tolerance.max_miou_drop:
        reason = f"{name}: mIoU drop {drop:.2f} pt > {tolerance.max_miou_drop:g} pt"
    if reason and output == "labels-nearest":
        reason += ("; compared with Keras' full-resolution argmax: --min-agreement / "
                   "--max-miou-drop accept the nearest upsample's cost")
    return ValidationResult(
        format=artifact.format, passed=not reason, reason=reason, images=len(pred), miou=miou,
        keras_miou=ref.miou, miou_drop_pt=drop, agreement_pct=agreement, iou_vs_keras=iou_keras,
        max_abs_logit_diff=max_diff, latency_ms=_median_ms(times), threads=threads,
        tolerance=asdict(tolerance),
        per_class_iou=[None if np.isnan(v) else float(v) for v in iou_per_class(cm)])


def _median_ms(seconds: list[float]) -> float:
    # The first run pays for allocation and delegate set-up: leave it out when there are others.
    timed = seconds[1:] if len(seconds) > 1 else seconds
    return float(np.median(timed) * 1000.0) if timed else float("nan")
