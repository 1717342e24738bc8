"""Weight sharing: k-means with linear initialisation, clusters kept through fine-tuning, and the
Deep Compression chain (prune, then cluster) as two run folders."""

import json

import keras
import numpy as np
import pytest

from zoo.compress import METHODS
from zoo.compress.cluster import keep_shared, kmeans_1d, share
from zoo.compress.keep import weight_kernels
from zoo.compress.run import compress
from zoo.config import load_config
from zoo.errors import ConfigError
from zoo.export.exporter import export, load_checkpoint

K = 8
SPARSITY = 0.6  # the chain of tests/compress/conftest.py: prune:0.6,cluster:8


def test_kmeans_starts_linear_and_converges_to_the_cluster_means():
    values = np.concatenate([np.full(50, -1.0), np.full(30, 0.2), np.full(5, 4.0)])
    values += np.random.default_rng(0).normal(0, 0.01, values.size)
    centroids, assign = kmeans_1d(values, 3)
    assert np.allclose(sorted(centroids), [-1.0, 0.2, 4.0], atol=0.01)
    for c in range(3):
        assert centroids[c] == pytest.approx(values[assign == c].mean(), abs=1e-6)


def test_shared_kernel_has_k_values_and_a_pruned_one_keeps_its_zeros():
    rng = np.random.default_rng(0)
    w = rng.normal(0, 1, (3, 3, 16, 32)).astype(np.float32)
    assert np.unique(share(w, 16)).size == 16
    w[rng.random(w.shape) < 0.7] = 0.0
    shared = share(w, 16)
    assert np.unique(shared).size <= 16 and 0.0 in shared
    assert ((shared == 0) == (w == 0)).all()


def test_a_training_step_keeps_the_clusters():
    rng = np.random.default_rng(1)
    inputs = keras.Input((8, 8, 4))
    model = keras.Model(inputs, keras.layers.Conv2D(16, 3, padding="same")(inputs))
    kernel = model.layers[-1].kernel
    w = share(np.where(rng.random(kernel.shape) < 0.5, 0,
                       rng.normal(0, 1, kernel.shape)).astype(np.float32), K)
    kernel.assign(w)
    keep_shared(model, K, True, None)
    model.compile(keras.optimizers.Adam(0.05), "mse")
    model.fit(rng.normal(size=(8, 8, 8, 4)), rng.normal(size=(8, 8, 8, 16)), epochs=2,
              verbose=0)
    after = kernel.numpy()
    assert not np.allclose(after, w)  # the centroids moved ...
    assert np.unique(after).size <= K and ((after == 0) == (w == 0)).all()  # ... together
    _, before_ids = np.unique(w, return_inverse=True)
    _, after_ids = np.unique(after, return_inverse=True)
    pairs = set(zip(before_ids.ravel().tolist(), after_ids.ravel().tolist(), strict=True))
    assert len(pairs) == len(set(before_ids.ravel().tolist()))  # same assignment


@pytest.fixture(scope="module")
def chain(pruned_chain):
    """(parent, pruned stage, clustered stage) of ``prune:0.6,cluster:8``, made by one
    `compress` call (the session's chain, shared with test_prune: tests/compress/conftest.py)."""
    return pruned_chain


def test_the_chain_is_one_run_per_stage_with_its_provenance(chain):
    parent, middle, last = chain
    first, second = load_config(middle / "config.yaml"), load_config(last / "config.yaml")
    assert first.compress.parent == parent.name
    assert first.compress.methods == [f"prune:{SPARSITY}"]
    assert second.compress.methods == [f"prune:{SPARSITY}", f"cluster:{K}"]
    # Each stage scales the first parent's learning rate by its own method's factor.
    base = load_config(parent / "config.yaml").train.lr
    assert first.train.lr == pytest.approx(base * METHODS.get("prune").lr_scale)
    assert second.train.lr == pytest.approx(base * METHODS.get("cluster").lr_scale)
    history = json.loads((last / "compress.json").read_text())
    assert [h["method"] for h in history] == [f"prune:{SPARSITY}", f"cluster:{K}"]
    assert history[1]["clustered_kernels"] > 20 and history[1]["folded_batchnorm"] > 0


def test_clustered_kernels_keep_k_values_and_the_pruned_zeros(chain):
    _, middle, last = chain
    pruned = {k.path: k.numpy() for k in weight_kernels(load_checkpoint(middle / "best.keras"))}
    model = load_checkpoint(last / "best.keras")
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in model.layers)
    zeros = 0
    for kernel in weight_kernels(model):
        values = kernel.numpy()
        if values.size > K:
            assert np.unique(values).size <= K, kernel.path
        if kernel.path in pruned and pruned[kernel.path].size >= 1024:
            assert (values[pruned[kernel.path] == 0] == 0).all(), kernel.path
            zeros += int((values == 0).sum())
    assert zeros > 0


def test_clustered_model_exports_with_k_values_per_kernel(chain, tmp_path):
    import onnx
    from onnx import numpy_helper

    _, _, last = chain
    result = export(run=str(last), format="onnx", out=str(tmp_path / "artifacts"),
                    val_images=8)
    assert result.ok
    (entry,) = result.manifest["artifacts"]
    kernels = [numpy_helper.to_array(t) for t in onnx.load(str(result.out_dir / entry["file"])
                                                           ).graph.initializer]
    kernels = [k for k in kernels if k.ndim == 4 and k.size > K]
    assert len(kernels) > 20 and all(np.unique(k).size <= K for k in kernels)


@pytest.mark.parametrize("argument", ["3", "1", "512", "x", None])
def test_bad_cluster_counts_write_nothing(trained_run, tmp_path, argument):
    _, parent = trained_run
    method = "cluster" if argument is None else f"cluster:{argument}"
    with pytest.raises(ConfigError, match="cluster:K: K must be a power of two from 2 to 256"):
        compress(parent, method, checkpoints_dir=tmp_path / "out", verbose=0)
    assert not (tmp_path / "out").exists()
