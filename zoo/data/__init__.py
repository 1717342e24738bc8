"""Datasets: specs, readers, checks, the synthetic set, augmentation and the tf.data pipeline.

Names are imported lazily, so `import zoo.data` (or `zoo.data.spec`) does not pull in
TensorFlow or albumentations until the pipeline or augmentation is used.

Example:
    >>> from zoo.data import make_dataset, resolve_dataset, scan
    >>> spec = resolve_dataset("shapes")
    >>> scan(spec, "train").summary()
    '512 pairs, 0 skipped'
    >>> ds = make_dataset(spec, "train", (128, 128), batch_size=8, augment={}, seed=0)
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "DatasetSpec": "spec",
    "Download": "spec",
    "available_datasets": "spec",
    "folder_spec": "spec",
    "load_spec": "spec",
    "resolve_dataset": "spec",
    "spec_from_dict": "spec",
    "detect_layout": "layouts",
    "read_image": "decode",
    "read_mask": "decode",
    "Listing": "readers",
    "list_files": "readers",
    "list_pairs": "readers",
    "split_stems": "readers",
    "ScanResult": "checks",
    "scan": "checks",
    "ensure_shapes": "synthetic",
    "generate_shapes": "synthetic",
    "DEFAULT_AUGMENT": "augment",
    "build_augment": "augment",
    "build_val_transform": "augment",
    "resolve_augment": "augment",
    "SampleLoader": "pipeline",
    "load_split_arrays": "pipeline",
    "make_dataset": "pipeline",
    "measure_throughput": "throughput",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'zoo.data' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"zoo.data.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
