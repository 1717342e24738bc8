"""One pass over a split's files before training, so bad data fails in seconds, not hours.

Checks: dataset missing or empty, image without mask, mask without image, image/mask size
mismatch, mask values that are neither a class nor the ignore index, unreadable or corrupt
files. Nothing on disk is changed.

Example:
    >>> result = scan(resolve_dataset("camvid"), "train")
    >>> len(result.pairs), result.skipped
    (367, [])
    >>> scan(spec, "train")                  # a bad file raises, naming it
    DataError: .../masks/train/b.png: mask value 7 at 12 pixels, expected 0..4 or 255 (ignore)
    >>> scan(spec, "train", skip_bad=True).skipped
    [(PosixPath('.../masks/train/b.png'), 'mask value 7 at 12 pixels, expected ...')]
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from zoo.data.decode import image_size, read_mask
from zoo.data.readers import Pair, list_files
from zoo.data.spec import DatasetSpec
from zoo.errors import DataError


@dataclass
class ScanResult:
    """Good pairs of a split, skipped files with reasons, and pixel counts per class.

    `class_pixels[c]` counts the pixels of class c over the good pairs (for class weights);
    `ignored_pixels` counts ignore-index pixels.
    """

    pairs: list[Pair]
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    class_pixels: np.ndarray | None = None
    ignored_pixels: int = 0

    def summary(self) -> str:
        """One line: how many pairs are usable and how many files were skipped."""
        return f"{len(self.pairs)} pairs, {len(self.skipped)} skipped"


def scan(spec: DatasetSpec, split: str, skip_bad: bool = False, workers: int | None = None
         ) -> ScanResult:
    """Check every file of a split; raise DataError on the first problem unless skip_bad.

    Masks are decoded fully (their values matter); images are decoded enough to know they
    are not truncated. Files are read on `workers` threads (decoders release the GIL).

    Example:
        >>> scan(resolve_dataset("shapes"), "val").summary()
        '96 pairs, 0 skipped'
    """
    listing = list_files(spec, split)
    if not listing.pairs and not listing.problems:
        raise DataError(f"dataset {spec.name!r} split {split!r} under {spec.root}: no image/mask "
                        "pairs found, expected images and masks there (see datasets/README.md)")
    workers = workers or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        checked = list(pool.map(lambda pair: _check_pair(pair, spec), listing.pairs))
    problems = list(listing.problems)
    good: list[Pair] = []
    counts = np.zeros(256, dtype=np.int64)
    for pair, (problem, pair_counts) in zip(listing.pairs, checked, strict=True):
        if problem is None:
            good.append(pair)
            counts += pair_counts
        else:
            problems.append(problem)
    if problems and not skip_bad:
        path, reason = problems[0]
        more = f" ({len(problems) - 1} more bad files; --skip-bad skips them)" \
            if len(problems) > 1 else ""
        raise DataError(f"{path}: {reason}{more}")
    if not good:
        raise DataError(f"dataset {spec.name!r} split {split!r} under {spec.root}: every file "
                        f"is bad ({len(problems)} skipped), no pairs left to use")
    ignored = int(counts[spec.ignore_index]) if spec.ignore_index is not None else 0
    return ScanResult(pairs=good, skipped=problems, class_pixels=counts[: spec.num_classes],
                      ignored_pixels=ignored)


def _check_pair(pair: Pair, spec: DatasetSpec) -> tuple[tuple[Path, str] | None, np.ndarray]:
    try:
        return _check_pair_files(pair, spec)
    except OSError as e:  # vanished or unreadable between listing and reading
        return (Path(e.filename or pair[0]), f"unreadable file ({e.strerror or e})"), \
            np.zeros(256, dtype=np.int64)


def _check_pair_files(pair: Pair, spec: DatasetSpec
                      ) -> tuple[tuple[Path, str] | None, np.ndarray]:
    image_path, mask_path = pair
    empty = np.zeros(256, dtype=np.int64)
    for path, kind in ((image_path, "an image"), (mask_path, "a mask")):
        if path.stat().st_size == 0:
            return (path, f"empty file (0 bytes), expected {kind}"), empty
    try:
        size = image_size(image_path)
    except DataError as e:
        return (image_path, _reason(e, image_path)), empty
    try:
        mask = read_mask(mask_path, spec)
    except DataError as e:
        return (mask_path, _reason(e, mask_path)), empty
    if mask.shape != size:
        return (mask_path, f"mask is {mask.shape[1]}x{mask.shape[0]} but its image "
                           f"{image_path.name} is {size[1]}x{size[0]} (WxH), expected the "
                           "same size"), empty
    counts = np.bincount(mask.ravel(), minlength=256)
    bad = [v for v in np.flatnonzero(counts[spec.num_classes:]) + spec.num_classes
           if v != spec.ignore_index]
    if bad:
        ignore = f" or {spec.ignore_index} (ignore)" if spec.ignore_index is not None else ""
        value = int(bad[0])
        return (mask_path, f"mask value {value} at {int(counts[value])} pixels, expected "
                           f"0..{spec.num_classes - 1}{ignore}"), empty
    return None, counts


def _reason(error: DataError, path: Path) -> str:
    """The message of a DataError without its leading 'path: '."""
    text = str(error)
    prefix = f"{path}: "
    return text[len(prefix):] if text.startswith(prefix) else text
