"""One tiny trained run per session (mobileunet 0.25 at 64 px, 2 epochs) for every export test."""

import numpy as np
import pytest
from PIL import Image

from zoo.config import DataConfig, ModelConfig, RunConfig, TrainConfig


def write_pairs(root, split, count, size=64, seed=0):
    """Tiny two-class data: a bright square (class 1) on darker noise (class 0)."""
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


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """(checkpoints_dir, run_dir) of a run trained once for the whole session."""
    from zoo.train.loop import train

    root = tmp_path_factory.mktemp("export")
    write_pairs(root / "tiny", "train", 16, seed=1)
    write_pairs(root / "tiny", "val", 8, seed=2)
    cfg = RunConfig(
        model=ModelConfig(arch="mobileunet", alpha=0.25, input_size=(64, 64)),
        data=DataConfig(data=str(root / "tiny")),
        train=TrainConfig(epochs=2, batch_size=4, precise_bn_images=8, warmup_epochs=0),
    )
    checkpoints = root / "checkpoints"
    run_dir = train(cfg, checkpoints, verbose=0)
    return checkpoints, run_dir
