"""The shapes generator: deterministic bytes, atomic and idempotent, a usable dataset."""

import json

import numpy as np
import pytest
import yaml

from zoo.data import ensure_shapes, read_mask, resolve_dataset, scan, synthetic
from zoo.errors import DataError

SMALL = {"n_train": 12, "n_val": 4, "size": 64}


def test_generation_is_deterministic(tmp_path, tree_hash):
    first = tree_hash(ensure_shapes(tmp_path / "a" / "shapes", **SMALL))
    second = tree_hash(ensure_shapes(tmp_path / "b" / "shapes", **SMALL))
    assert first == second
    assert len(first) == 2 * (12 + 4) + 1  # images + masks + VERSION


def test_a_different_seed_gives_different_data(tmp_path, tree_hash):
    first = tree_hash(ensure_shapes(tmp_path / "a", **SMALL))
    other = tree_hash(ensure_shapes(tmp_path / "b", **SMALL, seed=1))
    assert first["images/train/train_0000.png"] != other["images/train/train_0000.png"]


def test_second_call_reuses_the_folder(tmp_path, monkeypatch):
    root = ensure_shapes(tmp_path / "shapes", **SMALL)
    stamp = (root / "images" / "train" / "train_0000.png").stat().st_mtime_ns

    def fail(*args, **kwargs):
        raise AssertionError("regenerated")

    monkeypatch.setattr(synthetic, "generate_shapes", fail)
    assert ensure_shapes(root, **SMALL) == root
    assert (root / "images" / "train" / "train_0000.png").stat().st_mtime_ns == stamp


def test_interrupted_generation_leaves_nothing(tmp_path, monkeypatch):
    calls = {"n": 0}
    real = synthetic.draw_sample

    def crash_later(rng, size):
        calls["n"] += 1
        if calls["n"] > 5:
            raise KeyboardInterrupt
        return real(rng, size)

    monkeypatch.setattr(synthetic, "draw_sample", crash_later)
    with pytest.raises(KeyboardInterrupt):
        ensure_shapes(tmp_path / "shapes", **SMALL)
    assert list(tmp_path.iterdir()) == []  # no dataset, no temporary folder


def test_an_older_version_is_replaced_atomically(tmp_path, tree_hash):
    root = ensure_shapes(tmp_path / "shapes", **SMALL)
    marker = json.loads((root / "VERSION").read_text())
    marker["version"] = 0
    (root / "VERSION").write_text(json.dumps(marker))
    (root / "images" / "train" / "stale.png").write_bytes(b"old")
    ensure_shapes(root, **SMALL)
    assert not (root / "images" / "train" / "stale.png").exists()
    assert tree_hash(root) == tree_hash(ensure_shapes(tmp_path / "fresh", **SMALL))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fresh", "shapes"]


def test_a_foreign_folder_is_never_touched(tmp_path, tree_hash):
    root = tmp_path / "shapes"
    root.mkdir()
    (root / "mine.txt").write_text("user data")
    before = tree_hash(root)
    with pytest.raises(DataError, match="has no VERSION file"):
        ensure_shapes(root, **SMALL)
    assert tree_hash(root) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shapes"]


def test_unknown_parameter_is_rejected(tmp_path):
    with pytest.raises(DataError, match="unknown parameter"):
        ensure_shapes(tmp_path / "s", colours=3)


def test_generated_set_scans_clean_with_every_class_present(small_shapes):
    raw = yaml.safe_load(resolve_dataset("shapes", generate=False).source.read_text())
    raw["root"] = str(small_shapes)
    raw["generate"] = {"n_train": 24, "n_val": 8, "size": 96}
    path = small_shapes.parent / "shapes.yaml"
    path.write_text(yaml.safe_dump(raw))
    spec = resolve_dataset(str(path))
    train = scan(spec, "train")
    assert len(train.pairs) == 24 and len(scan(spec, "val").pairs) == 8
    assert (train.class_pixels > 0).all()
    share = train.class_pixels / train.class_pixels.sum()
    assert 0.4 < share[0] < 0.9  # background dominates but shapes are not rare
    masks = [read_mask(m, spec) for _, m in train.pairs]
    assert all(m.shape == (96, 96) and m.max() < 5 for m in masks)


def test_draw_sample_puts_shapes_in_the_mask_where_the_image_changes():
    image, mask = synthetic.draw_sample(np.random.default_rng(3), 96)
    assert image.shape == (96, 96, 3) and mask.shape == (96, 96)
    assert image.dtype == np.uint8 and mask.dtype == np.uint8
    assert 0 < (mask > 0).mean() < 1


def test_a_concurrent_generator_keeps_the_copy_that_finished_first(tmp_path, monkeypatch):
    root = tmp_path / "shapes"
    real = synthetic.generate_shapes
    stamp = {}

    def racing(out_dir, **params):
        real(out_dir, **params)
        monkeypatch.setattr(synthetic, "generate_shapes", real)
        ensure_shapes(root, **SMALL)  # another process finishes first
        stamp["first"] = (root / "VERSION").stat().st_mtime_ns

    monkeypatch.setattr(synthetic, "generate_shapes", racing)
    assert ensure_shapes(root, **SMALL) == root
    assert (root / "VERSION").stat().st_mtime_ns == stamp["first"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shapes"]
