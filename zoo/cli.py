"""Running fire CLIs: user errors become one line on stderr and exit status 2."""

from __future__ import annotations

import os
import sys
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")


def run(component: Any, name: str | None = None) -> None:
    """`fire.Fire(component)`; a `ValueError` from bad input prints ``error: ...`` and exits 2."""
    import fire

    from zoo.errors import ZooError
    from zoo.registry import RegistryError

    try:
        fire.Fire(component, name=name)
    except (ZooError, RegistryError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
