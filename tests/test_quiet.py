"""Entry points print the zoo's own lines, not the libraries' start-up noise; --verbose brings
the noise back."""

import subprocess
import sys
from pathlib import Path

import pytest

from zoo.cli import NOISE

ROOT = Path(__file__).resolve().parents[1]


def _run(*args, env_extra=None):
    import os

    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL",
                                                            "ZOO_VERBOSE")}
    env.update(env_extra or {})
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                          env=env, timeout=300)


@pytest.mark.slow
def test_a_user_error_is_the_only_line_on_stderr(tmp_path):
    proc = _run("export.py", "--run", str(tmp_path / "nope"), "--format", "onnx")
    assert proc.returncode == 2
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: run {tmp_path / 'nope'}: no run "
                                                   "folder"), proc.stderr
    verbose = _run("export.py", "--run", str(tmp_path / "nope"), "--format", "onnx", "--verbose")
    assert verbose.returncode == 2 and verbose.stderr.splitlines()[-1].startswith("error: ")
    # TensorFlow's start-up lines are back (its C++ prints them at import on every machine).
    assert any(NOISE.search(line) for line in verbose.stderr.splitlines()), verbose.stderr


def test_noise_patterns_match_the_start_up_lines_and_nothing_of_ours():
    noise = [
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
        "I0000 00:00:1795911015.443457   14221 cudart_stub.cc:31] Could not find cuda drivers "
        "on your machine, GPU will not be used.",
        "E0000 00:00:1795910837.299476   13451 cuda_platform.cc:52] failed call to cuInit: "
        "INTERNAL: CUDA error",
        "To enable the following instructions: AVX2 FMA, in other operations, rebuild "
        "TensorFlow with the appropriate compiler flags.",
        "Failed to load _MLModelProxy: No module named 'coremltools.libcoremlpython'",
    ]
    ours = ["error: epochs must be >= 1, got 0", "tflite: XNNPACK 1 partition; ops outside: none",
            "Epoch 1/40", "E0000 something.cc:1] a real error from an unknown place"]
    assert all(NOISE.search(line) for line in noise)
    assert not any(NOISE.search(line) for line in ours)
