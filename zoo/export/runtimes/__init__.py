"""Runtimes that execute exported artifacts, looked up by name.

Example::

    from zoo.export.runtimes import RUNTIMES, get_runner
    runner = get_runner("litert", Path("model.tflite"), threads=2)
    logits = runner.run(images[:1])                 # float32 (1, H, W, C)
    RUNTIMES.get("coreml").available()              # "" or why not (Core ML needs macOS)

Every module of this folder registers its runtimes on import; the folder is walked here, so a
new runtime is one new file. Runtime libraries (ai_edge_litert, onnxruntime, coremltools) are
imported inside the runners, never at package import.
"""

from __future__ import annotations

import importlib
import pkgutil

from zoo.export.runtimes.base import (
    RUNTIMES,
    NotRunnableError,
    Runner,
    RuntimeSpec,
    TensorInfo,
    dequantize,
    get_runner,
    quantize,
    register_runtime,
)

for _info in pkgutil.iter_modules(__path__):
    if _info.name != "base":
        importlib.import_module(f"{__name__}.{_info.name}")

__all__ = ["RUNTIMES", "NotRunnableError", "Runner", "RuntimeSpec", "TensorInfo", "dequantize",
           "get_runner", "quantize", "register_runtime"]
