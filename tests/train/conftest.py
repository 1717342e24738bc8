import numpy as np
import pytest
from PIL import Image


def write_pairs(root, split, count, size=64, seed=0):
    """Tiny two-class data: a bright square (class 1) on noise (class 0)."""
    rng = np.random.default_rng(seed)
    (root / "images" / split).mkdir(parents=True, exist_ok=True)
    (root / "masks" / split).mkdir(parents=True, exist_ok=True)
    for i in range(count):
        image = rng.integers(0, 120, (size, size, 3), dtype=np.uint8)
        mask = np.zeros((size, size), np.uint8)
        y, x = rng.integers(4, size // 2, 2)
        side = int(rng.integers(12, size // 2))
        image[y:y + side, x:x + side] = rng.integers(180, 255, 3, dtype=np.uint8)
        mask[y:y + side, x:x + side] = 1
        Image.fromarray(image).save(root / "images" / split / f"{split}{i:03d}.png")
        Image.fromarray(mask).save(root / "masks" / split / f"{split}{i:03d}.png")


@pytest.fixture
def tiny_data(tmp_path):
    root = tmp_path / "tiny"
    write_pairs(root, "train", 16, seed=1)
    write_pairs(root, "val", 8, seed=2)
    return root
