"""Pruning: per-layer targets from the sensitivity scan, the schedule, and zeros that survive
fine-tuning, resume and export."""

import json
import shutil

import numpy as np
import pytest

from zoo.compress.keep import weight_kernels
from zoo.compress.prune import MIN_WEIGHTS, allocate, magnitude_mask
from zoo.compress.run import compress
from zoo.config import load_config
from zoo.errors import ConfigError
from zoo.export.exporter import export, load_checkpoint

SPARSITY = 0.6


def _scan(curves: dict[str, tuple[int, list[float]]]) -> dict:
    return {"baseline": 0.5, "sparsities": [0.5, 0.9],
            "layers": {n: {"weights": w, "miou": m} for n, (w, m) in curves.items()}}


def test_allocation_spares_the_sensitive_layer_and_meets_the_overall_sparsity():
    scan = _scan({"robust": (3000, [0.5, 0.49]), "sensitive": (1000, [0.40, 0.10])})
    targets, _ = allocate(scan, 0.6)
    assert targets["robust"] > 0.75 > targets["sensitive"]
    assert (3000 * targets["robust"] + 1000 * targets["sensitive"]) / 4000 == pytest.approx(
        0.6, abs=1e-4)


def test_layers_the_scan_cannot_tell_apart_share_the_sparsity_evenly():
    flat = _scan({"a": (1000, [0.5, 0.5]), "b": (3000, [0.5, 0.5])})
    targets, _ = allocate(flat, 0.4)
    assert targets["a"] == pytest.approx(0.4, abs=1e-3)
    assert targets["b"] == pytest.approx(0.4, abs=1e-3)


def test_unreachable_sparsity_is_a_one_line_error():
    with pytest.raises(ConfigError, match=r"prune:0.97: the prunable layers reach at most 0.90"):
        allocate(_scan({"a": (1000, [0.5, 0.5])}), 0.97)


def test_magnitude_mask_removes_the_smallest_weights():
    w = np.array([[0.1, -3.0], [0.5, -0.2]], np.float32)
    assert magnitude_mask(w, 0.5).tolist() == [[0.0, 1.0], [1.0, 0.0]]


@pytest.fixture(scope="module")
def pruned_run(pruned_chain):
    """(parent, the pruned run): the first stage of the session's ``prune:0.6,cluster:8``
    chain, 2 epochs (shared with test_cluster, read only: tests/compress/conftest.py)."""
    parent, pruned, _ = pruned_chain
    return parent, pruned


def _sparsity(model) -> tuple[float, dict[str, float]]:
    kernels = [k for k in weight_kernels(model) if int(np.prod(k.shape)) >= MIN_WEIGHTS]
    per = {k.path: float((k.numpy() == 0).mean()) for k in kernels}
    sizes = {k.path: int(np.prod(k.shape)) for k in kernels}
    return sum(per[p] * sizes[p] for p in per) / sum(sizes.values()), per


def test_pruned_run_reaches_each_layer_target_and_records_the_scan(pruned_run):
    parent, run_dir = pruned_run
    cfg = load_config(run_dir / "config.yaml")
    assert cfg.compress.parent == parent.name and cfg.compress.methods == [f"prune:{SPARSITY}"]
    record = json.loads((run_dir / "prune.json").read_text())
    assert set(record["scan"]["layers"]) == set(record["targets"])
    assert (run_dir / "sensitivity.png").stat().st_size > 10_000
    history = json.loads((run_dir / "compress.json").read_text())
    assert [h["method"] for h in history] == [f"prune:{SPARSITY}"]
    overall, per = _sparsity(load_checkpoint(run_dir / "best.keras"))
    assert overall == pytest.approx(SPARSITY, abs=0.01)
    for path, target in record["targets"].items():
        assert per[path] == pytest.approx(target, abs=0.01), path
    # The parent is dense and untouched; init.keras is the dense start of the ramp.
    assert _sparsity(load_checkpoint(parent / "best.keras"))[0] < 0.01
    assert _sparsity(load_checkpoint(run_dir / "init.keras"))[0] < 0.01


def test_pruned_zeros_survive_resume(pruned_run, tmp_path):
    from zoo.train.loop import resume

    _, run_dir = pruned_run
    copy = tmp_path / run_dir.name
    shutil.copytree(run_dir, copy)
    before = {k.path: k.numpy() == 0 for k in weight_kernels(load_checkpoint(copy / "last.keras"))}
    state = json.loads((copy / "state.json").read_text())
    (copy / "state.json").write_text(json.dumps({**state, "epoch": 1}))
    resume(copy, tmp_path, verbose=0)
    after = load_checkpoint(copy / "last.keras")
    for kernel in weight_kernels(after):
        assert (kernel.numpy()[before[kernel.path]] == 0).all(), kernel.path
    assert _sparsity(after)[0] == pytest.approx(SPARSITY, abs=0.01)


def test_pruned_zeros_survive_every_export(pruned_run, tmp_path):
    from zoo.export import FORMATS

    _, run_dir = pruned_run
    result = export(run=str(run_dir), format="tflite,onnx", out=str(tmp_path / "artifacts"),
                    val_images=8)
    assert result.ok
    model = load_checkpoint(run_dir / "best.keras")
    zeros = sum(int((k.numpy() == 0).sum()) for k in weight_kernels(model)
                if int(np.prod(k.shape)) >= MIN_WEIGHTS)
    entries = {e["format"]: e for e in result.manifest["artifacts"]}
    for fmt, entry in entries.items():
        weights = FORMATS.get(fmt).read_weights(result.out_dir / entry["file"])
        stored = sum(int((w == 0).sum()) for w in weights.values() if w.ndim == 4)
        assert stored >= zeros, fmt
    # The float TFLite file stores the pruned kernels sparse (the converter's sparsity option).
    sparse = entries["tflite"]["details"]["sparse_weights"]
    assert sparse["sparse_tensors"] > 0, sparse


@pytest.mark.parametrize(("method", "message"), [
    ("prune:0", r"prune:S: S must be a sparsity in \(0, 1\)"),
    ("prune:1", r"prune:S: S must be a sparsity in \(0, 1\)"),
    ("prune:lots", r"prune:S: S must be a sparsity in \(0, 1\)"),
    ("prune", r"prune:S: S must be a sparsity in \(0, 1\)"),
    ("cluster:16,prune:0.5", "prune cannot follow cluster"),
    ("prune:0.5,prune:0.6", "prune cannot follow prune"),
    ("qat,prune:0.5", "prune cannot follow qat"),
])
def test_bad_prune_arguments_write_nothing(trained_run, tmp_path, method, message):
    _, parent = trained_run
    before = sorted(p.name for p in parent.iterdir())
    with pytest.raises(ConfigError, match=message):
        compress(parent, method, checkpoints_dir=tmp_path / "out", verbose=0)
    assert not (tmp_path / "out").exists()
    assert sorted(p.name for p in parent.iterdir()) == before


def test_a_pruned_run_cannot_be_pruned_again(pruned_run, tmp_path):
    _, run_dir = pruned_run
    with pytest.raises(ConfigError, match="prune cannot follow prune"):
        compress(run_dir, "prune:0.8", checkpoints_dir=tmp_path / "out", verbose=0)
    assert not (tmp_path / "out").exists()
