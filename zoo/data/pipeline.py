"""The tf.data input pipeline: decode + albumentations in parallel, batched, prefetched.

Batches are (image float32 (B, H, W, 3) in 0..255, mask int32 (B, H, W)); the models
rescale inside the graph, so the pipeline does no normalisation. Decoding and augmentation
are NumPy/OpenCV code run through `tf.numpy_function` on tf.data's parallel map.

Determinism: every sample gets its own seed from a seeded `Dataset.random` stream, and the
augmentation is re-seeded with it before it runs, so with the same `seed` the same
images come with the same augmentations in the same order, however many threads run; each
pass over the data (epoch) draws new seeds.

Example:
    >>> spec = resolve_dataset("shapes")
    >>> ds = make_dataset(spec, "train", (128, 128), batch_size=8, augment={}, shuffle=True,
    ...                   seed=0)
    >>> images, masks = next(iter(ds))
    >>> images.shape, images.dtype, masks.shape, masks.dtype
    (TensorShape([8, 128, 128, 3]), tf.float32, TensorShape([8, 128, 128]), tf.int32)
"""

from __future__ import annotations

import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import tensorflow as tf

from zoo.data.augment import build_augment, build_val_transform, check_input_size, resolve_augment
from zoo.data.checks import ScanResult, scan
from zoo.data.decode import read_image, read_mask
from zoo.data.readers import Pair, list_pairs
from zoo.data.spec import DatasetSpec
from zoo.errors import ConfigError

log = logging.getLogger(__name__)


class SampleLoader:
    """Load and transform sample `index` of a pair list; callable from many threads.

    Each thread builds its own albumentations Compose, because re-seeding a shared one
    from two threads at once would mix their random streams.

    Example:
        >>> loader = SampleLoader(pairs, spec, (128, 128), augment={})
        >>> image, mask = loader(0, sample_seed=42)
    """

    def __init__(self, pairs: list[Pair], spec: DatasetSpec, input_size: tuple[int, int],
                 augment: dict | str | None = None):
        self.pairs = list(pairs)
        self.spec = spec
        self.input_size = check_input_size(input_size)
        self.augment = resolve_augment(augment)
        self._local = threading.local()

    def transform(self):
        """This thread's Compose (augmentation, or resize only when augment is None)."""
        compose = getattr(self._local, "compose", None)
        if compose is None:
            if self.augment is None:
                compose = build_val_transform(self.input_size)
            else:
                compose = build_augment(self.augment, self.input_size, self.spec.fill_mask)
            self._local.compose = compose
        return compose

    def __call__(self, index, sample_seed=None) -> tuple[np.ndarray, np.ndarray]:
        image_path, mask_path = self.pairs[int(index)]
        image = read_image(image_path)
        mask = read_mask(mask_path, self.spec)
        compose = self.transform()
        if self.augment is not None and sample_seed is not None:
            compose.set_random_seed(int(sample_seed) % (2**32))
        out = compose(image=image, mask=mask)
        return np.ascontiguousarray(out["image"], dtype=np.uint8), \
            np.ascontiguousarray(out["mask"], dtype=np.uint8)


def make_dataset(spec: DatasetSpec, split: str, input_size: tuple[int, int], batch_size: int,
                 augment: dict | str | None = None, shuffle: bool = False,
                 seed: int | None = None, skip_bad: bool = False, limit: int | None = None,
                 repeat: bool = False, drop_remainder: bool = False,
                 scan_result: ScanResult | None = None) -> tf.data.Dataset:
    """A batched tf.data.Dataset of (image float32 0..255, mask int32) for one split.

    The split is scanned first (`checks.scan`; pass `scan_result` to reuse a scan).
    `augment=None` resizes only (validation); `{}` or "default" uses the default
    augmentation. `limit` keeps the first N pairs (sorted by name). `input_size` is (h, w).

    Example:
        >>> val = make_dataset(spec, "val", (224, 288), batch_size=8)
        >>> train = make_dataset(spec, "train", (224, 288), 8, augment={}, shuffle=True,
        ...                      seed=1, repeat=True, drop_remainder=True)
    """
    height, width = check_input_size(input_size)
    if int(batch_size) < 1:
        raise ConfigError(f"batch_size: expected a positive integer, got {batch_size}")
    if limit is not None and int(limit) < 1:
        raise ConfigError(f"limit: expected a positive integer or None, got {limit}")
    result = scan_result if scan_result is not None else scan(spec, split, skip_bad=skip_bad)
    for path, reason in result.skipped:
        log.warning("skipped %s: %s", path, reason)
    pairs = result.pairs[: limit or None]
    loader = SampleLoader(pairs, spec, (height, width), augment)

    def load(index, sample_seed):
        image, mask = tf.numpy_function(loader, [index, sample_seed], [tf.uint8, tf.uint8],
                                        stateful=False, name="load_sample")
        image.set_shape((height, width, 3))
        mask.set_shape((height, width))
        return tf.cast(image, tf.float32), tf.cast(mask, tf.int32)

    indices = tf.data.Dataset.range(len(pairs))
    if shuffle:
        indices = indices.shuffle(len(pairs), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        indices = indices.repeat()
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
    ds = tf.data.Dataset.zip((indices, seeds))
    ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE,
                deterministic=True if seed is not None else None)
    ds = ds.batch(int(batch_size), drop_remainder=drop_remainder)
    return ds.prefetch(tf.data.AUTOTUNE)


def load_split_arrays(spec: DatasetSpec, split: str, input_size: tuple[int, int],
                      limit: int | None = None, check: bool = True
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Validation-preprocessed arrays of a split: images uint8 (N, H, W, 3), masks (N, H, W).

    For export calibration and validation, where a plain array is simpler than a dataset.
    `check=False` skips the scan (the caller already trusts the files).

    Example:
        >>> images, masks = load_split_arrays(spec, "val", (224, 288), limit=20)
        >>> images.shape, masks.dtype
        ((20, 224, 288, 3), dtype('uint8'))
    """
    pairs = scan(spec, split).pairs if check else list_pairs(spec, split)
    pairs = pairs[: limit or None]
    loader = SampleLoader(pairs, spec, input_size, augment=None)
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        samples = list(pool.map(loader, range(len(pairs))))
    height, width = loader.input_size
    images = np.zeros((len(samples), height, width, 3), dtype=np.uint8)
    masks = np.zeros((len(samples), height, width), dtype=np.uint8)
    for i, (image, mask) in enumerate(samples):
        images[i], masks[i] = image, mask
    return images, masks
