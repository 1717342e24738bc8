"""Running the command-line entry points: the zoo's own lines, not the libraries' start-up noise,
and user errors as one line on stderr with exit status 2.

Example::

    from zoo.cli import run        # first import of every entry point (train.py, export.py, ...)
    run(train_command, name="train.py")

Importing this module in a command (not under pytest) quietens the start-up lines that say
nothing to a user: TensorFlow's C++ log below warnings (`TF_CPP_MIN_LOG_LEVEL=2`, unless the
environment sets it), and, on the process's stderr file descriptor, the lines native code prints
before any logging is configured (absl's "All log messages before absl::InitializeLog()",
CUDA probing on a machine without a GPU, oneDNN and CPU-feature notices) and coremltools'
warnings about its missing macOS-only proxy and untested TensorFlow versions. Those come from
C++ at import time (tensorflow/tensorflow#62075), where no Python setting reaches them, hence the
filter on the descriptor. ``--verbose`` (anywhere on the command line) or ``ZOO_VERBOSE=1`` leaves
stderr untouched.
"""

from __future__ import annotations

import os
import re
import sys
import threading
from typing import Any

NOISE = re.compile("|".join([
    r"^WARNING: All log messages before absl::InitializeLog\(\) is called",
    r"^WARNING: Logging before InitGoogle\(\) is written to STDERR",
    r"^[IWE]\d{4} [\d:. ]+\d+ (cudart_stub|cuda_platform|cuda_executor|cuda_diagnostics|"
    r"cpu_feature_guard|port|gpu_device|dso_loader)\.cc:\d+\]",
    r"^To enable the following instructions: .* rebuild TensorFlow",
    r"oneDNN custom operations are on",
    r"Failed to load _MLModelProxy",
    r"Failed to load _MLCPUComputeDeviceProxy|Failed to load _MLGPUComputeDeviceProxy",
    r"Failed to load _MLNeuralEngineComputeDeviceProxy|Failed to load _MLModelAssetProxy",
    r"TensorFlow version [\d.]+ has not been tested with coremltools",
    r"^\s*warnings\.warn\(\s*$",
    r"^INFO: Created TensorFlow Lite XNNPACK delegate for CPU\.",
]))

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")


def verbose_requested(argv: list[str] | None = None) -> bool:
    argv = sys.argv[1:] if argv is None else argv
    return "--verbose" in argv or os.environ.get("ZOO_VERBOSE", "") not in ("", "0")


class _StderrFilter:
    """Routes file descriptor 2 through a pipe; a thread forwards every line that is not
    noise to the original stderr. Lines end at ``\\n`` or ``\\r`` (progress bars)."""

    def __init__(self) -> None:
        self.original = os.dup(2)
        read_end, write_end = os.pipe()
        os.dup2(write_end, 2)
        os.close(write_end)
        self.reader = read_end
        self.thread = threading.Thread(target=self._forward, name="zoo-stderr", daemon=True)
        self.thread.start()

    def _forward(self) -> None:
        pending = b""
        while chunk := os.read(self.reader, 65536):
            pending += chunk
            parts = re.split(rb"(?<=[\r\n])", pending)
            pending = parts.pop()  # the unfinished line, if any
            keep = [p for p in parts if not NOISE.search(p.decode(errors="replace"))]
            if keep:
                os.write(self.original, b"".join(keep))
        if pending and not NOISE.search(pending.decode(errors="replace")):
            os.write(self.original, pending)

    def close(self) -> None:
        """Restore stderr and let the thread forward what is left in the pipe."""
        sys.stderr.flush()
        os.dup2(self.original, 2)  # closes the pipe's last write end: the reader sees EOF
        self.thread.join(timeout=2)


def quiet_start() -> None:
    """Install the filter once per command (see the module docstring)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if verbose_requested() else "2")
    if verbose_requested() or getattr(quiet_start, "filter", None) is not None:
        return
    try:
        quiet_start.filter = _StderrFilter()
    except OSError:  # no file descriptor 2 to redirect: nothing to quieten
        return
    import atexit

    atexit.register(quiet_start.filter.close)


if "pytest" not in sys.modules:
    quiet_start()
else:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def run(component: Any, name: str | None = None) -> None:
    """`fire.Fire(component)`; a `ValueError` from bad input prints ``error: ...`` and exits 2.
    ``--verbose`` is taken out of the arguments (see the module docstring)."""
    import fire

    from zoo.errors import ZooError
    from zoo.registry import RegistryError

    args = [a for a in sys.argv[1:] if a != "--verbose"]
    if any(a in ("-h", "--help") for a in args) and "--" not in args:
        # Fire binds --help to a **kwargs parameter; after "--" it is Fire's own flag.
        args = [a for a in args if a not in ("-h", "--help")] + ["--", "--help"]
    try:
        fire.Fire(component, command=args, name=name)
    except (ZooError, RegistryError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
