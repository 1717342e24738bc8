"""The mask follows the image through every geometric transform, eagerly and inside tf.data.

A grey image with a red rectangle (class 1) goes through each transform; in the output,
every pixel away from an edge must carry the class its colour says: grey = 0, red = 1, and
black (padding from outside the image) = the ignore index.
"""

import numpy as np
import pytest
from PIL import Image

from zoo.data import (
    DEFAULT_AUGMENT,
    build_augment,
    build_val_transform,
    make_dataset,
    resolve_augment,
    resolve_dataset,
)
from zoo.data.pipeline import SampleLoader
from zoo.errors import ConfigError

GREY, RED, BLACK = (100, 100, 100), (250, 30, 30), (0, 0, 0)
IGNORE = 255
SIZE = (48, 64)  # output (h, w), deliberately not square and not the input's aspect


def scene(height=60, width=90):
    image = np.zeros((height, width, 3), np.uint8) + np.uint8(GREY)
    mask = np.zeros((height, width), np.uint8)
    image[12:40, 15:50] = RED  # off-centre, so flips and crops move it
    mask[12:40, 15:50] = 1
    return image, mask


def only(**steps):
    """An augmentation config with every step off except `steps`."""
    return {**{key: 0 for key in DEFAULT_AUGMENT}, **steps}


GEOMETRIC = {
    "hflip": only(hflip=1.0),
    "vflip": only(vflip=1.0),
    "affine": only(affine={"p": 1.0, "rotate": 35, "scale": [0.6, 1.3], "translate": 0.2,
                           "shear": 10}),
    "random_resized_crop": only(random_resized_crop={"p": 1.0, "scale": [0.15, 0.6]}),
    "scale_crop": only(scale_crop={"p": 1.0, "scale": [0.4, 1.8]}),
    "all geometric": only(random_resized_crop={"p": 1.0, "scale": [0.3, 1.0]}, hflip=0.5,
                          vflip=0.5, affine={"p": 1.0, "rotate": 25, "translate": 0.1}),
}


def labels_from_colour(image):
    colours = np.array([GREY, RED, BLACK], np.float32)
    distance = ((image[..., None, :].astype(np.float32) - colours) ** 2).sum(-1)
    return np.array([0, 1, IGNORE], np.uint8)[distance.argmin(-1)]


def assert_mask_follows_image(image, mask):
    """Away from edges (uniform 3x3 mask neighbourhood) colour and class must agree."""
    image, mask = np.asarray(image), np.asarray(mask)
    assert mask.shape == image.shape[:2] == SIZE
    assert set(np.unique(mask)) <= {0, 1, IGNORE}  # nearest: no invented values
    padded = np.pad(mask, 1, mode="edge")
    shifted = np.stack([padded[dy:dy + SIZE[0], dx:dx + SIZE[1]]
                        for dy in range(3) for dx in range(3)])
    interior = (shifted == mask).all(0)
    derived = labels_from_colour(image)
    assert interior.mean() > 0.5
    # A mask shifted by even one pixel would disagree along a whole edge (tens of pixels);
    # a rotated corner blurred by two resamplings may leave a single stray pixel.
    assert (derived[interior] != mask[interior]).sum() <= 2


def reference_mask():
    image, mask = scene()
    return build_val_transform(SIZE)(image=image, mask=mask)["mask"]


@pytest.mark.parametrize("name", list(GEOMETRIC))
def test_mask_follows_geometric_transforms_eagerly(name):
    image, mask = scene()
    transform = build_augment(GEOMETRIC[name], SIZE, fill_mask=IGNORE)
    changed = 0
    for seed in range(12):
        transform.set_random_seed(seed)
        out = transform(image=image, mask=mask)
        assert out["image"].dtype == np.uint8 and out["mask"].dtype == np.uint8
        assert_mask_follows_image(out["image"], out["mask"])
        changed += not np.array_equal(out["mask"], reference_mask())
    assert changed >= 6  # the transform really moved the rectangle


