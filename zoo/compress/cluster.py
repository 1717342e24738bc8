"""Weight sharing (Deep Compression, Han et al. 2016, "Deep compression: compressing deep neural
networks with pruning, trained quantization and Huffman coding", section 3): each kernel's
weights take one of K shared values, found by k-means and then fine-tuned.

Example::

    python compress.py --run checkpoints/mobileunet-... --method cluster:16
    python compress.py --run checkpoints/mobileunet-... --method prune:0.75,cluster:16

- BatchNorm is folded into the convolutions first (`zoo.compress.fold`): a converter folding
  it later would scale each output channel and the K values would not survive into the file.
- Per kernel (every conv and dense kernel of more than K weights), 1-D k-means with **linear
  initialisation** of the centroids between the kernel's min and max (the paper's best:
  large weights, few but important, keep centroids of their own). A pruned kernel keeps zero
  as a value of its own and clusters its non-zero weights into K - 1 centroids.
- **Fine-tuning with fixed assignments**: after every optimizer step each weight is set to the
  mean of its cluster (the variable's constraint; zero stays zero). The paper sums a
  cluster's gradients into its centroid under SGD; with Adam's per-weight steps the centroid
  moves by the mean of its members' steps instead. Assignments are read back from the values
  (np.unique), so a resumed run or a later stage keeps them.
- Export needs nothing special: the kernels hold K distinct values, which Core ML carries as a
  log2 K-bit palette (`constexpr_lut_to_dense`), and entropy coding (the download size, the
  Huffman size of the weights in the manifest) turns into bytes.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from zoo.compress import register_method
from zoo.compress.fold import fold_batchnorm
from zoo.compress.keep import add_constraint, weight_kernels
from zoo.errors import ConfigError

KMEANS_ITERATIONS = 30


def check_clusters(argument: str | None) -> int:
    try:
        value = int(argument)
    except (TypeError, ValueError):
        value = 0
    if not (2 <= value <= 256 and value & (value - 1) == 0):
        raise ConfigError(f"--method cluster:K: K must be a power of two from 2 to 256 (K values "
                          f"per kernel, log2 K bits), e.g. cluster:16; got cluster:"
                          f"{argument or ''}")
    return value


def kmeans_1d(values: np.ndarray, k: int, iterations: int = KMEANS_ITERATIONS
              ) -> tuple[np.ndarray, np.ndarray]:
    """(centroids, assignment) of 1-D `values` in at most `k` clusters, centroids initialised
    linearly between min and max; an empty cluster moves to the worst-served value (the
    usual k-means repair), so every centroid stays in use."""
    ordered = np.sort(values.astype(np.float64))
    low, high = float(ordered[0]), float(ordered[-1])
    k = min(k, np.unique(ordered).size)
    centroids = np.linspace(low, high, k) if k > 1 else np.array([ordered.mean()])
    for _ in range(iterations):
        edges = 0.5 * (centroids[1:] + centroids[:-1])
        bounds = np.concatenate([[0], np.searchsorted(ordered, edges), [ordered.size]])
        counts = np.diff(bounds)
        sums = np.array([ordered[a:b].sum() for a, b in zip(bounds[:-1], bounds[1:],
                                                              strict=True)])
        new = np.where(counts > 0, sums / np.maximum(counts, 1), centroids)
        for empty in np.flatnonzero(counts == 0):
            served = new[np.searchsorted(0.5 * (new[1:] + new[:-1]), ordered)]
            new[empty] = ordered[np.argmax(np.abs(ordered - served))]
        new = np.sort(new)
        if np.allclose(new, centroids, rtol=0, atol=1e-9):
            centroids = new
            break
        centroids = new
    edges = 0.5 * (centroids[1:] + centroids[:-1])
    return centroids.astype(np.float32), np.searchsorted(edges, values).astype(np.int32)


def share(weights: np.ndarray, k: int) -> np.ndarray:
    """`weights` with each value replaced by its centroid: at most `k` distinct values, zero
    one of them when the kernel is pruned."""
    flat = weights.ravel().astype(np.float64)
    pruned = flat == 0
    out = np.zeros_like(flat)
    if pruned.any():
        if (~pruned).any():
            centroids, assign = kmeans_1d(flat[~pruned], k - 1)
            out[~pruned] = centroids[assign]
    else:
        centroids, assign = kmeans_1d(flat, k)
        out = centroids[assign].astype(np.float64)
    return out.astype(np.float32).reshape(weights.shape)


def cluster_method(model, data, k: int):
    """Weight sharing: k-means (linear init) per kernel to K values, centroids fine-tuned."""
    model, plan = fold_batchnorm(model)
    clustered, error = 0, []
    for kernel in weight_kernels(model):
        values = kernel.numpy()
        if values.size <= k:
            continue
        shared = share(values, k)
        error.append(float(np.linalg.norm(shared - values) / max(np.linalg.norm(values), 1e-12)))
        kernel.assign(shared)
        clustered += 1
    return model, {"clusters": k, "bits": int(math.log2(k)), "clustered_kernels": clustered,
                   "folded_batchnorm": len(plan.folded),
                   "mean_relative_error": round(float(np.mean(error)) if error else 0.0, 5)}


def keep_shared(model, k: int, current: bool, run_dir: Path) -> list:
    """Each kernel of at most `k` distinct values (more than `k` weights) keeps its clusters:
    after each step, every weight becomes its cluster's mean, zero stays zero."""
    import tensorflow as tf

    for kernel in weight_kernels(model):
        values = kernel.numpy()
        if values.size <= k:
            continue
        unique, inverse = np.unique(values.ravel(), return_inverse=True)
        if unique.size > k:
            continue
        index = tf.constant(inverse.astype(np.int32))
        count = int(unique.size)
        nonzero = tf.constant((unique != 0).astype(np.float32))

        def project(w, index=index, count=count, nonzero=nonzero):
            means = tf.math.unsorted_segment_mean(tf.reshape(w, [-1]), index, count)
            means = means * tf.cast(nonzero, w.dtype)
            return tf.reshape(tf.gather(means, index), tf.shape(w))

        add_constraint(kernel, project)
    return []


register_method("cluster", lr_scale=0.1, check=check_clusters, stage=2,
                constrain=keep_shared)(cluster_method)
