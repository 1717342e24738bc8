"""What a finished run leaves for people: curves.png, samples.png and metrics.json."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from zoo.files import save_figure_atomic


def read_log(path: Path) -> list[dict[str, float]]:
    """Rows of the CSV log as floats (one per epoch)."""
    with open(path, newline="") as handle:
        return [{k: float(v) for k, v in row.items() if v not in ("", None)}
                for row in csv.DictReader(handle)]


def write_curves(log_csv: Path, out: Path) -> None:
    """Loss and mIoU per epoch, training and validation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_log(log_csv)
    epochs = [int(r["epoch"]) + 1 for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key in zip(axes, ("loss", "miou"), strict=True):
        for prefix, style in (("", "-"), ("val_", "--")):
            values = [r.get(prefix + key, np.nan) for r in rows]
            ax.plot(epochs, values, style, marker="o", ms=3, label=f"{prefix or 'train_'}{key}")
        ax.set_xlabel("epoch")
        ax.set_title(key)
        ax.grid(alpha=0.3)
        ax.legend()
    save_figure_atomic(fig, out, dpi=100, bbox_inches="tight")
    plt.close(fig)


def colorize(mask: np.ndarray, num_classes: int, ignore_index: int | None) -> np.ndarray:
    """RGB image of a label map (a fixed palette; ignored pixels black)."""
    rng = np.random.default_rng(7)
    palette = rng.integers(40, 256, (max(num_classes, 1), 3)).astype(np.uint8)
    out = palette[np.clip(mask, 0, num_classes - 1)]
    if ignore_index is not None:
        out[mask == ignore_index] = 0
    return out


def write_samples(images: np.ndarray, truth: np.ndarray, pred: np.ndarray, num_classes: int,
                  ignore_index: int | None, out: Path) -> None:
    """Validation images with the true and the predicted masks overlaid, one row each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(images)
    fig, axes = plt.subplots(n, 3, figsize=(9, 3 * n), squeeze=False)
    for i in range(n):
        image = images[i].astype(np.float32)
        for j, (title, mask) in enumerate((("image", None), ("truth", truth[i]),
                                           ("prediction", pred[i]))):
            shown = image if mask is None else 0.45 * image + 0.55 * colorize(
                mask, num_classes, ignore_index)
            axes[i, j].imshow(shown.astype(np.uint8))
            axes[i, j].set_title(title if i == 0 else "")
            axes[i, j].axis("off")
    save_figure_atomic(fig, out, dpi=100, bbox_inches="tight")
    plt.close(fig)
