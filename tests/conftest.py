"""Shared test setup: quiet TensorFlow, no network from albumentations, a fresh Keras session."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402


@pytest.fixture(autouse=True)
def _fresh_keras_session():
    """Each test starts from a clean Keras name scope and seed; graphs do not pile up."""
    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    yield


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


def make_tiny_data(root):
    """16 training and 8 validation pairs of 64 px in the plain folder layout."""
    write_pairs(root, "train", 16, seed=1)
    write_pairs(root, "val", 8, seed=2)
    return root


@pytest.fixture
def tiny_data(tmp_path):
    return make_tiny_data(tmp_path / "tiny")


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """(checkpoints_dir, run_dir) of a run trained once for the whole session: mobileunet 0.25
    at 64 px, 2 epochs on the tiny data."""
    from zoo.config import DataConfig, ModelConfig, RunConfig, TrainConfig
    from zoo.train.loop import train

    root = tmp_path_factory.mktemp("trained")
    cfg = RunConfig(
        model=ModelConfig(arch="mobileunet", alpha=0.25, input_size=(64, 64)),
        data=DataConfig(data=str(make_tiny_data(root / "tiny"))),
        train=TrainConfig(epochs=2, batch_size=4, precise_bn_images=8, warmup_epochs=0),
    )
    checkpoints = root / "checkpoints"
    return checkpoints, train(cfg, checkpoints, verbose=0)
