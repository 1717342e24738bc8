"""Magnitude pruning to an overall sparsity, per-layer targets from a sensitivity scan, reached
gradually during fine-tuning (Han et al. 2015, "Learning both weights and connections for
efficient neural networks": train, prune below a threshold, retrain).

Example::

    python compress.py --run checkpoints/mobileunet-... --method prune:0.75
    # -> prune.json (scan, per-layer targets), sensitivity.png, and a model 75 % zeros

1. **Sensitivity scan** (before fine-tuning): each prunable kernel (conv and dense kernels of
   at least `MIN_WEIGHTS` weights; the first conv of our models is smaller and stays dense) is
   pruned alone to each of `SCAN_SPARSITIES` by magnitude, and the model's mIoU measured on
   the run's validation images; the others stay dense.
2. **Per-layer targets**: one mIoU-drop budget D for all layers; each layer takes the highest
   sparsity its own scan keeps within D (linear between scanned points, on the running maximum
   of its drop so the curve is monotone), and D is bisected until the targets give the
   overall sparsity S over the prunable weights (weighted by layer size). A tiny slope
   (`TIE_BREAK` per unit sparsity) is added to every curve, so layers the scan cannot tell
   apart share the sparsity evenly instead of going all to the maximum. Sensitive layers
   (near the input, the classifier) thus get less, large redundant ones more.
3. **Polynomial schedule** (Zhu & Gupta 2017, "To prune, or not to prune"): the sparsity of
   each layer rises as ``s_t = s (1 - (1 - t / T)^3)`` over the first `RAMP` of the
   fine-tuning's steps, updated every `1 / UPDATES` of the ramp by magnitude; the rest of the
   fine-tuning recovers at the final sparsity, and only those epochs can become best.keras.
4. **Exact zeros**: a mask multiplies each kernel after every optimizer step (the variable's
   constraint), in this run and in every later stage of a chain (`cluster` keeps zero as its
   own shared value), so the exported weights are exactly as sparse.

The fine-tuning runs at the parent's learning rate (`lr_scale` 1.0), cosine to zero: pruning
75 % of mobileunet 0.5 on CamVid at a tenth of it recovered only to 0.373 mIoU from 0.410 in
4 epochs (train loss flat at 1.06), too slow for a fifth of the parent's epochs.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import keras
import numpy as np

from zoo.compress import register_method
from zoo.compress.keep import add_constraint, evaluate_miou, weight_kernels
from zoo.errors import ConfigError
from zoo.files import save_figure_atomic, write_text_atomic

MIN_WEIGHTS = 1024
SCAN_SPARSITIES = (0.3, 0.5, 0.7, 0.8, 0.9, 0.95)
TIE_BREAK = 1e-3  # mIoU (0..1) per unit sparsity: ties between flat curves share evenly
RAMP = 0.5        # fraction of the fine-tuning steps over which sparsity rises
UPDATES = 10      # mask updates during the ramp


def check_sparsity(argument: str | None) -> float:
    try:
        value = float(argument)
    except (TypeError, ValueError):
        value = math.nan
    if not 0.0 < value < 1.0:
        raise ConfigError(f"--method prune:S: S must be a sparsity in (0, 1), e.g. prune:0.75; "
                          f"got prune:{argument or ''}")
    return value


def prunable(model: keras.Model) -> list:
    return [k for k in weight_kernels(model) if int(np.prod(k.shape)) >= MIN_WEIGHTS]


def magnitude_mask(weights: np.ndarray, sparsity: float) -> np.ndarray:
    """1 where a weight is kept: the round(sparsity * n) smallest magnitudes are 0."""
    flat = np.abs(weights).ravel()
    k = int(round(sparsity * flat.size))
    mask = np.ones(flat.size, np.float32)
    if k > 0:
        mask[np.argpartition(flat, k - 1)[:k]] = 0.0
    return mask.reshape(weights.shape)


def sensitivity_scan(model: keras.Model, data, sparsities=SCAN_SPARSITIES) -> dict:
    """{"baseline": mIoU, "layers": {kernel path: {"weights": n, "miou": [per sparsity]}}}."""
    baseline = evaluate_miou(model, data)
    layers = {}
    for kernel in prunable(model):
        original = kernel.numpy()
        scores = []
        for s in sparsities:
            kernel.assign(original * magnitude_mask(original, s))
            scores.append(evaluate_miou(model, data))
        kernel.assign(original)
        layers[kernel.path] = {"weights": int(original.size), "miou": scores}
    return {"baseline": baseline, "sparsities": list(sparsities), "layers": layers}


def _allowed(curve: np.ndarray, sparsities: np.ndarray, budget: float) -> float:
    """The highest sparsity whose (monotone) drop is within `budget`, linear between points."""
    if budget >= curve[-1]:
        return float(sparsities[-1])
    i = int(np.argmax(curve > budget))
    if i == 0:
        return 0.0
    d0, d1 = curve[i - 1], curve[i]
    s0, s1 = sparsities[i - 1], sparsities[i]
    return float(s0 + (budget - d0) / (d1 - d0) * (s1 - s0))


def allocate(scan: dict, sparsity: float) -> tuple[dict[str, float], float]:
    """Per-layer target sparsities reaching `sparsity` overall, and the drop budget D."""
    grid = np.array([0.0, *scan["sparsities"]])
    names = list(scan["layers"])
    sizes = np.array([scan["layers"][n]["weights"] for n in names], float)
    curves = []
    for name in names:
        drop = np.maximum(scan["baseline"] - np.array([scan["baseline"],
                                                        *scan["layers"][name]["miou"]]), 0.0)
        curves.append(np.maximum.accumulate(drop) + TIE_BREAK * grid)

    def overall(budget):
        targets = np.array([_allowed(c, grid, budget) for c in curves])
        return float(targets @ sizes / sizes.sum()), targets

    top = max(float(c[-1]) for c in curves)
    reached, _ = overall(top)
    if reached < sparsity - 1e-6:
        raise ConfigError(f"--method prune:{sparsity}: the prunable layers reach at most "
                          f"{reached:.2f} overall (each at most {grid[-1]})")
    low, high = 0.0, top
    for _ in range(60):
        mid = 0.5 * (low + high)
        if overall(mid)[0] < sparsity:
            low = mid
        else:
            high = mid
    _, targets = overall(high)
    return dict(zip(names, (float(t) for t in targets), strict=True)), high


def write_plot(scan: dict, targets: dict[str, float], path: Path) -> None:
    """Left: each layer's val mIoU against its sparsity (the 8 most sensitive named); right:
    the chosen sparsity per layer, in graph order."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(scan["layers"])
    grid = [0.0, *scan["sparsities"]]
    curves = {n: [scan["baseline"], *scan["layers"][n]["miou"]] for n in names}
    worst = sorted(names, key=lambda n: min(curves[n]))[:8]
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5),
                                      gridspec_kw={"width_ratios": [1, 1.3]})
    colors = plt.cm.viridis(np.linspace(0, 1, len(names)))
    for color, name in zip(colors, names, strict=True):
        named = name in worst
        left.plot(grid, curves[name], color=color, lw=1.6 if named else 0.7,
                  alpha=1.0 if named else 0.5, marker="o" if named else None, ms=3,
                  label=name.removesuffix("/kernel") if named else None)
    left.set_xlabel("sparsity of the one pruned layer")
    left.set_ylabel("val mIoU")
    left.set_title(f"sensitivity scan ({len(names)} layers; colour = depth)")
    left.grid(alpha=0.3)
    left.legend(fontsize=7, title="most sensitive", title_fontsize=7)
    right.bar(range(len(names)), [targets[n] for n in names], color=colors)
    right.set_xticks(range(len(names)))
    right.set_xticklabels([n.removesuffix("/kernel") for n in names], rotation=90, fontsize=6)
    right.set_ylim(0, 1)
    right.set_ylabel("target sparsity")
    right.set_title("per-layer targets")
    right.grid(alpha=0.3, axis="y")
    save_figure_atomic(fig, path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def prune_method(model, data, sparsity: float):
    """Magnitude pruning to sparsity S, per-layer targets from a sensitivity scan."""
    scan = sensitivity_scan(model, data)
    targets, budget = allocate(scan, sparsity)
    record = {"sparsity": sparsity, "drop_budget": round(budget, 5),
              "prunable_layers": len(targets),
              "prunable_weights": int(sum(v["weights"] for v in scan["layers"].values())),
              "scan_images": len(data.val_images), "baseline_miou": round(scan["baseline"], 4)}
    text = json.dumps({**record, "targets": targets, "scan": scan}, indent=2)
    data.files["prune.json"] = lambda path: write_text_atomic(path, text)
    data.files["sensitivity.png"] = lambda path: write_plot(scan, targets, path)
    return model, record


class PruneSchedule(keras.callbacks.Callback):
    """Raises each layer's sparsity along the polynomial schedule (module docstring, 3)."""

    def __init__(self, masks: dict, targets: dict[str, float]):
        super().__init__()
        self.masks, self.targets = masks, targets
        self.ramp_steps, self.every, self.final_epoch = 1, 1, 0

    def on_train_begin(self, logs=None):
        steps, epochs = int(self.params["steps"]), int(self.params["epochs"])
        self.ramp_steps = max(1, int(round(RAMP * steps * epochs)))
        self.every = max(1, self.ramp_steps // UPDATES)
        self.final_epoch = math.ceil(self.ramp_steps / steps) - 1

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        if step > self.ramp_steps or (step % self.every and step != self.ramp_steps):
            return
        progress = 1.0 - (1.0 - step / self.ramp_steps) ** 3
        for path, (kernel, mask) in self.masks.items():
            keep = magnitude_mask(kernel.numpy(), self.targets[path] * progress)
            keep *= mask.numpy()  # once pruned, always pruned
            mask.assign(keep)
            kernel.assign(kernel.numpy() * keep)


def keep_zeros(model, sparsity: float, current: bool, run_dir: Path) -> list:
    """Every kernel keeps its zeros (a mask, the variable's constraint); in the pruning run
    itself the schedule raises the targets of prune.json."""
    import tensorflow as tf

    masks = {}
    for kernel in weight_kernels(model):
        values = kernel.numpy()
        if not current and not (values == 0).any():
            continue
        mask = tf.Variable((values != 0).astype(np.float32), trainable=False,
                           name=f"{kernel.path.replace('/', '_')}_mask")
        add_constraint(kernel, lambda w, mask=mask: w * tf.cast(mask, w.dtype))
        masks[kernel.path] = (kernel, mask)
    if not current:
        return []
    targets = json.loads((run_dir / "prune.json").read_text())["targets"]
    missing = sorted(set(targets) - set(masks))
    if missing:
        raise ConfigError(f"{run_dir / 'prune.json'}: no kernel {missing[0]} in the model")
    return [PruneSchedule({p: masks[p] for p in targets}, targets)]


register_method("prune", lr_scale=1.0, check=check_sparsity, stage=1,
                constrain=keep_zeros)(prune_method)
