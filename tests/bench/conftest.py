"""The smallest real grid (mobileunet 0.25 at 64 px; fp32 and int8 LiteRT and onnxruntime at 1
and 2 threads), run once for test_bench.py and test_targets.py, which read it (one unit of work
in tests/conftest.py's schedule, so one worker runs it)."""

import pytest

from zoo.bench.grid import grid


@pytest.fixture(scope="session")
def grid_args():
    """The grid's arguments but its output folder: 6 cells."""
    return dict(archs="mobileunet", alphas=0.25, sizes=64, runtimes="tflite,tflite-int8,onnx",
                threads="1,2", runs=3, warmup=1, peak_size=256, progress=False)


@pytest.fixture(scope="session")
def grid_out(grid_args, tmp_path_factory):
    """(out folder, grid's result) of `grid_args`."""
    out = tmp_path_factory.mktemp("grid")
    result = grid(**grid_args, out=str(out), checkpoints=str(out / "no-runs"))
    return out, result