def test_padding_is_the_ignore_index_not_background():
    image, mask = scene()
    transform = build_augment(only(affine={"p": 1.0, "scale": [0.5, 0.5]}), SIZE, fill_mask=11)
    out = transform(image=image, mask=mask)
    assert out["mask"][0, 0] == 11 and out["mask"][SIZE[0] // 2, 2] == 11
    assert (out["image"][0, 0] == 0).all()


@pytest.fixture
def scene_dataset(tmp_path):
    image, mask = scene()
    for split in ("train", "val"):
        (tmp_path / "images" / split).mkdir(parents=True)
        (tmp_path / "masks" / split).mkdir(parents=True)
        Image.fromarray(image).save(tmp_path / "images" / split / "scene.png")
        Image.fromarray(mask, mode="L").save(tmp_path / "masks" / split / "scene.png")
    (tmp_path / "classes.txt").write_text("background\nrectangle\n")
    return resolve_dataset(str(tmp_path))


@pytest.mark.parametrize("name", list(GEOMETRIC))
def test_mask_follows_geometric_transforms_inside_tf_data(scene_dataset, name):
    ds = make_dataset(scene_dataset, "train", SIZE, batch_size=1, augment=GEOMETRIC[name],
                      seed=5, repeat=True)
    changed = 0
    for images, masks in ds.take(8):
        assert images.dtype.name == "float32" and masks.dtype.name == "int32"
        image = images[0].numpy()
        assert image.min() >= 0.0 and image.max() <= 255.0
        assert_mask_follows_image(image.round().astype(np.uint8), masks[0].numpy())
        changed += not np.array_equal(masks[0].numpy(), reference_mask())
    assert changed >= 4


def test_photometric_steps_leave_the_mask_alone():
    image, mask = scene()
    cfg = only(brightness_contrast=1.0, hue_saturation=1.0, blur=1.0, noise=1.0)
    transform = build_augment(cfg, SIZE)
    for seed in range(4):
        transform.set_random_seed(seed)
        out = transform(image=image, mask=mask)
        assert np.array_equal(out["mask"], reference_mask())
        assert not np.array_equal(out["image"], build_val_transform(SIZE)(image=image)["image"])


def test_same_sample_seed_same_augmentation(scene_dataset):
    loader = SampleLoader([(p, m) for p, m in [_pair(scene_dataset)]], scene_dataset, SIZE,
                          augment={})
    a, b, c = loader(0, 7), loader(0, 7), loader(0, 8)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def _pair(spec):
    root = spec.root
    return root / "images" / "train" / "scene.png", root / "masks" / "train" / "scene.png"


def test_validation_transform_resizes_only():
    image, mask = scene()
    out = build_val_transform(SIZE)(image=image, mask=mask)
    assert out["image"].shape == (*SIZE, 3) and out["mask"].shape == SIZE
    assert_mask_follows_image(out["image"], out["mask"])
    for off in (None, "none", "None"):
        transform = build_augment(off, SIZE)
        assert [type(t).__name__ for t in transform.transforms] == ["Resize"]


def test_config_resolution():
    assert resolve_augment(None) is None and resolve_augment("none") is None
    assert resolve_augment("default") == resolve_augment({}) == DEFAULT_AUGMENT
    assert resolve_augment({"hflip": 0})["hflip"] == {"p": 0.0}
    assert resolve_augment({"affine": {"rotate": 30}})["affine"]["rotate"] == 30
    switched = resolve_augment({"scale_crop": {"scale": [0.5, 2.0]}})
    assert switched["scale_crop"]["p"] == 1.0 and switched["random_resized_crop"]["p"] == 0.0
    names = [type(t).__name__ for t in build_augment({}, SIZE).transforms]
    assert names[0] == "RandomResizedCrop" and "Affine" in names and "HorizontalFlip" in names


@pytest.mark.parametrize(("cfg", "expected"), [
    ({"rotate": 10}, "unknown key"),
    ({"affine": {"angle": 10}}, r"augment\.affine: unknown field"),
    ({"hflip": 1.5}, r"augment\.hflip\.p"),
    ({"hflip": "yes"}, "expected a probability or a dict"),
    ({"scale_crop": 1.0, "random_resized_crop": 1.0}, "choose one"),
    ("heavy", "expected a dict"),
])
def test_bad_config_is_a_config_error(cfg, expected):
    with pytest.raises(ConfigError, match=expected):
        build_augment(cfg, SIZE)


def test_bad_input_size_is_a_config_error():
    with pytest.raises(ConfigError, match="input_size"):
        build_augment({}, (4, 64))
    with pytest.raises(ConfigError, match="input_size"):
        build_val_transform(128)
