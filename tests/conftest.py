"""Shared test setup: quiet TensorFlow, no network from albumentations, a fresh Keras session."""

import gc
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

# `make test` runs the suite on two pytest-xdist workers (`-n 2`); each worker is a session of
# its own. A test file is one unit of work, run whole by one worker, so its module-scoped
# conversions happen once; the files of a shared unit below share session-scoped fixtures (the
# format contracts of tests/export/conftest.py, the grid of tests/bench/conftest.py, the pruned
# chain of tests/compress/conftest.py, the split pairs of tests/split/conftest.py) and are one
# unit; the longest units are handed out first, so that neither worker is left with one of them
# at the end. Only the schedule: every test runs.
SHARED_UNITS = {
    "contracts": ("export/test_tflite.py", "export/test_tflite_metadata.py",
                  "export/test_edgetpu.py"),
    "bench": ("bench/test_bench.py", "bench/test_targets.py"),
    "pruned": ("compress/test_cluster.py", "compress/test_prune.py"),
    "split-pairs": ("split/test_halves.py", "split/test_client.py", "split/test_experiment.py"),
}
LONGEST_FIRST = ("train/test_distributed.py", "bench/test_study.py", "export/test_coreml.py",
                 "pruned",
                 "contracts", "export/test_int8_graph.py", "compress/test_ternary.py",
                 "compress/test_lowrank.py", "export/test_coreml_compress.py",
                 "export/test_exporter.py", "export/test_outputs.py", "split-pairs",
                 "split/test_compare.py", "compress/test_qat.py",
                 "export/test_int8_report.py", "train/test_loop.py", "bench", "test_weights.py",
                 "heads/test_heads.py", "backbones/test_backbones.py",
                 "export/test_int8_calibration.py", "export/test_tflite_graph.py",
                 "split/test_plan.py", "train/test_workarounds.py")
UNIT_OF = {name: unit for unit, names in SHARED_UNITS.items() for name in names}


def work_unit(nodeid: str) -> str:
    """The unit of work of a test: its file under tests/, or its shared unit's name."""
    name = nodeid.split("::")[0].removeprefix("tests/")
    return UNIT_OF.get(name, name)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """Load scheduling by `work_unit`, in collection order (see `pytest_collection_modifyitems`)."""
    from xdist.scheduler import LoadScopeScheduling

    class WorkUnits(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    config.option.loadscopereorder = False
    return WorkUnits(config, log)


def pytest_collection_modifyitems(config, items):
    if hasattr(config, "workerinput"):  # an xdist worker: the longest units first
        rank = {unit: i for i, unit in enumerate(LONGEST_FIRST)}
        items.sort(key=lambda item: rank.get(work_unit(item.nodeid), len(rank)))


@pytest.fixture(autouse=True)
def _fresh_keras_session():
    """Each test starts from a clean Keras name scope and seed; graphs do not pile up. Without
    the full garbage collection `clear_session` adds by default: with a file's models alive it
    took 0.3-0.5 s per test, longer than most tests (`_collect_garbage` runs it per file)."""
    keras.backend.clear_session(free_memory=False)
    keras.utils.set_random_seed(0)
    yield


@pytest.fixture(autouse=True, scope="module")
def _collect_garbage():
    """A full garbage collection after each test file, so memory does not pile up either."""
    yield
    gc.collect()


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


@pytest.fixture(scope="module")
def module_tiny_data(tmp_path_factory):
    """`tiny_data` for module-scoped fixtures: one folder per test file."""
    return make_tiny_data(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """(checkpoints_dir, run_dir) of a run trained once for the whole session: mobileunet 0.25
    at 64 px, 2 epochs on the tiny data. Tests only read it (or copy it). Under pytest-xdist
    the workers share one run: the first to ask trains it under a file lock, in the temporary
    folder of the whole test run, and the others read it."""
    import fcntl

    from zoo.config import DataConfig, ModelConfig, RunConfig, TrainConfig
    from zoo.train.loop import train

    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    root = shared / "trained"
    checkpoints = root / "checkpoints"
    with open(shared / "trained.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        done = root / "run_dir.txt"
        if not done.is_file():
            root.mkdir(exist_ok=True)
            cfg = RunConfig(
                model=ModelConfig(arch="mobileunet", alpha=0.25, input_size=(64, 64)),
                data=DataConfig(data=str(make_tiny_data(root / "tiny"))),
                train=TrainConfig(epochs=2, batch_size=4, precise_bn_images=8,
                                  warmup_epochs=0),
            )
            done.write_text(str(train(cfg, checkpoints, verbose=0)))
        return checkpoints, Path(done.read_text())
