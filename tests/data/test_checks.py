"""scan(): each bad input gives a one-line DataError naming the file; nothing on disk changes;
skip_bad skips and lists them."""

import re

import numpy as np
import pytest
import yaml
from PIL import Image

from zoo.data import resolve_dataset, scan
from zoo.errors import DataError


def _break_truncate(root):
    path = root / "images" / "train" / "train_001.png"
    path.write_bytes(path.read_bytes()[:60])
    return path, "corrupt image"


def _break_garbage_mask(root):
    path = root / "masks" / "train" / "train_001.png"
    path.write_bytes(b"this is not a png")
    return path, "corrupt mask"


def _break_empty(root):
    path = root / "images" / "train" / "train_001.png"
    path.write_bytes(b"")
    return path, r"empty file \(0 bytes\), expected an image"


def _break_no_mask(root):
    (root / "masks" / "train" / "train_001.png").unlink()
    return root / "images" / "train" / "train_001.png", "image without a mask"


def _break_no_image(root):
    (root / "images" / "train" / "train_001.png").unlink()
    return root / "masks" / "train" / "train_001.png", "mask without an image"


def _break_size(root):
    path = root / "masks" / "train" / "train_001.png"
    Image.fromarray(np.zeros((10, 12), np.uint8), mode="L").save(path)
    return path, r"mask is 12x10 but its image train_001.png is 32x24"


def _break_value(root):
    path = root / "masks" / "train" / "train_001.png"
    mask = np.asarray(Image.open(path)).copy()
    mask[:2, :3] = 7
    Image.fromarray(mask, mode="L").save(path)
    return path, r"mask value 7 at 6 pixels, expected 0\.\.2 or 255 \(ignore\)"


def _break_truncated_jpeg(root):
    path = root / "images" / "train" / "train_001.jpg"
    Image.fromarray(np.full((24, 32, 3), 90, np.uint8)).save(path, quality=95)
    (root / "images" / "train" / "train_001.png").unlink()
    path.write_bytes(path.read_bytes()[:-200])
    return path, "corrupt image"


def _break_jpeg_mask(root):
    path = root / "masks" / "train" / "train_001.png"
    Image.open(path).convert("RGB").save(path.with_suffix(".jpg"))
    path.unlink()
    return path.with_suffix(".jpg"), r"JPEG mask: expected a PNG"


BREAKERS = {
    "truncated png": _break_truncate,
    "garbage mask": _break_garbage_mask,
    "empty file": _break_empty,
    "image without mask": _break_no_mask,
    "mask without image": _break_no_image,
    "size mismatch": _break_size,
    "mask value out of range": _break_value,
    "truncated jpeg": _break_truncated_jpeg,
    "jpeg mask": _break_jpeg_mask,
}


@pytest.fixture
def dataset(tmp_path, make_folder):
    return make_folder(tmp_path / "d", splits={"train": 4, "val": 2}, num_classes=3)


def test_a_good_split_scans_clean_and_counts_pixels(dataset):
    result = scan(resolve_dataset(str(dataset)), "train")
    assert len(result.pairs) == 4 and result.skipped == []
    assert result.class_pixels.shape == (3,) and result.class_pixels.sum() == 4 * 24 * 32
    assert result.summary() == "4 pairs, 0 skipped"


@pytest.mark.parametrize("problem", list(BREAKERS))
def test_bad_input_raises_naming_the_file_and_changes_nothing(dataset, tree_hash, problem):
    spec = resolve_dataset(str(dataset))
    bad_path, expected = BREAKERS[problem](dataset)
    before = tree_hash(dataset)
    with pytest.raises(DataError) as err:
        scan(spec, "train")
    message = str(err.value)
    assert message.startswith(f"{bad_path}: ") and "\n" not in message
    assert re.search(expected, message), message
    assert tree_hash(dataset) == before


@pytest.mark.parametrize("problem", list(BREAKERS))
def test_skip_bad_skips_and_lists_the_file(dataset, tree_hash, problem):
    spec = resolve_dataset(str(dataset))
    bad_path, _ = BREAKERS[problem](dataset)
    before = tree_hash(dataset)
    result = scan(spec, "train", skip_bad=True)
    assert [path for path, _ in result.skipped] == [bad_path]
    assert [p[0].stem for p in result.pairs] == ["train_000", "train_002", "train_003"]
    assert tree_hash(dataset) == before


def test_every_problem_at_once_is_listed_and_the_error_counts_them(dataset):
    spec = resolve_dataset(str(dataset))
    _break_no_mask(dataset)
    size_path, _ = _break_size_of(dataset, "train_002")
    value_path = dataset / "masks" / "train" / "train_003.png"
    Image.fromarray(np.full((24, 32), 9, np.uint8), mode="L").save(value_path)
    with pytest.raises(DataError, match=r"\(2 more bad files; --skip-bad skips them\)"):
        scan(spec, "train")
    result = scan(spec, "train", skip_bad=True)
    assert len(result.pairs) == 1 and len(result.skipped) == 3
    assert {p.name for p, _ in result.skipped} == {"train_001.png", "train_002.png",
                                                   "train_003.png"}
    assert size_path in [p for p, _ in result.skipped]


def _break_size_of(root, stem):
    path = root / "masks" / "train" / f"{stem}.png"
    Image.fromarray(np.zeros((5, 5), np.uint8), mode="L").save(path)
    return path, "size"


def test_all_bad_even_with_skip_bad_is_an_error(dataset):
    spec = resolve_dataset(str(dataset))
    for path in (dataset / "masks" / "val").iterdir():
        path.write_bytes(b"")
    with pytest.raises(DataError, match="every file is bad"):
        scan(spec, "val", skip_bad=True)


def test_missing_dataset_names_the_roots_tried_and_the_download_command(tmp_path):
    path = tmp_path / "pets.yaml"
    raw = yaml.safe_load(resolve_dataset("oxford_pets").source.read_text())
    raw["root"] = ["here", "there"]
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(DataError) as err:
        scan(resolve_dataset(str(path)), "train")
    message = str(err.value)
    assert f"tried {tmp_path / 'here'}, {tmp_path / 'there'}" in message
    assert "python datasets/download.py oxford_pets" in message


def test_missing_split_folder_is_named(dataset, tree_hash):
    path = dataset / "dataset.yaml"
    path.write_text(yaml.safe_dump({"name": "d", "layout": "folder", "classes": ["a", "b", "c"],
                                    "root": ".", "splits": {"train": "train", "test": "test"}}))
    before = tree_hash(dataset)
    with pytest.raises(DataError, match=r"images/test: folder not found"):
        scan(resolve_dataset(str(path)), "test")
    assert tree_hash(dataset) == before


def test_empty_dataset_is_an_error(tmp_path):
    root = tmp_path / "empty"
    for sub in ("images/train", "masks/train"):
        (root / sub).mkdir(parents=True)
    with pytest.raises(DataError, match="no image/mask pairs found"):
        scan(resolve_dataset(str(root)), "train")


def test_values_equal_to_the_ignore_index_are_fine(dataset):
    spec = resolve_dataset(str(dataset))
    path = dataset / "masks" / "train" / "train_000.png"
    mask = np.asarray(Image.open(path)).copy()
    mask[0] = 255
    Image.fromarray(mask, mode="L").save(path)
    result = scan(spec, "train")
    assert result.ignored_pixels == 32 and len(result.pairs) == 4
