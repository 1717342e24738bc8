"""mobileseg-zoo: mobile semantic-segmentation models with a validated on-device export.

Example::

    import zoo
    zoo.list_archs()                       # ['mobilenet_edgetpu_unet', 'mobileunet', ...]
    model = zoo.build_model("mobileunet", alpha=0.5, input_size=224, num_classes=2)
    zoo.check(model, "edgetpu")            # layers the Edge TPU maps badly, with alternatives

Names resolve lazily, so `import zoo` stays cheap until a model is needed.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "build_model": "zoo.models",
    "list_archs": "zoo.models",
    "list_backbones": "zoo.models",
    "list_heads": "zoo.models",
    "check": "zoo.capabilities",
    "count_macs": "zoo.stats",
    "count_params": "zoo.stats",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'zoo' has no attribute {name!r}")
